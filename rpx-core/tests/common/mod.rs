//! Test harness: real upstreams, a real rpx and a real client, all on
//! 127.0.0.1 with OS-assigned ports. Every wait is bounded.

#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rpx_core::server::{serve_with, ServeOptions};
use rpx_core::Rpx;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Every test operation's upper bound.
pub const LIMIT: Duration = Duration::from_secs(20);

pub type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Runs `fut` or panics after [`LIMIT`].
pub async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(LIMIT, fut)
        .await
        .expect("test step timed out")
}

pub fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// An HTTP/2 client connection with prior knowledge (h2c) to `addr`: its
/// sender, and its driver's task (finished once the connection is closed).
pub async fn h2c_client(
    addr: std::net::SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<TestBody>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    (sender, tokio::spawn(conn))
}

/// A body streaming what is sent on `rx`, a frame per message, until the
/// sender is dropped.
pub fn channel_body(rx: tokio::sync::mpsc::Receiver<Bytes>) -> TestBody {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| {
            (
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hyper::body::Frame::data(b)),
                rx,
            )
        })
    });
    BodyExt::boxed(http_body_util::StreamBody::new(stream))
}

/// An upstream that reads the whole request body before it answers
/// `read N`.
pub async fn reading_upstream() -> Upstream {
    Upstream::start(|req: Request<Incoming>| async move {
        let n = req
            .into_body()
            .collect()
            .await
            .map_or(0, |b| b.to_bytes().len());
        Response::new(full(format!("read {n}")))
    })
    .await
}

pub fn empty() -> TestBody {
    Empty::new().map_err(|e| match e {}).boxed()
}

/// What an upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
    pub version: http::Version,
}

/// A real HTTP/1.1 upstream on 127.0.0.1 recording every request head.
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

impl Upstream {
    /// Starts an upstream answering with `handler`.
    pub async fn start<H, Fut>(handler: H) -> Upstream
    where
        H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let record = seen.clone();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = connections.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    _ = &mut stopped => return,
                };
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let handler = handler.clone();
                let record = record.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        record.lock().unwrap().push(Seen {
                            method: req.method().clone(),
                            uri: req.uri().to_string(),
                            headers: req.headers().clone(),
                            version: req.version(),
                        });
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(handler(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Upstream {
            addr,
            seen,
            connections,
            _stop: stop,
        }
    }

    /// An upstream answering `200 upstream` to everything.
    pub async fn ok() -> Upstream {
        Self::start(|_req| async { Response::new(full("upstream")) }).await
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the upstream saw a request")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A running rpx: one bound listener per listen address of the config.
pub struct Proxy {
    pub rpx: Rpx,
    /// (configured address, bound address)
    pub listeners: Vec<(SocketAddr, SocketAddr)>,
    _stop: Vec<oneshot::Sender<()>>,
}

impl Proxy {
    /// Compiles TOML text and serves it. Listen addresses should be
    /// `127.0.0.1:0`-style; each distinct one gets its own OS-assigned port.
    pub async fn start(toml: &str) -> Proxy {
        let rpx = Rpx::from_toml(toml).unwrap_or_else(|e| panic!("config:\n{e}"));
        let specs = rpx.snapshot().listeners().to_vec();
        let mut listeners = Vec::new();
        let mut stops = Vec::new();
        for spec in specs {
            assert!(
                spec.addr.ip().is_loopback(),
                "tests listen on loopback only"
            );
            let listener = TcpListener::bind(spec.addr).await.unwrap();
            listeners.push((spec.addr, listener.local_addr().unwrap()));
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            // Certificate files are checked often so reload tests stay short.
            let tls = spec.tls.clone().map(|mut t| {
                t.reload_interval = Duration::from_millis(50);
                t
            });
            let opts = ServeOptions {
                tls,
                ..spec.options(ServeOptions::default().shutdown_timeout)
            };
            let svc = rpx.clone();
            tokio::spawn(serve_with(listener, svc, opts, async move {
                let _ = stopped.await;
            }));
        }
        Proxy {
            rpx,
            listeners,
            _stop: stops,
        }
    }

    /// The bound address of the first listener.
    pub fn addr(&self) -> SocketAddr {
        self.listeners[0].1
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr(), path)
    }
}

/// A server on 127.0.0.1:0 whose one location `/` proxies to `upstream`,
/// with unlimited bodies and `extra` lines in the location.
pub fn proxy_config(upstream: &Upstream, extra: &str) -> String {
    proxy_to(&upstream.url(), extra)
}

/// [`proxy_config`] for any `proxy_pass` URL.
pub fn proxy_to(url: &str, extra: &str) -> String {
    format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
        client_max_body_size = 0
          [[server.location]]
          path = "/"
          proxy_pass = "{url}"
          {extra}
        "#
    )
}

/// A plain HTTP/1.1 client (no connection reuse surprises: pooled like a browser).
pub fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `req` and collects the response.
pub async fn send(req: Request<TestBody>) -> (StatusCode, HeaderMap, Bytes) {
    let res = bounded(client().request(req))
        .await
        .expect("request failed");
    let (parts, body) = res.into_parts();
    let body = bounded(body.collect())
        .await
        .expect("body failed")
        .to_bytes();
    (parts.status, parts.headers, body)
}

/// GET `url` with extra headers.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Bytes) {
    let mut b = Request::get(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(empty()).unwrap()).await
}

/// Writes raw bytes and reads until the peer closes or `until` appears.
pub async fn raw(addr: SocketAddr, request: &[u8], until: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    bounded(async {
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&out).contains(until) {
                break;
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}
