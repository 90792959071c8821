//! Writing a response head, and how its body is framed: hyper's rules for
//! a server, so a response reads the same on either path.
//!
//! - A body of unknown length is chunked; a known one gets
//!   `Content-Length` unless the service set it.
//! - Responses to `HEAD`, and 204 and 304, carry no body.
//! - `Date` is added when the service did not set one.

use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRAILER, TRANSFER_ENCODING};
use http::response::Parts;
use http::{HeaderName, StatusCode};

use super::date;

/// What the body of a response is, as far as the head can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyLen {
    /// It is already at its end.
    None,
    Known(u64),
    Unknown,
}

/// How the body goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Framing {
    /// Exactly this many bytes (0: none; the body is not read).
    Length(u64),
    /// Chunks; trailer fields are sent when the head declared them in
    /// `Trailer`.
    Chunked { trailers: Vec<HeaderName> },
}

/// A head that cannot be sent: conflicting or invalid lengths.
#[derive(Debug)]
pub(super) struct BadHead;

/// Appends the head of `res` to `out`. `head`: the request was `HEAD`.
/// `close`: the connection closes after it (`Connection: close` is added
/// when the service did not say so). Returns the framing, and whether the
/// connection must close (`close`, or the service's `Connection: close`).
pub(super) fn encode_head(
    out: &mut Vec<u8>,
    res: &Parts,
    body: BodyLen,
    head: bool,
    mut close: bool,
) -> Result<(Framing, bool), BadHead> {
    let status = res.status;
    let may_chunk = !head && has_body(status);
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    let mut framing = None;
    let mut length: Option<u64> = None;
    let mut said_close = false;
    let mut chunked_last = true;
    let mut wrote_date = false;
    let mut trailers = Vec::new();
    for (name, value) in &res.headers {
        match *name {
            CONTENT_LENGTH => {
                if matches!(framing, Some(Framing::Chunked { .. })) {
                    return Err(BadHead);
                }
                match body {
                    // Trusted, as hyper does: the body states its length.
                    BodyLen::Known(n) => framing = Some(Framing::Length(n)),
                    BodyLen::Unknown => {
                        let n = parse_length(value.as_bytes()).ok_or(BadHead)?;
                        if length.is_some_and(|l| l != n) {
                            return Err(BadHead);
                        }
                        if length.is_some() {
                            continue;
                        }
                        length = Some(n);
                        framing = Some(Framing::Length(n));
                    }
                    // No body: only a HEAD response states a length.
                    BodyLen::None if !head => continue,
                    BodyLen::None => framing = Some(Framing::Length(0)),
                }
            }
            TRANSFER_ENCODING => {
                if matches!(framing, Some(Framing::Length(_))) {
                    return Err(BadHead);
                }
                if !may_chunk {
                    continue;
                }
                framing = Some(Framing::Chunked {
                    trailers: Vec::new(),
                });
                chunked_last = ends_chunked(value.as_bytes());
            }
            CONNECTION => said_close |= super::head::has_token(value.as_bytes(), b"close"),
            DATE => wrote_date = true,
            TRAILER => {
                if !may_chunk {
                    continue;
                }
                trailers.extend(
                    value
                        .as_bytes()
                        .split(|&b| b == b',')
                        .filter_map(|n| HeaderName::from_bytes(n.trim_ascii()).ok()),
                );
            }
            _ => {}
        }
        write_header(out, name.as_str(), value.as_bytes());
    }

    if !chunked_last {
        // The coding the service named, then ours (one field value).
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    let mut framing = match framing {
        Some(f) => f,
        None => match body {
            BodyLen::Unknown if may_chunk => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked {
                    trailers: Vec::new(),
                }
            }
            BodyLen::Unknown => Framing::Length(0),
            BodyLen::None | BodyLen::Known(0) => {
                if !head && has_body(status) {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
                Framing::Length(0)
            }
            BodyLen::Known(n) => {
                if has_body(status) {
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(n.to_string().as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                Framing::Length(n)
            }
        },
    };
    if let Framing::Chunked { trailers: t } = &mut framing {
        *t = trailers;
    }
    if head || !has_body(status) {
        framing = Framing::Length(0);
    }
    if close && !said_close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    close |= said_close;
    if !wrote_date {
        out.extend_from_slice(b"date: ");
        date::extend(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok((framing, close))
}

/// Whether a response with `status` may have a body at all.
fn has_body(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

fn write_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A `Content-Length` value: digits only.
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Whether `chunked` is the last coding of a `Transfer-Encoding` value.
fn ends_chunked(v: &[u8]) -> bool {
    v.rsplit(|&b| b == b',')
        .next()
        .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;

    fn encode(
        status: u16,
        headers: &[(&str, &str)],
        body: BodyLen,
        head: bool,
        close: bool,
    ) -> (String, Framing, bool) {
        let mut b = Response::builder().status(status);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        let (parts, ()) = b.body(()).unwrap().into_parts();
        let mut out = Vec::new();
        let (framing, close) = encode_head(&mut out, &parts, body, head, close).unwrap();
        let text = String::from_utf8(out).unwrap();
        // The date varies: drop its line.
        let text = text
            .lines()
            .filter(|l| !l.starts_with("date: "))
            .collect::<Vec<_>>()
            .join("\n");
        (text, framing, close)
    }

    #[test]
    fn lengths_are_stated_or_chunked() {
        let (text, framing, close) = encode(200, &[("x-a", "1")], BodyLen::Known(12), false, false);
        assert_eq!(text, "HTTP/1.1 200 OK\nx-a: 1\ncontent-length: 12\n");
        assert_eq!(framing, Framing::Length(12));
        assert!(!close);

        let (text, framing, _) = encode(404, &[], BodyLen::Unknown, false, false);
        assert_eq!(text, "HTTP/1.1 404 Not Found\ntransfer-encoding: chunked\n");
        assert!(matches!(framing, Framing::Chunked { .. }));

        let (text, framing, _) = encode(200, &[], BodyLen::None, false, false);
        assert_eq!(text, "HTTP/1.1 200 OK\ncontent-length: 0\n");
        assert_eq!(framing, Framing::Length(0));

        let (_, framing, _) = encode(
            200,
            &[("content-length", "5")],
            BodyLen::Unknown,
            false,
            false,
        );
        assert_eq!(framing, Framing::Length(5));
    }

    #[test]
    fn head_204_and_304_have_no_body() {
        let (text, framing, _) =
            encode(200, &[("content-length", "12")], BodyLen::None, true, false);
        assert_eq!(text, "HTTP/1.1 200 OK\ncontent-length: 12\n");
        assert_eq!(framing, Framing::Length(0));
        let (text, framing, _) = encode(200, &[], BodyLen::Unknown, true, false);
        assert_eq!(text, "HTTP/1.1 200 OK\n");
        assert_eq!(framing, Framing::Length(0));
        let (text, _, _) = encode(204, &[], BodyLen::None, false, false);
        assert_eq!(text, "HTTP/1.1 204 No Content\n");
        let (text, framing, _) = encode(304, &[], BodyLen::Known(3), false, false);
        assert_eq!(text, "HTTP/1.1 304 Not Modified\n");
        assert_eq!(framing, Framing::Length(0));
    }

    #[test]
    fn close_is_said_once() {
        let (text, _, close) = encode(200, &[], BodyLen::None, false, true);
        assert!(text.ends_with("connection: close\n"), "{text}");
        assert!(close);
        let (text, _, close) = encode(200, &[("connection", "close")], BodyLen::None, false, false);
        assert_eq!(text.matches("connection").count(), 1, "{text}");
        assert!(close, "the service's close closes");
        let (text, _, _) = encode(200, &[("connection", "close")], BodyLen::None, false, true);
        assert_eq!(text.matches("connection").count(), 1, "{text}");
    }

    #[test]
    fn transfer_encoding_ends_in_chunked_and_trailers_are_declared() {
        let (text, framing, _) = encode(
            200,
            &[("transfer-encoding", "gzip"), ("trailer", "x-sum, x-n")],
            BodyLen::Unknown,
            false,
            false,
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\ntransfer-encoding: gzip\ntrailer: x-sum, x-n\ntransfer-encoding: chunked\n"
        );
        assert_eq!(
            framing,
            Framing::Chunked {
                trailers: vec![
                    HeaderName::from_static("x-sum"),
                    HeaderName::from_static("x-n")
                ]
            }
        );
    }

    #[test]
    fn conflicting_lengths_are_refused() {
        let mut b = Response::builder();
        b = b
            .header("content-length", "1")
            .header("content-length", "2");
        let (parts, ()) = b.body(()).unwrap().into_parts();
        let mut out = Vec::new();
        assert!(encode_head(&mut out, &parts, BodyLen::Unknown, false, false).is_err());
        let (parts, ()) = Response::builder()
            .header("content-length", "x")
            .body(())
            .unwrap()
            .into_parts();
        assert!(encode_head(&mut out, &parts, BodyLen::Unknown, false, false).is_err());
    }
}
