//! HTTP/2 request limits: `client_max_body_size` answered (never a silent
//! close), and a body whose length lies forwards nothing when it is read
//! first (`proxy_request_buffering`).

mod common;

use bytes::Bytes;
use common::*;
use http::Request;
use tokio::sync::mpsc;

async fn proxy(up: &Upstream) -> Proxy {
    Proxy::start(&format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
        client_max_body_size = 10
          [[server.location]]
          path = "/buffered/"
          proxy_pass = "{url}"
          proxy_request_buffering = true
          [[server.location]]
          path = "/"
          proxy_pass = "{url}"
        "#,
        url = up.url()
    ))
    .await
}

/// Sends `req` over a fresh h2c connection: the status, or the error.
async fn h2(p: &Proxy, req: Request<TestBody>) -> Result<u16, String> {
    let (mut send, _conn) = h2c_client(p.addr()).await;
    match bounded(send.send_request(req)).await {
        Ok(res) => Ok(res.status().as_u16()),
        Err(e) => Err(e.to_string()),
    }
}

fn post(p: &Proxy, path: &str) -> http::request::Builder {
    Request::post(p.url(path)).version(http::Version::HTTP_2)
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_413() {
    let up = Upstream::ok().await;
    let p = proxy(&up).await;
    for path in ["/buffered/x", "/x"] {
        let req = post(&p, path)
            .header("content-length", "20")
            .body(full(vec![b'a'; 20]))
            .unwrap();
        assert_eq!(h2(&p, req).await, Ok(413), "{path}");
    }
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_is_413() {
    let up = reading_upstream().await;
    let p = proxy(&up).await;
    for path in ["/buffered/x", "/x"] {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from(vec![b'a'; 8])).await.unwrap();
        tx.send(Bytes::from(vec![b'b'; 8])).await.unwrap();
        drop(tx);
        let req = post(&p, path).body(channel_body(rx)).unwrap();
        assert_eq!(h2(&p, req).await, Ok(413), "{path}");
    }
    // Read first, the over-limit body never reached the upstream.
    assert!(up.seen().iter().all(|s| !s.uri.contains("buffered")));
}

#[tokio::test]
async fn a_body_shorter_than_its_length_forwards_nothing_when_read_first() {
    let up = Upstream::ok().await;
    let p = proxy(&up).await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(Bytes::from_static(b"12345")).await.unwrap();
    drop(tx);
    let req = post(&p, "/buffered/x")
        .header("content-length", "8")
        .body(channel_body(rx))
        .unwrap();
    let got = h2(&p, req).await;
    assert!(got != Ok(200), "{got:?}");
    assert!(up.seen().is_empty(), "the upstream saw {:?}", up.seen());
}

/// One HPACK header field, literal and never indexed, without Huffman.
fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x10);
    for s in [name, value] {
        assert!(s.len() < 127);
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
}

/// A frame: length, type, flags, stream, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Sends a GET on stream 1 with `extra` header fields, raw, and returns the
/// error code of the RST_STREAM (or GOAWAY) the server answers with, or
/// None when it answered with headers.
async fn raw_h2_get(p: &Proxy, extra: &[(&str, &str)]) -> Option<u32> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    let mut block = Vec::new();
    for (n, v) in [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "a"),
    ]
    .iter()
    .chain(extra)
    {
        literal(&mut block, n, v);
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    // END_STREAM | END_HEADERS.
    out.extend(frame(0x1, 0x5, 1, &block));
    s.write_all(&out).await.unwrap();
    let read = async {
        let mut buf = Vec::new();
        loop {
            // Frames are parsed from the start of what was read so far.
            let mut at = 0;
            while buf.len() >= at + 9 {
                let len = u32::from_be_bytes([0, buf[at], buf[at + 1], buf[at + 2]]) as usize;
                if buf.len() < at + 9 + len {
                    break;
                }
                let (kind, payload) = (buf[at + 3], &buf[at + 9..at + 9 + len]);
                let stream =
                    u32::from_be_bytes(buf[at + 5..at + 9].try_into().unwrap()) & !(1 << 31);
                match kind {
                    0x1 if stream == 1 => return None,
                    0x3 if stream == 1 => {
                        return Some(u32::from_be_bytes(payload[..4].try_into().unwrap()))
                    }
                    0x7 => return Some(u32::from_be_bytes(payload[4..8].try_into().unwrap())),
                    _ => {}
                }
                at += 9 + len;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed without an answer");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    bounded(read).await
}

#[tokio::test]
async fn connection_specific_headers_are_a_protocol_error() {
    let up = Upstream::ok().await;
    let p = proxy(&up).await;
    assert_eq!(raw_h2_get(&p, &[]).await, None, "a plain GET is answered");
    for (n, v) in [
        ("connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("keep-alive", "5"),
        ("proxy-connection", "keep-alive"),
        ("upgrade", "websocket"),
        ("te", "gzip"),
    ] {
        // PROTOCOL_ERROR (RFC 9113 §8.2.2).
        assert_eq!(raw_h2_get(&p, &[(n, v)]).await, Some(1), "{n}: {v}");
    }
    assert_eq!(raw_h2_get(&p, &[("te", "trailers")]).await, None);
    assert_eq!(up.seen().len(), 2, "only the two valid GETs were forwarded");
}
