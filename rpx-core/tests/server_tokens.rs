//! `server_tokens` and the `Server` header against real nginx: each sends
//! its own name (with its version unless `server_tokens off`) on every
//! answer, its own pages too, unless `proxy_pass_header Server` passes the
//! upstream's.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const SERVERS: &str = r#"
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        location /up/ { proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location /pass/ { proxy_pass_header Server; proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location /ret/ { return 204; }
        location /missing/ { }
    }
    server {
        listen 127.0.0.1:LISTEN_PORT;
        server_name quiet;
        server_tokens off;
        location /up/ { proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location /ret/ { return 204; }
    }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_header_matches_nginx() {
    let Some(both) = nginx::Both::start("server-tokens", SERVERS).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let version = env!("CARGO_PKG_VERSION");
    let mut diffs = Vec::new();
    for (host, path) in [
        ("a", "/up/x"),
        ("a", "/pass/x"),
        ("a", "/ret/x"),
        ("a", "/missing/x"),
        ("quiet", "/up/x"),
        ("quiet", "/ret/x"),
    ] {
        let mut seen = Vec::new();
        for (addr, name) in [(both.nginx, "nginx"), (both.rpx, "rpx")] {
            let req = http::Request::get(path)
                .header("host", host)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let got = send(addr, req).await;
            let server: Vec<String> = got
                .headers
                .get_all("server")
                .iter()
                .map(|v| {
                    let v = v.to_str().unwrap();
                    // The proxy's own name, with or without a version.
                    match v.strip_prefix(name) {
                        Some("") => "OWN".to_owned(),
                        Some(rest) if rest.starts_with('/') => "OWN/VERSION".to_owned(),
                        _ => v.to_owned(),
                    }
                })
                .collect();
            if name == "rpx" {
                for v in got.headers.get_all("server") {
                    assert!(
                        v == "rpx" || v == format!("rpx/{version}").as_str() || v == "upstream"
                    );
                }
            }
            seen.push(format!("{} {server:?}", got.status.as_u16()));
        }
        both.up.take();
        if seen[0] != seen[1] {
            diffs.push(format!(
                "{host} {path}:\n  nginx {}\n  rpx   {}",
                seen[0], seen[1]
            ));
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
}

#[test]
fn location_level_is_an_error() {
    let dir = temp_dir("server-tokens-check");
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        "events {}\nhttp {\n  server {\n    listen 127.0.0.1:1;\n    location / { server_tokens off; }\n  }\n}\n",
    )
    .unwrap();
    let errors: Vec<String> = rpx_core::stack::check_file(&conf)
        .iter()
        .map(ToString::to_string)
        .collect();
    let errors = errors.join("\n");
    assert!(errors.contains("`server_tokens` in a location"), "{errors}");
}
