//! The client side's HTTP/1.1 on the wire: rpx's own reader for requests
//! without a body, and its hand-over to hyper for the others on the same
//! connection.

mod common;

use common::*;
use http::Response;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream answering `METHOD PATH [body]` for every request.
async fn echo() -> Upstream {
    Upstream::start(|req: http::Request<hyper::body::Incoming>| async move {
        let line = format!("{} {}", req.method(), req.uri());
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let text = format!("{line} [{}]", String::from_utf8_lossy(&body));
        Response::new(full(text))
    })
    .await
}

/// A body of `parts`, one frame each, with no length known ahead.
fn streamed(parts: &[&'static str]) -> TestBody {
    let frames = parts.iter().map(|p| {
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hyper::body::Frame::data(
            bytes::Bytes::from_static(p.as_bytes()),
        ))
    });
    http_body_util::StreamBody::new(futures_util::stream::iter(frames.collect::<Vec<_>>())).boxed()
}

/// Everything `s` sends until it closes (bounded).
async fn read_all(s: &mut tokio::net::TcpStream) -> String {
    let mut out = Vec::new();
    bounded(s.read_to_end(&mut out)).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let up = echo().await;
    let p = Proxy::start(&proxy_config(&up, "")).await;
    let mut s = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let all = read_all(&mut s).await;
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 3, "{all}");
    let (a, b, c) = (
        all.find("GET /a []").unwrap(),
        all.find("GET /b []").unwrap(),
        all.find("GET /c []").unwrap(),
    );
    assert!(a < b && b < c, "in order: {all}");
    assert!(all.ends_with("GET /c []"), "the last closes: {all}");
    let last_head = &all[all.rfind("HTTP/1.1").unwrap()..];
    assert!(last_head.contains("connection: close"), "{last_head}");
}

#[tokio::test]
async fn a_request_with_a_body_is_served_after_plain_ones_on_the_same_connection() {
    let up = echo().await;
    let p = Proxy::start(&proxy_config(&up, "")).await;
    let mut s = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    // A plain GET, a POST with a body (hyper's from here on), a GET again.
    s.write_all(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0; 4096];
    let n = bounded(s.read(&mut first)).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).ends_with("GET /one []"));
    s.write_all(
        b"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let rest = read_all(&mut s).await;
    assert!(rest.contains("POST /two [hello]"), "{rest}");
    assert!(rest.ends_with("GET /three []"), "{rest}");
    let methods: Vec<_> = up.seen().iter().map(|s| s.method.to_string()).collect();
    assert_eq!(methods, ["GET", "POST", "GET"]);
}

