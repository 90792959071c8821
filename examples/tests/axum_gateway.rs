//! The axum gateway example through one real listener on loopback: a
//! proxied route, an axum route whose body streams, the rescue layer's
//! 502, and the real client address when served by hyper directly.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rpx_examples::axum_gateway::{gateway, serve_with_hyper};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

/// A backend that answers with the path and the `X-Forwarded-For` it got.
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: http::Request<Incoming>| async move {
                    let xff = req.headers().get("x-forwarded-for").cloned();
                    let text = format!(
                        "path={} xff={}",
                        req.uri(),
                        xff.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-")
                    );
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn client(stream: TcpStream) -> Sender {
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

async fn get(send: &mut Sender, path: &str) -> http::Response<Incoming> {
    let req = http::Request::get(path)
        .header("host", "gateway.test")
        .body(Empty::new())
        .unwrap();
    timeout(LIMIT, send.send_request(req))
        .await
        .unwrap()
        .unwrap()
}

async fn text(res: http::Response<Incoming>) -> String {
    let body = timeout(LIMIT, res.into_body().collect())
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(body.to_bytes().to_vec()).unwrap()
}

/// The gateway to `backend` served by rpx's server: a client connected to
/// it, and the sender of its events.
async fn serve_gateway(backend: SocketAddr) -> (Sender, tokio::sync::broadcast::Sender<String>) {
    let gw = gateway(backend).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(rpx_core::server::serve(
        listener,
        gw.service,
        std::future::pending(),
    ));
    let send = client(TcpStream::connect(addr).await.unwrap()).await;
    (send, gw.events)
}

#[tokio::test]
async fn proxied_and_streamed_axum_routes_share_one_listener() {
    let (mut send, events) = serve_gateway(backend().await).await;

    // `/api/` is proxied, its prefix stripped, the client's address passed on.
    let res = get(&mut send, "/api/users?x=1").await;
    assert_eq!(res.status(), 200);
    assert_eq!(text(res).await, "path=/users?x=1 xff=127.0.0.1");

    // Everything else is the axum app.
    let res = get(&mut send, "/").await;
    assert_eq!(res.status(), 200);
    assert_eq!(text(res).await, "the app itself answers\n");

    // `/events` streams: each event reaches the client while the handler
    // is still running, before the next one exists.
    let res = get(&mut send, "/events").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert!(res.headers().get("content-length").is_none());
    let mut body = res.into_body();
    for event in ["one", "two"] {
        events.send(event.to_owned()).unwrap();
        let frame = timeout(LIMIT, body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            frame.into_data().unwrap(),
            Bytes::from(format!("data: {event}\n\n"))
        );
    }
}

#[tokio::test]
async fn a_path_above_the_root_is_a_400_that_closes() {
    let (mut send, _) = serve_gateway(backend().await).await;
    // No location rule can serve it: the router's error, the rescue page,
    // and the connection closed after it, as nginx closes after a 400.
    let res = get(&mut send, "/../etc/passwd").await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["connection"], "close");
}

#[tokio::test]
async fn a_backend_that_is_down_is_a_502_page() {
    // A port nothing listens on: bound, then closed.
    let gone = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (mut send, _) = serve_gateway(gone).await;
    let res = get(&mut send, "/api/x").await;
    assert_eq!(res.status(), 502);
    assert!(text(res).await.contains("502 Bad Gateway"));
}

#[tokio::test]
async fn served_by_hyper_the_conn_info_layer_gives_the_real_client_address() {
    let gw = gateway(backend().await).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_with_hyper(listener, gw.service));
    // From 127.0.0.2: without the connection's facts a request reads as
    // coming from 127.0.0.1.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut send = client(socket.connect(addr).await.unwrap()).await;
    let res = get(&mut send, "/api/who").await;
    assert_eq!(text(res).await, "path=/who xff=127.0.0.2");
}
