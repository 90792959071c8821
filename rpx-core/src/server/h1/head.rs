//! Reading a request head from the connection's buffer.
//!
//! Only the plain case is taken: an HTTP/1.1 request without a body, an
//! upgrade or an `Expect`. Anything else, malformed heads included, is
//! left in the buffer for hyper, which answers it as it always has.

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderValue, Method, Request, Uri, Version};

use crate::headers::{parse_name, HeadCopies};
use crate::server::body::RequestBody;
use crate::server::edge::{self, HeadLimits, Refusal};

/// Headers a head may have here; a head with more goes to hyper (whose
/// limit is 100).
const MAX_HEADERS: usize = 64;

/// What the buffer holds.
#[derive(Debug)]
// Matched at once by the caller; a box would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(in crate::server) enum Parsed {
    /// A request, taken out of the buffer. `close`: it asked for the
    /// connection to close after its response.
    Request {
        req: Request<RequestBody>,
        close: bool,
    },
    /// The start of a head: more bytes are needed.
    Partial,
    /// A head to refuse, with nginx's answer; the connection closes after it.
    Refused(Refusal),
    /// A request for hyper (or not a request at all): left in the buffer.
    Other,
}

/// Parses the head at the start of `buf`; its values are slices of a copy
/// made in `copies`. Every complete head, taken or left for hyper, has
/// passed [`edge::check_head`] first: hyper would fold the framing headers
/// it checks.
pub(in crate::server) fn parse(
    buf: &mut BytesMut,
    copies: &mut HeadCopies,
    limits: &HeadLimits,
) -> Parsed {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match parsed.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return match edge::check_partial(buf, limits) {
                Ok(()) => Parsed::Partial,
                Err(refusal) => Parsed::Refused(refusal),
            }
        }
        Err(_) => return Parsed::Other,
    };
    if let Err(refusal) = edge::check_head(parsed.headers) {
        return Parsed::Refused(refusal);
    }
    if parsed.version != Some(1) {
        return Parsed::Other;
    }
    let Ok(method) = Method::from_bytes(parsed.method.unwrap_or_default().as_bytes()) else {
        return Parsed::Other;
    };
    if method == Method::CONNECT {
        return Parsed::Other;
    }
    let mut close = false;
    for h in parsed.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str().as_bytes()) {
            if h.value != b"0" {
                return Parsed::Other;
            }
        } else if name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str().as_bytes())
            || name.eq_ignore_ascii_case(UPGRADE.as_str().as_bytes())
            || name.eq_ignore_ascii_case(EXPECT.as_str().as_bytes())
        {
            return Parsed::Other;
        } else if name.eq_ignore_ascii_case(CONNECTION.as_str().as_bytes()) {
            close |= has_token(h.value, b"close");
        }
    }

    // The head's bytes, copied: the read buffer stays this connection's
    // alone (no new buffer per request), and the header values share the copy.
    let base = buf.as_ptr() as usize;
    let head = copies.copy(&buf[..len]);
    let slice = |s: &[u8]| {
        let at = s.as_ptr() as usize - base;
        head.slice(at..at + s.len())
    };
    let Ok(uri) = Uri::from_maybe_shared(slice(parsed.path.unwrap_or_default().as_bytes())) else {
        return Parsed::Other;
    };
    // Room for the headers the proxy adds, so that adding them does not regrow the map.
    let mut map = copies.map(parsed.headers.len() + 6);
    for h in parsed.headers.iter() {
        let (Ok(name), Ok(value)) = (
            parse_name(h.name.as_bytes()),
            HeaderValue::from_maybe_shared(slice(h.value)),
        ) else {
            return Parsed::Other;
        };
        map.append(name, value);
    }
    buf.advance(len);

    let mut req = Request::new(RequestBody::empty());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = map;
    Parsed::Request { req, close }
}

/// Whether the comma-separated `value` lists `token` (any case).
pub(super) fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(s.as_bytes());
        (
            parse(&mut buf, &mut HeadCopies::default(), &HeadLimits::default()),
            buf,
        )
    }

    #[test]
    fn a_plain_request_is_taken_and_the_rest_stays() {
        let (parsed, rest) =
            parse_str("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET /next");
        let Parsed::Request { req, close } = parsed else {
            panic!("{parsed:?}")
        };
        assert!(!close);
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri(), "/a?b=1");
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.headers()["host"], "x");
        let two: Vec<_> = req.headers().get_all("x-two").iter().collect();
        assert_eq!(two, ["1", "2"]);
        assert_eq!(&rest[..], b"GET /next");
    }

    #[test]
    fn connection_close_is_seen_in_a_list() {
        let (parsed, _) = parse_str("GET / HTTP/1.1\r\nConnection: TE, Close\r\n\r\n");
        assert!(matches!(parsed, Parsed::Request { close: true, .. }));
        let (parsed, _) = parse_str("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(matches!(parsed, Parsed::Request { close: false, .. }));
    }

    #[test]
    fn an_unfinished_head_waits_for_more() {
        let (parsed, rest) = parse_str("GET / HTTP/1.1\r\nHost: x\r\n");
        assert!(matches!(parsed, Parsed::Partial));
        assert_eq!(rest.len(), 25);
    }

    #[test]
    fn smuggling_heads_and_long_lines_are_refused() {
        for (head, status) in [
            (
                "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
                400,
            ),
        ] {
            let (parsed, _) = parse_str(head);
            let Parsed::Refused(r) = parsed else {
                panic!("{head:?}: {parsed:?}")
            };
            assert_eq!(r.status, status, "{head:?}");
        }
        let (parsed, _) = parse_str(&format!("GET /{}", "a".repeat(9000)));
        assert!(matches!(parsed, Parsed::Refused(r) if r.status == 414));
    }

    #[test]
    fn requests_for_hyper_stay_in_the_buffer() {
        for head in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "CONNECT x:443 HTTP/1.1\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            "GET / HTTP/1.1\r\n\x00\r\n\r\n",
        ] {
            let (parsed, rest) = parse_str(head);
            assert!(matches!(parsed, Parsed::Other), "{head:?}: {parsed:?}");
            assert_eq!(&rest[..], head.as_bytes(), "left whole");
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("x-{i}: v\r\n"))
            .collect();
        let (parsed, _) = parse_str(&format!("GET / HTTP/1.1\r\n{many}\r\n"));
        assert!(matches!(parsed, Parsed::Other), "too many headers");
    }
}
