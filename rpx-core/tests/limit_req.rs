//! `limit_req_zone` / `limit_req` against real nginx: rapid sequences of
//! requests (at one request a minute nothing leaks within a test, so the
//! outcome does not depend on timing) through refusals, bursts with
//! `nodelay`, `limit_req_status`, `limit_req_dry_run` and
//! `$limit_req_status`, several limits, empty keys, per-client keys,
//! inheritance and `return` before limits; then, with time: delays within
//! a burst, and a zone that outlives a reload.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const SERVERS: &str = r#"
    limit_req_zone $binary_remote_addr zone=strict:1m rate=1r/m;
    limit_req_zone $binary_remote_addr zone=burst:1m rate=1r/m;
    limit_req_zone $binary_remote_addr zone=status:1m rate=1r/m;
    limit_req_zone $binary_remote_addr zone=dry:1m rate=1r/m;
    limit_req_zone $http_x_key zone=keyed:1m rate=1r/m;
    limit_req_zone $binary_remote_addr zone=multi_a:1m rate=1r/m;
    limit_req_zone $uri zone=multi_b:1m rate=1r/m;
    limit_req_zone $binary_remote_addr zone=server:1m rate=1r/m;
    limit_req_zone $binary_remote_addr zone=delay:1m rate=1r/m;
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        limit_req zone=server burst=1 nodelay;
        proxy_set_header X-Limit $limit_req_status;
        location /strict/ {
            limit_req zone=strict;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /burst/ {
            limit_req zone=burst burst=2 nodelay;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /status/ {
            limit_req zone=status;
            limit_req_status 429;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /dry/ {
            limit_req zone=dry burst=1;
            limit_req_dry_run on;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /keyed/ {
            limit_req zone=keyed;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /multi/ {
            limit_req zone=multi_a burst=5 nodelay;
            limit_req zone=multi_b burst=1 nodelay;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /delay/ {
            limit_req zone=delay burst=3 delay=2;
            limit_req_dry_run on;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /ret/ { limit_req zone=strict; return 200 "returned"; }
        location /inherit/ { proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
    }
"#;

/// A client address, a path, an `X-Key`.
type Probe<'a> = (&'a str, &'a str, Option<&'a str>);

/// Status and the `X-Limit` the upstream saw (`$limit_req_status`).
async fn observe(
    addr: SocketAddr,
    up: &Upstream,
    from: &str,
    path: &str,
    key: Option<&str>,
) -> String {
    let mut req = http::Request::get(path).header("host", "a");
    if let Some(k) = key {
        req = req.header("x-key", k);
    }
    let from: IpAddr = from.parse().unwrap();
    let got = send_from(addr, Some(from), req.body(Full::new(Bytes::new())).unwrap()).await;
    let limit = up.take().first().map(|s| {
        s.headers
            .get("x-limit")
            .map(|v| v.to_str().unwrap().to_owned())
    });
    format!("{} {limit:?}", got.status.as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_req_matches_nginx() {
    let Some(both) = nginx::Both::start("limit-req", SERVERS).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    // Each sequence is sent to nginx, then to rpx (each has its own zones).
    let sequences: &[(&str, &[Probe])] = &[
        ("strict", &[("127.0.0.2", "/strict/a", None); 3]),
        (
            "strict, another client",
            &[("127.0.0.3", "/strict/a", None); 2],
        ),
        ("burst", &[("127.0.0.2", "/burst/a", None); 4]),
        ("status", &[("127.0.0.2", "/status/a", None); 2]),
        ("dry run", &[("127.0.0.2", "/dry/a", None); 4]),
        (
            "keys",
            &[
                ("127.0.0.2", "/keyed/a", None),
                ("127.0.0.2", "/keyed/a", None),
                ("127.0.0.2", "/keyed/a", Some("k1")),
                ("127.0.0.2", "/keyed/a", Some("k1")),
                ("127.0.0.3", "/keyed/a", Some("k1")),
                ("127.0.0.2", "/keyed/a", Some("k2")),
            ],
        ),
        (
            "two limits",
            &[
                ("127.0.0.2", "/multi/a", None),
                ("127.0.0.2", "/multi/a", None),
                ("127.0.0.2", "/multi/a", None),
                ("127.0.0.2", "/multi/b", None),
                ("127.0.0.2", "/multi/b", None),
                ("127.0.0.2", "/multi/c", None),
                ("127.0.0.2", "/multi/c", None),
                ("127.0.0.2", "/multi/c", None),
                ("127.0.0.2", "/multi/d", None),
            ],
        ),
        ("delay=", &[("127.0.0.2", "/delay/a", None); 5]),
        ("return first", &[("127.0.0.4", "/ret/a", None); 3]),
        ("inherited", &[("127.0.0.5", "/inherit/a", None); 3]),
    ];
    let (up, nginx_addr, rpx_addr) = (&both.up, both.nginx, both.rpx);
    let mut diffs = Vec::new();
    let mut refused = 0;
    for (name, seq) in sequences {
        let mut want = Vec::new();
        for (from, path, key) in seq.iter() {
            want.push(observe(nginx_addr, up, from, path, *key).await);
        }
        let mut got = Vec::new();
        for (from, path, key) in seq.iter() {
            got.push(observe(rpx_addr, up, from, path, *key).await);
        }
        refused += want.iter().filter(|w| !w.starts_with("200")).count();
        if want != got {
            diffs.push(format!("{name}:\n  nginx {want:?}\n  rpx   {got:?}"));
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
    assert!(
        refused >= 8,
        "the table refuses too little to test much: {refused}"
    );
}

/// A config of one limited location at `rate` with `params`, under rpx.
fn limited(up: SocketAddr, rate: &str, params: &str) -> rpx_core::config::Config {
    let dir = temp_dir("limit-req-alone");
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "events {{}}\nhttp {{\n  limit_req_zone $binary_remote_addr zone=z:1m rate={rate};\n  \
             server {{ listen 127.0.0.1:0; location / {{ limit_req zone=z {params}; proxy_pass http://{up}; }} }}\n}}\n"
        ),
    )
    .unwrap();
    let cfg = rpx_core::config::load(&conf).expect("loads");
    let _ = std::fs::remove_dir_all(&dir);
    cfg
}

/// At 10r/s with `burst=3`: the first request is served at once, the next
/// two after about 100 ms and 200 ms (their place in the bucket), the
/// fifth is refused at once; `delay=1` serves the second at once too.
/// Bounds are lower bounds, with room a loaded CI machine meets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_within_the_burst_are_delayed() {
    let up = Upstream::start(1).await;
    for (params, undelayed) in [("burst=3", 1), ("burst=3 delay=1", 2)] {
        let rpx = serve_config(&limited(up.addr, "10r/s", params), Vec::new())
            .await
            .expect("serve");
        let addr = rpx.listeners[0].1;
        let started = Instant::now();
        let sends: Vec<_> = (0..5)
            .map(|i| {
                tokio::spawn(async move {
                    // In order: each starts once the one before was sent.
                    tokio::task::yield_now().await;
                    let req = http::Request::get(format!("/{i}"))
                        .header("host", "a")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let status = send(addr, req).await.status.as_u16();
                    (status, started.elapsed())
                })
            })
            .collect();
        let mut results = Vec::new();
        for s in sends {
            results.push(s.await.unwrap());
        }
        let mut served: Vec<Duration> =
            results.iter().filter(|r| r.0 == 200).map(|r| r.1).collect();
        served.sort();
        assert_eq!(
            served.len(),
            4,
            "{params}: one over the burst is refused: {results:?}"
        );
        assert_eq!(
            results.iter().filter(|r| r.0 == 503).count(),
            1,
            "{params}: {results:?}"
        );
        // The delayed ones waited their turn: ~100 ms apart.
        let delayed = &served[undelayed..];
        for (i, at) in delayed.iter().enumerate() {
            let turn = Duration::from_millis(90 * (i as u64 + 1));
            assert!(
                *at >= turn,
                "{params}: served at {at:?}, before its turn {turn:?}: {results:?}"
            );
        }
    }
}

/// A reload that keeps a zone keeps its buckets: a client over the limit
/// stays over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_outlives_a_reload() {
    use tower::ServiceExt;
    let up = Upstream::start(1).await;
    let cfg = limited(up.addr, "1r/m", "");
    let rpx = rpx_core::Rpx::new(rpx_core::stack::compile(&cfg).unwrap());
    let status = |rpx: rpx_core::Rpx| async move {
        let req = http::Request::get("/")
            .header("host", "a")
            .body(Full::new(Bytes::new()))
            .unwrap();
        rpx.oneshot(req).await.unwrap().status().as_u16()
    };
    assert_eq!(status(rpx.clone()).await, 200);
    assert_eq!(status(rpx.clone()).await, 503);
    let opts = rpx_core::stack::CompileOptions {
        previous: Some(&rpx.snapshot()),
        ..Default::default()
    };
    let next = rpx_core::stack::compile_with(&cfg, &opts).unwrap();
    rpx.swap(next);
    assert_eq!(status(rpx.clone()).await, 503, "the bucket was kept");
    // Without the previous snapshot (a restart) the zone starts empty.
    let fresh = rpx_core::Rpx::new(rpx_core::stack::compile(&cfg).unwrap());
    assert_eq!(status(fresh).await, 200);
}

#[test]
fn limit_req_errors_name_the_line() {
    for (src, want) in [
        (
            "limit_req_zone $binary_remote_addr zone=z:1k rate=1r/s;",
            "zone \"z\" is too small",
        ),
        (
            "limit_req_zone $binary_remote_addr zone=z:1m rate=0r/s;",
            "invalid rate \"0r/s\"",
        ),
        (
            "limit_req_zone $binary_remote_addr rate=1r/s rate=2r/s;",
            "must have \"zone\" parameter",
        ),
        (
            "limit_req_zone $binary_remote_addr zone=z:1m rate=1r/s sync;",
            "\"sync\"",
        ),
        (
            "server { listen 127.0.0.1:1; location / { limit_req zone=nope; } }",
            "unknown limit_req_zone \"nope\"",
        ),
        (
            "server { listen 127.0.0.1:1; location / { limit_req burst=5; } }",
            "must have \"zone\" parameter",
        ),
        (
            "server { listen 127.0.0.1:1; location / { limit_req zone=z burst=x; } }",
            "invalid burst value",
        ),
        (
            "server { listen 127.0.0.1:1; limit_req_status 200; }",
            "between 400 and 599",
        ),
    ] {
        let dir = temp_dir("limit-req-errors");
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, format!("events {{}}\nhttp {{\n{src}\n}}\n")).unwrap();
        let errors = match rpx_core::config::load(&conf) {
            Ok(cfg) => match rpx_core::stack::compile(&cfg) {
                Ok(_) => panic!("{src}: accepted"),
                Err(e) => e.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
            },
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        };
        assert!(
            errors
                .iter()
                .any(|e| e.contains(want) && e.contains("nginx.conf:3")),
            "{src}: {errors:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The TOML form: `[limit_zone.NAME]`, `rate_limit`, its status and dry
/// run, converted from nginx and back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toml_rate_limit() {
    let up = Upstream::start(1).await;
    let toml = format!(
        r#"
        [limit_zone.api]
        key = "$binary_remote_addr"
        rate = "1r/m"
        size = "1m"
        [[server]]
        listen = "127.0.0.1:8080"
        [[server.location]]
        path = "/api/"
        proxy_pass = "http://{up}"
        rate_limit = {{ zone = "api", burst = 1, nodelay = true }}
        rate_limit_status = 429
        [[server.location]]
        path = "/"
        proxy_pass = "http://{up}"
        "#,
        up = up.addr
    );
    let cfg = rpx_core::config::parse_toml(&toml, "limits.toml").expect("config");
    let back = rpx_core::config::to_toml(&cfg).expect("convert");
    let again = rpx_core::config::to_toml(
        &rpx_core::config::parse_toml(&back, "again.toml").expect("reads back"),
    )
    .expect("convert again");
    assert_eq!(again, back, "rate limits round-trip");
    let rpx = serve_config(&cfg, Vec::new()).await.expect("serve");
    let addr = rpx.listeners[0].1;
    let mut statuses = Vec::new();
    for path in ["/api/", "/api/", "/api/", "/", "/"] {
        let req = http::Request::get(path)
            .header("host", "a")
            .body(Full::new(Bytes::new()))
            .unwrap();
        statuses.push(send(addr, req).await.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200]);
}
