//! `expires` against real nginx: `Expires` (as seconds after `Date`, or
//! after `Last-Modified` with `modified`) and `Cache-Control` for each
//! form, on proxied, returned and static answers, with `add_header
//! Cache-Control` after it, a variable value, and statuses it skips.

mod support;

use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const SERVERS: &str = r#"
    map $arg_e $ex {
        default off;
        day 1d;
        old epoch;
        forever max;
    }
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        root DIR/html;
        location /hour/ { expires 1h; proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location /epoch/ { expires epoch; return 200 "x"; }
        location /max/ { expires max; proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location /neg/ { expires -1; proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location /zero/ { expires 0; proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location /off/ { expires off; proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location /var/ { expires $ex; proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location /public/ {
            expires 30d;
            add_header Cache-Control public;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /static/ { expires modified 1d; }
        location /inherit/ {
            expires 2h;
            location /inherit/inner/ { proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        }
    }
"#;

/// What a client sees of the headers `expires` sets.
fn shape(h: &http::HeaderMap) -> String {
    let date = |n: &str| {
        h.get(n)
            .and_then(|v| httpdate::parse_http_date(v.to_str().ok()?).ok())
    };
    let secs = |a: SystemTime, b: SystemTime| match a.duration_since(b) {
        Ok(d) => d.as_secs_f64().round() as i64,
        Err(e) => -(e.duration().as_secs_f64().round() as i64),
    };
    let expires = match (date("expires"), date("date"), date("last-modified")) {
        (None, ..) => h.get("expires").map_or("none".into(), |v| format!("{v:?}")),
        (Some(e), _, _) if e < SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2) => {
            format!("{:?}", h["expires"])
        }
        (Some(e), _, Some(lm)) if h.get("x-upstream").is_none() => {
            format!("last-modified{:+}", secs(e, lm))
        }
        (Some(e), Some(d), _) if secs(e, d).abs() < 400_000_000 => format!("date{:+}", secs(e, d)),
        (Some(_), ..) => format!("{:?}", h["expires"]),
    };
    let cc: Vec<_> = h.get_all("cache-control").iter().collect();
    format!("expires={expires} cache-control={cc:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expires_matches_nginx() {
    let Some(both) = nginx::Both::start("expires", SERVERS).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let html = both.dir.join("html/static");
    std::fs::create_dir_all(&html).unwrap();
    std::fs::write(html.join("a.txt"), "a\n").unwrap();
    let cases = [
        "/hour/x",
        "/hour/x?status=404",
        "/hour/x?status=302",
        "/epoch/x",
        "/max/x",
        "/neg/x",
        "/zero/x",
        "/off/x",
        "/var/x",
        "/var/x?e=day",
        "/var/x?e=old",
        "/var/x?e=forever",
        "/public/x",
        "/static/a.txt",
        "/static/missing",
        "/inherit/inner/x",
    ];
    let mut diffs = Vec::new();
    let mut rpx = std::collections::HashMap::new();
    for path in cases {
        let mut seen = Vec::new();
        for addr in [both.nginx, both.rpx] {
            let req = http::Request::get(path)
                .header("host", "a")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let got = send(addr, req).await;
            seen.push(format!("{} {}", got.status.as_u16(), shape(&got.headers)));
        }
        both.up.take();
        if seen[0] != seen[1] {
            diffs.push(format!("{path}:\n  nginx {}\n  rpx   {}", seen[0], seen[1]));
        }
        rpx.insert(path, seen.pop().unwrap());
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
    // And it did something (both proxies doing nothing would agree too).
    assert_eq!(
        rpx["/hour/x"],
        "200 expires=date+3600 cache-control=[\"max-age=3600\"]"
    );
    assert!(
        rpx["/static/a.txt"].contains("last-modified+86400"),
        "{}",
        rpx["/static/a.txt"]
    );
    assert!(
        rpx["/public/x"].contains("[\"max-age=2592000\", \"public\"]"),
        "{}",
        rpx["/public/x"]
    );
}

/// Bad values are refused at their line, in nginx's words.
#[test]
fn check_errors() {
    assert_refused_in_server(
        "expires-check",
        "",
        &[
            ("expires soon;", "invalid value \"soon\""),
            (
                "expires modified @1h;",
                "daily time cannot be used with \"modified\" parameter",
            ),
            ("expires $nonesuch;", "unknown variable"),
        ],
    );
}

/// The TOML form, read and written back.
#[tokio::test]
async fn toml_form() {
    let up = Upstream::start(1).await;
    let toml = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
        expires = "modified 1d"

        [[server.location]]
        path = "/"
        proxy_pass = "http://{}"
        expires = "1h"
        "#,
        up.addr
    );
    let cfg = rpx_core::config::parse_toml(&toml, "rpx.toml").expect("loads");
    let text = rpx_core::config::to_toml(&cfg).unwrap();
    assert!(text.contains("expires = \"1h\""), "{text}");
    assert!(text.contains("expires = \"modified 1d\""), "{text}");
    let running = serve_config(&cfg, Vec::new()).await.unwrap();
    let req = http::Request::get("/")
        .header("host", "a")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let got = send(running.listeners[0].1, req).await;
    assert_eq!(got.headers["cache-control"], "max-age=3600");
}
