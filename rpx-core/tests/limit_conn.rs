//! `limit_conn_zone` / `limit_conn` against real nginx: requests held in
//! progress by an upstream whose response bodies wait for the test, so
//! how many are in progress is known, not timed. A request counts until
//! its response body ends; per-client keys; `limit_conn_status`;
//! `limit_conn_dry_run` and `$limit_conn_status`.

mod support;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use support::*;
use tokio::sync::{watch, Notify};

const SERVERS: &str = r#"
    limit_conn_zone $binary_remote_addr zone=addr:1m;
    limit_conn_zone $binary_remote_addr zone=dry:1m;
    limit_conn_zone $server_name zone=site:1m;
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        proxy_set_header X-Conn $limit_conn_status;
        location /dl/ {
            limit_conn addr 2;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /status/ {
            limit_conn addr 1;
            limit_conn_status 429;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /dry/ {
            limit_conn dry 1;
            limit_conn_dry_run on;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /site/ {
            limit_conn site 1;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
    }
"#;

/// An upstream that answers at once, with a body that ends only when the
/// test opens the gate; it records the `X-Conn` it saw.
#[derive(Clone)]
struct Gated {
    addr: SocketAddr,
    arrived: Arc<AtomicUsize>,
    arrival: Arc<Notify>,
    gate: watch::Sender<bool>,
    seen: Arc<std::sync::Mutex<Vec<Option<String>>>>,
}

impl Gated {
    async fn start() -> Gated {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (gate, _) = watch::channel(false);
        let up = Gated {
            addr: listener.local_addr().unwrap(),
            arrived: Arc::default(),
            arrival: Arc::default(),
            gate,
            seen: Arc::default(),
        };
        let server = up.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let up = server.clone();
                let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let up = up.clone();
                    async move {
                        let conn = req
                            .headers()
                            .get("x-conn")
                            .map(|v| v.to_str().unwrap().to_owned());
                        up.seen.lock().unwrap().push(conn);
                        up.arrived.fetch_add(1, Ordering::SeqCst);
                        up.arrival.notify_waiters();
                        let mut open = up.gate.subscribe();
                        // A first piece at once, so the head goes out (past
                        // nginx's `postpone_output 1460`); the end once the
                        // gate opens.
                        let first = futures_util::stream::once(async {
                            Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'.'; 4096])))
                        });
                        let rest = futures_util::stream::once(async move {
                            let _ = open.wait_for(|o| *o).await;
                            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"done")))
                        });
                        let body = futures_util::StreamExt::chain(first, rest);
                        Ok::<_, Infallible>(http::Response::new(StreamBody::new(body)))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc),
                );
            }
        });
        up
    }

    /// Waits until `n` requests have reached the upstream in all.
    async fn until_arrived(&self, n: usize) {
        tokio::time::timeout(LIMIT, async {
            loop {
                let notified = self.arrival.notified();
                if self.arrived.load(Ordering::SeqCst) >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .expect("requests reach the upstream");
    }

    fn close(&self) {
        self.gate.send_replace(false);
    }

    fn open(&self) {
        self.gate.send_replace(true);
    }
}

/// A request whose response head has arrived, its body still coming.
struct InFlight {
    status: u16,
    rest: tokio::task::JoinHandle<()>,
}

/// Sends `path` from `from` and returns once the response head is in.
async fn start(addr: SocketAddr, from: &str, path: &str) -> InFlight {
    let ip: IpAddr = from.parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((ip, 0).into()).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "a")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = tokio::time::timeout(LIMIT, sender.send_request(req))
        .await
        .expect("a response head")
        .unwrap();
    let status = res.status().as_u16();
    let rest = tokio::spawn(async move {
        let _ = res.into_body().collect().await;
    });
    InFlight { status, rest }
}

/// The statuses a sequence gets, and what the upstream saw; the gate
/// opens at the end, and all bodies are read.
async fn run(addr: SocketAddr, up: &Gated) -> Vec<String> {
    let mut out = Vec::new();
    up.close();
    up.seen.lock().unwrap().clear();
    let base = up.arrived.load(Ordering::SeqCst);
    let mut held = Vec::new();
    let mut reached = 0;
    // Two from one client fill /dl/; the third is refused; another
    // client still gets in.
    for (from, path, reaches) in [
        ("127.0.0.2", "/dl/a", true),
        ("127.0.0.2", "/dl/b", true),
        ("127.0.0.2", "/dl/c", false),
        ("127.0.0.3", "/dl/d", true),
        ("127.0.0.4", "/status/a", true),
        ("127.0.0.4", "/status/b", false),
        ("127.0.0.5", "/dry/a", true),
        ("127.0.0.5", "/dry/b", true),
        ("127.0.0.6", "/site/a", true),
        ("127.0.0.7", "/site/b", false),
    ] {
        let r = start(addr, from, path).await;
        out.push(format!("{from} {path}: {}", r.status));
        if reaches {
            reached += 1;
            up.until_arrived(base + reached).await;
        }
        held.push(r);
    }
    up.open();
    for r in held {
        tokio::time::timeout(LIMIT, r.rest).await.unwrap().unwrap();
    }
    out.push(format!("upstream saw {:?}", up.seen.lock().unwrap()));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_conn_matches_nginx() {
    let Some(binary) = nginx::binary() else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let up = Gated::start().await;
    let dir = temp_dir("limit-conn");
    let port = nginx::free_port();
    let servers = SERVERS
        .replace("LISTEN_PORT", &port.to_string())
        .replace("UPSTREAM_PORT", &up.addr.port().to_string());
    let conf = nginx::write_config(&dir, &servers);
    let nginx_addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let _nginx = nginx::Nginx::start(&binary, &dir, &conf, nginx_addr).await;
    let rpx = serve_file(&conf, false)
        .await
        .expect("rpx loads the config");
    let want = run(nginx_addr, &up).await;
    let got = run(rpx.listeners[0].1, &up).await;
    assert_eq!(want, got);
    assert!(
        want.iter()
            .filter(|w| w.ends_with(": 503") || w.ends_with(": 429"))
            .count()
            >= 3,
        "{want:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A request counts until its response body ends, not until its head is
/// sent; then the next gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_counts_until_its_body_ends() {
    let up = Gated::start().await;
    let toml = format!(
        r#"
        [conn_zone.addr]
        key = "$binary_remote_addr"
        size = "1m"
        [[server]]
        listen = "127.0.0.1:8080"
        [[server.location]]
        path = "/"
        proxy_pass = "http://{}"
        conn_limit = {{ zone = "addr", max = 1 }}
        "#,
        up.addr
    );
    let cfg = rpx_core::config::parse_toml(&toml, "conn.toml").expect("config");
    let back = rpx_core::config::to_toml(&cfg).expect("convert");
    let again =
        rpx_core::config::to_toml(&rpx_core::config::parse_toml(&back, "again.toml").unwrap())
            .unwrap();
    assert!(
        back.contains("conn_limit") && back.contains("[conn_zone.addr]"),
        "{back}"
    );
    assert_eq!(again, back, "conn limits round-trip");
    let rpx = serve_config(&cfg, Vec::new()).await.expect("serve");
    let addr = rpx.listeners[0].1;
    let first = start(addr, "127.0.0.2", "/a").await;
    assert_eq!(first.status, 200);
    assert_eq!(
        start(addr, "127.0.0.2", "/b").await.status,
        503,
        "the body is still coming"
    );
    up.open();
    tokio::time::timeout(LIMIT, first.rest)
        .await
        .unwrap()
        .unwrap();
    // The count is given back when rpx drops the body, just after the
    // client read its end: a refusal until then is the signal to retry.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let r = start(addr, "127.0.0.2", "/c").await;
        if r.status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the count was never given back"
        );
        tokio::task::yield_now().await;
    }
}
