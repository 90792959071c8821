//! Failures map to the right status, once, and lose nothing.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

#[tokio::test]
async fn no_location_is_404() {
    let p = Proxy::start(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "/only/"
          return = "200 ok"
        "#,
    )
    .await;
    let (status, h, body) = get(&p.url("/elsewhere"), &[]).await;
    assert_eq!(status, 404);
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert!(String::from_utf8_lossy(&body).contains("404 Not Found"));
}

#[tokio::test]
async fn refused_upstream_is_502() {
    // A port that was just free: bind, learn it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = Proxy::start(&format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "/"
          proxy_pass = "http://127.0.0.1:{port}"
        "#
    ))
    .await;
    let (status, _, _) = get(&p.url("/"), &[]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

fn slow_config(up: &Upstream) -> String {
    format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "/"
          proxy_pass = "{}"
          proxy_read_timeout = "300ms"
        "#,
        up.url()
    )
}

/// An upstream that waits `?ms=N` before answering, then streams two
/// chunks `?gap=N` apart.
async fn slow_upstream() -> Upstream {
    Upstream::start(|req| async move {
        let q = req.uri().query().unwrap_or("").to_owned();
        let arg = |k: &str| {
            q.split('&')
                .find_map(|p| {
                    p.strip_prefix(&format!("{k}="))
                        .map(|v| v.parse::<u64>().unwrap())
                })
                .unwrap_or(0)
        };
        tokio::time::sleep(Duration::from_millis(arg("ms"))).await;
        let gap = arg("gap");
        let stream = futures_util::stream::unfold(0u8, move |i| async move {
            match i {
                0 => Some((
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(
                        Bytes::from_static(b"a"),
                    )),
                    1,
                )),
                1 => {
                    tokio::time::sleep(Duration::from_millis(gap)).await;
                    Some((Ok(Frame::data(Bytes::from_static(b"b"))), 2))
                }
                _ => None,
            }
        });
        Response::new(BodyExt::boxed(StreamBody::new(stream)))
    })
    .await
}

#[tokio::test]
async fn slow_upstream_within_read_timeout_succeeds() {
    let up = slow_upstream().await;
    let p = Proxy::start(&slow_config(&up)).await;
    // 200 ms to the head and 200 ms between chunks: each phase within 300 ms,
    // though the whole exchange takes longer than the timeout.
    let (status, _, body) = get(&p.url("/?ms=200&gap=200"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, "ab");
}

#[tokio::test]
async fn slow_upstream_beyond_read_timeout_is_504() {
    let up = slow_upstream().await;
    let p = Proxy::start(&slow_config(&up)).await;
    let (status, _, _) = get(&p.url("/?ms=1500"), &[]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn read_timeout_counts_from_each_request_on_a_reused_connection() {
    // The connection's head timer is re-armed lazily: it stays at the first
    // request's deadline (600 ms) and must move on when it fires during the
    // second request, whose own deadline is later.
    let up = slow_upstream().await;
    let p = Proxy::start(&slow_config(&up).replace("300ms", "600ms")).await;
    let (status, _, _) = get(&p.url("/?ms=300"), &[]).await;
    assert_eq!(status, 200);
    let (status, _, body) = get(&p.url("/?ms=450"), &[]).await;
    assert_eq!(status, 200, "450 ms is within this request's own 600 ms");
    assert_eq!(body, "ab");
    assert_eq!(up.connections(), 1, "both requests used one connection");
    let (status, _, _) = get(&p.url("/?ms=1500"), &[]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn a_request_that_timed_out_is_not_sent_again_on_another_connection() {
    let up = slow_upstream().await;
    let p = Proxy::start(&slow_config(&up)).await;
    // Two idle connections in the pool.
    let url = p.url("/?ms=100");
    let (a, b) = tokio::join!(get(&url, &[]), get(&url, &[]));
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK));
    assert_eq!(up.connections(), 2);
    let (status, _, _) = get(&p.url("/?ms=1500"), &[]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        up.seen().len(),
        3,
        "the timed-out request may be running upstream: it must not go out twice"
    );
}

#[tokio::test]
async fn stall_mid_body_cuts_the_response() {
    let up = slow_upstream().await;
    let p = Proxy::start(&slow_config(&up)).await;
    let res = bounded(client().request(Request::get(p.url("/?gap=1500")).body(empty()).unwrap()))
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the head was already sent");
    let err = bounded(res.into_body().collect()).await;
    assert!(
        err.is_err(),
        "the client must see a truncated body, not a complete one"
    );
}

#[tokio::test]
async fn declared_body_over_limit_is_413_before_forwarding() {
    let up = sink_upstream().await;
    let p = Proxy::start(&format!(
        r#"
        client_max_body_size = "1k"
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "/"
          proxy_pass = "{}"
          [[server.location]]
          path = "/big/"
          proxy_pass = "{}"
          client_max_body_size = "0"
        "#,
        up.url(),
        up.url()
    ))
    .await;
    let req = Request::post(p.url("/upload"))
        .body(full(vec![0u8; 2048]))
        .unwrap();
    let (status, _, _) = send(req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(up.seen().is_empty(), "nothing was forwarded");
    let req = Request::post(p.url("/upload"))
        .body(full(vec![0u8; 1024]))
        .unwrap();
    let (status, _, body) = send(req).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, Bytes::from("1024")),
        "exactly the limit passes"
    );
    let req = Request::post(p.url("/big/x"))
        .body(full(vec![0u8; 4 << 20]))
        .unwrap();
    let (status, _, body) = send(req).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, Bytes::from((4 << 20).to_string())),
        "0 means unlimited"
    );
}

