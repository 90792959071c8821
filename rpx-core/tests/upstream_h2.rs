//! HTTP/2 to upstreams (`proxy_http_version = "2"`): ALPN with fallback to
//! HTTP/1.1, h2c, shared multiplexed connections, trailers and streaming,
//! GOAWAY, upgrades kept on HTTP/1.1, the error mapping, keep-alive limits
//! per connection, and requests the upstream did not process sent again.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Barrier};

/// Lets a handler make its own connection send GOAWAY (a graceful
/// shutdown) before it answers.
#[derive(Clone)]
struct ConnCtl(mpsc::Sender<oneshot::Sender<()>>);

impl ConnCtl {
    async fn go_away(&self) {
        let (done, shut) = oneshot::channel();
        self.0.send(done).await.unwrap();
        shut.await.unwrap();
    }
}

/// A hyper upstream speaking HTTP/1.1 and HTTP/2 (by its preface: h2c
/// prior knowledge, or whatever ALPN agreed), over TLS with the given ALPN
/// list or over plain TCP. Counts connections, notes which have ended
/// (by their number in accept order, from 1) and records request heads.
/// A response carrying `x-reset` is turned into a stream reset.
struct H2Upstream {
    addr: SocketAddr,
    tls: bool,
    connections: Arc<AtomicUsize>,
    closed: watch::Sender<Vec<usize>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    _stop: oneshot::Sender<()>,
}

impl H2Upstream {
    async fn start<H, Fut>(alpn: Option<&[&[u8]]>, handler: H) -> H2Upstream
    where
        H: Fn(Request<Incoming>, ConnCtl) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        let acceptor = alpn.map(tls_acceptor);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let (closed, _) = watch::channel(Vec::new());
        let (accepted, record, ended) = (connections.clone(), seen.clone(), closed.clone());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    _ = &mut stopped => return,
                };
                let n = accepted.fetch_add(1, Ordering::SeqCst) + 1;
                let (handler, record, acceptor, ended) = (
                    handler.clone(),
                    record.clone(),
                    acceptor.clone(),
                    ended.clone(),
                );
                tokio::spawn(async move {
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(tcp).await {
                                serve(tls, handler, record).await;
                            }
                        }
                        None => serve(tcp, handler, record).await,
                    }
                    ended.send_modify(|c| c.push(n));
                });
            }
        });
        H2Upstream {
            addr,
            tls: alpn.is_some(),
            connections,
            closed,
            seen,
            _stop: stop,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The connections that have ended, by number.
    fn closed(&self) -> Vec<usize> {
        let mut c = self.closed.borrow().clone();
        c.sort_unstable();
        c
    }

    /// Waits until connection `n` (in accept order, from 1) has ended.
    async fn wait_closed(&self, n: usize) {
        let mut ended = self.closed.subscribe();
        bounded(ended.wait_for(|c| c.contains(&n))).await.unwrap();
    }

    fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }

    /// A location proxying to this upstream with `extra` lines.
    fn config(&self, extra: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        proxy_to(
            &format!("{scheme}://{}", self.addr),
            &format!("proxy_ssl_verify = false\n{extra}"),
        )
    }

    /// A location proxying in HTTP/2 to a group of this upstream alone,
    /// with `keepalive` lines in the group.
    fn group_config(&self, keepalive: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let addr = self.addr;
        format!(
            r#"
            [[server]]
            listen = "127.0.0.1:0"
              [[server.location]]
              path = "/"
              proxy_pass = "{scheme}://backend"
              proxy_http_version = "2"
              proxy_ssl_verify = false
            [upstream.backend]
            servers = ["{addr}"]
            {keepalive}
            "#
        )
    }
}

async fn serve<I, H, Fut>(io: I, handler: H, record: Arc<Mutex<Vec<Seen>>>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>, ConnCtl) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<TestBody>> + Send + 'static,
{
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<oneshot::Sender<()>>(1);
    let ctl = ConnCtl(ctl_tx);
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        record.lock().unwrap().push(Seen {
            method: req.method().clone(),
            uri: req.uri().to_string(),
            headers: req.headers().clone(),
            version: req.version(),
        });
        let (handler, ctl) = (handler.clone(), ctl.clone());
        async move {
            let res = handler(req, ctl).await;
            if res.headers().contains_key("x-reset") {
                return Err("reset by the test upstream");
            }
            Ok::<_, &'static str>(res)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Above rpx's 100 per connection, so that rpx's own limit shows.
    builder.http2().max_concurrent_streams(1000);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            Some(done) = ctl_rx.recv() => {
                conn.as_mut().graceful_shutdown();
                let _ = done.send(());
            }
        }
    }
}

