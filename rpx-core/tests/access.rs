//! `allow` / `deny` against real nginx: clients from different loopback
//! addresses, rules in order, inheritance (a level with rules replaces the
//! inherited ones), `return` before access, access before `try_files`; and
//! `internal` locations, reached only by a rewrite or `try_files`.

mod support;

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http_body_util::Full;
use rpx_core::config::{self, LoadOptions};
use support::*;

const SERVERS: &str = r#"
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        deny 127.0.0.4;
        location /admin/ {
            allow 127.0.0.2;
            deny all;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /ordered/ {
            deny 127.0.0.3;
            allow 127.0.0.0/24;
            allow ::1;
            deny all;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /ret/ { deny all; return 200 "returned"; }
        location /tried/ { root DIR; deny all; try_files $uri @app; }
        location @app { proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location /inherit/ {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            location /inherit/own/ {
                allow all;
                proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            }
        }
        location /net/ {
            allow 127.0.0.0/30;
            deny all;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /int/ { internal; proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location /ro/ {
            limit_except GET { allow 127.0.0.2; deny all; }
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /ro2/ {
            deny 127.0.0.3;
            limit_except GET POST { }
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /to-int/ { rewrite ^/to-int/(.*)$ /int/$1 last; }
        location /tf/ { root DIR; try_files $uri /int/from-try-files; }
        location / { proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
    }
"#;

/// Status, and the method and path the upstream saw (if it saw one).
/// `probe`: a path, or a method and a path (`"POST /x"`).
async fn observe(
    addr: SocketAddr,
    up: &Upstream,
    from: IpAddr,
    probe: &str,
) -> (u16, Option<String>) {
    let (method, path) = probe.split_once(' ').unwrap_or(("GET", probe));
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "a")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let got = send_from(addr, Some(from), req).await;
    (
        got.status.as_u16(),
        up.take().first().map(|s| format!("{} {}", s.method, s.uri)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_and_deny_match_nginx() {
    let Some(both) = nginx::Both::start("access", SERVERS).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let (up, nginx_addr, rpx_addr) = (&both.up, both.nginx, both.rpx);
    let mut diffs = Vec::new();
    let mut denied = 0;
    for from in [
        "127.0.0.1",
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.9",
    ] {
        let from: IpAddr = from.parse().unwrap();
        for path in [
            "/admin/x",
            "/ordered/x",
            "/ret/x",
            "/tried/x",
            "/inherit/x",
            "/inherit/own/x",
            "/net/x",
            "/other",
            "/int/x",
            "/to-int/x",
            "/tf/x",
            "/ro/x",
            "HEAD /ro/x",
            "POST /ro/x",
            "DELETE /ro/x",
            "POST /ro2/x",
            "PUT /ro2/x",
        ] {
            let want = observe(nginx_addr, up, from, path).await;
            let got = observe(rpx_addr, up, from, path).await;
            denied += usize::from(want.0 == 403);
            if want != got {
                diffs.push(format!("{from} {path}: nginx {want:?}, rpx {got:?}"));
            }
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
    assert!(
        denied > 10,
        "the table denies too little to test much: {denied}"
    );
}

#[test]
fn access_directives_are_never_ignored_even_with_lenient() {
    let dir = temp_dir("access-lenient");
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        "events {}\nhttp {\n  server {\n    listen 127.0.0.1:8080;\n    location / {\n      valid_referers none blocked;\n      return 200;\n    }\n  }\n}\n",
    )
    .unwrap();
    let loaded = config::load_with(&conf, LoadOptions { lenient: true });
    let Err(errors) = loaded.into_result() else {
        panic!("valid_referers was ignored with --lenient");
    };
    let errors = errors.0;
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("never ignored")),
        "{errors:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn toml_allow_deny_and_ordered_access() {
    let up = Upstream::start(1).await;
    let toml = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:8080"
        [[server.location]]
        path = "/keys/"
        proxy_pass = "http://{up}"
        allow = ["127.0.0.2", "127.0.0.0/31"]
        deny = "all"
        [[server.location]]
        path = "/ordered/"
        proxy_pass = "http://{up}"
        access = [["deny", "127.0.0.3"], ["allow", "127.0.0.0/8"], ["deny", "all"]]
        [[server.location]]
        path = "/int/"
        proxy_pass = "http://{up}"
        internal = true
        [[server.location]]
        path = "/ro/"
        proxy_pass = "http://{up}"
        limit_except = {{ methods = ["GET"], deny = "all" }}
        "#,
        up = up.addr
    );
    let cfg = config::parse_toml(&toml, "access.toml").expect("config");
    let back = config::to_toml(&cfg).expect("convert");
    assert!(
        back.contains("access = [[\"deny\", \"127.0.0.3\"]"),
        "{back}"
    );
    assert!(back.contains("internal = true"), "{back}");
    let again = config::to_toml(&config::parse_toml(&back, "again.toml").expect("reads back"))
        .expect("convert again");
    assert_eq!(again, back, "limit_except and access round-trip");
    let rpx = serve_config(&cfg, Vec::new()).await.expect("serve");
    let addr = rpx.listeners[0].1;
    for (from, path, want) in [
        ("127.0.0.1", "/keys/", 200),
        ("127.0.0.2", "/keys/", 200),
        ("127.0.0.3", "/keys/", 403),
        ("127.0.0.1", "/ordered/", 200),
        ("127.0.0.3", "/ordered/", 403),
        ("127.0.0.1", "/int/x", 404),
        ("127.0.0.1", "/ro/x", 200),
        ("127.0.0.1", "POST /ro/x", 403),
    ] {
        let got = observe(addr, &up, from.parse().unwrap(), path).await;
        assert_eq!(got.0, want, "{from} {path}");
        assert_eq!(got.1.is_some(), want == 200, "{from} {path}: upstream");
    }
}