/// An upstream that reads the whole body and answers with its length.
async fn sink_upstream() -> Upstream {
    Upstream::start(|req| async move {
        let n = req
            .into_body()
            .collect()
            .await
            .map_or(0, |b| b.to_bytes().len());
        Response::new(full(n.to_string()))
    })
    .await
}

#[tokio::test]
async fn default_limit_is_one_mebibyte() {
    let up = Upstream::ok().await;
    // No client_max_body_size anywhere: nginx's 1 MiB default applies.
    let p = Proxy::start(&format!(
        "[[server]]\nlisten = \"127.0.0.1:0\"\n[[server.location]]\npath = \"/\"\nproxy_pass = \"{}\"\n",
        up.url()
    ))
    .await;
    let req = Request::post(p.url("/"))
        .body(full(vec![0u8; (1 << 20) + 1]))
        .unwrap();
    assert_eq!(send(req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn chunked_body_over_limit_is_413() {
    // The upstream reads the whole body before answering, so the overflow
    // happens before any response: the client gets a 413.
    let up = Upstream::start(|req| async move {
        let _ = req.into_body().collect().await;
        Response::new(full("read it all"))
    })
    .await;
    let p = Proxy::start(&format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
        client_max_body_size = "10k"
          [[server.location]]
          path = "/"
          proxy_pass = "{}"
        "#,
        up.url()
    ))
    .await;
    let chunks = futures_util::stream::iter((0..20).map(|_| {
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from(vec![1u8; 1024])))
    }));
    let req = Request::post(p.url("/"))
        .body(BodyExt::boxed(StreamBody::new(chunks)))
        .unwrap();
    let (status, _, _) = send(req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn malformed_requests_are_400() {
    let p = Proxy::start(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "/"
          return = "200 ok"
        "#,
    )
    .await;
    for req in [
        &b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /a/../../b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"BROKEN\r\n\r\n",
    ] {
        let res = raw(p.addr(), req, "\r\n\r\n").await;
        assert!(
            res.starts_with("HTTP/1.1 400"),
            "{:?} -> {res}",
            String::from_utf8_lossy(req)
        );
    }
}

#[tokio::test]
async fn stalled_client_body_is_408() {
    let up = sink_upstream().await;
    let p = Proxy::start(&format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "/"
          proxy_pass = "{}"
          client_body_timeout = "300ms"
        "#,
        up.url()
    ))
    .await;
    // 10 of the 100 announced bytes, then silence.
    let res = raw(
        p.addr(),
        b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
        "\r\n\r\n",
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 408"), "{res}");
}

#[tokio::test]
async fn stalled_client_header_closes_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let p = timeouts_proxy("client_header_timeout = \"300ms\"").await;
    let mut s = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buf = Vec::new();
    // Closed by the proxy well before the test's own bound.
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("the proxy closes a connection whose header stalls");
    assert!(n.is_ok());
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
}

/// Reads one response with a `Content-Length` body; returns its head.
async fn answer(s: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(s.read_line(&mut line).await.unwrap() > 0, "closed: {head}");
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len: usize = head
        .lines()
        .find_map(|l| {
            let l = l.to_ascii_lowercase();
            l.strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.unwrap();
    head
}

/// A raw client connection to the proxy.
async fn raw_client(p: &Proxy) -> tokio::io::BufReader<tokio::net::TcpStream> {
    tokio::io::BufReader::new(tokio::net::TcpStream::connect(p.addr()).await.unwrap())
}

/// Sends `GET /` on `s` and reads the response; returns its head.
async fn get_head(s: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> String {
    use tokio::io::AsyncWriteExt;
    s.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    answer(s).await
}

/// A server answering `200 ok` with the given timeouts.
async fn timeouts_proxy(settings: &str) -> Proxy {
    Proxy::start(&format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
        {settings}
          [[server.location]]
          path = "/"
          return = "200 ok"
        "#
    ))
    .await
}

/// Whether the proxy closes `s` within 5 s (it is never sent more).
async fn closes(s: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> bool {
    use tokio::io::AsyncReadExt;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    matches!(read, Ok(Ok(_))) && rest.is_empty()
}

/// `keepalive_timeout`: a kept-alive connection with no next request is
/// closed once it has been idle that long, however long the header
/// timeout is.
#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_keepalive_timeout() {
    let p = timeouts_proxy("keepalive_timeout = \"300ms\"\nclient_header_timeout = \"60s\"").await;
    let mut s = raw_client(&p).await;
    assert!(get_head(&mut s).await.starts_with("HTTP/1.1 200"));
    assert!(closes(&mut s).await, "closed after 300 ms idle, not 60 s");
}

/// `keepalive_timeout 0` turns keep-alive off, as in nginx.
#[tokio::test]
async fn keepalive_timeout_zero_closes_after_each_response() {
    let p = timeouts_proxy("keepalive_timeout = \"0s\"").await;
    let mut s = raw_client(&p).await;
    let head = get_head(&mut s).await.to_ascii_lowercase();
    assert!(head.contains("connection: close"), "{head}");
    assert!(closes(&mut s).await);
}

/// nginx's `keepalive_requests` for clients: the request that reaches the
/// limit is answered with `Connection: close`, and the connection closes.
#[tokio::test]
async fn keepalive_requests_closes_a_client_connection_after_its_last_request() {
    let p = timeouts_proxy("keepalive_requests = 3").await;
    let mut s = raw_client(&p).await;
    for i in 1..=3 {
        let head = get_head(&mut s).await.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(
            head.contains("connection: close"),
            i == 3,
            "request {i}: {head}"
        );
    }
    assert!(closes(&mut s).await, "closed after the third response");
}

/// `keepalive_requests` on HTTP/2: GOAWAY after the last request; the
/// requests already started are answered.
#[tokio::test]
async fn keepalive_requests_ends_an_http2_connection_with_goaway() {
    let p = timeouts_proxy("keepalive_requests = 2").await;
    let (mut sender, conn) = h2c_client(p.addr()).await;
    for _ in 0..2 {
        let req = Request::get("http://h2.test/").body(empty()).unwrap();
        let res = bounded(sender.send_request(req)).await.expect("answered");
        assert_eq!(res.status(), 200);
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), conn).await;
    assert!(
        ended.is_ok(),
        "the connection ended after its second request"
    );
    let req = Request::get("http://h2.test/").body(empty()).unwrap();
    assert!(
        sender.send_request(req).await.is_err(),
        "no third request on it"
    );
}

/// nginx's `keepalive_time`: once it has passed, the next request is the
/// connection's last.
#[tokio::test]
async fn keepalive_time_makes_the_next_request_the_last() {
    let p = timeouts_proxy("keepalive_time = \"300ms\"").await;
    let mut s = raw_client(&p).await;
    let head = get_head(&mut s).await.to_ascii_lowercase();
    assert!(!head.contains("connection: close"), "{head}");
    // The thing under test is time passing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let head = get_head(&mut s).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(closes(&mut s).await);
}

/// A next request whose first bytes come within `keepalive_timeout` has
/// `client_header_timeout` from then for the rest of its head.
#[tokio::test]
async fn a_head_begun_within_keepalive_timeout_has_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let p = timeouts_proxy("keepalive_timeout = \"300ms\"\nclient_header_timeout = \"3s\"").await;
    let mut s = raw_client(&p).await;
    assert!(get_head(&mut s).await.starts_with("HTTP/1.1 200"));
    s.get_mut().write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    // Past the keep-alive timeout, well within the header timeout.
    tokio::time::sleep(Duration::from_millis(900)).await;
    s.get_mut().write_all(b"Host: x\r\n\r\n").await.unwrap();
    let head = tokio::time::timeout(Duration::from_secs(5), answer(&mut s))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// `client_header_timeout` runs from the end of the previous response on a
/// kept-alive connection: a head sent in two parts is served when the
/// second part comes within the timeout of that response, though later
/// than the timeout counted from an earlier request.
#[tokio::test]
async fn header_timeout_is_counted_per_request_on_a_kept_alive_connection() {
    use tokio::io::AsyncWriteExt;
    let p = timeouts_proxy("client_header_timeout = \"1s\"").await;
    let mut s = raw_client(&p).await;
    let start = std::time::Instant::now();
    assert!(get_head(&mut s).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(get_head(&mut s).await.starts_with("HTTP/1.1 200"));
    // The third head straddles the first request's deadline (1 s after the
    // start) and ends well within the second's (1.6 s).
    s.get_mut().write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep_until((start + Duration::from_millis(1200)).into()).await;
    s.get_mut().write_all(b"Host: x\r\n\r\n").await.unwrap();
    let third = tokio::time::timeout(Duration::from_secs(5), answer(&mut s))
        .await
        .unwrap();
    assert!(third.starts_with("HTTP/1.1 200"), "{third}");
    // A head that stalls still ends the connection.
    s.get_mut().write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    assert!(
        closes(&mut s).await,
        "the stalled head closes the connection"
    );
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let up = Upstream::ok().await;
    let p = Proxy::start(&proxy_config(&up, "")).await;
    for _ in 0..20 {
        assert_eq!(get(&p.url("/"), &[]).await.0, 200);
    }
    assert_eq!(up.seen().len(), 20);
    assert_eq!(
        up.connections(),
        1,
        "20 sequential requests share one upstream connection"
    );
    assert!(
        up.last().headers.get("connection").is_none(),
        "no Connection: close upstream"
    );
}

/// The keep-alive pool belongs to the upstream, not to each `proxy_pass`:
/// locations that proxy to one group (or one host) with the same settings
/// reuse each other's connections, as nginx's `upstream { keepalive }`.
#[tokio::test]
async fn locations_proxying_to_one_upstream_share_its_connections() {
    let up = Upstream::ok().await;
    let addr = up.url().trim_start_matches("http://").to_owned();
    let url = up.url();
    let p = Proxy::start(&format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "/a/"
          proxy_pass = "http://backend"
          [[server.location]]
          path = "/b/"
          proxy_pass = "http://backend/v2/"
          [[server.location]]
          path = "/c/"
          proxy_pass = "{url}"
          [[server.location]]
          path = "/d/"
          proxy_pass = "{url}/v3/"
        [upstream.backend]
        servers = ["{addr}"]
        keepalive = 4
        "#
    ))
    .await;
    for path in ["/a/1", "/b/2", "/a/3", "/b/4"] {
        assert_eq!(get(&p.url(path), &[]).await.0, 200);
    }
    assert_eq!(
        up.connections(),
        1,
        "the group's two locations share one pool"
    );
    for path in ["/c/1", "/d/2", "/c/3"] {
        assert_eq!(get(&p.url(path), &[]).await.0, 200);
    }
    assert_eq!(
        up.connections(),
        2,
        "the host's two locations share another (the group's is the group's)"
    );
    let seen: Vec<String> = up.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(
        seen,
        ["/a/1", "/v2/2", "/a/3", "/v2/4", "/c/1", "/v3/2", "/c/3"]
    );
}

/// A group proxying to `up` with `keepalive` lines in the group.
fn group_config(up: &Upstream, keepalive: &str) -> String {
    let addr = up.url().trim_start_matches("http://").to_owned();
    format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "/"
          proxy_pass = "http://backend"
        [upstream.backend]
        servers = ["{addr}"]
        {keepalive}
        "#
    )
}

/// `keepalive_timeout` for HTTP/2 (hyper's server has no idle timeout of
/// its own): requests within it keep the connection, and once none has
/// started for that long the proxy closes it (GOAWAY, then the socket).
#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_keepalive_timeout() {
    let p = timeouts_proxy("keepalive_timeout = \"400ms\"").await;
    let (mut sender, conn) = h2c_client(p.addr()).await;
    let start = std::time::Instant::now();
    let mut last = start;
    // Five requests 150 ms apart: 600 ms in all, each within the timeout.
    for i in 0..5u32 {
        tokio::time::sleep_until((start + Duration::from_millis(150) * i).into()).await;
        let req = Request::get("http://h2.test/").body(empty()).unwrap();
        last = std::time::Instant::now();
        let res = bounded(sender.send_request(req))
            .await
            .expect("connection kept");
        assert_eq!(res.status(), 200);
        assert_eq!(res.version(), http::Version::HTTP_2);
    }
    assert!(!conn.is_finished(), "requests kept the connection open");
    let ended = tokio::time::timeout(Duration::from_secs(5), conn).await;
    assert!(ended.is_ok(), "the idle connection was closed");
    assert!(
        last.elapsed() >= Duration::from_millis(400),
        "not before the timeout: {:?}",
        last.elapsed()
    );
}

