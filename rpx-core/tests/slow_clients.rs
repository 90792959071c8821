//! Slow clients cannot hold rpx: `client_body_timeout` between two reads of
//! a body (HTTP/1.1 and HTTP/2), `send_timeout` for a client that takes
//! nothing, and 2,000 slowloris connections that leave a normal client
//! answered. Loopback only, every loop bounded; the waits here are the
//! timeouts under test.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

#[tokio::test]
async fn a_stalled_body_is_timed_out_on_http1_and_http2() {
    let up = reading_upstream().await;
    for buffering in [true, false] {
        let p = Proxy::start(&proxy_config(
            &up,
            &format!("client_body_timeout = \"1s\"\nproxy_request_buffering = {buffering}"),
        ))
        .await;

        // HTTP/1.1: one byte of ten, then nothing.
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nx")
            .await
            .unwrap();
        let mut got = Vec::new();
        // Answered (408, or 502 once the upstream had the head) or closed: not held.
        bounded(s.read_to_end(&mut got)).await.unwrap();
        let text = String::from_utf8_lossy(&got);
        if buffering {
            assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        }

        // HTTP/2: the same on a stream.
        let (mut send, _conn) = h2c_client(p.addr()).await;
        let (tx, rx) = mpsc::channel(1);
        tx.send(Bytes::from_static(b"x")).await.unwrap();
        let req = Request::post(p.url("/up"))
            .version(http::Version::HTTP_2)
            .header("content-length", "10")
            .body(channel_body(rx))
            .unwrap();
        let res = bounded(send.send_request(req)).await;
        if buffering {
            assert_eq!(res.unwrap().status(), 408);
        } else if let Ok(res) = res {
            assert_ne!(res.status(), 200);
        }
        drop(tx);
    }
}

#[tokio::test]
async fn a_client_that_takes_nothing_is_dropped_after_send_timeout() {
    const SIZE: usize = 64 << 20;
    let up = Upstream::start(|_req| async { http::Response::new(full(vec![b'z'; SIZE])) }).await;
    let p = Proxy::start(&format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
        send_timeout = "1s"
          [[server.location]]
          path = "/"
          proxy_pass = "{}"
        "#,
        up.url()
    ))
    .await;
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // Long past send_timeout with the socket buffers full.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut got = Vec::new();
    let _ = bounded(s.read_to_end(&mut got)).await;
    assert!(
        got.len() < SIZE,
        "the whole response arrived: send_timeout did not close the connection"
    );
}

/// How many descriptors this process may open.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_leave_normal_clients_answered() {
    let up = Upstream::ok().await;
    let p = Proxy::start(&proxy_config(&up, "")).await;
    // Each connection is two descriptors here (client and server side).
    let n = 2000.min(open_files_limit().saturating_sub(256) / 2);
    assert!(n >= 500, "too few descriptors for the test: {n}");
    let mut slow = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX: ")
            .await
            .unwrap();
        slow.push(s);
    }
    // Three rounds of one more header byte on every slow connection, each
    // with a normal request in between.
    let mut worst = Duration::ZERO;
    for _ in 0..3 {
        for s in &mut slow {
            let _ = s.write_all(b"a").await;
        }
        let started = Instant::now();
        let (status, _, body) = bounded(get(&p.url("/"), &[("host", "a")])).await;
        worst = worst.max(started.elapsed());
        assert_eq!((status.as_u16(), &body[..]), (200, &b"upstream"[..]));
    }
    // Loose bound for a loaded 2-core machine; nginx-like servers answer
    // in milliseconds here.
    assert!(
        worst < Duration::from_secs(2),
        "a normal request took {worst:?}"
    );
    assert!(up.seen().len() == 3, "slow heads reached the upstream");
}

#[test]
fn connection_settings_in_a_location_are_an_error() {
    let toml = r#"
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "/"
          return = 204
          send_timeout = "5s"
    "#;
    let Err(err) = rpx_core::Rpx::from_toml(toml) else {
        panic!("a location's send_timeout loaded");
    };
    let err = err.to_string();
    assert!(err.contains("`send_timeout` in a location"), "{err}");
}
