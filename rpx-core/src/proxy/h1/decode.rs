//! Reading an upstream's HTTP/1.x response: the head, how its body is
//! framed (RFC 9112 §6.3), and the body itself, from a read buffer.
//!
//! Header values are slices of the buffer the head arrived in, and body
//! data is split off it: nothing is copied.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response, StatusCode, Version};

use super::H1Error;
use crate::headers::{parse_name, HeadCopies};

/// A response head larger than this is refused (nginx's
/// `proxy_buffer_size` is 4–8 KiB; hyper allows ~400 KiB).
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Header lines per head (and per trailer block).
const MAX_HEADERS: usize = 128;
/// A chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4096;

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: HEAD, 1xx, 204, 304, or `Content-Length: 0`.
    Empty,
    /// `Content-Length`: this many bytes remain.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked(Chunked),
    /// Neither: the body is everything until the upstream closes.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) response: Response<()>,
    pub(crate) framing: Framing,
    /// The upstream lets the connection be used again.
    pub(crate) keep_alive: bool,
}

/// Parses a response head from the front of `buf` and removes it;
/// `Ok(None)` when the head is not complete yet.
/// Header values are slices of a copy made in `copies`.
pub(crate) fn parse_head(
    buf: &mut BytesMut,
    copies: &mut HeadCopies,
    head_request: bool,
) -> Result<Option<Head>, H1Error> {
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Complete(_)) => return Err(H1Error::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(H1Error::Malformed(e.to_string())),
    };
    let status = res
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| H1Error::Malformed("bad status code".into()))?;
    let version = match res.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // Framing and keep-alive are read from the raw lines: no map lookups.
    let (framing, voids_length) = framing(res.headers, status, head_request)?;
    let keep_alive = framing != Framing::Close && wants_keep_alive(res.headers, version);

    // The head's bytes, copied once: every value is a slice of the copy,
    // and the read buffer stays this connection's alone.
    let base = buf.as_ptr() as usize;
    let head = copies.copy(&buf[..len]);
    // Room for headers added on the way back (add_header), without regrowing.
    let mut headers = copies.map(res.headers.len() + 6);
    for h in res.headers.iter() {
        if voids_length && h.name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        let name = parse_name(h.name.as_bytes())
            .map_err(|_| H1Error::Malformed("bad header name".into()))?;
        let at = h.value.as_ptr() as usize - base;
        let value = HeaderValue::from_maybe_shared(head.slice(at..at + h.value.len()))
            .map_err(|_| H1Error::Malformed("bad header value".into()))?;
        headers.append(name, value);
    }
    buf.advance(len);

    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(Some(Head {
        response,
        framing,
        keep_alive,
    }))
}

/// The values of the raw header lines named `name` (lower case).
fn values<'h>(
    raw: &'h [httparse::Header<'_>],
    name: &'static str,
) -> impl DoubleEndedIterator<Item = &'h [u8]> {
    raw.iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// RFC 9112 §6.3, with the smuggling guards: a `Transfer-Encoding` makes
/// any `Content-Length` void (the second value: it is not passed on),
/// differing lengths are an error.
fn framing(
    raw: &[httparse::Header<'_>],
    status: StatusCode,
    head_request: bool,
) -> Result<(Framing, bool), H1Error> {
    if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, false));
    }
    if let Some(last) = values(raw, "transfer-encoding").next_back() {
        let chunked_last = last
            .rsplit(|&b| b == b',')
            .next()
            .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        let framing = if chunked_last {
            Framing::Chunked(Chunked::default())
        } else {
            Framing::Close
        };
        return Ok((framing, true));
    }
    let mut length: Option<u64> = None;
    for value in values(raw, "content-length") {
        for part in value.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(bad_length());
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|p| p.parse().ok())
                .ok_or_else(bad_length)?;
            if length.is_some_and(|l| l != n) {
                return Err(bad_length());
            }
            length = Some(n);
        }
    }
    let framing = match length {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    };
    Ok((framing, false))
}

fn bad_length() -> H1Error {
    H1Error::Malformed("invalid Content-Length".into())
}