#[tokio::test]
async fn a_head_response_keeps_its_length_and_sends_no_body() {
    let up = echo().await;
    let p = Proxy::start(&proxy_config(&up, "")).await;
    let mut s = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(
        b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let all = read_all(&mut s).await;
    let (head, get) = all.split_at(all.rfind("HTTP/1.1 200").unwrap());
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    // The upstream's length of its HEAD answer ("HEAD /h []" would be 10).
    assert!(
        head.contains("content-length: 10\r\n"),
        "the length stays: {head}"
    );
    assert!(
        head.ends_with("\r\n\r\n"),
        "no body after the head: {head:?}"
    );
    assert!(get.ends_with("GET /g []"), "{get}");
}

#[tokio::test]
async fn a_streamed_body_of_unknown_length_is_chunked() {
    let up = Upstream::start(|_req| async { Response::new(streamed(&["one ", "two"])) }).await;
    let p = Proxy::start(&proxy_config(&up, "")).await;
    let all = raw(
        p.addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "\r\n0\r\n\r\n",
    )
    .await;
    assert!(all.contains("transfer-encoding: chunked\r\n"), "{all}");
    let body = &all[all.find("\r\n\r\n").unwrap() + 4..];
    let mut decoded = String::new();
    let mut rest = body;
    loop {
        let (size, tail) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            break;
        }
        decoded.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
    assert_eq!(decoded, "one two");
}

/// A client that goes away before its response comes cancels the request:
/// the upstream sees its connection closed, as it would behind nginx.
#[tokio::test]
async fn a_client_gone_before_its_response_cancels_the_upstream_request() {
    let (dropped, mut on_drop) = tokio::sync::mpsc::channel::<()>(1);
    let up = Upstream::start(move |_req| {
        let guard = DropSignal(dropped.clone());
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            unreachable!()
        }
    })
    .await;
    let p = Proxy::start(&proxy_config(&up, "")).await;
    let mut s = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    bounded(async {
        while up.seen().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    drop(s);
    bounded(on_drop.recv())
        .await
        .expect("the upstream's handler was dropped");
}

struct DropSignal(tokio::sync::mpsc::Sender<()>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.try_send(());
    }
}

#[tokio::test]
async fn malformed_and_http10_requests_after_a_good_one_get_hypers_answers() {
    let up = echo().await;
    let p = Proxy::start(&proxy_config(&up, "")).await;
    let all = raw(
        p.addr(),
        b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /bad\x01 HTTP/1.1\r\n\r\n",
        "400 Bad Request",
    )
    .await;
    assert!(all.starts_with("HTTP/1.1 200 OK"), "{all}");
    assert!(all.contains("GET /ok []"), "{all}");
    assert!(all.contains("HTTP/1.1 400 Bad Request"), "{all}");

    let mut s = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(b"GET /old HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let old = read_all(&mut s).await;
    assert!(old.starts_with("HTTP/1.0 200 OK"), "{old}");
    assert!(old.ends_with("GET /old []"), "closed after it: {old}");
}

/// The graceful stop ends an idle kept-alive connection, and lets one
/// whose response is under way finish it.
#[tokio::test]
async fn the_graceful_stop_closes_idle_connections_and_finishes_busy_ones() {
    let (release, released) = tokio::sync::watch::channel(false);
    let up = Upstream::start(move |_req| {
        let mut released = released.clone();
        async move {
            let _ = released.wait_for(|r| *r).await;
            Response::new(full("late"))
        }
    })
    .await;
    let rpx = rpx_core::Rpx::from_toml(&proxy_config(&up, "")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rpx_core::server::serve(listener, rpx, async move {
        let _ = stopped.await;
    }));

    // Idle: one answered request (released at once), then nothing.
    release.send_replace(true);
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0; 4096];
    let n = bounded(idle.read(&mut buf)).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with("late"));
    release.send_replace(false);

    // Busy: its response waits for the release.
    let mut busy = tokio::net::TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    bounded(async {
        while up.seen().len() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;

    stop.send(()).unwrap();
    assert_eq!(read_all(&mut idle).await, "", "the idle one is closed");
    release.send_replace(true);
    // Answered, then closed.
    let answer = read_all(&mut busy).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("late"), "{answer}");
    bounded(server).await.unwrap().unwrap();
}

/// rpx's own HTTP/1.1 code answers byte for byte as hyper does (but the
/// `Date`), for the requests it takes: GET, HEAD, an error page, a chunked
/// body, `Connection: close`.
#[tokio::test]
async fn answers_are_the_same_as_hypers() {
    let up = Upstream::start(|req: http::Request<hyper::body::Incoming>| async move {
        if req.uri().path() == "/chunked" {
            return Response::new(streamed(&["a", "bc"]));
        }
        Response::builder()
            .header("x-up", "1")
            .body(full(format!("saw {}", req.uri())))
            .unwrap()
    })
    .await;
    let config = format!(
        "{}\n          [[server.location]]\n          path = \"/missing\"\n          return = \"404\"\n",
        proxy_config(&up, "add_header = { X-Added = \"yes\" }")
    );
    let requests: &[u8] = b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n\
        HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n\
        GET /missing HTTP/1.1\r\nHost: x\r\n\r\n\
        GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n\
        GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut answers = Vec::new();
    for own_http1 in [true, false] {
        let rpx = rpx_core::Rpx::from_toml(&config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let opts = rpx_core::server::ServeOptions {
            own_http1,
            ..Default::default()
        };
        let server = tokio::spawn(rpx_core::server::serve_with(
            listener,
            rpx,
            opts,
            std::future::pending(),
        ));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(requests).await.unwrap();
        let all = read_all(&mut s).await;
        server.abort();
        let without_dates: Vec<_> = all
            .split("\r\n")
            .filter(|l| !l.starts_with("date: "))
            .collect();
        answers.push(without_dates.join("\r\n"));
    }
    assert_eq!(answers[0].matches("HTTP/1.1 ").count(), 5, "{}", answers[0]);
    assert_eq!(answers[0], answers[1], "ours, then hyper's");
}
