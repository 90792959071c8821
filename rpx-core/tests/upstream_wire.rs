//! What rpx's own HTTP/1.1 upstream codec does on the wire: scripted raw
//! upstreams on 127.0.0.1 answer with exact bytes, and each test checks
//! what the client got and what the upstream received.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A raw upstream: for each request it reads the head (and a body of the
/// stated length, or a chunked one to its end), records the bytes, writes
/// `answer`, and closes when `close` says so.
struct Scripted {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<String>>>,
    accepted: Arc<Mutex<usize>>,
}

impl Scripted {
    async fn start(answer: &'static [u8], close: bool) -> Scripted {
        Self::start_with(answer, close, true).await
    }

    /// `read_body: false` answers as soon as the head is in.
    async fn start_with(answer: &'static [u8], close: bool, read_body: bool) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(Mutex::new(0));
        let (seen, count) = (received.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                *count.lock().unwrap() += 1;
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let Some(request) = read_request(&mut s, &mut buf, read_body).await else {
                            return;
                        };
                        seen.lock().unwrap().push(request);
                        if s.write_all(answer).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        Scripted {
            addr,
            received,
            accepted,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    fn accepted(&self) -> usize {
        *self.accepted.lock().unwrap()
    }
}

/// One request's bytes off the stream (None at its end).
async fn read_request(
    s: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    read_body: bool,
) -> Option<String> {
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let done = |buf: &[u8]| -> Option<usize> {
        if !read_body {
            return Some(head_end);
        }
        if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            return (buf.len() >= head_end + len).then_some(head_end + len);
        }
        if head.contains("transfer-encoding: chunked") {
            let body = &buf[head_end..];
            return body
                .windows(5)
                .position(|w| w == b"0\r\n\r\n")
                .map(|i| head_end + i + 5);
        }
        Some(head_end)
    };
    let end = loop {
        if let Some(end) = done(buf) {
            break end;
        }
        let n = s.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let request = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    Some(request)
}

async fn proxy_for(up: &Scripted) -> Proxy {
    Proxy::start(&proxy_to(&up.url(), "")).await
}

/// Trailers are read and dropped, as nginx drops them: what matters is
/// that the body decodes across chunk extensions and trailers and the
/// connection is clean for the next request.
#[tokio::test]
async fn chunked_responses_are_decoded_and_the_connection_reused() {
    let up = Scripted::start(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-sum: 9\r\n\r\n",
        false,
    )
    .await;
    let p = proxy_for(&up).await;
    for _ in 0..3 {
        let (status, headers, body) = get(&p.url("/"), &[]).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello, world"[..]));
        assert!(!headers.contains_key("x-sum"));
    }
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn a_body_delimited_by_close_arrives_whole_and_the_connection_is_not_reused() {
    let up = Scripted::start(
        b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end",
        true,
    )
    .await;
    let p = proxy_for(&up).await;
    for _ in 0..2 {
        let (status, _, body) = get(&p.url("/"), &[]).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"until the end"[..]));
    }
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn informational_answers_before_the_final_one_are_skipped() {
    let up = Scripted::start(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\ndone",
        false,
    )
    .await;
    let p = proxy_for(&up).await;
    let (status, _, body) = get(&p.url("/"), &[]).await;
    assert_eq!((status, &body[..]), (StatusCode::CREATED, &b"done"[..]));
}

#[tokio::test]
async fn invalid_responses_are_502() {
    let big: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nx-big: {}\r\n\r\n",
            "a".repeat(70 * 1024)
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    for answer in [
        &b"SSH-2.0-OpenSSH_9.2\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\n",
        big,
        b"",
    ] {
        let up = Scripted::start(answer, true).await;
        let p = proxy_for(&up).await;
        let (status, _, _) = get(&p.url("/"), &[]).await;
        assert_eq!(
            status,
            StatusCode::BAD_GATEWAY,
            "{:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(60)])
        );
    }
}

#[tokio::test]
async fn a_body_cut_short_by_the_upstream_is_cut_short_for_the_client() {
    let up = Scripted::start(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf!", true).await;
    let p = proxy_for(&up).await;
    let res = bounded(client().request(Request::get(p.url("/")).body(empty()).unwrap())).await;
    // The head may or may not have left before the cut; either way the
    // client never gets a complete-looking response.
    if let Ok(res) = res {
        assert_eq!(res.status(), StatusCode::OK);
        assert!(bounded(res.into_body().collect()).await.is_err());
    }
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn request_bodies_are_framed_as_nginx_frames_them() {
    let up = Scripted::start(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", false).await;
    let p = proxy_for(&up).await;
    get(&p.url("/plain"), &[]).await;
    // A body of unknown length goes chunked.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    let stream =
        http_body_util::StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async {
            rx.recv().await.map(|b| {
                (
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(http_body::Frame::data(b)),
                    rx,
                )
            })
        }));
    tokio::spawn(async move {
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        tx.send(Bytes::from_static(b"defgh")).await.unwrap();
    });
    let (status, _, _) = send(
        Request::post(p.url("/chunked"))
            .body(stream.boxed())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A body with a length keeps it.
    send(Request::put(p.url("/sized")).body(full("12345")).unwrap()).await;

    let seen = up.received();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[0].starts_with("GET /plain HTTP/1.1\r\n"),
        "{}",
        seen[0]
    );
    assert!(!seen[0].contains("content-length") && !seen[0].contains("transfer-encoding"));
    assert!(
        seen[1].starts_with("POST /chunked HTTP/1.1\r\n"),
        "{}",
        seen[1]
    );
    assert!(
        seen[1].contains("transfer-encoding: chunked\r\n"),
        "{}",
        seen[1]
    );
    assert!(
        seen[1].ends_with("\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"),
        "{}",
        seen[1]
    );
    assert!(seen[2].contains("content-length: 5\r\n"), "{}", seen[2]);
    assert!(seen[2].ends_with("\r\n\r\n12345"), "{}", seen[2]);
    assert_eq!(
        up.accepted(),
        1,
        "one kept-alive connection carried all three"
    );
}

#[tokio::test]
async fn an_early_answer_during_an_upload_reaches_the_client() {
    // The upstream refuses at the head, then drains what comes (as
    // servers' lingering close does) without reading it as a body.
    let up = Scripted::start_with(
        b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\nconnection: close\r\n\r\ntoo big!",
        false,
        false,
    )
    .await;
    let p = proxy_for(&up).await;
    let body = vec![b'x'; 8 << 20];
    let res =
        bounded(client().request(Request::post(p.url("/up")).body(full(body)).unwrap())).await;
    let res = res.expect("the answer arrives while the upload is cut");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body = bounded(res.into_body().collect()).await.unwrap().to_bytes();
    assert_eq!(&body[..], b"too big!");
    assert_eq!(up.accepted(), 1);
}
