//! Upstream groups on loopback with several real upstreams: balancing,
//! passive health, backups, retries, TLS groups.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

type Reply = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;
type Handler = Arc<dyn Fn(Request<Incoming>, &'static str) -> Reply + Send + Sync>;

/// An upstream that answers with its name and can be killed like a
/// stopped container: listener and every open connection closed at once.
struct Backend {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Backend {
    async fn start(name: &'static str) -> Backend {
        Self::with(name, "127.0.0.1:0".parse().unwrap(), answer()).await
    }

    async fn with(name: &'static str, addr: SocketAddr, handler: Handler) -> Backend {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let (h, t) = (hits.clone(), tasks.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (handler, h) = (handler.clone(), h.clone());
                let conn = tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        if !req.uri().path().starts_with("/healthz") {
                            h.fetch_add(1, Ordering::SeqCst);
                        }
                        let f = handler(req, name);
                        async move { Ok::<_, std::convert::Infallible>(f.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
                t.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Backend { addr, hits, tasks }
    }

    fn kill(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Answers `200 <name>`.
fn answer() -> Handler {
    Arc::new(|_req, name| Box::pin(async move { Response::new(Full::from(name)) }))
}

/// Answers `status <name>` after `delay`.
fn answer_with(status: u16, delay: Duration) -> Handler {
    Arc::new(move |_req, name| {
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Response::builder()
                .status(status)
                .body(Full::from(name))
                .unwrap()
        })
    })
}

/// A server proxying `/` to the group `servers` (TOML lines) with `group`
/// and `location` extra keys.
async fn proxy(servers: &[String], group: &str, location: &str) -> Proxy {
    let list = servers
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let p = Proxy::start(&format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "/"
          proxy_pass = "http://app"
          {location}

        [upstream.app]
        servers = [{list}]
        {group}
        "#
    ))
    .await;
    p.rpx.snapshot().start_background();
    p
}

/// GET through the proxy: status and the name of the backend that answered.
async fn who(p: &Proxy, path: &str) -> (u16, String) {
    let (status, _, body) = get(&p.url(path), &[]).await;
    (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
}

fn count(names: &[String]) -> HashMap<&str, usize> {
    let mut m = HashMap::new();
    for n in names {
        *m.entry(n.as_str()).or_default() += 1;
    }
    m
}

#[tokio::test]
async fn weighted_round_robin_over_1000_requests() {
    let (a, b, c) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    );
    let p = proxy(
        &[
            format!("{} weight=5", a.addr),
            format!("{} weight=3", b.addr),
            format!("{} weight=2", c.addr),
        ],
        "",
        "",
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..1000 {
        let (status, name) = who(&p, "/").await;
        assert_eq!(status, 200);
        seen.push(name);
    }
    let n = count(&seen);
    for (name, want) in [("a", 500), ("b", 300), ("c", 200)] {
        let got = n[name];
        assert!(
            got.abs_diff(want) <= 20,
            "{name}: {got} of 1000, want ~{want}"
        );
    }
    // Smooth: the heaviest server never serves more than twice in a row
    // with 5:3:2.
    let longest = seen
        .chunk_by(|x, y| x == y)
        .map(<[String]>::len)
        .max()
        .unwrap();
    assert!(longest <= 2, "runs of {longest}");
}

#[tokio::test]
async fn least_conn_sends_less_to_a_slow_server() {
    let slow = Backend::with(
        "slow",
        "127.0.0.1:0".parse().unwrap(),
        answer_with(200, Duration::from_millis(300)),
    )
    .await;
    let fast = Backend::start("fast").await;
    let p = proxy(
        &[slow.addr.to_string(), fast.addr.to_string()],
        r#"balance = "least_conn""#,
        "",
    )
    .await;
    let url = p.url("/");
    // Four clients, ten requests each, one after the other.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    assert_eq!(get(&url, &[]).await.0, 200);
                }
            })
        })
        .collect();
    for c in clients {
        bounded(c).await.unwrap();
    }
    assert_eq!(slow.hits() + fast.hits(), 40);
    // Round robin would send 20 to each; least_conn sends the slow one a
    // request only when it is free and the fast one is busy.
    assert!(
        slow.hits() <= 10,
        "slow {} fast {}",
        slow.hits(),
        fast.hits()
    );
}

