//! Writing a request to an upstream: the head, and the framing of its body.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::CONTENT_LENGTH;
use http::request::Parts;
use http::HeaderMap;

use crate::headers::HeadCopies;

/// How the request body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body, or one whose length the head states.
    Plain,
    /// `Transfer-Encoding: chunked`, added by us.
    Chunked,
}

/// Serialises `head` (origin-form URI, headers already rewritten and
/// without hop-by-hop ones) as an HTTP/1.1 request. `body_len` is the
/// body's exact length when known; `None` with a body means chunked.
pub(crate) fn encode_head(
    head: &Parts,
    has_body: bool,
    body_len: Option<u64>,
    copies: &mut HeadCopies,
) -> (Bytes, BodyFraming) {
    let path = head.uri.path_and_query().map_or("/", |pq| pq.as_str());
    // The client's Content-Length stays (hyper held its body to it);
    // Transfer-Encoding was hop-by-hop and is ours to set.
    let (framing, length) = if !has_body || head.headers.contains_key(CONTENT_LENGTH) {
        (BodyFraming::Plain, None)
    } else if let Some(len) = body_len {
        (BodyFraming::Plain, Some(len.to_string()))
    } else {
        (BodyFraming::Chunked, None)
    };
    // The exact size, reserved at once: the head is written without regrowing.
    let mut size = head.method.as_str().len() + 1 + path.len() + b" HTTP/1.1\r\n".len() + 2;
    for (name, value) in &head.headers {
        size += name.as_str().len() + 2 + value.len() + 2;
    }
    match (&framing, &length) {
        (_, Some(len)) => size += CONTENT_LENGTH.as_str().len() + 2 + len.len() + 2,
        (BodyFraming::Chunked, None) => size += CHUNKED_LINE.len(),
        (BodyFraming::Plain, None) => {}
    }
    let bytes = copies.write(size, |out| {
        out.put_slice(head.method.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(path.as_bytes());
        out.put_slice(b" HTTP/1.1\r\n");
        put_headers(out, &head.headers);
        if let Some(len) = &length {
            out.put_slice(CONTENT_LENGTH.as_str().as_bytes());
            out.put_slice(b": ");
            out.put_slice(len.as_bytes());
            out.put_slice(b"\r\n");
        } else if framing == BodyFraming::Chunked {
            out.put_slice(CHUNKED_LINE);
        }
        out.put_slice(b"\r\n");
    });
    debug_assert_eq!(bytes.len(), size, "the head's size is computed exactly");
    (bytes, framing)
}

const CHUNKED_LINE: &[u8] = b"transfer-encoding: chunked\r\n";

/// The last chunk of a chunked body, carrying `trailers`.
pub(crate) fn last_chunk_with(trailers: &HeaderMap) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    out.put_slice(b"0\r\n");
    put_headers(&mut out, trailers);
    out.put_slice(b"\r\n");
    out.freeze()
}

fn put_headers(out: &mut BytesMut, headers: &HeaderMap) {
    for (name, value) in headers {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
}

/// The line that opens a chunk of `len` bytes.
pub(crate) fn chunk_header(len: usize) -> Bytes {
    Bytes::from(format!("{len:x}\r\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn heads_carry_their_body_framing() {
        let (head, framing) = encode_head(
            &parts("GET", "/a?b=1", &[("host", "up")]),
            false,
            None,
            &mut HeadCopies::default(),
        );
        assert_eq!(&head[..], b"GET /a?b=1 HTTP/1.1\r\nhost: up\r\n\r\n");
        assert_eq!(framing, BodyFraming::Plain);

        let with_len = parts("POST", "/", &[("content-length", "3")]);
        let (head, framing) = encode_head(&with_len, true, None, &mut HeadCopies::default());
        assert_eq!(&head[..], b"POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\n");
        assert_eq!(framing, BodyFraming::Plain);

        let (head, framing) = encode_head(
            &parts("PUT", "/", &[]),
            true,
            Some(12),
            &mut HeadCopies::default(),
        );
        assert_eq!(&head[..], b"PUT / HTTP/1.1\r\ncontent-length: 12\r\n\r\n");
        assert_eq!(framing, BodyFraming::Plain);

        let (head, framing) = encode_head(
            &parts("POST", "/up", &[]),
            true,
            None,
            &mut HeadCopies::default(),
        );
        assert_eq!(
            &head[..],
            b"POST /up HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(framing, BodyFraming::Chunked);
        assert_eq!(&chunk_header(255)[..], b"ff\r\n");
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", "9".parse().unwrap());
        assert_eq!(&last_chunk_with(&trailers)[..], b"0\r\nx-sum: 9\r\n\r\n");
    }
}