/// A self-signed certificate: rpx runs with `proxy_ssl_verify = false`
/// here (verification is `tls.rs`'s subject).
fn tls_acceptor(alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    let ck = rcgen::generate_simple_self_signed(vec!["backend.test".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der());
    let mut config = rustls::ServerConfig::builder_with_provider(rpx_core::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key.into())
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Answers with the version it was asked in.
async fn echo_version(req: Request<Incoming>, _: ConnCtl) -> Response<TestBody> {
    Response::new(full(format!("{:?}", req.version())))
}

/// An HTTP/2 client connection to rpx (prior knowledge).
async fn h2c_client(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<TestBody> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// `n` GETs of `url` at once; their statuses and bodies.
async fn concurrent_gets(url: String, n: usize) -> Vec<(StatusCode, Bytes)> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let url = url.clone();
        set.spawn(async move {
            let (status, _, body) = get(&url, &[]).await;
            (status, body)
        });
    }
    bounded(set.join_all()).await
}

#[tokio::test]
async fn https_upstream_speaks_http2_by_alpn_only_when_asked() {
    let up = H2Upstream::start(Some(&[b"h2", b"http/1.1"]), echo_version).await;
    let p = Proxy::start(
        &up.config("proxy_http_version = \"2\"\nproxy_set_header = { Host = \"app.test\" }"),
    )
    .await;
    let (status, _, body) = get(&p.url("/x?y=1"), &[]).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"HTTP/2.0"[..]));
    let seen = up.last();
    assert_eq!(seen.version, Version::HTTP_2);
    // Host became :authority, with the scheme of the connection.
    assert_eq!(seen.uri, "https://app.test/x?y=1");
    assert!(!seen.headers.contains_key("host"));
    // An HTTP/1.1 client is answered in HTTP/1.1, not in the upstream's 2.
    let res = raw(
        p.addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "HTTP/2.0",
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 200 OK\r\n"), "{res}");

    // By default: HTTP/1.1, as before.
    let p = Proxy::start(&up.config("")).await;
    let (_, _, body) = get(&p.url("/"), &[]).await;
    assert_eq!(&body[..], b"HTTP/1.1");
    assert_eq!(up.last().version, Version::HTTP_11);
}

#[tokio::test]
async fn an_upstream_offering_only_http11_is_spoken_to_in_http11() {
    let up = H2Upstream::start(Some(&[b"http/1.1"]), echo_version).await;
    let p = Proxy::start(&up.config("proxy_http_version = \"2\"")).await;
    for _ in 0..3 {
        let (status, _, body) = get(&p.url("/"), &[]).await;
        assert_eq!((status.as_u16(), &body[..]), (200, &b"HTTP/1.1"[..]));
    }
    assert_eq!(up.last().version, Version::HTTP_11);
    assert_eq!(
        up.connections(),
        1,
        "the negotiated HTTP/1.1 connection joins the keep-alive pool"
    );
}

#[tokio::test]
async fn plain_upstream_gets_h2c_with_prior_knowledge() {
    let up = H2Upstream::start(None, echo_version).await;
    let p = Proxy::start(&up.config("proxy_http_version = 2")).await;
    let (status, _, body) = get(&p.url("/h2c"), &[]).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"HTTP/2.0"[..]));
    let seen = up.last();
    assert_eq!(seen.version, Version::HTTP_2);
    // Host is `$proxy_host` by default, the upstream's address.
    assert_eq!(seen.uri, format!("http://{}/h2c", up.addr));
}

