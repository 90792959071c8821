//! `auth_request` / `auth_request_set` against real nginx, with a small
//! gatekeeper as Authelia, Authentik and oauth2-proxy are: it checks a
//! cookie and answers 200 with `Remote-User`, or 401 with its own
//! `WWW-Authenticate`, 403, or something nginx takes as an error. Compared:
//! what the client gets, what the gatekeeper was asked, and what the
//! application saw (`Remote-User` passed on with `proxy_set_header`).

mod support;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use support::*;

const SERVERS: &str = r#"
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        location = /auth {
            internal;
            proxy_pass http://127.0.0.1:AUTH_PORT/verify;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
        }
        location /app/ {
            auth_request /auth;
            auth_request_set $user $upstream_http_remote_user;
            auth_request_set $groups $upstream_http_remote_groups;
            proxy_set_header Remote-User $user;
            proxy_set_header Remote-Groups $groups;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            location /app/public/ {
                auth_request off;
                proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            }
        }
        location /any/ {
            satisfy any;
            allow 127.0.0.2;
            deny all;
            auth_request /auth;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /all/ {
            deny 127.0.0.3;
            auth_request /auth;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /tf/ {
            auth_request /auth;
            root DIR;
            try_files $uri /fallback/from-tf;
        }
        location /fallback/ { proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location /ret/ { auth_request /auth; return 200 "returned"; }
        location / { proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
    }
"#;

/// What the gatekeeper was asked.
type Asked = Arc<Mutex<Vec<String>>>;

/// The gatekeeper: a cookie decides.
async fn gatekeeper() -> (SocketAddr, Asked) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let asked: Asked = Arc::default();
    let log = asked.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let log = log.clone();
                async move {
                    let h = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
                    let cookie = h("cookie").unwrap_or_default();
                    log.lock().unwrap().push(format!(
                        "{} {} original={:?} {:?} length={:?} cookie={cookie:?}",
                        req.method(),
                        req.uri(),
                        h("x-original-uri"),
                        h("x-original-method"),
                        h("content-length"),
                    ));
                    let body = req.into_body().collect().await.map(|b| b.to_bytes().len());
                    assert_eq!(body.unwrap_or(0), 0, "the subrequest has no body");
                    let res = http::Response::builder();
                    let res = match cookie.as_str() {
                        "session=alice" => res
                            .status(200)
                            .header("remote-user", "alice")
                            .header("remote-groups", "admins,dev"),
                        "session=nobody" => res.status(204),
                        "session=banned" => res.status(403),
                        "session=broken" => res.status(500),
                        "session=moved" => res.status(302).header("location", "/login"),
                        _ => res
                            .status(401)
                            .header("www-authenticate", "Bearer realm=\"sso\""),
                    };
                    Ok::<_, Infallible>(res.body(Full::new(Bytes::from_static(b"gate"))).unwrap())
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    (addr, asked)
}

async fn observe(
    addr: SocketAddr,
    up: &Upstream,
    asked: &Asked,
    from: &str,
    probe: &str,
    cookie: Option<&str>,
) -> String {
    let (method, path) = probe.split_once(' ').unwrap_or(("GET", probe));
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "a");
    if let Some(c) = cookie {
        req = req.header("cookie", format!("session={c}"));
    }
    let body = if method == "POST" { "form=1" } else { "" };
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let from: IpAddr = from.parse().unwrap();
    let got = send_from(addr, Some(from), req).await;
    let challenges: Vec<_> = got
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let app = up.take().first().map(|s| {
        let h = |n: &str| s.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        format!(
            "{} {} user={:?} groups={:?}",
            s.method,
            s.uri,
            h("remote-user"),
            h("remote-groups")
        )
    });
    let gate = std::mem::take(&mut *asked.lock().unwrap());
    format!(
        "{} {challenges:?}\n    app {app:?}\n    gate {gate:?}",
        got.status.as_u16()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_request_matches_nginx() {
    let (gate, asked) = gatekeeper().await;
    let servers = SERVERS.replace("AUTH_PORT", &gate.port().to_string());
    let Some(both) = nginx::Both::start("auth-request", &servers).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let probes: &[(&str, &str, Option<&str>)] = &[
        ("127.0.0.1", "/app/x?a=1", None),
        ("127.0.0.1", "/app/x?a=1", Some("alice")),
        ("127.0.0.1", "POST /app/form", Some("alice")),
        ("127.0.0.1", "/app/x", Some("nobody")),
        ("127.0.0.1", "/app/x", Some("banned")),
        ("127.0.0.1", "/app/x", Some("broken")),
        ("127.0.0.1", "/app/x", Some("moved")),
        ("127.0.0.1", "/app/public/x", None),
        ("127.0.0.2", "/any/x", None),
        ("127.0.0.1", "/any/x", None),
        ("127.0.0.1", "/any/x", Some("alice")),
        ("127.0.0.1", "/any/x", Some("banned")),
        ("127.0.0.3", "/all/x", Some("alice")),
        ("127.0.0.1", "/all/x", Some("alice")),
        ("127.0.0.1", "/tf/x", None),
        ("127.0.0.1", "/tf/x", Some("alice")),
        ("127.0.0.1", "/ret/x", None),
        ("127.0.0.1", "/auth", Some("alice")),
        ("127.0.0.1", "/other", None),
    ];
    let mut diffs = Vec::new();
    let mut statuses = std::collections::BTreeSet::new();
    for (from, probe, cookie) in probes {
        let want = observe(both.nginx, &both.up, &asked, from, probe, *cookie).await;
        let got = observe(both.rpx, &both.up, &asked, from, probe, *cookie).await;
        statuses.insert(want[..3].to_owned());
        if want != got {
            diffs.push(format!(
                "{from} {probe} {cookie:?}:\n  nginx {want}\n  rpx   {got}"
            ));
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
    for code in ["200", "401", "403", "404", "500"] {
        assert!(statuses.contains(code), "{statuses:?}");
    }
}

/// The TOML form: `forward_auth = { uri, set }` and `false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toml_forward_auth() {
    let (gate, asked) = gatekeeper().await;
    let up = Upstream::start(1).await;
    let toml = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:8080"
        [[server.location]]
        path = "= /auth"
        internal = true
        proxy_pass = "http://{gate}/verify"
        [[server.location]]
        path = "/"
        proxy_pass = "http://{up}"
        forward_auth = {{ uri = "/auth", set = {{ user = "$upstream_http_remote_user" }} }}
        proxy_set_header = {{ Remote-User = "$user" }}
        [[server.location]]
        path = "/open/"
        proxy_pass = "http://{up}"
        forward_auth = false
        "#,
        up = up.addr
    );
    let cfg = rpx_core::config::parse_toml(&toml, "auth.toml").expect("config");
    let back = rpx_core::config::to_toml(&cfg).expect("convert");
    let again =
        rpx_core::config::to_toml(&rpx_core::config::parse_toml(&back, "again.toml").unwrap())
            .unwrap();
    assert_eq!(again, back, "forward_auth round-trips");
    let rpx = serve_config(&cfg, Vec::new()).await.expect("serve");
    let addr = rpx.listeners[0].1;
    let got = observe(addr, &up, &asked, "127.0.0.1", "/x", Some("alice")).await;
    assert!(
        got.starts_with("200") && got.contains(r#"user=Some(\"alice\")"#),
        "{got}"
    );
    let got = observe(addr, &up, &asked, "127.0.0.1", "/x", None).await;
    assert!(got.starts_with("401"), "{got}");
    let got = observe(addr, &up, &asked, "127.0.0.1", "/open/x", None).await;
    assert!(got.starts_with("200") && got.contains("gate []"), "{got}");
}
