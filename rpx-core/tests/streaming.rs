//! Bodies stream both ways; SSE, WebSocket and HTTP/2 clients work.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

#[tokio::test]
async fn sse_events_arrive_one_by_one() {
    // The upstream sends the second event only after the test saw the first
    // through the proxy: a buffering proxy would deadlock (and time out).
    let (release_tx, release_rx) = mpsc::channel::<()>(1);
    let release_rx = std::sync::Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
    let up = Upstream::start(move |_req| {
        let release_rx = release_rx.clone();
        async move {
            let mut release = release_rx.lock().await.take().expect("one SSE request");
            let (tx, rx) = mpsc::channel::<Bytes>(4);
            tokio::spawn(async move {
                tx.send(Bytes::from_static(b"data: first\n\n"))
                    .await
                    .unwrap();
                release.recv().await;
                tx.send(Bytes::from_static(b"data: last\n\n"))
                    .await
                    .unwrap();
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(channel_body(rx))
                .unwrap()
        }
    })
    .await;
    let p = Proxy::start(&proxy_config(&up, "")).await;
    let res = bounded(client().request(Request::get(p.url("/events")).body(empty()).unwrap()))
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let first = bounded(body.frame())
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(first, "data: first\n\n");
    release_tx.send(()).await.unwrap();
    let last = bounded(body.frame())
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(last, "data: last\n\n");
}

#[tokio::test]
async fn upload_reaches_upstream_while_client_still_sends() {
    // The upstream answers after reading the first chunk; the client sends
    // the rest only after the response head arrived: only streaming works.
    let up = Upstream::start(|req| async move {
        let mut body = req.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        tokio::spawn(async move {
            let mut total = first.len();
            tx.send(Bytes::from(format!("first={}\n", first.len())))
                .await
                .unwrap();
            while let Some(Ok(f)) = body.frame().await {
                total += f.data_ref().map_or(0, |d| d.len());
            }
            tx.send(Bytes::from(format!("total={total}\n")))
                .await
                .unwrap();
        });
        Response::new(channel_body(rx))
    })
    .await;
    let p = Proxy::start(&proxy_config(&up, "")).await;
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tx.send(Bytes::from(vec![b'a'; 1000])).await.unwrap();
    let req = Request::post(p.url("/upload"))
        .body(channel_body(rx))
        .unwrap();
    let res = bounded(client().request(req)).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let first = bounded(body.frame())
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(first, "first=1000\n");
    for _ in 0..10 {
        tx.send(Bytes::from(vec![b'b'; 100_000])).await.unwrap();
    }
    drop(tx);
    let rest = bounded(body.collect()).await.unwrap().to_bytes();
    assert_eq!(rest, "total=1001000\n");
}

#[tokio::test]
async fn large_download_streams_with_content_length() {
    const SIZE: usize = 8 * 1024 * 1024;
    let up =
        Upstream::start(|_req| async { Response::new(full(Bytes::from(vec![7u8; SIZE]))) }).await;
    let p = Proxy::start(&proxy_config(&up, "")).await;
    let res = bounded(client().request(Request::get(p.url("/big")).body(empty()).unwrap()))
        .await
        .unwrap();
    assert_eq!(res.headers()["content-length"], SIZE.to_string());
    let body = bounded(res.into_body().collect()).await.unwrap().to_bytes();
    assert_eq!(body.len(), SIZE);
    assert!(body.iter().all(|b| *b == 7));
}

/// A minimal WebSocket echo upstream using tungstenite on the upgraded IO.
async fn ws_upstream() -> Upstream {
    Upstream::start(|mut req| async move {
        use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
        let key = req.headers().get("sec-websocket-key").cloned();
        let Some(key) = key else {
            return Response::builder()
                .status(400)
                .body(full("not ws"))
                .unwrap();
        };
        let accept = derive_accept_key(key.as_bytes());
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let upgraded = on_upgrade.await.unwrap();
            let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                hyper_util::rt::TokioIo::new(upgraded),
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            let (mut tx, mut rx) = ws.split();
            while let Some(Ok(msg)) = rx.next().await {
                if (msg.is_text() || msg.is_binary()) && tx.send(msg).await.is_err() {
                    break;
                }
            }
        });
        Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .header("sec-websocket-accept", accept)
            .body(empty())
            .unwrap()
    })
    .await
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let up = ws_upstream().await;
    let p = Proxy::start(&proxy_config(&up, "")).await;
    let url = format!("ws://{}/ws", p.addr());
    let (mut ws, res) = bounded(tokio_tungstenite::connect_async(url))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    for i in 0..3 {
        let text = format!("hello {i}");
        bounded(ws.send(text.clone().into())).await.unwrap();
        let echo = bounded(ws.next()).await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), text);
    }
    let seen = up.last();
    assert_eq!(seen.headers["upgrade"], "websocket");
    assert_eq!(seen.headers["connection"], "upgrade");
}

#[tokio::test]
async fn refused_upgrade_opens_no_tunnel() {
    // The upstream refuses (400); the client gets the 400 and its
    // connection goes on speaking HTTP.
    let up = Upstream::start(|_req| async {
        Response::builder()
            .status(400)
            .body(full("no upgrade"))
            .unwrap()
    })
    .await;
    let p = Proxy::start(&proxy_config(&up, "")).await;
    let res = raw(
        p.addr(),
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /again HTTP/1.1\r\nHost: x\r\n\r\n",
        "no upgradeHTTP/1.1 400",
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 400"), "{res}");
    assert_eq!(
        res.matches("HTTP/1.1 400").count(),
        2,
        "second request answered: {res}"
    );
}

#[tokio::test]
async fn unrequested_switching_protocols_is_a_502() {
    let up = Upstream::start(|_req| async {
        Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .body(empty())
            .unwrap()
    })
    .await;
    let p = Proxy::start(&proxy_config(&up, "")).await;
    let (status, _, _) = get(&p.url("/"), &[]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn http2_prior_knowledge_clients_are_proxied_and_routed_by_authority() {
    let up = Upstream::ok().await;
    let config = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "/"
          return = "200 default"
        [[server]]
        listen = "127.0.0.1:0"
        server_name = "h2.test"
          [[server.location]]
          path = "/"
          proxy_pass = "{}"
          proxy_set_header = {{ "X-Host" = "$host" }}
        "#,
        up.url()
    );
    let p = Proxy::start(&config).await;
    // A raw HTTP/2 connection, so `:authority` can name a host other than
    // the socket's address.
    let (mut sender, _conn) = h2c_client(p.addr()).await;
    let req = Request::get("http://h2.test/x?y=1").body(empty()).unwrap();
    let res = bounded(sender.send_request(req)).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    let body = bounded(res.into_body().collect()).await.unwrap().to_bytes();
    assert_eq!(body, "upstream");
    let seen = up.last();
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.uri, "/x?y=1");
    assert_eq!(seen.headers["x-host"], "h2.test");
    let req = Request::get("http://other.test/").body(empty()).unwrap();
    let res = bounded(sender.send_request(req)).await.unwrap();
    let body = bounded(res.into_body().collect()).await.unwrap().to_bytes();
    assert_eq!(body, "default");
    let _ = Duration::ZERO;
}