#[tokio::test]
async fn concurrent_requests_share_one_connection() {
    // Every request waits at the upstream until all have arrived: served
    // one after another they would never finish.
    const N: usize = 20;
    let barrier = Arc::new(Barrier::new(N));
    let up = H2Upstream::start(Some(&[b"h2", b"http/1.1"]), move |_req, _| {
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            Response::new(full("together"))
        }
    })
    .await;
    let p = Proxy::start(&up.config("proxy_http_version = \"2\"")).await;
    for (status, body) in concurrent_gets(p.url("/"), N).await {
        assert_eq!((status.as_u16(), &body[..]), (200, &b"together"[..]));
    }
    assert_eq!(up.connections(), 1, "{N} streams on one connection");
    assert_eq!(up.last().version, Version::HTTP_2);
}

#[tokio::test]
async fn more_than_100_requests_at_once_open_a_second_connection() {
    const N: usize = 150;
    let barrier = Arc::new(Barrier::new(N));
    let up = H2Upstream::start(None, move |_req, _| {
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            Response::new(full("ok"))
        }
    })
    .await;
    let p = Proxy::start(&up.config("proxy_http_version = \"2\"")).await;
    for (status, _) in concurrent_gets(p.url("/"), N).await {
        assert_eq!(status, 200);
    }
    assert_eq!(
        up.connections(),
        2,
        "100 streams on the first, 50 on another"
    );
}

#[tokio::test]
async fn trailers_and_first_chunks_stream_to_an_h2_client() {
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release = Arc::new(Mutex::new(Some(release_rx)));
    let up = H2Upstream::start(None, move |_req, _| {
        let release = release.clone();
        async move {
            let release = release.lock().unwrap().take().expect("one request");
            let (tx, rx) = mpsc::channel::<Frame<Bytes>>(4);
            tokio::spawn(async move {
                tx.send(Frame::data(Bytes::from_static(b"first")))
                    .await
                    .unwrap();
                // The rest only once the client holds the first chunk.
                release.await.unwrap();
                tx.send(Frame::data(Bytes::from_static(b"last")))
                    .await
                    .unwrap();
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", "0".parse().unwrap());
                tx.send(Frame::trailers(trailers)).await.unwrap();
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|f| (Ok(f), rx))
            });
            Response::builder()
                .header("content-type", "application/grpc")
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .unwrap()
        }
    })
    .await;
    let p = Proxy::start(&up.config("proxy_http_version = \"2\"")).await;
    let mut client = h2c_client(p.addr()).await;
    let req = Request::post(format!("http://{}/svc/Method", p.addr()))
        .header("te", "trailers")
        .header("content-type", "application/grpc")
        .body(full("request"))
        .unwrap();
    let res = bounded(client.send_request(req)).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let first = bounded(body.frame()).await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "first");
    release_tx.send(()).unwrap();
    let mut data = Vec::new();
    let mut trailers = None;
    while let Some(frame) = bounded(body.frame()).await {
        let frame = frame.unwrap();
        match frame.into_data() {
            Ok(d) => data.extend_from_slice(&d),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    assert_eq!(data, b"last");
    let trailers = trailers.expect("the upstream's trailers");
    assert_eq!(trailers["grpc-status"], "0");
    let seen = up.last();
    assert_eq!(seen.version, Version::HTTP_2);
    assert_eq!(
        seen.headers["te"], "trailers",
        "TE: trailers reaches gRPC servers"
    );
}

#[tokio::test]
async fn an_upstream_going_away_gets_the_next_request_on_a_new_connection() {
    // The first request's connection sends GOAWAY before answering; the
    // requests after it need another connection.
    let first = Arc::new(AtomicBool::new(true));
    let up = H2Upstream::start(Some(&[b"h2"]), move |_req, ctl| {
        let first = first.swap(false, Ordering::SeqCst);
        async move {
            if first {
                ctl.go_away().await;
            }
            Response::new(full("ok"))
        }
    })
    .await;
    let p = Proxy::start(&up.config("proxy_http_version = \"2\"")).await;
    for _ in 0..3 {
        let (status, _, body) = get(&p.url("/"), &[]).await;
        assert_eq!((status.as_u16(), &body[..]), (200, &b"ok"[..]));
    }
    assert_eq!(up.connections(), 2);
    assert_eq!(up.last().version, Version::HTTP_2);
}

#[tokio::test]
async fn websocket_to_an_h2_upstream_stays_on_http11() {
    let up = H2Upstream::start(Some(&[b"h2", b"http/1.1"]), |mut req, _| async move {
        use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
        let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
            return Response::new(full(format!("{:?}", req.version())));
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let upgraded = on_upgrade.await.unwrap();
            let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            let (mut tx, mut rx) = ws.split();
            while let Some(Ok(msg)) = rx.next().await {
                if msg.is_text() && tx.send(msg).await.is_err() {
                    break;
                }
            }
        });
        Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
            .body(empty())
            .unwrap()
    })
    .await;
    let p = Proxy::start(&up.config("proxy_http_version = \"2\"")).await;
    let (mut ws, res) = bounded(tokio_tungstenite::connect_async(format!(
        "ws://{}/ws",
        p.addr()
    )))
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    bounded(ws.send("hello".into())).await.unwrap();
    let echo = bounded(ws.next()).await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "hello");
    assert_eq!(up.last().version, Version::HTTP_11);
    // Other requests of the location still go over HTTP/2.
    let (_, _, body) = get(&p.url("/"), &[]).await;
    assert_eq!(&body[..], b"HTTP/2.0");
}