/// HTTP/1.1 keeps the connection unless told `close`; HTTP/1.0 only when
/// told `keep-alive`.
fn wants_keep_alive(raw: &[httparse::Header<'_>], version: Version) -> bool {
    let mut close = false;
    let mut keep = false;
    for value in values(raw, "connection") {
        for token in value.split(|&b| b == b',') {
            let token = token.trim_ascii();
            close |= token.eq_ignore_ascii_case(b"close");
            keep |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    !close && (version == Version::HTTP_11 || keep)
}

/// What decoding the buffer gave.
#[derive(Debug, PartialEq)]
pub(crate) enum Decoded {
    Data(Bytes),
    Trailers(HeaderMap),
    /// The body is complete.
    End,
    /// More bytes are needed.
    More,
}

impl Framing {
    /// Takes the next piece of body from `buf`. `eof`: the upstream closed
    /// and `buf` holds all that is left.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Decoded, H1Error> {
        match self {
            Framing::Empty => Ok(Decoded::End),
            Framing::Length(0) => Ok(Decoded::End),
            Framing::Length(left) => {
                if buf.is_empty() {
                    return if eof {
                        Err(H1Error::Closed)
                    } else {
                        Ok(Decoded::More)
                    };
                }
                let n = (*left).min(buf.len() as u64) as usize;
                *left -= n as u64;
                Ok(Decoded::Data(buf.split_to(n).freeze()))
            }
            Framing::Close => {
                if !buf.is_empty() {
                    Ok(Decoded::Data(buf.split().freeze()))
                } else if eof {
                    Ok(Decoded::End)
                } else {
                    Ok(Decoded::More)
                }
            }
            Framing::Chunked(c) => match c.decode(buf)? {
                Decoded::More if eof => Err(H1Error::Closed),
                d => Ok(d),
            },
        }
    }
}

/// The chunked decoder's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Chunked {
    /// Before a chunk-size line.
    #[default]
    Size,
    /// In a chunk's data: this many bytes remain.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty line.
    Trailers,
    Done,
}

impl Chunked {
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, H1Error> {
        loop {
            match *self {
                Chunked::Size => {
                    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(bad_chunk());
                        }
                        return Ok(Decoded::More);
                    };
                    let size = chunk_size(&buf[..end])?;
                    buf.advance(end + 1);
                    *self = if size == 0 {
                        Chunked::Trailers
                    } else {
                        Chunked::Data(size)
                    };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let n = left.min(buf.len() as u64) as usize;
                    *self = if n as u64 == left {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left - n as u64)
                    };
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                Chunked::DataEnd => match buf.first() {
                    None => return Ok(Decoded::More),
                    Some(b'\n') => {
                        buf.advance(1);
                        *self = Chunked::Size;
                    }
                    Some(b'\r') if buf.len() < 2 => return Ok(Decoded::More),
                    Some(b'\r') if buf[1] == b'\n' => {
                        buf.advance(2);
                        *self = Chunked::Size;
                    }
                    Some(_) => return Err(bad_chunk()),
                },
                Chunked::Trailers => return self.trailers(buf),
                Chunked::Done => return Ok(Decoded::End),
            }
        }
    }

    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Decoded, H1Error> {
        // The common case: no trailers, just the final CRLF.
        if buf.starts_with(b"\r\n") || buf.starts_with(b"\n") {
            buf.advance(if buf[0] == b'\r' { 2 } else { 1 });
            *self = Chunked::Done;
            return Ok(Decoded::End);
        }
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let (len, map) = match httparse::parse_headers(buf, &mut slots) {
            Ok(httparse::Status::Complete((len, parsed))) => {
                let mut map = HeaderMap::with_capacity(parsed.len());
                for h in parsed {
                    // A trailer that does not parse is dropped, not fatal.
                    if let (Ok(n), Ok(v)) = (
                        parse_name(h.name.as_bytes()),
                        HeaderValue::from_bytes(h.value),
                    ) {
                        map.append(n, v);
                    }
                }
                (len, map)
            }
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Ok(Decoded::More),
            _ => return Err(bad_chunk()),
        };
        buf.advance(len);
        *self = Chunked::Done;
        Ok(Decoded::Trailers(map))
    }
}

/// The hex size at the start of a chunk-size line (extensions ignored).
fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let rest = &line[digits..];
    // After the size: optional whitespace, then nothing or `;extensions`.
    let rest_ok = rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .is_none_or(|i| rest[i] == b';');
    // 16 hex digits would overflow; nobody sends a chunk of 2^60 bytes.
    if digits == 0 || digits > 15 || !rest_ok {
        return Err(bad_chunk());
    }
    let text = std::str::from_utf8(&line[..digits]).map_err(|_| bad_chunk())?;
    u64::from_str_radix(text, 16).map_err(|_| bad_chunk())
}

