//! PCRE-only patterns (lookahead, lookbehind, backreferences, atomic
//! groups) in every regex place — `location`, `server_name`, `rewrite`,
//! `if`, `map` — against real nginx, which compiles them with PCRE.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const SERVERS: &str = r#"
    map $uri $section {
        ~^/(?!api/)(?<first>[^/]+)/ "page:$first";
        default "other";
    }
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        location ~ ^/api/(?!internal/)(.*)$ {
            proxy_set_header X-Cap "api $1 $section";
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location ~ (?<!\.min)\.js$ {
            proxy_set_header X-Cap "unminified $section";
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /twice/ {
            if ($uri ~ ^/twice/(\w+)/\1$) {
                return 418;
            }
            rewrite ^/twice/(?>a+)b$ /b-only break;
            proxy_set_header X-Cap "twice $section";
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location / {
            proxy_set_header X-Cap "root $section";
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
    }
    server {
        listen 127.0.0.1:LISTEN_PORT;
        server_name ~^(?!www\.)(?<sub>[a-z]+)\.example\.test$;
        location / {
            proxy_set_header X-Cap "sub $sub";
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
    }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcre_patterns_match_nginx() {
    let Some(both) = nginx::Both::start("pcre", SERVERS).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let mut diffs = Vec::new();
    for (host, path) in [
        ("a", "/api/users/7"),
        ("a", "/api/internal/x"),
        ("a", "/static/app.js"),
        ("a", "/static/app.min.js"),
        ("a", "/twice/ab/ab"),
        ("a", "/twice/ab/cd"),
        ("a", "/twice/aaab"),
        ("a", "/docs/intro"),
        ("shop.example.test", "/x"),
        ("www.example.test", "/x"),
    ] {
        let mut seen = Vec::new();
        for addr in [both.nginx, both.rpx] {
            let req = http::Request::get(path)
                .header("host", host)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let got = send(addr, req).await;
            let up = both.up.take();
            seen.push(format!(
                "{} {:?}",
                got.status.as_u16(),
                up.iter()
                    .map(|s| format!("{} {:?}", s.uri, s.headers.get("x-cap")))
                    .collect::<Vec<_>>()
            ));
        }
        if seen[0] != seen[1] {
            diffs.push(format!(
                "{host} {path}:\n  nginx {}\n  rpx   {}",
                seen[0], seen[1]
            ));
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
}
