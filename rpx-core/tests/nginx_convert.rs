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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_config_converts_and_serves_the_same() {
    let dirs = corpus_dirs();
    let mut failures = Vec::new();
    let mut cases = 0;
    for dir in &dirs {
        match tokio::time::timeout(LIMIT * 3, run_corpus_config(dir, Via::Toml)).await {
            Ok(Ok(n)) => cases += n,
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push(format!("{}: timed out", dir.display())),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(
        cases > 50,
        "only {cases} cases ran through converted configs"
    );
}

/// What the old writer refused (map, rewrite/if/break, try_files, named
/// locations, repeated add_header names) is written, reads back into the
/// same text, and reads naturally.
#[test]
fn converts_the_rewrite_module_maps_and_try_files() {
    let src = r#"
map $http_upgrade $connection_upgrade { default upgrade; '' close; \~lit tilde; ~*^web ws; }
server {
    listen 80;
    server_name example.com;
    if ($host = www.example.com) { return 301 https://example.com$request_uri; }
    if ($http_x_pad = " x ") { rewrite ^ /pad break; return 418; }
    rewrite ^/old/(.*)$ /new/$1 last;
    add_header X-A 1;
    add_header X-A 2 always;
    location / {
        root /srv;
        try_files $uri $uri/ @app;
    }
    location @app {
        proxy_pass http://127.0.0.1:9;
        proxy_set_header X-Z z;
        proxy_set_header Host $host;
    }
    location /v1/ {
        rewrite ^/v1/(.*)$ /v2/$1 break;
        if ($arg_debug) { break; }
        return 403;
    }
}
"#;
    let l =
        config::nginx::config_from_str(src, std::path::Path::new("m.conf"), LoadOptions::default());
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    let text = config::to_toml(&l.config).expect("converts");
    let back = config::parse_toml(&text, "c.toml").expect("reads back");
    assert_eq!(config::to_toml(&back).expect("converts again"), text);
    for want in [
        "[[map]]",
        r#"variable = "$connection_upgrade""#,
        r#"['\~lit', "tilde"]"#,
        r#"["~*^web", "ws"]"#,
        r#"if = "$host = www.example.com""#,
        r#"return = "301 https://example.com$request_uri""#,
        r#"if = ["$http_x_pad", "=", " x "]"#,
        r#"regex = "^/old/(.*)$""#,
        r#"flag = "last""#,
        r#"try_files = ["$uri", "$uri/", "@app"]"#,
        r#"path = "@app""#,
        r#"name = "X-A""#,
        r#"if = "$arg_debug""#,
        "break = true",
        "return = 403",
    ] {
        assert!(text.contains(want), "{want:?} missing from\n{text}");
    }
    let m = &back.maps[0];
    assert_eq!(m.entries.len(), 3);
    assert_eq!(m.entries[1].key, config::MapKey::Exact("~lit".into()));
    let s = &back.servers[0];
    assert_eq!(s.rewrites.len(), 3);
    assert_eq!(s.settings.add_header.as_ref().map(Vec::len), Some(2));
    assert_eq!(s.locations[1].kind, rpx_core::location::MatchKind::Named);
    let names: Vec<_> = s.locations[1]
        .settings
        .proxy_set_header
        .iter()
        .flatten()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(names, ["X-Z", "Host"]);
    assert!(matches!(
        s.locations[2].handler,
        Some(config::Handler::Return(_))
    ));
}

/// Named-location mistakes are config errors with positions, not 500s.
#[test]
fn named_location_errors() {
    let cases = [
        (
            "[[server]]\n[[server.location]]\npath = \"/\"\nroot = \"/srv\"\ntry_files = [\"$uri\", \"@nope\"]\n",
            "c.toml:5:13: try_files: there is no named location \"@nope\" in this server",
        ),
        (
            "[[server]]\n[[server.location]]\npath = \"@app\"\nproxy_pass = \"http://127.0.0.1:9/x/\"\n",
            "c.toml:4:14: proxy_pass cannot have a URI part in a named location: \"http://127.0.0.1:9/x/\"",
        ),
        (
            "[[server]]\n[[server.location]]\npath = \"/\"\ntry_files = [\"$uri\", \"=404\"]\n",
            "c.toml:4:13: try_files needs `root` or `alias`",
        ),
    ];
    for (src, want) in cases {
        let cfg = config::parse_toml(src, "c.toml").expect("parses");
        let Err(errors) = rpx_core::stack::compile(&cfg) else {
            panic!("{src} compiled");
        };
        let errors: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        assert_eq!(errors.first().map(String::as_str), Some(want), "{src}");
    }
}
