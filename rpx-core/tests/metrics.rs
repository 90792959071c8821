//! Prometheus metrics through real requests. One test per process: the
//! recorder is global.

mod common;

use common::*;

fn value(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start:?} in\n{text}"))
}

#[tokio::test]
async fn requests_connections_and_reloads_are_counted() {
    rpx_core::metrics::install().unwrap();
    let up = Upstream::ok().await;
    let (a, b) = (Upstream::ok().await, Upstream::ok().await);
    let config = format!(
        r#"
        [upstream.pool]
        servers = ["{a}", "{b}"]
        [[server]]
        listen = "127.0.0.1:0"
        server_name = "app.test"
          [[server.location]]
          path = "/grp/"
          proxy_pass = "http://pool"
          [[server.location]]
          path = "/app/"
          proxy_pass = "{}"
        [[server]]
        listen = "127.0.0.2:0"
        server_name = "admin"
          [[server.location]]
          path = "= /metrics"
          metrics = true
        "#,
        up.url(),
        a = a.addr,
        b = b.addr
    );
    let p = Proxy::start(&config).await;
    let app = p
        .listeners
        .iter()
        .find(|l| l.0.ip().to_string() == "127.0.0.1")
        .unwrap()
        .1;
    let admin = p
        .listeners
        .iter()
        .find(|l| l.0.ip().to_string() == "127.0.0.2")
        .unwrap()
        .1;
    for _ in 0..3 {
        assert_eq!(get(&format!("http://{app}/app/x"), &[]).await.0, 200);
    }
    assert_eq!(get(&format!("http://{app}/nope"), &[]).await.0, 404);
    for _ in 0..6 {
        assert_eq!(get(&format!("http://{app}/grp/"), &[]).await.0, 200);
    }
    rpx_core::metrics::reload_done(true);

    let (status, headers, body) = get(&format!("http://{admin}/metrics"), &[]).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(
        value(
            &text,
            "rpx_requests_total{server=\"app.test\",class=\"2xx\"}"
        ),
        9.0
    );
    // Selection counts per server, and reuse: one connection each for three requests.
    for server in [a.addr, b.addr] {
        let sel = format!("rpx_upstream_selected_total{{upstream=\"pool\",server=\"{server}\"}}");
        assert_eq!(value(&text, &sel), 3.0);
        let conns = format!("rpx_upstream_connections_total{{server=\"{server}\"}}");
        assert_eq!(value(&text, &conns), 1.0);
        let health = format!("rpx_upstream_healthy{{upstream=\"pool\",server=\"{server}\"}}");
        assert_eq!(value(&text, &health), 1.0);
    }
    assert_eq!(
        value(
            &text,
            "rpx_requests_total{server=\"app.test\",class=\"4xx\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "rpx_request_duration_seconds_count{server=\"app.test\"}"
        ),
        10.0
    );
    assert!(value(&text, "rpx_connections_total{scheme=\"http\"}") >= 5.0);
    assert!(text.contains("rpx_connections_active"), "{text}");
    assert_eq!(value(&text, "rpx_reloads_total{result=\"ok\"}"), 1.0);
    // Bytes on the wire per listener: 10 requests in, 10 responses out.
    let listen = p.listeners.iter().find(|l| l.1 == app).unwrap().0;
    let received = value(
        &text,
        &format!("rpx_bytes_received_total{{listen=\"{listen}\"}}"),
    );
    let sent = value(
        &text,
        &format!("rpx_bytes_sent_total{{listen=\"{listen}\"}}"),
    );
    assert!(received >= 10.0 * 30.0, "received {received}");
    assert!(sent >= 10.0 * 60.0, "sent {sent}");
    // Nothing in flight once every answer is in (the metrics request itself
    // is served by the admin server).
    assert_eq!(
        value(&text, "rpx_requests_in_flight{server=\"app.test\"}"),
        0.0
    );

    // A config with no `metrics` location records no per-request metrics:
    // nobody could read them, and they cost every request.
    let quiet = Proxy::start(&format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
        server_name = "quiet.test"
          [[server.location]]
          path = "/"
          proxy_pass = "{}"
        "#,
        up.url()
    ))
    .await;
    assert_eq!(get(&quiet.url("/x"), &[]).await.0, 200);
    let text = rpx_core::metrics::render();
    assert!(text.contains("server=\"app.test\""), "{text}");
    assert!(!text.contains("quiet.test"), "{text}");
}
