//! `limit_rate` / `limit_rate_after` against real nginx: a 250 KB file at
//! 100 KB a second after the first 50 KB takes both proxies a second or
//! more (a lower bound a loaded machine meets: pacing cannot make a body
//! faster); an unpaced location is not paced.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const SERVERS: &str = r#"
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        root DIR;
        location /slow/ {
            limit_rate 100k;
            limit_rate_after 50k;
            add_header X-Rate $limit_rate;
        }
        location / {
            add_header X-Rate $limit_rate;
        }
    }
"#;

async fn fetch(addr: SocketAddr, path: &str) -> (u16, usize, Option<String>, Duration) {
    let started = Instant::now();
    let req = http::Request::get(path)
        .header("host", "a")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let got = send(addr, req).await;
    let rate = got
        .headers
        .get("x-rate")
        .map(|v| v.to_str().unwrap().to_owned());
    (got.status.as_u16(), got.body.len(), rate, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_rate_matches_nginx() {
    let Some(both) = nginx::Both::start("limit-rate", SERVERS).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    std::fs::create_dir_all(both.dir.join("slow")).unwrap();
    let file = "x".repeat(250 * 1024);
    std::fs::write(both.dir.join("slow/file.txt"), &file).unwrap();
    std::fs::write(both.dir.join("fast.txt"), &file).unwrap();
    for (path, paced) in [("/slow/file.txt", true), ("/fast.txt", false)] {
        let want = fetch(both.nginx, path).await;
        let got = fetch(both.rpx, path).await;
        assert_eq!((want.0, want.1), (got.0, got.1), "{path}");
        // nginx sets `$limit_rate` at the first write, after `add_header`
        // has read it (0); rpx knows it from the start (docs/nginx-compat.md).
        let rate = if paced { "102400" } else { "0" };
        assert_eq!(want.2.as_deref(), Some("0"), "{path}");
        assert_eq!(got.2.as_deref(), Some(rate), "{path}");
        if paced {
            for (who, took) in [("nginx", want.3), ("rpx", got.3)] {
                assert!(
                    took >= Duration::from_millis(900),
                    "{who} sent {path} in {took:?}"
                );
            }
        }
    }
}

/// The TOML form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toml_limit_rate() {
    let dir = temp_dir("limit-rate-toml");
    std::fs::write(dir.join("f.txt"), "y".repeat(120 * 1024)).unwrap();
    let toml = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:8080"
        [[server.location]]
        path = "/"
        root = "{}"
        limit_rate = "50k"
        limit_rate_after = "20k"
        "#,
        dir.display()
    );
    let cfg = rpx_core::config::parse_toml(&toml, "rate.toml").expect("config");
    let back = rpx_core::config::to_toml(&cfg).expect("convert");
    assert!(
        back.contains("limit_rate = 51200") && back.contains("limit_rate_after = 20480"),
        "{back}"
    );
    let rpx = serve_config(&cfg, Vec::new()).await.expect("serve");
    let (status, len, _, took) = fetch(rpx.listeners[0].1, "/f.txt").await;
    assert_eq!((status, len), (200, 120 * 1024));
    // 100 KiB past the free 20 KiB at 50 KiB/s, a second's worth at once.
    assert!(took >= Duration::from_millis(900), "{took:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
