//! `proxy_cookie_domain`, `proxy_cookie_path` and `proxy_cookie_flags`
//! against real nginx: an upstream sends a fixed set of `Set-Cookie`
//! headers, and both proxies must hand the client the same ones.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use support::*;

const COOKIES: &[&str] = &[
    "sid=abc; Domain=localhost; Path=/two/some/uri/; HttpOnly",
    "pref=x; domain=.app.internal; path=/",
    "one=1; Path=/; Secure",
    "path=weird; Path=/two/",
    "plain=1",
];

/// An upstream answering every request with [`COOKIES`].
async fn cookie_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = hyper::service::service_fn(|_req| async {
                let mut res = http::Response::builder();
                for c in COOKIES {
                    res = res.header("set-cookie", *c);
                }
                Ok::<_, Infallible>(res.body(Full::new(Bytes::from_static(b"ok"))).unwrap())
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    addr
}

const SERVERS: &str = r#"
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        proxy_cookie_domain localhost server.example;
        location /inherited/ { proxy_pass http://COOKIE_UP; }
        location /off/ { proxy_cookie_domain off; proxy_pass http://COOKIE_UP; }
        location /domain/ {
            proxy_cookie_domain localhost example.org;
            proxy_cookie_domain ~\.(?P<sl>[-0-9a-z]+)\.internal$ $sl.example.com;
            proxy_pass http://COOKIE_UP;
        }
        location /host/ {
            proxy_cookie_domain LOCALHOST $host;
            proxy_pass http://COOKIE_UP;
        }
        location /path/ {
            proxy_cookie_path /two/ /;
            proxy_pass http://COOKIE_UP;
        }
        location /pathre/ {
            proxy_cookie_path ~*^/TWO/(.*)$ /new/$1;
            proxy_cookie_path / /root/;
            proxy_pass http://COOKIE_UP;
        }
        location /flags/ {
            proxy_cookie_flags one nosecure samesite=strict;
            proxy_cookie_flags ~^s httponly secure samesite=lax;
            proxy_cookie_flags ~ secure;
            proxy_pass http://COOKIE_UP;
        }
    }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_rewrites_match_nginx() {
    let up = cookie_upstream().await;
    let servers = SERVERS.replace("COOKIE_UP", &up.to_string());
    let Some(both) = nginx::Both::start("proxy-cookie", &servers).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let mut diffs = Vec::new();
    let mut rpx = std::collections::HashMap::new();
    for path in [
        "/inherited/",
        "/off/",
        "/domain/",
        "/host/",
        "/path/",
        "/pathre/",
        "/flags/",
    ] {
        let mut seen = Vec::new();
        for addr in [both.nginx, both.rpx] {
            let req = http::Request::get(path)
                .header("host", "Www.Shop.test")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let got = send(addr, req).await;
            let cookies: Vec<String> = got
                .headers
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            seen.push(format!("{} {cookies:#?}", got.status.as_u16()));
        }
        if seen[0] != seen[1] {
            diffs.push(format!("{path}:\n  nginx {}\n  rpx   {}", seen[0], seen[1]));
        }
        rpx.insert(path, seen.pop().unwrap());
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
    assert!(
        rpx["/domain/"].contains("Domain=example.org"),
        "{}",
        rpx["/domain/"]
    );
    assert!(
        rpx["/inherited/"].contains("Domain=server.example"),
        "{}",
        rpx["/inherited/"]
    );
    assert!(
        rpx["/off/"].contains("Domain=localhost"),
        "{}",
        rpx["/off/"]
    );
}

/// Bad rules are refused at their line.
#[test]
fn check_errors() {
    assert_refused_in_server(
        "proxy-cookie-check",
        "location / { proxy_pass http://127.0.0.1:9; }",
        &[
            (
                "proxy_cookie_domain localhost;",
                "invalid parameter \"localhost\"",
            ),
            ("proxy_cookie_path ~(unclosed /;", "invalid regex"),
            (
                "proxy_cookie_flags one sticky;",
                "invalid parameter \"sticky\"",
            ),
            ("proxy_cookie_domain a $nonesuch;", "unknown variable"),
        ],
    );
}

/// The TOML form: lines of nginx's words, `"off"` cancelling.
#[tokio::test]
async fn toml_form() {
    let up = cookie_upstream().await;
    let toml = format!(
        r#"
        proxy_cookie_path = "/two/ /"

        [[server]]
        listen = "127.0.0.1:0"
        proxy_cookie_flags = ["plain nosecure", "~ secure"]

        [[server.location]]
        path = "/"
        proxy_pass = "http://{up}"
        proxy_cookie_domain = ["localhost example.org"]
        "#
    );
    let cfg = rpx_core::config::parse_toml(&toml, "rpx.toml").expect("loads");
    let text = rpx_core::config::to_toml(&cfg).unwrap();
    assert!(
        text.contains("proxy_cookie_domain = [\"localhost example.org\"]"),
        "{text}"
    );
    let running = serve_config(&cfg, Vec::new()).await.unwrap();
    let req = http::Request::get("/")
        .header("host", "a")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let got = send(running.listeners[0].1, req).await;
    let cookies: Vec<_> = got.headers.get_all("set-cookie").iter().collect();
    assert_eq!(
        cookies,
        [
            "sid=abc; Domain=example.org; Path=/some/uri/; HttpOnly; Secure",
            "pref=x; domain=.app.internal; path=/; Secure",
            "one=1; Path=/; Secure",
            "path=weird; Path=/; Secure",
            "plain=1",
        ]
    );
}