#[tokio::test]
async fn ip_hash_and_hash_keys_stick() {
    let (a, b, c) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    );
    let servers = [a.addr.to_string(), b.addr.to_string(), c.addr.to_string()];
    let p = proxy(&servers, r#"balance = "ip_hash""#, "").await;
    let mut seen = Vec::new();
    for _ in 0..30 {
        seen.push(who(&p, "/").await.1);
    }
    assert_eq!(
        count(&seen).len(),
        1,
        "one client address, one server: {seen:?}"
    );

    let p = proxy(&servers, r#"balance = "hash $arg_user""#, "").await;
    let mut per_user: HashMap<u32, String> = HashMap::new();
    for round in 0..3 {
        for user in 0..20u32 {
            let (_, name) = who(&p, &format!("/?user={user}")).await;
            if round == 0 {
                per_user.insert(user, name);
            } else {
                assert_eq!(per_user[&user], name, "user {user} moved");
            }
        }
    }
    let used: std::collections::HashSet<_> = per_user.values().collect();
    assert_eq!(used.len(), 3, "keys spread over every server");
}

#[tokio::test]
async fn consistent_hash_moves_about_one_nth_when_a_server_goes() {
    let backends = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
        Backend::start("d").await,
    ];
    let addrs: Vec<String> = backends.iter().map(|b| b.addr.to_string()).collect();
    let group = r#"balance = "hash $request_uri consistent""#;
    let all = proxy(&addrs, group, "").await;
    let three = proxy(&addrs[..3], group, "").await;
    let keys = 200;
    let mut moved = 0;
    for k in 0..keys {
        let path = format!("/item/{k}");
        let (_, before) = who(&all, &path).await;
        let (_, after) = who(&three, &path).await;
        if before == "d" {
            moved += 1;
        } else {
            assert_eq!(before, after, "{path} was on a server that stayed");
        }
    }
    // d owned about a quarter of the keys; only those moved.
    assert!((20..=80).contains(&moved), "{moved} of {keys} moved");
}

#[tokio::test]
async fn a_killed_server_fails_no_idempotent_request() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let p = proxy(
        &[
            format!("{} max_fails=1 fail_timeout=30s", a.addr),
            format!("{} max_fails=1 fail_timeout=30s", b.addr),
        ],
        "",
        "",
    )
    .await;
    let mut failed = 0;
    bounded(async {
        for i in 0..200 {
            if i == 50 {
                a.kill();
            }
            let (status, _) = who(&p, "/").await;
            if status != 200 {
                failed += 1;
            }
        }
    })
    .await;
    assert_eq!(failed, 0, "every GET was retried on the live server");
    let a_hits = a.hits();
    assert!(
        (24..=26).contains(&a_hits),
        "a served until killed: {a_hits}"
    );
    assert_eq!(b.hits(), 200 - a_hits);
}

