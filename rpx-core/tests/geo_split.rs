//! `geo` and `split_clients` against real nginx: the same client
//! addresses (several loopback sources), `X-Forwarded-For` behind a
//! trusted `proxy`, ranges, a custom source, and 300 keys split alike.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const SERVERS: &str = r#"
    geo $office {
        default no;
        127.0.0.0/8 lo;
        127.0.0.5 five;
        ::1 six;
    }
    geo $arg_ip $byarg {
        default none;
        10.0.0.0/8 ten;
        10.1.0.0/16 ten-one;
        delete 10.1.2.0/24;
        2001:db8::/32 doc6;
    }
    geo $rng {
        ranges;
        default far;
        127.0.0.1-127.0.0.9 near;
        127.0.0.10-127.0.0.19 mid;
    }
    geo $fwd {
        default direct;
        proxy 127.0.0.0/8;
        203.0.113.0/24 web;
    }
    split_clients "${arg_k}salt" $variant {
        10% a;
        25.5% b;
        0.25% tiny;
        * c;
    }
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        location / {
            proxy_set_header X-Geo "$office|$byarg|$rng|$fwd|$variant";
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
    }
"#;

async fn seen(
    both: &nginx::Both,
    addr: std::net::SocketAddr,
    from: [u8; 4],
    path: &str,
    xff: Option<&str>,
) -> String {
    let mut req = http::Request::get(path).header("host", "a");
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    let got = send_from(
        addr,
        Some(std::net::IpAddr::from(from)),
        req.body(Full::new(Bytes::new())).unwrap(),
    )
    .await;
    let up = both.up.take();
    format!(
        "{} {:?}",
        got.status.as_u16(),
        up.iter()
            .map(|s| s.headers["x-geo"].to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geo_and_split_clients_match_nginx() {
    let Some(both) = nginx::Both::start("geo-split", SERVERS).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let mut cases: Vec<([u8; 4], String, Option<&str>)> = vec![
        ([127, 0, 0, 1], "/".into(), None),
        ([127, 0, 0, 5], "/?ip=10.2.3.4".into(), None),
        ([127, 0, 0, 12], "/?ip=10.1.5.5".into(), None),
        ([127, 0, 0, 25], "/?ip=10.1.2.3".into(), None),
        ([127, 0, 0, 1], "/?ip=2001:db8::1".into(), None),
        ([127, 0, 0, 1], "/?ip=junk".into(), None),
        ([127, 0, 0, 1], "/".into(), Some("203.0.113.9")),
        (
            [127, 0, 0, 1],
            "/".into(),
            Some("198.51.100.1, 203.0.113.9"),
        ),
        ([127, 0, 0, 1], "/".into(), Some("garbage")),
    ];
    for k in 0..300 {
        cases.push(([127, 0, 0, 1], format!("/?k={k}"), None));
    }
    let mut diffs = Vec::new();
    let mut variants = std::collections::HashMap::new();
    for (from, path, xff) in &cases {
        let want = seen(&both, both.nginx, *from, path, *xff).await;
        let got = seen(&both, both.rpx, *from, path, *xff).await;
        if got != want {
            diffs.push(format!(
                "{from:?} {path} {xff:?}:\n  nginx {want}\n  rpx   {got}"
            ));
        }
        let v = got
            .rsplit('|')
            .next()
            .unwrap_or("")
            .trim_end_matches("\"]")
            .to_owned();
        *variants.entry(v).or_insert(0) += 1;
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
    // The split did split.
    assert!(variants.len() >= 3, "{variants:?}");
}

/// Bad blocks are refused at their line.
#[test]
fn check_errors() {
    for (bad, want, line) in [
        (
            "geo $g {\n    default 1;\n    10.0.0.300/8 x;\n  }",
            "invalid network \"10.0.0.300/8\"",
            6,
        ),
        (
            "split_clients \"$remote_addr\" $s {\n    60% a;\n    50% b;\n  }",
            "percent total is greater than 100%",
            4,
        ),
        (
            "split_clients \"$remote_addr\" $s {\n    6x% a;\n  }",
            "invalid percent value",
            4,
        ),
        ("geo $g x {\n  }", "invalid variable name \"x\"", 4),
    ] {
        let errors = check_http(
            "geo-split-check",
            &format!("server {{ listen 127.0.0.1:1; }}\n  {bad}"),
        );
        assert!(errors.contains(want), "{bad}: {errors}");
        assert!(
            errors.contains(&format!("nginx.conf:{line}")),
            "{bad}: {errors}"
        );
    }
}

/// The TOML form, read, served and written back.
#[tokio::test]
async fn toml_form() {
    let up = Upstream::start(1).await;
    let toml = format!(
        r#"
        [[geo]]
        variable = "$office"
        lines = ["default no", "127.0.0.0/8 lo"]

        [[split_clients]]
        source = "$arg_k"
        variable = "$variant"
        parts = [["50%", "a"], ["*", "b"]]

        [[server]]
        listen = "127.0.0.1:0"

        [[server.location]]
        path = "/"
        proxy_pass = "http://{}"
        proxy_set_header = {{ X-Geo = "$office $variant" }}
        "#,
        up.addr
    );
    let cfg = rpx_core::config::parse_toml(&toml, "rpx.toml").expect("loads");
    let text = rpx_core::config::to_toml(&cfg).unwrap();
    let back = rpx_core::config::parse_toml(&text, "again.toml").expect("reads back");
    assert_eq!(rpx_core::config::to_toml(&back).unwrap(), text);
    let running = serve_config(&cfg, Vec::new()).await.unwrap();
    let req = http::Request::get("/?k=1")
        .header("host", "a")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(running.listeners[0].1, req).await;
    let seen = up.take();
    let v = seen[0].headers["x-geo"].to_str().unwrap();
    assert!(v == "lo a" || v == "lo b", "{v}");
}