/// nginx's upstream `keepalive_requests`: a connection that has carried
/// that many requests is closed, and the next request opens another.
#[tokio::test]
async fn keepalive_requests_caps_the_requests_per_upstream_connection() {
    let up = Upstream::ok().await;
    let p = Proxy::start(&group_config(&up, "keepalive_requests = 3")).await;
    for _ in 0..7 {
        assert_eq!(get(&p.url("/"), &[]).await.0, 200);
    }
    assert_eq!(up.seen().len(), 7);
    assert_eq!(up.connections(), 3, "7 requests, at most 3 per connection");
}

/// nginx's upstream `keepalive_time`: a connection older than that is not
/// used for another request; one within it is.
#[tokio::test]
async fn keepalive_time_retires_an_old_upstream_connection() {
    a_connection_past_400ms_is_not_used("keepalive_time").await;
}

/// The upstream group's `keepalive_timeout`: a connection idle longer than
/// that is not used again; one idle for less is.
#[tokio::test]
async fn an_upstream_connection_idle_past_keepalive_timeout_is_not_used_again() {
    a_connection_past_400ms_is_not_used("keepalive_timeout").await;
}

/// With the group's `setting` at 400 ms: two quick requests share one
/// connection, and a request once 400 ms have passed (both since the
/// connection opened and since it was last used) gets a new one.
async fn a_connection_past_400ms_is_not_used(setting: &str) {
    let up = Upstream::ok().await;
    let p = Proxy::start(&group_config(&up, &format!("{setting} = \"400ms\""))).await;
    let start = std::time::Instant::now();
    assert_eq!(get(&p.url("/"), &[]).await.0, 200);
    assert_eq!(get(&p.url("/"), &[]).await.0, 200);
    let took = start.elapsed();
    let before = up.connections();
    if took < Duration::from_millis(400) {
        assert_eq!(before, 1, "{setting}: a connection within it is reused");
    }
    // The time under test has to pass: there is no event to wait for. By
    // then every connection opened so far is older than 400 ms and has
    // been idle that long.
    tokio::time::sleep_until((start + took + Duration::from_millis(500)).into()).await;
    assert_eq!(get(&p.url("/"), &[]).await.0, 200);
    assert_eq!(up.seen().len(), 3);
    assert_eq!(
        up.connections(),
        before + 1,
        "{setting}: the connection past it was not used"
    );
}