#[tokio::test]
async fn h2_failures_map_like_http1_ones() {
    let up = H2Upstream::start(None, |req, _| async move {
        match req.uri().path() {
            "/reset" => Response::builder()
                .header("x-reset", "1")
                .body(empty())
                .unwrap(),
            "/slow" => std::future::pending().await,
            _ => Response::new(full("ok")),
        }
    })
    .await;
    let p = Proxy::start(&up.config("proxy_http_version = \"2\"\nproxy_read_timeout = \"300ms\""))
        .await;
    assert_eq!(get(&p.url("/reset"), &[]).await.0, StatusCode::BAD_GATEWAY);
    assert_eq!(
        get(&p.url("/slow"), &[]).await.0,
        StatusCode::GATEWAY_TIMEOUT
    );
    // The connection outlives its failed streams.
    assert_eq!(get(&p.url("/"), &[]).await.0, StatusCode::OK);
    assert_eq!(up.connections(), 1);

    // Nothing listening: 502.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let p = Proxy::start(&proxy_to(
        &format!("http://{addr}"),
        "proxy_http_version = \"2\"",
    ))
    .await;
    assert_eq!(get(&p.url("/"), &[]).await.0, StatusCode::BAD_GATEWAY);
}

#[test]
fn proxy_http_version_values_are_checked() {
    let src = |v: &str| {
        format!("[[server]]\nlisten = \"127.0.0.1:0\"\n[[server.location]]\npath = \"/\"\nproxy_pass = \"http://127.0.0.1:9\"\nproxy_http_version = {v}\n")
    };
    for ok in ["\"1.0\"", "\"1.1\"", "\"2\"", "2"] {
        let config = rpx_core::config::parse_toml(&src(ok), "v.toml").unwrap();
        rpx_core::stack::compile(&config).unwrap();
        // `rpx convert` writes it back as it reads it.
        let written = rpx_core::config::to_toml(&config).unwrap();
        let again = rpx_core::config::parse_toml(&written, "w.toml").unwrap();
        let version = |c: &rpx_core::config::Config| {
            c.servers[0].locations[0]
                .settings
                .proxy_http_version
                .as_ref()
                .map(|v| v.value)
        };
        assert!(version(&config).is_some());
        assert_eq!(version(&again), version(&config), "{written}");
    }
    let e = rpx_core::config::parse_toml(&src("\"3\""), "v.toml").unwrap_err();
    assert_eq!(
        e.0[0].to_string(),
        "v.toml:6:22: invalid proxy_http_version \"3\" (use \"1.0\", \"1.1\" or \"2\")"
    );
    // 1.0 is accepted, with a warning that rpx speaks 1.1.
    let config = rpx_core::config::parse_toml(&src("\"1.0\""), "v.toml").unwrap();
    let snapshot = rpx_core::stack::compile(&config).unwrap();
    let warnings: Vec<String> = snapshot.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("v.toml:6:22: "), "{warnings:?}");
}

