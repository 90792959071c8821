//! `rpx convert`: an nginx config written as TOML loads into the same
//! model and serves the same responses.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use rpx_core::config::{self, LoadOptions};
use support::*;

const NGINX: &str = r#"
upstream app { server 127.0.0.1:UPSTREAM_PORT weight=2; }
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
server {
    listen 80 default_server;
    server_name example.com *.example.com;
    add_header X-Frame-Options DENY;
    add_header Strict-Transport-Security "max-age=1" always;
    client_max_body_size 2m;
    location /api/ {
        proxy_pass http://app/;
        proxy_set_header Host $host;
        proxy_read_timeout 1500ms;
        proxy_hide_header X-Upstream;
        proxy_redirect http://a/ http://b/;
        location /api/admin/ { return 403; }
    }
    location = /health { return 200 "ok"; }
    location ~* \.(png)$ { return 404; }
}
server { listen 80; server_name old.example.com; return 301 https://example.com$request_uri; }
"#;

#[tokio::test]
async fn converted_config_behaves_the_same() {
    let up = Upstream::start(1).await;
    let dir = temp_dir("convert");
    let path = dir.join("site.conf");
    std::fs::write(
        &path,
        NGINX.replace("UPSTREAM_PORT", &up.addr.port().to_string()),
    )
    .expect("write");
    let (from_nginx, _) = config::load_with(&path, LoadOptions::default())
        .into_result()
        .expect("nginx config loads");
    let text = config::to_toml(&from_nginx).expect("converts");
    let from_toml = config::parse_toml(&text, "converted.toml").expect("converted TOML loads");

    let a = serve_config(&from_nginx, Vec::new())
        .await
        .expect("serve nginx");
    let b = serve_config(&from_toml, Vec::new())
        .await
        .expect("serve toml");
    for (path, host) in [
        ("/api/x?y=1", "example.com"),
        ("/api/admin/", "a.example.com"),
        ("/health", "example.com"),
        ("/i.PNG", "example.com"),
        ("/api", "example.com"),
        ("/z", "old.example.com"),
    ] {
        let mut seen = Vec::new();
        for addr in [a.listeners[0].1, b.listeners[0].1] {
            let req = http::Request::get(path)
                .header("host", host)
                .body(Full::new(Bytes::new()))
                .expect("request");
            let got = send(addr, req).await;
            let ups: Vec<_> = up
                .take()
                .into_iter()
                .map(|s| {
                    (
                        s.uri,
                        s.headers.get("host").cloned(),
                        s.headers.get("x-forwarded-for").cloned(),
                    )
                })
                .collect();
            let mut headers: Vec<_> = got
                .headers
                .iter()
                .filter(|(n, _)| *n != "date" && *n != "location")
                .map(|(n, v)| format!("{n}: {v:?}"))
                .collect();
            headers.sort();
            let loc = got.headers.get("location").map(|l| {
                l.to_str()
                    .unwrap_or("")
                    .replace(&format!(":{}", addr.port()), ":PORT")
            });
            seen.push((got.status, headers, loc, got.body, ups));
        }
        assert_eq!(seen[0], seen[1], "{path} {host}\nTOML:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn convert_refuses_what_toml_cannot_say() {
    let l = config::nginx::config_from_str(
        "map $a $b { default x; }\nserver { listen 80; rewrite ^ /x; location / { try_files $uri =404; root /srv; } }",
        std::path::Path::new("m.conf"),
        LoadOptions::default(),
    );
    let errors: Vec<String> = config::to_toml(&l.config)
        .expect_err("not expressible")
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "m.conf:1: map $b cannot be written as TOML yet (keep the nginx file for this config)",
            "m.conf:2: server-level rewrite/if/break cannot be written as TOML yet (keep the nginx file for this config)",
            "m.conf:2: try_files cannot be written as TOML yet (keep the nginx file for this config)",
        ]
    );
}
