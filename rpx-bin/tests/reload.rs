//! Reload without dropping anything, proven on the real binary: requests
//! under load, an open WebSocket, listeners that follow the config.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};

const LIMIT: Duration = Duration::from_secs(30);
type BoxBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn full(text: &'static str) -> BoxBody {
    BodyExt::boxed(Full::new(Bytes::from(text)).map_err(|e| match e {}))
}

/// An upstream on 127.0.0.1 answering with `handler` (upgrades on).
async fn upstream_with<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<BoxBody>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, std::convert::Infallible>(handler(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

/// An upstream answering `ok`, and echoing WebSocket messages on `/ws`.
async fn upstream() -> SocketAddr {
    upstream_with(|mut req: Request<Incoming>| async move {
        let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
            return Response::new(full("ok"));
        };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(io) = upgrade.await else { return };
            let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(io),
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            let (mut tx, mut rx) = ws.split();
            while let Some(Ok(m)) = rx.next().await {
                if m.is_text() && tx.send(m).await.is_err() {
                    break;
                }
            }
        });
        Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .header("sec-websocket-accept", accept)
            .body(BodyExt::boxed(Empty::new().map_err(|e| match e {})))
            .unwrap()
    })
    .await
}

/// A running `rpx run` with a pid file; its stdout lines arrive on `lines`.
struct Rpx {
    child: Child,
    lines: mpsc::Receiver<String>,
    config: PathBuf,
    pid_file: PathBuf,
}

