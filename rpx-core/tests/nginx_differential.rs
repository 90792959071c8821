//! Differential tests: the same config under real nginx and under rpx, the
//! same requests to both, and what the client and the upstream see compared.
//! CI installs Debian's `nginx`; without nginx these tests fail unless
//! `RPX_SKIP_NGINX=1`.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const SERVERS: &str = r#"
    upstream app { server 127.0.0.1:UPSTREAM_PORT; }
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }

    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        return 301 https://$host$request_uri;
    }

    server {
        listen 127.0.0.1:LISTEN_PORT;
        server_name example.com;
        add_header X-Frame-Options DENY;
        rewrite ^/old/(.*)$ /new/$1 last;

        location /api/ {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT/;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
        location /new/ { proxy_pass http://app; }
        location /v1/ {
            rewrite ^/v1/(.*)$ /v2/$1 break;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location = /perm { rewrite ^ /target permanent; }
        location /ws/ {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }
        location /dir/ { proxy_pass http://127.0.0.1:UPSTREAM_PORT/inner/; }
        location ~* \.(png|jpg)$ { return 200 "image"; }
        location /hidden/ {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_hide_header X-Upstream;
        }
        location / { proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
    }

    server {
        listen 127.0.0.1:LISTEN_PORT;
        server_name files.example.com;
        root FILES_ROOT;
        add_header X-Frame-Options SAMEORIGIN;
        rewrite ^/moved/(.*)$ /$1 last;

        location / { try_files $uri $uri.html $uri/ @app; }
        location @app {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_set_header Host $host;
        }
        location /spa/ { try_files $uri /index.html; }
        location /php/ { try_files $uri $uri/ /backend/index.php?$args; }
        location /args/ { try_files $uri /backend/fallback; }
        location /backend/ { proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location /gone/ { try_files $uri =410; }
        location /loop/ { try_files $uri /loop/again; }
    }
"#;

fn write_config(dir: &Path, listen: u16, upstream: u16) -> PathBuf {
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("docs")).expect("mkdir www");
    for (file, text) in [
        ("index.html", "the index"),
        ("about.html", "about page"),
        ("docs/index.html", "docs index"),
        ("spa.txt", "root file"),
    ] {
        std::fs::write(www.join(file), text).expect("write www");
    }
    let servers = SERVERS
        .replace("FILES_ROOT", &www.display().to_string())
        .replace("LISTEN_PORT", &listen.to_string())
        .replace("UPSTREAM_PORT", &upstream.to_string());
    nginx::write_config(dir, &servers)
}

/// Method, URI, Host, X-Forwarded-For, X-Real-IP and Upgrade the upstream saw.
type UpstreamView = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);
/// Method, path, Host, extra headers.
type Probe<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)]);

/// What is compared for one request.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    status: u16,
    location: Option<String>,
    frame_options: Option<String>,
    x_upstream: Option<String>,
    body: Option<String>,
    upstream: Option<UpstreamView>,
}

async fn observe(
    addr: SocketAddr,
    up: &Upstream,
    (method, path, host, extra): Probe<'_>,
) -> Observed {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (n, v) in extra {
        req = req.header(*n, *v);
    }
    let got = send(addr, req.body(Full::new(Bytes::new())).expect("request")).await;
    let h = |n: &str| {
        got.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let seen = up.take();
    let upstream = seen.first().map(|s| {
        let g = |n: &str| {
            s.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        (
            s.method.clone(),
            s.uri.clone(),
            g("host"),
            g("x-forwarded-for"),
            g("x-real-ip"),
            g("upgrade"),
        )
    });
    Observed {
        status: got.status.as_u16(),
        // Redirects name the port the client connected to, which differs.
        location: h("location").map(|l| l.replace(&format!(":{}", addr.port()), ":PORT")),
        frame_options: h("x-frame-options"),
        x_upstream: h("x-upstream"),
        body: (upstream.is_none() && got.status.is_success()).then(|| got.body.clone()),
        upstream,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_and_rewriting_match_nginx() {
    let Some(binary) = nginx::binary() else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let up = Upstream::start(1).await;
    let dir = temp_dir("differential");
    let port = nginx::free_port();
    let conf = write_config(&dir, port, up.addr.port());
    let nginx_addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let _nginx = nginx::Nginx::start(&binary, &dir, &conf, nginx_addr).await;

    let rpx = serve_file(&conf, false)
        .await
        .expect("rpx loads the same config");
    let rpx_addr = rpx.listeners[0].1;

    let requests: &[Probe<'_>] = &[
        (
            "GET",
            "/api/users?id=1",
            "example.com",
            &[("x-forwarded-for", "10.0.0.1")],
        ),
        ("POST", "/api/", "example.com", &[]),
        ("GET", "/old/page?x=1", "example.com", &[]),
        ("GET", "/v1/items/7?y=2", "example.com", &[]),
        ("GET", "/perm?q", "example.com", &[]),
        ("GET", "/ws/chat", "example.com", &[]),
        ("GET", "/dir", "example.com", &[]),
        ("GET", "/dir/a/b", "example.com", &[]),
        ("GET", "/img/logo.PNG", "example.com", &[]),
        ("GET", "/hidden/x", "example.com", &[]),
        ("GET", "/anything/else", "example.com", &[]),
        ("GET", "/x?y", "unknown.example.org", &[]),
        ("GET", "/a/../b/./c", "example.com", &[]),
        // try_files and named locations.
        ("GET", "/index.html", "files.example.com", &[]),
        ("GET", "/about?x=1", "files.example.com", &[]),
        ("GET", "/docs", "files.example.com", &[]),
        ("GET", "/nothing/here?x=1", "files.example.com", &[]),
        ("POST", "/form", "files.example.com", &[]),
        ("GET", "/moved/about.html", "files.example.com", &[]),
        ("GET", "/moved/missing?q=2", "files.example.com", &[]),
        ("GET", "/spa/deep/route?a=1", "files.example.com", &[]),
        ("GET", "/php/x?a=1&b=2", "files.example.com", &[]),
        ("GET", "/php/y", "files.example.com", &[]),
        ("GET", "/args/z?keep=1", "files.example.com", &[]),
        ("GET", "/gone/a", "files.example.com", &[]),
        ("GET", "/loop/a", "files.example.com", &[]),
    ];
    let mut diffs = Vec::new();
    for r in requests {
        let n = observe(nginx_addr, &up, *r).await;
        let x = observe(rpx_addr, &up, *r).await;
        if n != x {
            diffs.push(format!(
                "{} {} (Host {}):\n  nginx {n:?}\n  rpx   {x:?}",
                r.0, r.1, r.2
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
}