/// `keepalive_requests` counts the streams an HTTP/2 connection is given:
/// one that has had that many takes no more and is closed.
#[tokio::test]
async fn keepalive_requests_caps_the_streams_per_h2_connection() {
    let up = H2Upstream::start(None, echo_version).await;
    let p = Proxy::start(&up.group_config("keepalive_requests = 3")).await;
    for _ in 0..7 {
        let (status, _, body) = get(&p.url("/"), &[]).await;
        assert_eq!((status.as_u16(), &body[..]), (200, &b"HTTP/2.0"[..]));
    }
    assert_eq!(up.connections(), 3, "7 requests, at most 3 per connection");
    // The two used up are closed by rpx; the third is kept.
    up.wait_closed(1).await;
    up.wait_closed(2).await;
    assert_eq!(up.closed(), [1, 2]);
}

/// `keepalive_time`: a connection older than that takes no new stream,
/// and closes once the one under way has ended.
#[tokio::test]
async fn keepalive_time_retires_an_h2_connection_after_its_streams() {
    let (arrived_tx, arrived) = oneshot::channel::<()>();
    let (release, release_rx) = oneshot::channel::<()>();
    let slow = Arc::new(Mutex::new(Some((arrived_tx, release_rx))));
    let up = H2Upstream::start(None, move |req, _| {
        let slow = slow.clone();
        async move {
            if req.uri().path() == "/slow" {
                let (arrived, release) = slow.lock().unwrap().take().expect("one slow request");
                arrived.send(()).unwrap();
                release.await.unwrap();
                return Response::new(full("slow"));
            }
            Response::new(full("ok"))
        }
    })
    .await;
    let p = Proxy::start(&up.group_config("keepalive_time = \"300ms\"")).await;
    let slow = tokio::spawn(get_owned(p.url("/slow")));
    bounded(arrived).await.unwrap();
    // The time under test has to pass: there is no event to wait for.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, _, body) = get(&p.url("/"), &[]).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"ok"[..]));
    assert_eq!(up.connections(), 2, "the old connection took no new stream");
    assert!(
        !up.closed().contains(&1),
        "the old connection stays for its stream under way"
    );
    release.send(()).unwrap();
    let (status, body) = bounded(slow).await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"slow"[..]));
    up.wait_closed(1).await;
}

/// `keepalive_timeout`: an HTTP/2 connection with no stream under way for
/// that long is closed by rpx, with no request coming to notice.
#[tokio::test]
async fn an_idle_h2_connection_is_closed_after_keepalive_timeout() {
    let up = H2Upstream::start(None, echo_version).await;
    let p = Proxy::start(&up.group_config("keepalive_timeout = \"500ms\"")).await;
    for _ in 0..2 {
        assert_eq!(get(&p.url("/"), &[]).await.0, 200);
    }
    let idle = Instant::now();
    assert_eq!(up.connections(), 1, "kept within the timeout");
    up.wait_closed(1).await;
    assert!(
        idle.elapsed() >= Duration::from_millis(400),
        "not before the timeout: {:?}",
        idle.elapsed()
    );
    assert_eq!(up.connections(), 1);
}

/// GET `url`, for a task of its own.
async fn get_owned(url: String) -> (StatusCode, Bytes) {
    let (status, _, body) = get(&url, &[]).await;
    (status, body)
}

/// An upstream on the h2 crate's server, which can turn requests down: the
/// next `refuse` streams are reset with REFUSED_STREAM unread, and with
/// `go_away` set the next connection answers its first request with a
/// GOAWAY whose last stream id (0) is below it. Other requests get 200
/// "ok". Counts connections and the streams that reached it.
struct Refusing {
    addr: SocketAddr,
    refuse: Arc<AtomicUsize>,
    go_away: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

impl Refusing {
    async fn start() -> Refusing {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let up = Refusing {
            addr,
            refuse: Arc::default(),
            go_away: Arc::default(),
            connections: Arc::default(),
            streams: Arc::default(),
            _stop: stop,
        };
        let (refuse, go_away, connections, streams) = (
            up.refuse.clone(),
            up.go_away.clone(),
            up.connections.clone(),
            up.streams.clone(),
        );
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    _ = &mut stopped => return,
                };
                connections.fetch_add(1, Ordering::SeqCst);
                let (refuse, streams) = (refuse.clone(), streams.clone());
                if go_away.swap(false, Ordering::SeqCst) {
                    tokio::spawn(go_away_at_first_request(tcp, streams));
                } else {
                    tokio::spawn(serve_refusing(tcp, refuse, streams));
                }
            }
        });
        up
    }

    fn config(&self) -> String {
        proxy_to(
            &format!("http://{}", self.addr),
            "proxy_http_version = \"2\"",
        )
    }

    fn streams(&self) -> usize {
        self.streams.load(Ordering::SeqCst)
    }
}

