//! `set_real_ip_from`, `real_ip_header`, `real_ip_recursive` against real
//! nginx (Debian's full package has the realip module): what the upstream
//! sees as the client, and access lists keyed on the real address; a
//! location's own settings.

mod support;

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const SERVERS: &str = r#"
    set_real_ip_from 127.0.0.0/24;
    set_real_ip_from ::1;
    real_ip_header X-Forwarded-For;

    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        location / {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_set_header X-Real $remote_addr;
            proxy_set_header X-Port $remote_port;
            proxy_set_header X-Peer $realip_remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
        location /deny/ {
            deny 203.0.113.7;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
    }
    server {
        listen 127.0.0.1:LISTEN_PORT;
        server_name rec.test;
        real_ip_recursive on;
        location / {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_set_header X-Real $remote_addr;
        }
    }
    server {
        listen 127.0.0.1:LISTEN_PORT;
        server_name xri.test;
        real_ip_header X-Real-IP;
        location / {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_set_header X-Real $remote_addr;
            proxy_set_header X-Port $remote_port;
        }
    }
    server {
        listen 127.0.0.1:LISTEN_PORT;
        server_name loc.test;
        real_ip_header X-Real-IP;
        location /xff/ {
            real_ip_header X-Forwarded-For;
            deny 203.0.113.7;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_set_header X-Real $remote_addr;
            proxy_set_header X-Peer $realip_remote_addr;
        }
        location / {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_set_header X-Real $remote_addr;
        }
    }
"#;

/// A request: Host, path, headers.
type Probe<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// Status and the headers the upstream got that say who the client is.
async fn observe(
    addr: SocketAddr,
    up: &Upstream,
    from: IpAddr,
    (host, path, headers): Probe<'_>,
) -> (u16, Vec<(String, String)>) {
    let mut req = http::Request::get(path).header("host", host);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let got = send_from(addr, Some(from), req.body(Full::new(Bytes::new())).unwrap()).await;
    let seen = up.take();
    let view = seen
        .first()
        .map(|s| {
            ["x-real", "x-port", "x-peer", "x-forwarded-for"]
                .iter()
                .filter_map(|n| {
                    let v = s.headers.get(*n)?.to_str().ok()?;
                    // The peer's own port differs between the two runs.
                    let v = if *n == "x-port" && v.parse::<u16>().is_ok_and(|p| p > 1024 && p != 55)
                    {
                        "EPHEMERAL"
                    } else {
                        v
                    };
                    Some((n.to_string(), v.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    (got.status.as_u16(), view)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_addresses_match_nginx() {
    let Some(both) = nginx::Both::start("realip", SERVERS).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let (up, nginx_addr, rpx_addr) = (&both.up, both.nginx, both.rpx);

    let xff = "x-forwarded-for";
    let cases: &[Probe<'_>] = &[
        ("a", "/", &[]),
        ("a", "/", &[(xff, "203.0.113.7")]),
        ("a", "/", &[(xff, "198.51.100.1, 127.0.0.5")]),
        ("a", "/", &[(xff, "junk")]),
        ("a", "/", &[(xff, "203.0.113.7:55")]),
        ("a", "/", &[(xff, "1.1.1.1"), (xff, "2.2.2.2, 127.0.0.9")]),
        ("a", "/deny/x", &[(xff, "203.0.113.7")]),
        ("a", "/deny/x", &[(xff, "203.0.113.8")]),
        (
            "rec.test",
            "/",
            &[(xff, "9.9.9.9, 198.51.100.1, 127.0.0.5")],
        ),
        ("rec.test", "/", &[(xff, "127.0.0.7, 127.0.0.5")]),
        ("xri.test", "/", &[("x-real-ip", "192.0.2.44")]),
        ("xri.test", "/", &[("x-real-ip", "192.0.2.44:55")]),
        ("xri.test", "/", &[(xff, "192.0.2.44")]),
        // A location's own settings, in nginx's preaccess phase; the
        // server's, when they found an address, stand.
        ("loc.test", "/xff/a", &[(xff, "203.0.113.7")]),
        ("loc.test", "/xff/a", &[(xff, "198.51.100.9")]),
        (
            "loc.test",
            "/xff/a",
            &[(xff, "198.51.100.9"), ("x-real-ip", "192.0.2.1")],
        ),
        ("loc.test", "/other", &[(xff, "198.51.100.9")]),
    ];
    let mut diffs = Vec::new();
    for from in ["127.0.0.1", "127.0.1.1"] {
        let from: IpAddr = from.parse().unwrap();
        for case in cases {
            let want = observe(nginx_addr, up, from, *case).await;
            let got = observe(rpx_addr, up, from, *case).await;
            if want != got {
                diffs.push(format!(
                    "{from} {case:?}:\n  nginx {want:?}\n  rpx   {got:?}"
                ));
            }
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
}

#[tokio::test]
async fn toml_real_ip_reads_naturally_and_round_trips() {
    let up = Upstream::start(1).await;
    let toml = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:8080"
        real_ip = {{ from = ["127.0.0.0/24"], header = "X-Forwarded-For", recursive = true }}
        deny = "203.0.113.7"
        [[server.location]]
        path = "/"
        proxy_pass = "http://{up}"
        proxy_set_header = {{ X-Real = "$remote_addr" }}
        "#,
        up = up.addr
    );
    let cfg = rpx_core::config::parse_toml(&toml, "realip.toml").expect("config");
    let back = rpx_core::config::to_toml(&cfg).expect("convert");
    assert!(back.contains("recursive = true"), "{back}");
    let rpx = serve_config(&cfg, Vec::new()).await.expect("serve");
    let addr = rpx.listeners[0].1;
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let got = observe(
        addr,
        &up,
        lo,
        ("a", "/", &[("x-forwarded-for", "198.51.100.1, 127.0.0.3")]),
    )
    .await;
    assert_eq!(got.0, 200);
    assert!(
        got.1.contains(&("x-real".into(), "198.51.100.1".into())),
        "{got:?}"
    );
    let got = observe(
        addr,
        &up,
        lo,
        ("a", "/", &[("x-forwarded-for", "203.0.113.7")]),
    )
    .await;
    assert_eq!(got.0, 403, "deny keys on the real address");
}
