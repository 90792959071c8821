//! Shared by the nginx-dialect integration tests: a recording upstream, a
//! running rpx, a client, and the corpus case format.
#![allow(dead_code)]

pub mod dns;
pub mod nginx;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rpx_core::config::{self, LoadOptions};
use rpx_core::server::{serve_with, ServeOptions};
use rpx_core::Rpx;
use tokio::net::TcpListener;

/// Bound on anything a test waits for.
pub const LIMIT: Duration = Duration::from_secs(10);

/// What an upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
}

/// A loopback upstream recording every request; it answers `200` with
/// `up<id> <uri>`, a `302` to `/elsewhere` for paths containing
/// `redirect`, or the status a `status=NNN` in the query asks for (a 401
/// with a `WWW-Authenticate` challenge).
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start(id: u32) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let uri = req.uri().to_string();
                        log.lock().expect("lock").push(Seen {
                            method: req.method().to_string(),
                            uri: uri.clone(),
                            headers: req.headers().clone(),
                        });
                        let mut res = Response::builder()
                            .header("server", "upstream")
                            .header("x-upstream", id.to_string());
                        if uri.contains("redirect") {
                            res = res
                                .status(302)
                                .header("location", format!("http://{addr}/elsewhere"));
                        }
                        let asked = req
                            .uri()
                            .query()
                            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("status=")));
                        if let Some(code) = asked.and_then(|c| c.parse::<u16>().ok()) {
                            res = res.status(code);
                            if code == 401 {
                                res = res.header("www-authenticate", "Basic realm=\"up\"");
                            }
                        }
                        Ok::<_, Infallible>(
                            res.body(Full::new(Bytes::from(format!("up{id} {uri}"))))
                                .expect("response"),
                        )
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Upstream { addr, seen }
    }

    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().expect("lock"))
    }
}

/// Copies a corpus directory, keeping symlinks and replacing placeholders.
pub fn copy_tree(from: &Path, to: &Path, vars: &[(&str, String)]) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read corpus dir") {
        let entry = entry.expect("entry");
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&src).expect("stat");
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&src).expect("readlink");
            std::os::unix::fs::symlink(target, &dst).expect("symlink");
        } else if meta.is_dir() {
            copy_tree(&src, &dst, vars);
        } else {
            let mut text = std::fs::read_to_string(&src).expect("read");
            for (k, v) in vars {
                text = text.replace(k, v);
            }
            std::fs::write(&dst, text).expect("write");
        }
    }
}

/// A fresh temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("rpx-test-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// rpx serving a config file: one loopback listener per configured address.
pub struct Running {
    /// Configured address → where it really listens.
    pub listeners: Vec<(SocketAddr, SocketAddr)>,
    pub warnings: Vec<String>,
    _stop: tokio::sync::watch::Sender<bool>,
}

pub async fn serve_file(path: &Path, lenient: bool) -> Result<Running, Vec<String>> {
    let loaded = config::load_with(path, LoadOptions { lenient });
    let warnings = loaded.warnings.iter().map(ToString::to_string).collect();
    let (cfg, _) = loaded
        .into_result()
        .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    serve_config(&cfg, warnings).await
}

/// [`serve_file`] with TLS on the `ssl` listeners (the corpus sends plain
/// requests to them, so the others serve them without).
pub async fn serve_file_tls(path: &Path) -> Result<Running, Vec<String>> {
    let loaded = config::load_with(path, LoadOptions::default());
    let warnings = loaded.warnings.iter().map(ToString::to_string).collect();
    let (cfg, _) = loaded
        .into_result()
        .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    serve(&cfg, warnings, true, true).await
}

pub async fn serve_config(
    cfg: &config::Config,
    warnings: Vec<String>,
) -> Result<Running, Vec<String>> {
    serve_config_with(cfg, warnings, true).await
}

