//! `sub_filter`, `sub_filter_once`, `sub_filter_types` and
//! `sub_filter_last_modified` against real nginx: an upstream sends HTML
//! (and CSS, JSON) in chunks cut inside the strings searched for, and
//! both proxies must hand the client the same headers and bytes.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{Full, StreamBody};
use hyper_util::rt::TokioIo;
use support::*;

/// The page, cut where the searched strings are split across writes.
const PAGE: &[&str] = &[
    "<html><head><link href=\"/st",
    "yle.css\"><script src",
    "=\"/app.js\"></script></head>\n<body><a hr",
    "ef=\"/about\">About</a> <a HREF=\"/x\">X</a> <img src=\"/logo.png\">",
    " foo FOO foo HOST</body></html>\n",
];

/// An upstream answering `/page`-like paths with [`PAGE`] in pieces, of
/// the type its query names.
async fn page_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = hyper::service::service_fn(
                |req: http::Request<hyper::body::Incoming>| async move {
                    let ctype = match req.uri().query() {
                        Some("css") => "text/css",
                        Some("json") => "application/json",
                        _ => "text/html; charset=utf-8",
                    };
                    let frames = PAGE.iter().map(|p| {
                        Ok::<_, Infallible>(Frame::data(Bytes::from_static(p.as_bytes())))
                    });
                    let body =
                        StreamBody::new(futures_util::stream::iter(frames.collect::<Vec<_>>()));
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("content-type", ctype)
                            .header("last-modified", "Mon, 02 Nov 2026 10:00:00 GMT")
                            .header("etag", "\"v1\"")
                            .body(body)
                            .unwrap(),
                    )
                },
            );
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
        location /app/ {
            proxy_pass http://PAGE_UP/;
            proxy_set_header Accept-Encoding "";
            sub_filter 'href="/' 'href="/app/';
            sub_filter 'src="/' 'src="/app/';
            sub_filter_once off;
            sub_filter_types text/css;
        }
        location /once/ {
            proxy_pass http://PAGE_UP/;
            sub_filter foo bar;
            sub_filter href HREF;
        }
        location /any/ {
            proxy_pass http://PAGE_UP/;
            sub_filter foo bar;
            sub_filter_once off;
            sub_filter_types *;
            sub_filter_last_modified on;
        }
        location /host/ {
            proxy_pass http://PAGE_UP/;
            sub_filter HOST "[$host]";
        }
        location /plain/ {
            proxy_pass http://PAGE_UP/;
        }
    }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_filter_matches_nginx() {
    let up = page_upstream().await;
    let servers = SERVERS.replace("PAGE_UP", &up.to_string());
    let Some(both) = nginx::Both::start("sub-filter", &servers).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let mut diffs = Vec::new();
    let mut rpx = std::collections::HashMap::new();
    for path in [
        "/app/page",
        "/app/page?css",
        "/app/page?json",
        "/once/page",
        "/any/page?json",
        "/host/page",
        "/plain/page",
    ] {
        let mut seen = Vec::new();
        for addr in [both.nginx, both.rpx] {
            let req = http::Request::get(path)
                .header("host", "Site.test")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let got = send(addr, req).await;
            let h = |n: &str| got.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
            seen.push(format!(
                "{} content-length={:?} last-modified={:?} etag={:?}\n{}",
                got.status.as_u16(),
                h("content-length"),
                h("last-modified"),
                h("etag"),
                got.body
            ));
        }
        if seen[0] != seen[1] {
            diffs.push(format!("{path}:\n  nginx {}\n  rpx   {}", seen[0], seen[1]));
        }
        rpx.insert(path, seen.pop().unwrap());
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
    let app = &rpx["/app/page"];
    assert!(
        app.contains("href=\"/app/style.css\"") && app.contains("src=\"/app/app.js\""),
        "{app}"
    );
    assert!(
        app.contains("href=\"/app/about\"") && app.contains("src=\"/app/logo.png\""),
        "{app}"
    );
}

/// The TOML form, read and written back.
#[test]
fn toml_form() {
    let toml = r#"
        [[server]]
        listen = "127.0.0.1:0"

        [[server.location]]
        path = "/app/"
        proxy_pass = "http://127.0.0.1:9/"
        sub_filter = [['href="/', 'href="/app/'], ["foo", "bar"]]
        sub_filter_once = false
        sub_filter_types = ["text/css"]
        sub_filter_last_modified = true
        "#;
    let cfg = rpx_core::config::parse_toml(toml, "rpx.toml").expect("loads");
    let text = rpx_core::config::to_toml(&cfg).unwrap();
    let back = rpx_core::config::parse_toml(&text, "again.toml").expect("reads back");
    assert_eq!(rpx_core::config::to_toml(&back).unwrap(), text);
    assert!(text.contains("sub_filter_once = false"), "{text}");
    assert!(rpx_core::stack::compile(&cfg).is_ok());
}