#[tokio::test]
async fn backup_takes_over_and_gives_back() {
    let a = Backend::start("a").await;
    let backup = Backend::start("backup").await;
    let a_addr = a.addr;
    let p = proxy(
        &[
            format!("{a_addr} fail_timeout=300ms"),
            format!("{} backup", backup.addr),
        ],
        "",
        "",
    )
    .await;
    for _ in 0..5 {
        assert_eq!(who(&p, "/").await, (200, "a".into()));
    }
    a.kill();
    drop(a);
    for _ in 0..5 {
        assert_eq!(who(&p, "/").await, (200, "backup".into()));
    }
    // The primary comes back on the same address.
    let _a = Backend::with("a", a_addr, answer()).await;
    let back = bounded(async {
        loop {
            let (status, name) = who(&p, "/").await;
            assert_eq!(status, 200);
            if name == "a" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    back.await;
    for _ in 0..5 {
        assert_eq!(who(&p, "/").await, (200, "a".into()));
    }
}

#[tokio::test]
async fn retries_follow_proxy_next_upstream() {
    let sick = Backend::with(
        "sick",
        "127.0.0.1:0".parse().unwrap(),
        answer_with(503, Duration::ZERO),
    )
    .await;
    let ok = Backend::start("ok").await;
    let servers = [
        format!("{} max_fails=0", sick.addr),
        format!("{} max_fails=0", ok.addr),
    ];
    let p = proxy(
        &servers,
        "",
        r#"proxy_next_upstream = "error timeout http_503""#,
    )
    .await;
    for _ in 0..10 {
        assert_eq!(who(&p, "/").await, (200, "ok".into()));
    }
    // As nginx's smooth round robin: the retry takes the healthy server's
    // turn, so the sick one (max_fails=0: never out) is tried every time.
    assert_eq!(sick.hits(), 10);
    // POST is not retried once sent…
    let post = |p: &Proxy| {
        let url = p.url("/");
        async move {
            let req = Request::post(url).body(full("x")).unwrap();
            send(req).await.0
        }
    };
    let statuses: Vec<_> = [post(&p).await, post(&p).await].into();
    assert!(
        statuses.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "{statuses:?}"
    );
    // …unless non_idempotent says so; a body already sent cannot be, though.
    let p = proxy(
        &servers,
        "",
        r#"proxy_next_upstream = "http_503 non_idempotent""#,
    )
    .await;
    for _ in 0..4 {
        let req = Request::post(p.url("/")).body(empty()).unwrap();
        assert_eq!(send(req).await.0, StatusCode::OK);
    }
    // Without retries the 503 reaches the client.
    let p = proxy(&servers, "", r#"proxy_next_upstream = "off""#).await;
    let got: Vec<_> = [who(&p, "/").await.0, who(&p, "/").await.0].into();
    assert!(got.contains(&503), "{got:?}");
}

#[tokio::test]
async fn every_server_out_is_502_at_once() {
    // Upstreams that accept and never answer.
    let mut holes = Vec::new();
    let mut addrs = Vec::new();
    let accepted = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(format!(
            "{} max_fails=1 fail_timeout=30s",
            l.local_addr().unwrap()
        ));
        let n = accepted.clone();
        holes.push(tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                open.push(s);
            }
        }));
    }
    let p = proxy(&addrs, "", r#"proxy_read_timeout = "300ms""#).await;
    let (status, _) = who(&p, "/").await;
    assert_eq!(status, 504, "both timed out in turn");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    let t = Instant::now();
    let (status, _) = who(&p, "/").await;
    assert_eq!(status, 502);
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "no server was tried");
    for h in holes {
        h.abort();
    }
}