async fn serve_refusing(
    tcp: tokio::net::TcpStream,
    refuse: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
) {
    let Ok(mut conn) = h2::server::handshake(tcp).await else {
        return;
    };
    while let Some(Ok((_req, mut respond))) = conn.accept().await {
        streams.fetch_add(1, Ordering::SeqCst);
        if refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            respond.send_reset(h2::Reason::REFUSED_STREAM);
            continue;
        }
        let Ok(mut body) = respond.send_response(Response::new(()), false) else {
            continue;
        };
        let _ = body.send_data(Bytes::from_static(b"ok"), true);
    }
}

/// Speaks just enough HTTP/2 to answer the first request with GOAWAY
/// (last stream id 0, NO_ERROR): the request was not processed.
async fn go_away_at_first_request(mut tcp: tokio::net::TcpStream, streams: Arc<AtomicUsize>) {
    const SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];
    const SETTINGS_ACK: [u8; 9] = [0, 0, 0, 4, 1, 0, 0, 0, 0];
    const GOAWAY: [u8; 17] = [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut preface = [0u8; 24];
    if tcp.read_exact(&mut preface).await.is_err() || tcp.write_all(&SETTINGS).await.is_err() {
        return;
    }
    loop {
        let mut head = [0u8; 9];
        if tcp.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        if tcp.read_exact(&mut payload).await.is_err() {
            return;
        }
        // HEADERS: a request. GOAWAY, then the end once rpx has read it.
        if head[3] == 1 {
            streams.fetch_add(1, Ordering::SeqCst);
            let _ = tcp.write_all(&GOAWAY).await;
            let _ = tcp.shutdown().await;
            let _ = tcp.read_to_end(&mut Vec::new()).await;
            return;
        }
        // SETTINGS (not an ACK): acknowledged.
        let settings = head[3] == 4 && head[4] & 1 == 0;
        if settings && tcp.write_all(&SETTINGS_ACK).await.is_err() {
            return;
        }
    }
}

/// RFC 9113 §8.7: a stream refused with REFUSED_STREAM was not processed.
/// A request without a body goes again (on another connection), up to
/// three tries; one with a body cannot be replayed and is a 502.
#[tokio::test]
async fn a_refused_stream_is_sent_again_only_without_a_body() {
    let up = Refusing::start().await;
    let p = Proxy::start(&up.config()).await;
    up.refuse.store(1, Ordering::SeqCst);
    let (status, _, body) = get(&p.url("/"), &[]).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"ok"[..]));
    assert_eq!(up.streams(), 2, "refused, then answered");

    // A body of a known length, and one of none (chunked from the client;
    // sent again empty, it would be taken).
    let chunked = || {
        let frame = Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(
            Bytes::from_static(b"payload"),
        ));
        BodyExt::boxed(StreamBody::new(futures_util::stream::iter([frame])))
    };
    for (i, body) in [full("payload"), chunked()].into_iter().enumerate() {
        up.refuse.store(1, Ordering::SeqCst);
        let post = Request::post(p.url("/")).body(body).unwrap();
        assert_eq!(send(post).await.0, StatusCode::BAD_GATEWAY);
        assert_eq!(
            up.streams(),
            3 + i,
            "a request with a body is not sent again"
        );
    }

    // Refused every time: three tries, then 502.
    up.refuse.store(10, Ordering::SeqCst);
    assert_eq!(get(&p.url("/"), &[]).await.0, StatusCode::BAD_GATEWAY);
    assert_eq!(up.streams(), 7);
}

/// A GOAWAY whose last stream id is below the request's also says it was
/// not processed: a request without a body goes on a new connection.
#[tokio::test]
async fn a_request_above_a_goaways_last_stream_id_is_sent_again() {
    let up = Refusing::start().await;
    let p = Proxy::start(&up.config()).await;
    up.go_away.store(true, Ordering::SeqCst);
    let (status, _, body) = get(&p.url("/"), &[]).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"ok"[..]));
    assert_eq!(up.streams(), 2);
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
}
