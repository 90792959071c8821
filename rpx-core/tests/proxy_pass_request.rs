//! `proxy_pass_request_body` and `proxy_pass_request_headers` against real
//! nginx: what the upstream receives of a client's POST (its headers, its
//! body's framing) and what the client gets back.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const SERVERS: &str = r#"
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        location /nobody/ {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        location /noheaders/ {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_pass_request_headers off;
            proxy_set_header X-Set "set $http_x_custom";
        }
        location /neither/ {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_pass_request_headers off;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }
        location / {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
    }
"#;

/// The client's status and body, then what the upstream saw.
async fn observe(both: &nginx::Both, addr: std::net::SocketAddr, path: &str) -> String {
    let req = http::Request::post(path)
        .header("host", "a")
        .header("x-custom", "1")
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap();
    let got = send(addr, req).await;
    let seen = both.up.take();
    assert_eq!(seen.len(), 1, "{path}: one upstream request");
    let h = |n: &str| {
        seen[0]
            .headers
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    format!(
        "{} {:?} | {} {} x-custom={:?} content-type={:?} content-length={:?} chunked={:?} x-set={:?} host={:?}",
        got.status.as_u16(),
        got.body,
        seen[0].method,
        seen[0].uri,
        h("x-custom"),
        h("content-type"),
        h("content-length"),
        h("transfer-encoding"),
        h("x-set"),
        h("host"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_upstream_gets_matches_nginx() {
    let Some(both) = nginx::Both::start("pass-request", SERVERS).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let mut diffs = Vec::new();
    for path in ["/nobody/x", "/noheaders/x", "/neither/x", "/all/x"] {
        let want = observe(&both, both.nginx, path).await;
        let got = observe(&both, both.rpx, path).await;
        if got != want {
            diffs.push(format!("{path}:\n  nginx {want}\n  rpx   {got}"));
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
}

/// Without nginx's `proxy_set_header Content-Length ""`, rpx still sends
/// no length for the body it does not send (nginx would announce five
/// bytes that never come).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_body_means_no_length() {
    let up = Upstream::start(1).await;
    let toml = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
        [[server.location]]
        path = "/"
        proxy_pass = "http://{}"
        proxy_pass_request_body = false
        "#,
        up.addr
    );
    let cfg = rpx_core::config::parse_toml(&toml, "pass.toml").expect("config");
    let back = rpx_core::config::to_toml(&cfg).expect("convert");
    assert!(back.contains("proxy_pass_request_body = false"), "{back}");
    let rpx = serve_config(&cfg, Vec::new()).await.expect("config loads");
    let req = http::Request::post("/x")
        .header("host", "a")
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap();
    let got = send(rpx.listeners[0].1, req).await;
    assert_eq!(got.status, 200);
    let seen = up.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert!(seen[0].headers.get("content-length").is_none());
    assert!(seen[0].headers.get("transfer-encoding").is_none());

    // The body left unread is still the client's: the next request on the
    // connection is read after it, not out of it, by either reader.
    pipelined(rpx.listeners[0].1, &up).await;
    let hyper = serve_config_with(&cfg, Vec::new(), false)
        .await
        .expect("config loads");
    pipelined(hyper.listeners[0].1, &up).await;
}

/// A POST whose body is not forwarded, then a GET on the same connection:
/// the upstream sees both, and the client gets both answers.
async fn pipelined(addr: std::net::SocketAddr, up: &Upstream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let raw = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
        GET /y HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let talk = async {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(raw).await.unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got).await;
        String::from_utf8_lossy(&got).into_owned()
    };
    let text = tokio::time::timeout(LIMIT, talk)
        .await
        .expect("answered in time");
    let uris: Vec<String> = up.take().into_iter().map(|r| r.uri).collect();
    assert_eq!(uris, ["/x", "/y"], "{text}");
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
}