impl Rpx {
    fn start(dir: &Path, config_text: &str) -> (Rpx, SocketAddr) {
        let config = dir.join("rpx.toml");
        std::fs::write(&config, config_text).unwrap();
        let pid_file = dir.join("rpx.pid");
        let mut child = Command::new(env!("CARGO_BIN_EXE_rpx"))
            .args(["run", "--threads", "2", "--config"])
            .arg(&config)
            .arg("--pid-file")
            .arg(&pid_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut rpx = Rpx {
            child,
            lines,
            config,
            pid_file,
        };
        let addr = rpx.wait_listening();
        (rpx, addr)
    }

    fn wait_line(&self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(LIMIT)
                .expect("rpx said nothing in time");
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    fn wait_listening(&mut self) -> SocketAddr {
        let line = self.wait_line("rpx: listening on ");
        line["rpx: listening on ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Writes a new config and runs `rpx reload --pid-file …`; returns rpx's
    /// verdict line.
    fn reload(&self, config_text: &str) -> String {
        std::fs::write(&self.config, config_text).unwrap();
        let status = Command::new(env!("CARGO_BIN_EXE_rpx"))
            .arg("reload")
            .arg("--pid-file")
            .arg(&self.pid_file)
            .status()
            .unwrap();
        assert!(status.success(), "rpx reload failed");
        loop {
            let line = self.wait_line("rpx: reload");
            if line.starts_with("rpx: reloaded") || line.starts_with("rpx: reload failed") {
                return line;
            }
        }
    }
}

impl Drop for Rpx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(up: SocketAddr, version: usize, extra_server: &str) -> String {
    format!(
        r#"
[[server]]
listen = "127.0.0.1:0"
add_header = {{ "X-Version" = {{ value = "{version}", always = true }} }}
  [[server.location]]
  path = "/"
  proxy_pass = "http://{up}"
{extra_server}
"#
    )
}

fn client(
) -> hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, BoxBody>
{
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// A GET of `/x` through rpx: the status and the response headers.
async fn fetch(addr: SocketAddr) -> Result<(u16, http::HeaderMap), String> {
    let req = Request::get(format!("http://{addr}/x"))
        .body(BodyExt::boxed(Empty::new().map_err(|e| match e {})))
        .unwrap();
    let res = tokio::time::timeout(LIMIT, client().request(req))
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    let (parts, body) = res.into_parts();
    body.collect().await.map_err(|e| e.to_string())?;
    Ok((parts.status.as_u16(), parts.headers))
}

fn header(headers: &http::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The status and rpx's `X-Version`.
async fn get(addr: SocketAddr) -> Result<(u16, String), String> {
    let (status, headers) = fetch(addr).await?;
    Ok((status, header(&headers, "x-version")))
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rpx-reload-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_reloads_under_load_drop_nothing() {
    let up = upstream().await;
    let dir = temp_dir("load");
    let (rpx, addr) = Rpx::start(&dir, &config(up, 0, ""));

    let (mut ws, _) = tokio::time::timeout(
        LIMIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .unwrap()
    .unwrap();

    // Bounded concurrent load: 4 clients, each at most 20,000 requests.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match get(addr).await {
                    Ok((200, _)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("{other:?}"));
                    }
                }
            }
            errors
        }));
    }

    for version in 1..=100 {
        let verdict = rpx.reload(&config(up, version, ""));
        assert_eq!(verdict, "rpx: reloaded", "reload {version}");
        // The changed header shows up on the very next request.
        let (status, seen) = get(addr).await.unwrap();
        assert_eq!(
            (status, seen),
            (200, version.to_string()),
            "after reload {version}"
        );
    }

    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for l in load {
        errors.extend(l.await.unwrap());
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{ok} requests succeeded, {failed} failed across 100 reloads");
    assert_eq!(
        failed,
        0,
        "failed requests during reloads: {:?}",
        &errors[..errors.len().min(5)]
    );
    assert!(ok > 0);

    // The WebSocket opened before the first reload still echoes.
    tokio::time::timeout(LIMIT, ws.send("still here".into()))
        .await
        .unwrap()
        .unwrap();
    let echo = tokio::time::timeout(LIMIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "still here");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_follow_the_config_and_bad_configs_change_nothing() {
    let up = upstream().await;
    let dir = temp_dir("listeners");
    let (mut rpx, addr) = Rpx::start(&dir, &config(up, 1, ""));

    // A broken config is refused; the running one stays.
    assert_eq!(
        rpx.reload("[[server]]\nlisten = \"nope\"\n"),
        "rpx: reload failed: the running configuration stays"
    );
    assert_eq!(get(addr).await.unwrap(), (200, "1".into()));

    // A new listen address is bound on reload; the old one keeps its socket.
    let second = r#"
[[server]]
listen = "127.0.0.2:0"
  [[server.location]]
  path = "/"
  return = "200 second"
"#;
    std::fs::write(&rpx.config, config(up, 2, second)).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_rpx"))
        .args(["-s", "reload", "--pid-file"])
        .arg(&rpx.pid_file)
        .status()
        .unwrap();
    assert!(status.success());
    let new_addr = rpx.wait_listening();
    assert_eq!(new_addr.ip().to_string(), "127.0.0.2");
    assert_eq!(rpx.wait_line("rpx: reload"), "rpx: reloaded");
    assert_eq!(get(addr).await.unwrap(), (200, "2".into()));
    assert_eq!(get(new_addr).await.unwrap().0, 200);

    // Removed again: the address stops accepting.
    assert_eq!(rpx.reload(&config(up, 3, "")), "rpx: reloaded");
    let refused = tokio::time::timeout(LIMIT, async {
        loop {
            if tokio::net::TcpStream::connect(new_addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "a removed listener stops accepting");
    assert_eq!(get(addr).await.unwrap(), (200, "3".into()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An upstream answering with its `name` in `X-Served-By`; its `/healthz`
/// answers `health_status`.
async fn named_upstream(name: &'static str, health_status: u16) -> SocketAddr {
    upstream_with(move |req: Request<Incoming>| async move {
        let status = if req.uri().path() == "/healthz" {
            health_status
        } else {
            200
        };
        Response::builder()
            .status(status)
            .header("x-served-by", name)
            .body(full("hi"))
            .unwrap()
    })
    .await
}

/// Who served a request to `addr`, and rpx's `X-Version`.
async fn served_by(addr: SocketAddr) -> (String, String) {
    let (_, headers) = fetch(addr).await.expect("rpx answers");
    (
        header(&headers, "x-served-by"),
        header(&headers, "x-version"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_health_of_unchanged_servers() {
    let well = named_upstream("well", 200).await;
    let sick = named_upstream("sick", 500).await;
    // fall=3 at 1 s: a fresh group would take ~2 s to find `sick` again,
    // and round-robin would send it every other request meanwhile.
    let config = |version: usize| {
        format!(
            r#"
[[server]]
listen = "127.0.0.1:0"
add_header = {{ "X-Version" = {{ value = "{version}", always = true }} }}
  [[server.location]]
  path = "/"
  proxy_pass = "http://app"

[upstream.app]
servers = ["{well}", "{sick}"]
health_check = "interval=1s path=/healthz rise=1 fall=3 timeout=1s"
"#
        )
    };
    let dir = temp_dir("health");
    let (rpx, addr) = Rpx::start(&dir, &config(1));

    // Wait (bounded) until the checks have taken `sick` out.
    let out = tokio::time::timeout(LIMIT, async {
        let mut in_a_row = 0;
        while in_a_row < 6 {
            if served_by(addr).await.0 == "well" {
                in_a_row += 1;
            } else {
                in_a_row = 0;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    })
    .await;
    assert!(out.is_ok(), "active health checks take the sick server out");

    assert_eq!(rpx.reload(&config(2)), "rpx: reloaded");
    for _ in 0..10 {
        assert_eq!(
            served_by(addr).await,
            ("well".to_owned(), "2".to_owned()),
            "right after the reload the sick server is still out"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A free port on 127.0.0.1 nothing listens on (bound, then released).
fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `error_log`: the file gets rpx's lines from its level up, a reload
/// re-points the level, SIGUSR1 reopens a rotated file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_log_follows_the_config_and_reopens() {
    let dir = temp_dir("errorlog");
    let log = dir.join("error.log");
    let config = |level: &str| {
        format!(
            r#"
error_log = {{ path = "{}", level = "{level}" }}
[[server]]
listen = "127.0.0.1:0"
  [[server.location]]
  path = "/"
  proxy_pass = "http://{}"
"#,
            log.display(),
            closed_port()
        )
    };
    let (rpx, addr) = Rpx::start(&dir, &config("warn"));
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    // A refused upstream is a 502 and a warning.
    assert_eq!(get(addr).await.unwrap().0, 502);
    let text = tokio::time::timeout(LIMIT, async {
        loop {
            let text = read(&log);
            if text.contains("WARN") {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the warning reaches the error log");
    assert!(text.contains("502"), "{text}");
    assert!(!text.contains("INFO"), "below the level: {text}");

    // A reload to `info`: the reload's own info line is there at once.
    assert_eq!(rpx.reload(&config("info")), "rpx: reloaded");
    assert!(read(&log).contains("configuration reloaded"));

    // logrotate: move the file away, SIGUSR1, new lines go to a new file.
    let rotated = dir.join("error.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_rpx"))
        .args(["-s", "reopen", "--pid-file"])
        .arg(&rpx.pid_file)
        .status()
        .unwrap();
    assert!(status.success());
    let reopened = tokio::time::timeout(LIMIT, async {
        loop {
            assert_eq!(get(addr).await.unwrap().0, 502);
            if read(&log).contains("502") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(reopened.is_ok(), "SIGUSR1 reopens the error log");
    assert!(read(&rotated).contains("configuration reloaded"));
    let _ = std::fs::remove_dir_all(&dir);
}