/// `proxy_send_timeout`: an upstream that stops reading the upload is
/// given up on once a write has been blocked that long (504), however
/// long `proxy_read_timeout` is.
#[tokio::test]
async fn upstream_not_reading_the_upload_is_504_after_send_timeout() {
    // Accepts and never reads; the sockets stay open until the test ends.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (keep, mut kept) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let _ = keep.send(s);
        }
    });
    let p = Proxy::start(&proxy_to(
        &format!("http://{addr}"),
        "proxy_send_timeout = \"300ms\"\nproxy_read_timeout = \"60s\"",
    ))
    .await;
    // 256 MiB, far beyond what loopback socket buffers hold.
    let chunks = futures_util::stream::iter((0..4096).map(|_| {
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from(vec![
            7u8;
            64 << 10
        ])))
    }));
    let req = Request::post(p.url("/"))
        .body(BodyExt::boxed(StreamBody::new(chunks)))
        .unwrap();
    let (status, _, _) = send(req).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(kept.try_recv().is_ok(), "the upstream was connected to");
}

/// `proxy_connect_timeout`: a server whose accept queue is full drops new
/// SYNs (Linux), so connecting hangs; rpx gives up after the timeout (504).
#[tokio::test]
async fn upstream_not_accepting_is_504_after_connect_timeout() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let _listener = socket.listen(1).unwrap();
    // Fill the accept queue until a connect hangs (bounded).
    let mut queued = Vec::new();
    let mut full = false;
    for _ in 0..64 {
        match tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => queued.push(s),
            Ok(Err(e)) => panic!("connect failed instead of hanging: {e}"),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    assert!(full, "the accept queue never filled");
    let p = Proxy::start(&proxy_to(
        &format!("http://{addr}"),
        "proxy_connect_timeout = \"300ms\"",
    ))
    .await;
    // Without the timeout the kernel would retry the SYN for minutes, far
    // beyond the bound `get` puts on the request.
    let (status, _, _) = get(&p.url("/"), &[]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    drop(queued);
}

/// An upstream that closes every connection after one response (without
/// saying so): the pooled connection is stale by the next request, which
/// goes out on a new one instead of failing.
#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_used() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    let p = Proxy::start(&proxy_to(&format!("http://{addr}"), "")).await;
    for i in 0..10 {
        let (status, _, body) = get(&p.url("/"), &[]).await;
        assert_eq!(
            (status.as_u16(), &body[..]),
            (200, &b"ok"[..]),
            "request {i}"
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 10);
}