#[tokio::test]
async fn nginx_dialect_upstream_block() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let loaded = rpx_core::config::nginx::config_from_str(
        &format!(
            r#"
            http {{
              upstream app {{
                least_conn;
                server {} weight=2 max_fails=2 fail_timeout=5s max_conns=100;
                server {} backup;
                keepalive 16;
                keepalive_timeout 30s;
                keepalive_requests 500;
                keepalive_time 30m;
              }}
              server {{
                listen 127.0.0.1:0;
                location / {{
                  proxy_pass http://app;
                  proxy_next_upstream error timeout http_502;
                  proxy_next_upstream_tries 2;
                  proxy_next_upstream_timeout 10s;
                }}
              }}
            }}
            "#,
            a.addr, b.addr
        ),
        std::path::Path::new("nginx.conf"),
        rpx_core::config::LoadOptions::default(),
    );
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let up = &loaded.config.upstreams[0];
    assert_eq!(up.servers[0].max_conns, 100);
    assert!(up.servers[1].backup);
    assert_eq!(up.keepalive, Some(16));
    assert_eq!(up.keepalive_requests, Some(500));
    assert_eq!(up.keepalive_time, Some(Duration::from_secs(1800)));
    let rpx = rpx_core::Rpx::from_config(&loaded.config).unwrap();
    let toml = rpx_core::config::to_toml(&loaded.config).unwrap();
    assert!(toml.contains("least_conn"), "{toml}");
    let again = rpx_core::config::parse_toml(&toml, "converted.toml").unwrap();
    let unplaced = |v: &[rpx_core::config::UpstreamServerConfig]| {
        v.iter()
            .map(|s| rpx_core::config::UpstreamServerConfig {
                pos: Default::default(),
                ..s.clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(unplaced(&again.upstreams[0].servers), unplaced(&up.servers));
    assert_eq!(
        again.upstreams[0].balance.as_ref().map(|b| &b.value),
        up.balance.as_ref().map(|b| &b.value)
    );
    assert_eq!(again.upstreams[0].keepalive_requests, Some(500));
    assert_eq!(again.upstreams[0].keepalive_time, up.keepalive_time);
    drop(rpx);
}

#[tokio::test]
async fn active_health_check_marks_a_server_down_and_up() {
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let h = healthy.clone();
    let handler: Handler = Arc::new(move |req, name| {
        let up = h.load(Ordering::SeqCst);
        Box::pin(async move {
            let status = match req.uri().path() {
                "/healthz" if !up => 503,
                _ => 200,
            };
            Response::builder()
                .status(status)
                .body(Full::from(name))
                .unwrap()
        })
    });
    let a = Backend::with("a", "127.0.0.1:0".parse().unwrap(), handler).await;
    let b = Backend::start("b").await;
    let p = proxy(
        &[a.addr.to_string(), b.addr.to_string()],
        r#"health_check = "interval=50ms path=/healthz status=200 rise=2 fall=2 timeout=1s""#,
        "",
    )
    .await;
    let snapshot = p.rpx.snapshot();
    let peer_a = snapshot.groups()[0].peers().next().unwrap().clone();
    let wait_for = |up: bool| {
        let peer = peer_a.clone();
        bounded(async move {
            while peer.is_healthy() != up {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(who(&p, "/").await.1);
    }
    assert_eq!(count(&first).len(), 2, "both serve: {first:?}");

    healthy.store(false, Ordering::SeqCst);
    wait_for(false).await;
    let before = a.hits();
    for _ in 0..10 {
        assert_eq!(who(&p, "/").await, (200, "b".into()));
    }
    assert_eq!(a.hits(), before, "a server marked down gets no requests");

    healthy.store(true, Ordering::SeqCst);
    wait_for(true).await;
    let mut after = Vec::new();
    for _ in 0..4 {
        after.push(who(&p, "/").await.1);
    }
    assert_eq!(count(&after)["a"], 2, "back in rotation: {after:?}");
}

#[tokio::test]
async fn dns_re_resolution_follows_a_moved_name() {
    use rpx_core::upstream::dns::{clear_override, override_host};
    // Two "containers" on one port: the old address and the new one.
    let old = Backend::start("old").await;
    let port = old.addr.port();
    let new = Backend::with("new", SocketAddr::from(([127, 0, 0, 2], port)), answer()).await;
    let name = "svc-moves.rpx.test";
    override_host(name, &["127.0.0.1".parse().unwrap()]);
    let p = proxy(
        &[format!("{name}:{port}")],
        r#"resolve_interval = "100ms""#,
        "",
    )
    .await;
    for _ in 0..3 {
        assert_eq!(who(&p, "/").await, (200, "old".into()));
    }
    // The container restarts elsewhere: its old address goes away.
    override_host(name, &["127.0.0.2".parse().unwrap()]);
    old.kill();
    bounded(async {
        loop {
            if who(&p, "/").await == (200, "new".into()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    for _ in 0..3 {
        assert_eq!(who(&p, "/").await, (200, "new".into()));
    }
    assert!(new.hits() >= 4);
    clear_override(name);
}

#[tokio::test]
async fn unresolvable_names_warn_unless_strict() {
    let group = |strict: bool| {
        format!(
            r#"
            [[server]]
            listen = "127.0.0.1:0"
              [[server.location]]
              path = "/"
              proxy_pass = "http://app"
            [upstream.app]
            servers = ["not-yet-there.invalid:80"]
            resolve_strict = {strict}
            "#
        )
    };
    let lenient = rpx_core::Rpx::from_toml(&group(false)).expect("a warning only");
    let err = rpx_core::Rpx::from_toml(&group(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not resolve"), "{err}");
    // Serving it: 502 (nothing to connect to), then fine once it resolves.
    let up = Backend::start("late").await;
    let p = Proxy::start(&group(false).replace(":80", &format!(":{}", up.addr.port()))).await;
    assert_eq!(who(&p, "/").await.0, 502);
    rpx_core::upstream::dns::override_host("not-yet-there.invalid", &[up.addr.ip()]);
    bounded(async {
        while who(&p, "/").await != (200, "late".into()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    rpx_core::upstream::dns::clear_override("not-yet-there.invalid");
    drop(lenient);
}

mod tls_group {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    use std::path::PathBuf;

    /// A CA issuing one leaf certificate into a temp directory.
    fn pki(names: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("rpx-groups-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "rpx groups test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let mut leaf =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        leaf.distinguished_name.push(DnType::CommonName, names[0]);
        let key = KeyPair::generate().unwrap();
        let cert = leaf.signed_by(&key, &ca).unwrap();
        let paths = (
            dir.join("ca.pem"),
            dir.join("leaf.pem"),
            dir.join("leaf.key"),
        );
        std::fs::write(&paths.0, ca.pem()).unwrap();
        std::fs::write(&paths.1, cert.pem()).unwrap();
        std::fs::write(&paths.2, key.serialize_pem()).unwrap();
        paths
    }

    /// A TLS upstream answering with its name.
    async fn tls_backend(
        name: &'static str,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> SocketAddr {
        use rustls::pki_types::pem::PemObject;
        let ck = rpx_core::tls::load_certified_key(cert, key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(rpx_core::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                ck.cert.clone(),
                rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |_req| async move {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::from(name)))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn two_tls_backends_behind_one_https_group() {
        let (ca, cert, key) = pki(&["backend.test"]);
        let a = tls_backend("tls-a", &cert, &key).await;
        let b = tls_backend("tls-b", &cert, &key).await;
        let p = Proxy::start(&format!(
            r#"
            [[server]]
            listen = "127.0.0.1:0"
              [[server.location]]
              path = "/"
              proxy_pass = "https://secure"
              proxy_ssl_name = "backend.test"
              proxy_ssl_trusted_certificate = "{}"
            [upstream.secure]
            servers = ["{a}", "{b}"]
            "#,
            ca.display()
        ))
        .await;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let (status, name) = who(&p, "/").await;
            assert_eq!(status, 200, "{name}");
            seen.push(name);
        }
        let want: Vec<String> = (0..10)
            .map(|i| if i % 2 == 0 { "tls-a" } else { "tls-b" }.to_owned())
            .collect();
        assert_eq!(seen, want);
    }
}

/// Answers `<name>:<body length>` once it has the whole body.
fn echo_len() -> Handler {
    Arc::new(|req, name| {
        Box::pin(async move {
            use http_body_util::BodyExt;
            let n = req
                .into_body()
                .collect()
                .await
                .map_or(0, |b| b.to_bytes().len());
            Response::new(Full::from(format!("{name}:{n}")))
        })
    })
}

#[tokio::test]
async fn a_body_goes_to_the_next_server_only_if_never_sent() {
    // Nothing listens here: connecting fails before the body is read.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    // This one reads the request, body included, then drops the connection.
    let breaker = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let breaker_addr = breaker.local_addr().unwrap();
    let broke = Arc::new(AtomicUsize::new(0));
    let b = broke.clone();
    let breaking = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        while let Ok((mut s, _)) = breaker.accept().await {
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&seen).contains("END") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            b.fetch_add(1, Ordering::SeqCst);
        }
    });
    let ok = Backend::with("ok", "127.0.0.1:0".parse().unwrap(), echo_len()).await;
    let put = |p: &Proxy| {
        let url = p.url("/");
        async move {
            let req = Request::put(url).body(full("0123456789END")).unwrap();
            let (status, _, body) = send(req).await;
            (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
        }
    };

    let p = proxy(&[dead_addr.to_string(), ok.addr.to_string()], "", "").await;
    assert_eq!(
        put(&p).await,
        (200, "ok:13".into()),
        "the unread body went on"
    );

    let p = proxy(&[breaker_addr.to_string(), ok.addr.to_string()], "", "").await;
    let before = ok.hits();
    assert_eq!(
        put(&p).await.0,
        502,
        "a body already sent is not sent again"
    );
    assert_eq!(broke.load(Ordering::SeqCst), 1);
    assert_eq!(ok.hits(), before);

    // Read whole first (`proxy_request_buffering`, within
    // `client_body_buffer_size`), the body is sent again from memory.
    let p = proxy(
        &[breaker_addr.to_string(), ok.addr.to_string()],
        "",
        "proxy_request_buffering = true",
    )
    .await;
    assert_eq!(
        put(&p).await,
        (200, "ok:13".into()),
        "the buffered body went on"
    );
    assert_eq!(broke.load(Ordering::SeqCst), 2);
    // Past the buffer it streams, and is not sent twice.
    let p = proxy(
        &[breaker_addr.to_string(), ok.addr.to_string()],
        "",
        "proxy_request_buffering = true\nclient_body_buffer_size = 4",
    )
    .await;
    assert_eq!(put(&p).await.0, 502, "a streamed body is not sent again");
    breaking.abort();
}