/// [`serve_config`]; `own_http1` false: hyper reads every request
/// ([`ServeOptions::own_http1`]).
pub async fn serve_config_with(
    cfg: &config::Config,
    warnings: Vec<String>,
    own_http1: bool,
) -> Result<Running, Vec<String>> {
    serve(cfg, warnings, own_http1, false).await
}

async fn serve(
    cfg: &config::Config,
    mut warnings: Vec<String>,
    own_http1: bool,
    tls: bool,
) -> Result<Running, Vec<String>> {
    let snapshot = rpx_core::stack::compile(cfg)
        .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    // Everything `rpx check` would say: the front-end's and the compiler's.
    warnings.extend(snapshot.warnings().iter().map(ToString::to_string));
    let specs = snapshot.listeners().to_vec();
    let rpx = Rpx::new(snapshot);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut listeners = Vec::new();
    for spec in specs {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind rpx");
        listeners.push((spec.addr, l.local_addr().expect("addr")));
        let mut rx = rx.clone();
        let opts = ServeOptions {
            own_http1,
            tls: spec.tls.clone().filter(|_| tls),
            ..spec.options(Duration::from_secs(1))
        };
        tokio::spawn(serve_with(l, rpx.clone(), opts, async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
    }
    Ok(Running {
        listeners,
        warnings,
        _stop: stop,
    })
}

/// Loads an nginx config, converts it to TOML and serves that; the TOML
/// must convert back to the same text (the model survived the trip).
pub async fn serve_converted(
    path: &Path,
    lenient: bool,
    warnings: Vec<String>,
) -> Result<Running, Vec<String>> {
    let name = path.display();
    let (cfg, _) = config::load_with(path, LoadOptions { lenient })
        .into_result()
        .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let text = config::to_toml(&cfg).map_err(|e| vec![format!("{name}: convert: {e}")])?;
    let back = config::parse_toml(&text, "converted.toml")
        .map_err(|e| vec![format!("{name}: converted TOML: {e}\n{text}")])?;
    let again = config::to_toml(&back).map_err(|e| vec![format!("{name}: reconvert: {e}")])?;
    if again != text {
        return Err(vec![format!(
            "{name}: TOML does not round-trip:\n--- first\n{text}\n--- second\n{again}"
        )]);
    }
    serve_config(&back, warnings).await
}

pub fn corpus_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nginx_corpus");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("corpus dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// How a corpus config is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Loaded as nginx.
    Nginx,
    /// Loaded as nginx, converted to TOML (which must convert back to the
    /// same text) and served from the TOML.
    Toml,
}

/// Serves one corpus config and checks its `cases.txt`; the number of
/// cases checked.
pub async fn run_corpus_config(dir: &Path, via: Via) -> Result<usize, String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("?")
        .to_owned();
    let up1 = Upstream::start(1).await;
    let up2 = Upstream::start(2).await;
    let tmp = temp_dir(&name);
    copy_tree(
        dir,
        &tmp,
        &[
            ("UPSTREAM_PORT", up1.addr.port().to_string()),
            ("UPSTREAM2_PORT", up2.addr.port().to_string()),
            ("CORPUS_DIR", tmp.display().to_string()),
        ],
    );
    // Read from the copy: expectations may name the upstream ports too.
    let text =
        std::fs::read_to_string(tmp.join("cases.txt")).map_err(|e| format!("{name}: {e}"))?;
    let (cases, flags) = parse_cases(&text);
    let main = tmp.join(flags.get("main").map_or("nginx.conf", String::as_str));
    let mut served = serve_file(&main, flags.contains_key("lenient")).await;
    if via == Via::Toml {
        if flags.contains_key("error") {
            return Ok(0);
        }
        served = match served {
            Ok(r) => serve_converted(&main, flags.contains_key("lenient"), r.warnings).await,
            Err(e) => Err(e),
        };
    }
    if let Some(want) = flags.get("error") {
        let want = want.replace("CORPUS_DIR", &tmp.display().to_string());
        return match served {
            Err(errors) if errors.first() == Some(&want) => Ok(0),
            Err(errors) => Err(format!("{name}: errors {errors:?}, want {want:?}")),
            Ok(_) => Err(format!("{name}: loaded, want error {want:?}")),
        };
    }
    let rpx = served.map_err(|e| format!("{name}: {e:?}"))?;
    if let Some(n) = flags.get("warnings").filter(|_| via == Via::Nginx) {
        let want: usize = n.parse().expect("warnings count");
        if rpx.warnings.len() != want {
            return Err(format!("{name}: warnings {:?}, want {want}", rpx.warnings));
        }
    }
    let mut failures = Vec::new();
    for c in &cases {
        let at = format!("{name}/cases.txt:{}", c.line);
        let Some((_, addr)) = rpx.listeners.get(c.listener) else {
            failures.push(format!("{at}: no listener {}", c.listener));
            continue;
        };
        let mut req = http::Request::builder()
            .method(c.method.as_str())
            .uri(c.path.as_str());
        for (n, v) in &c.headers {
            req = req.header(n.as_str(), v.as_str());
        }
        let req = req.body(Full::new(Bytes::new())).expect("request");
        let got = send(*addr, req).await;
        if got.status.as_u16() != c.status {
            failures.push(format!(
                "{at}: status {} want {} (body {:?})",
                got.status, c.status, got.body
            ));
        }
        for (n, want) in &c.expect_headers {
            let have = got
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if have != *want {
                failures.push(format!("{at}: header {n} = {have:?}, want {want:?}"));
            }
        }
        for b in &c.body_contains {
            if !got.body.contains(b.as_str()) {
                failures.push(format!("{at}: body {:?} lacks {b:?}", got.body));
            }
        }
        let mut seen = up1.take();
        seen.extend(up2.take());
        match &c.upstream {
            None => {}
            Some(None) if !seen.is_empty() => {
                failures.push(format!(
                    "{at}: upstream saw {:?}, want nothing",
                    seen[0].uri
                ));
            }
            Some(None) => {}
            Some(Some(want)) => match seen.as_slice() {
                [s] => {
                    let line = format!("{} {}", s.method, s.uri);
                    if line != *want {
                        failures.push(format!("{at}: upstream saw {line:?}, want {want:?}"));
                    }
                    for (n, want) in &c.upstream_headers {
                        let have: Vec<&str> = s
                            .headers
                            .get_all(n)
                            .iter()
                            .filter_map(|v| v.to_str().ok())
                            .collect();
                        let have = (!have.is_empty()).then(|| have.join(", "));
                        if have != *want {
                            failures.push(format!(
                                "{at}: upstream header {n} = {have:?}, want {want:?}"
                            ));
                        }
                    }
                }
                other => failures.push(format!(
                    "{at}: upstream saw {} requests, want 1",
                    other.len()
                )),
            },
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if failures.is_empty() {
        Ok(cases.len())
    } else {
        Err(failures.join("\n"))
    }
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// Sends one request on a fresh connection.
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Got {
    send_from(addr, None, req).await
}

/// [`send`] from the loopback address `source` (any of 127.0.0.0/8).
pub async fn send_from(
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    req: Request<Full<Bytes>>,
) -> Got {
    let fut = async {
        let stream = match source {
            None => tokio::net::TcpStream::connect(addr).await.expect("connect"),
            Some(ip) => {
                assert!(ip.is_loopback(), "tests stay on loopback");
                let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                socket.bind((ip, 0).into()).expect("bind the source");
                socket.connect(addr).await.expect("connect")
            }
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let res = sender.send_request(req).await.expect("response");
        let (parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Got {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };
    tokio::time::timeout(LIMIT, fut)
        .await
        .expect("request timed out")
}

/// One request and what must be seen, from a corpus `cases.txt`.
#[derive(Debug, Default)]
pub struct Case {
    pub method: String,
    pub path: String,
    /// Index into the listeners (in config order).
    pub listener: usize,
    pub headers: Vec<(String, String)>,
    pub status: u16,
    /// `(name, Some(value))` must equal; `(name, None)` must be absent.
    pub expect_headers: Vec<(String, Option<String>)>,
    pub body_contains: Vec<String>,
    /// `None`: the upstream must see nothing.
    pub upstream: Option<Option<String>>,
    pub upstream_headers: Vec<(String, Option<String>)>,
    pub line: usize,
}

/// Parses the case format (see `tests/nginx_corpus/README.md`).
pub fn parse_cases(text: &str) -> (Vec<Case>, HashMap<String, String>) {
    let mut flags = HashMap::new();
    let mut cases = Vec::new();
    let mut cur: Option<Case> = None;
    let mut after = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "---" {
            cases.extend(cur.take());
            after = false;
            continue;
        }
        let Some(c) = cur.as_mut() else {
            if let Some(flag) = line.strip_prefix("option ") {
                let (k, v) = flag.split_once(' ').unwrap_or((flag, ""));
                flags.insert(k.to_owned(), v.to_owned());
                continue;
            }
            let mut w = line.split_whitespace();
            cur = Some(Case {
                method: w.next().unwrap_or("GET").to_owned(),
                path: w.next().unwrap_or("/").to_owned(),
                listener: w.next().and_then(|n| n.parse().ok()).unwrap_or(0),
                line: i + 1,
                ..Case::default()
            });
            continue;
        };
        if let Some(s) = line.strip_prefix("=>") {
            c.status = s.trim().parse().expect("status");
            after = true;
            continue;
        }
        let header = |s: &str| -> (String, Option<String>) {
            match s.strip_prefix('!') {
                Some(n) => (n.trim().to_ascii_lowercase(), None),
                None => {
                    let (n, v) = s.split_once(':').expect("name: value");
                    // `{rpx_version}`: what `Server: rpx/…` carries.
                    let v = v.trim().replace("{rpx_version}", env!("CARGO_PKG_VERSION"));
                    (n.trim().to_ascii_lowercase(), Some(v))
                }
            }
        };
        if !after {
            let (n, v) = line.split_once(':').expect("request header");
            c.headers.push((n.trim().to_owned(), v.trim().to_owned()));
        } else if let Some(s) = line.strip_prefix("header ") {
            c.expect_headers.push(header(s));
        } else if let Some(s) = line.strip_prefix("body-contains:") {
            c.body_contains.push(s.trim().to_owned());
        } else if let Some(s) = line.strip_prefix("upstream-header ") {
            c.upstream_headers.push(header(s));
        } else if let Some(s) = line.strip_prefix("upstream:") {
            let s = s.trim();
            c.upstream = Some((s != "none").then(|| s.to_owned()));
        } else {
            panic!("line {}: cannot read {line:?}", i + 1);
        }
    }
    cases.extend(cur);
    (cases, flags)
}

/// What `rpx check` says of a config whose `http {}` holds `http`, one
/// message a line. The config's first line inside `http` is line 3.
pub fn check_http(tag: &str, http: &str) -> String {
    let dir = temp_dir(tag);
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, format!("events {{}}\nhttp {{\n  {http}\n}}\n")).expect("write");
    let errors: Vec<String> = rpx_core::stack::check_file(&conf)
        .iter()
        .map(ToString::to_string)
        .collect();
    errors.join("\n")
}

/// Checks each `(bad, want)`: `bad` first in a server (listening on
/// 127.0.0.1:1, then `after`) must be refused with `want` at line 5.
pub fn assert_refused_in_server(tag: &str, after: &str, cases: &[(&str, &str)]) {
    for (bad, want) in cases {
        let errors = check_http(
            tag,
            &format!("server {{\n    listen 127.0.0.1:1;\n    {bad}\n    {after}\n  }}"),
        );
        assert!(errors.contains(want), "{bad}: {errors}");
        assert!(errors.contains("nginx.conf:5"), "{bad}: {errors}");
    }
}