fn bad_chunk() -> H1Error {
    H1Error::Malformed("invalid chunked encoding".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    use http::Method;

    fn head(raw: &str, method: Method) -> Result<Option<Head>, H1Error> {
        parse_head(
            &mut BytesMut::from(raw),
            &mut HeadCopies::default(),
            method == Method::HEAD,
        )
    }

    fn framing_of(raw: &str) -> Framing {
        head(raw, Method::GET).unwrap().unwrap().framing
    }

    #[test]
    fn heads_parse_with_their_framing_and_keep_alive() {
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX-A: b\r\n\r\nhello",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.response.status(), 200);
        assert_eq!(h.response.headers()["x-a"], "b");
        assert_eq!(h.framing, Framing::Length(12));
        assert!(h.keep_alive);
        assert!(head("HTTP/1.1 200 OK\r\nContent-Le", Method::GET)
            .unwrap()
            .is_none());

        let cases = [
            (
                "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                Framing::Empty,
            ),
            ("HTTP/1.1 304 Not Modified\r\n\r\n", Framing::Empty),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                Framing::Empty,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", Framing::Close),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                Framing::Close,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Framing::Chunked(Chunked::Size),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n",
                Framing::Length(7),
            ),
        ];
        for (raw, framing) in cases {
            assert_eq!(framing_of(raw), framing, "{raw:?}");
        }
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", Method::HEAD)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Empty);
    }

    #[test]
    fn transfer_encoding_voids_content_length() {
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(h.framing, Framing::Chunked(_)));
        assert!(!h
            .response
            .headers()
            .contains_key(http::header::CONTENT_LENGTH));
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let ka = |raw: &str| head(raw, Method::GET).unwrap().unwrap().keep_alive;
        assert!(!ka(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n"
        ));
        assert!(!ka("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"));
        assert!(ka(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n"
        ));
        assert!(
            !ka("HTTP/1.1 200 OK\r\n\r\n"),
            "read-until-close is never reused"
        );
    }

    #[test]
    fn bad_heads_are_errors() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            assert!(head(raw, Method::GET).is_err(), "{raw:?}");
        }
    }

    fn decode_all(
        mut framing: Framing,
        input: &[&[u8]],
    ) -> Result<(Vec<u8>, Option<HeaderMap>), H1Error> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut trailers = None;
        let mut pieces = input.iter();
        loop {
            match framing.decode(&mut buf, false)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::Trailers(t) => trailers = Some(t),
                Decoded::End => return Ok((out, trailers)),
                Decoded::More => match pieces.next() {
                    Some(p) => buf.extend_from_slice(p),
                    None => return Err(H1Error::Closed),
                },
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let wire = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Sum: 9\r\n\r\n";
        for split in 1..wire.len() {
            let pieces: Vec<&[u8]> = wire.chunks(split).collect();
            let (body, trailers) =
                decode_all(Framing::Chunked(Chunked::default()), &pieces).unwrap();
            assert_eq!(body, b"hello, world", "split {split}");
            assert_eq!(trailers.unwrap()["x-sum"], "9");
        }
        let (body, trailers) = decode_all(
            Framing::Chunked(Chunked::default()),
            &[b"3\r\nabc\r\n0\r\n\r\n"],
        )
        .unwrap();
        assert_eq!(body, b"abc");
        assert!(trailers.is_none());
    }

    #[test]
    fn bad_chunks_are_errors() {
        for wire in [
            &b"z\r\n"[..],
            b"5\r\nhelloXX",
            b"1234567890abcdef0\r\n",
            b"5 x\r\nhello\r\n",
            b"\r\n",
        ] {
            assert!(
                decode_all(Framing::Chunked(Chunked::default()), &[wire]).is_err(),
                "{wire:?}"
            );
        }
    }

    #[test]
    fn lengths_and_close_delimited_bodies_end_where_they_should() {
        let mut f = Framing::Length(5);
        let mut buf = BytesMut::from(&b"helloEXTRA"[..]);
        assert_eq!(
            f.decode(&mut buf, false).unwrap(),
            Decoded::Data(Bytes::from("hello"))
        );
        assert_eq!(f.decode(&mut buf, false).unwrap(), Decoded::End);
        assert_eq!(&buf[..], b"EXTRA");

        let mut f = Framing::Length(5);
        let mut buf = BytesMut::from(&b"hel"[..]);
        f.decode(&mut buf, false).unwrap();
        assert!(matches!(f.decode(&mut buf, true), Err(H1Error::Closed)));

        let mut f = Framing::Close;
        let mut buf = BytesMut::from(&b"all"[..]);
        assert_eq!(
            f.decode(&mut buf, false).unwrap(),
            Decoded::Data(Bytes::from("all"))
        );
        assert_eq!(f.decode(&mut buf, false).unwrap(), Decoded::More);
        assert_eq!(f.decode(&mut buf, true).unwrap(), Decoded::End);
    }
}
