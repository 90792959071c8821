//! What a request head must be before anything reads it: one check for
//! every reader (rpx's HTTP/1.1 one, hyper's HTTP/1 and HTTP/2), with
//! nginx's answers.
//!
//! [`check_head`] runs on the raw header lines of the heads rpx's reader
//! sees (the framing headers hyper would fold away); [`check_request`] on
//! every parsed request, whichever reader made it. docs/security.md lists
//! what is refused, with which status and directive.

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Version};

use crate::reply::{error_page_titled, Reply};

/// What a listener accepts in a request head: nginx's
/// `client_header_buffer_size`, `large_client_header_buffers`,
/// `underscores_in_headers` and `ignore_invalid_headers`, as the
/// listener's default server sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// The longest request line, and the longest header line (name, `: `,
    /// value): the larger of the two buffer sizes. Default 8 KiB.
    pub line: usize,
    /// The most bytes of a whole head (`large_client_header_buffers`'
    /// number × size). Default 32 KiB.
    pub total: usize,
    /// Header names with `_` are taken (`underscores_in_headers on`).
    /// Default off: such headers are dropped, as nginx does.
    pub underscores: bool,
    /// Headers whose names nginx finds invalid (other than letters, digits,
    /// `-`, and `_` when allowed) are dropped (`ignore_invalid_headers on`,
    /// the default); off: they are kept.
    pub ignore_invalid: bool,
    /// `//` in paths is merged before locations are matched
    /// (`merge_slashes`, default on); off, requests carry
    /// [`KeepSlashes`](crate::request::KeepSlashes). nginx parses the path
    /// before it knows the server, so the default server's setting holds.
    pub merge_slashes: bool,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            line: 8 * 1024,
            total: 4 * 8 * 1024,
            underscores: false,
            ignore_invalid: true,
            merge_slashes: true,
        }
    }
}

/// Why a request is refused before it reaches the service: its status and
/// the error page's title, as nginx's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) title: &'static str,
}

impl Refusal {
    const fn new(status: StatusCode, title: &'static str) -> Self {
        Refusal { status, title }
    }

    const fn bad(title: &'static str) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, title)
    }

    /// nginx's error page for it; an HTTP/1 connection closes after it, as
    /// nginx closes after every refused head.
    pub(crate) fn page(&self, version: Version) -> Reply {
        let mut page = error_page_titled(self.status, self.title);
        if version < Version::HTTP_2 {
            page.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        page
    }
}

const TOO_LARGE: Refusal = Refusal::bad("Request Header Or Cookie Too Large");
const URI_TOO_LARGE: Refusal = Refusal::new(StatusCode::URI_TOO_LONG, "Request-URI Too Large");

/// A head not complete yet: refused when its request line or its whole
/// size is already over the limits (nginx answers as soon as a buffer is
/// full, without waiting for the rest).
pub(crate) fn check_partial(buf: &[u8], limits: &HeadLimits) -> Result<(), Refusal> {
    match buf.iter().position(|&b| b == b'\n') {
        None if buf.len() > limits.line => Err(URI_TOO_LARGE),
        _ if buf.len() > limits.total => Err(TOO_LARGE),
        _ => Ok(()),
    }
}

/// The framing headers of a raw HTTP/1.1 head, before hyper folds them:
/// `Content-Length` with `Transfer-Encoding`, or twice, is a 400 (RFC 9112
/// §6.3: a request that may be smuggling one inside another).
pub(crate) fn check_head(headers: &[httparse::Header<'_>]) -> Result<(), Refusal> {
    let mut lengths = 0;
    let mut encodings = 0;
    for h in headers {
        if h.name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str()) {
            lengths += 1;
        } else if h.name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str()) {
            encodings += 1;
        }
    }
    match (lengths, encodings) {
        (0 | 1, 0) | (0, _) => Ok(()),
        _ => Err(Refusal::bad("Bad Request")),
    }
}

/// Checks a parsed request (any reader, any version) and drops the
/// headers nginx ignores (see [`HeadLimits`]).
pub(crate) fn check_request<B>(req: &mut Request<B>, limits: &HeadLimits) -> Result<(), Refusal> {
    if req.method() == Method::TRACE {
        return Err(Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "Not Allowed"));
    }
    let line = request_line_len(req);
    if line > limits.line {
        return Err(URI_TOO_LARGE);
    }
    let mut total = line;
    let mut dropped = false;
    for (name, value) in req.headers() {
        let len = name.as_str().len() + 2 + value.len();
        if len > limits.line {
            return Err(TOO_LARGE);
        }
        total += len + 2;
        dropped |= !valid_name(name.as_str().as_bytes(), limits);
    }
    if total > limits.total {
        return Err(TOO_LARGE);
    }
    if dropped && limits.ignore_invalid {
        drop_invalid(req.headers_mut(), limits);
    }
    if !limits.merge_slashes {
        req.extensions_mut().insert(crate::request::KeepSlashes);
    }
    check_host(req)?;
    check_framing(req.headers())
}

/// The length of the request line the request came in (or would have).
fn request_line_len<B>(req: &Request<B>) -> usize {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |pq| pq.as_str().len());
    // Absolute-form (HTTP/1) carries the scheme and authority too; HTTP/2's
    // `:authority` is a header of its own.
    let authority = match (req.version(), uri.authority()) {
        (Version::HTTP_2, _) | (_, None) => 0,
        (_, Some(a)) => uri.scheme_str().map_or(0, str::len) + 3 + a.as_str().len(),
    };
    req.method().as_str().len() + 1 + authority + target + " HTTP/1.1".len()
}

/// Whether nginx takes a header of this (lower-case) name as valid.
fn valid_name(name: &[u8], limits: &HeadLimits) -> bool {
    name.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || (b == b'_' && limits.underscores))
}

fn drop_invalid(headers: &mut HeaderMap, limits: &HeadLimits) {
    let invalid: Vec<_> = headers
        .keys()
        .filter(|n| !valid_name(n.as_str().as_bytes(), limits))
        .cloned()
        .collect();
    for name in invalid {
        headers.remove(&name);
        tracing::debug!(header = %name, "client sent invalid header line: ignored");
    }
}

/// `Host`: required once in HTTP/1.1 (RFC 9112 §3.2) and well-formed
/// wherever it is given; so is a host in the request target, which only
/// absolute-form (or `CONNECT`'s authority-form) may carry. Fuzzing found
/// `GET a..b HTTP/1.1`, authority-form, naming the host routing would use.
fn check_host<B>(req: &Request<B>) -> Result<(), Refusal> {
    if let Some(authority) = req.uri().authority() {
        let form_ok = req.uri().scheme().is_some() || req.method() == Method::CONNECT;
        if !form_ok || !valid_host(authority.as_str().as_bytes()) {
            return Err(Refusal::bad("Bad Request"));
        }
    }
    let mut hosts = req.headers().get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Refusal::bad("Bad Request"));
    }
    match host {
        Some(h) if valid_host(h.as_bytes()) => Ok(()),
        Some(_) => Err(Refusal::bad("Bad Request")),
        // HTTP/2 names the host in `:authority`.
        None if req.version() == Version::HTTP_11 => Err(Refusal::bad("Bad Request")),
        None if req.version() == Version::HTTP_2 && req.uri().authority().is_none() => {
            Err(Refusal::bad("Bad Request"))
        }
        None => Ok(()),
    }
}

/// A `Host` value: a reg-name (RFC 3986's characters, no empty label) or
/// a bracketed IPv6 address, then an optional `:port` of digits.
pub(crate) fn valid_host(h: &[u8]) -> bool {
    let port = if h.first() == Some(&b'[') {
        let Some(end) = h.iter().position(|&b| b == b']') else {
            return false;
        };
        // An IPv6 address (found by fuzzing: `[..::1]` must not pass).
        let literal = std::str::from_utf8(&h[1..end]).ok();
        if literal
            .and_then(|l| l.parse::<std::net::Ipv6Addr>().ok())
            .is_none()
        {
            return false;
        }
        &h[end + 1..]
    } else {
        let at = h.iter().position(|&b| b == b':').unwrap_or(h.len());
        let name = &h[..at];
        let valid = name.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                )
        });
        if !valid || name.is_empty() || name.windows(2).any(|w| w == b"..") {
            return false;
        }
        &h[at..]
    };
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// `Transfer-Encoding`: nginx takes only `chunked`, once (501 for any other
/// coding, 400 for a second line or one with `Content-Length`).
fn check_framing(headers: &HeaderMap) -> Result<(), Refusal> {
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter();
    let Some(coding) = codings.next() else {
        return if headers.get_all(CONTENT_LENGTH).iter().nth(1).is_some() {
            Err(Refusal::bad("Bad Request"))
        } else {
            Ok(())
        };
    };
    if codings.next().is_some() || headers.contains_key(CONTENT_LENGTH) {
        return Err(Refusal::bad("Bad Request"));
    }
    if !coding.as_bytes().eq_ignore_ascii_case(b"chunked") {
        return Err(Refusal::new(StatusCode::NOT_IMPLEMENTED, "Not Implemented"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    }

    fn status(r: Result<(), Refusal>) -> u16 {
        r.map_or_else(|r| r.status.as_u16(), |()| 200)
    }

    #[test]
    fn hosts() {
        for ok in [
            "a",
            "A.Example.COM.",
            "a.example.com:8080",
            "[::1]:80",
            "[::ffff:1.2.3.4]",
            "a_b!",
            "xn--bcher-kva.example",
            "1.2.3.4:1",
            "a:",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "a/b",
            "a b",
            "a..b",
            "a:xyz",
            "a\"b",
            "[::1",
            "[]",
            "[::1]x",
            "a\\b",
            "a@b",
            ":80",
            "[..::1]",
            "[1.2.3.4]",
            "[v1.x]",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn requests() {
        let limits = HeadLimits::default();
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u16);
        let cases: &[Case<'_>] = &[
            ("GET", "/", &[("host", "a")], 200),
            ("GET", "/", &[], 400),
            ("GET", "/", &[("host", "a"), ("host", "b")], 400),
            ("GET", "/", &[("host", "a b")], 400),
            ("TRACE", "/", &[("host", "a")], 405),
            (
                "POST",
                "/",
                &[("host", "a"), ("transfer-encoding", "chunked")],
                200,
            ),
            (
                "POST",
                "/",
                &[("host", "a"), ("transfer-encoding", "gzip, chunked")],
                501,
            ),
            (
                "POST",
                "/",
                &[
                    ("host", "a"),
                    ("transfer-encoding", "chunked"),
                    ("transfer-encoding", "chunked"),
                ],
                400,
            ),
            (
                "POST",
                "/",
                &[
                    ("host", "a"),
                    ("transfer-encoding", "chunked"),
                    ("content-length", "3"),
                ],
                400,
            ),
            (
                "POST",
                "/",
                &[
                    ("host", "a"),
                    ("content-length", "3"),
                    ("content-length", "3"),
                ],
                400,
            ),
        ];
        for (method, uri, headers, want) in cases {
            let mut r = req(method, uri, headers);
            assert_eq!(
                status(check_request(&mut r, &limits)),
                *want,
                "{method} {headers:?}"
            );
        }
        for uri in ["a..b", "http://a..b/", "http://u@a/"] {
            let mut r = req("GET", uri, &[("host", "a")]);
            assert_eq!(status(check_request(&mut r, &limits)), 400, "{uri}");
        }
        let mut r = req("GET", "http://a.example:8080/x", &[("host", "a")]);
        assert_eq!(status(check_request(&mut r, &limits)), 200);
        let mut http10 = req("GET", "/", &[]);
        *http10.version_mut() = Version::HTTP_10;
        assert_eq!(status(check_request(&mut http10, &limits)), 200);
    }

    #[test]
    fn sizes_follow_the_buffers() {
        let limits = HeadLimits::default();
        let long_uri = format!("/{}", "a".repeat(8 * 1024));
        assert_eq!(
            status(check_request(
                &mut req("GET", &long_uri, &[("host", "a")]),
                &limits
            )),
            414
        );
        let fits = format!("/{}", "a".repeat(8 * 1024 - 30));
        assert_eq!(
            status(check_request(
                &mut req("GET", &fits, &[("host", "a")]),
                &limits
            )),
            200
        );
        let big = "v".repeat(8 * 1024);
        assert_eq!(
            status(check_request(
                &mut req("GET", "/", &[("host", "a"), ("x", &big)]),
                &limits
            )),
            400
        );
        let seven = "v".repeat(7000);
        let many: Vec<(String, &str)> =
            (0..5).map(|i| (format!("x-{i}"), seven.as_str())).collect();
        let mut r = req("GET", "/", &[("host", "a")]);
        for (n, v) in &many {
            r.headers_mut().append(
                http::HeaderName::try_from(n.as_str()).unwrap(),
                v.parse().unwrap(),
            );
        }
        assert_eq!(status(check_request(&mut r, &limits)), 400);
        assert_eq!(
            check_partial(b"GET /aaaa", &HeadLimits { line: 4, ..limits }),
            Err(URI_TOO_LARGE)
        );
        assert_eq!(
            check_partial(b"GET /\r\nX: 1", &HeadLimits { total: 8, ..limits }),
            Err(TOO_LARGE)
        );
    }

    #[test]
    fn invalid_names_are_dropped_as_nginx() {
        let headers: &[(&str, &str)] =
            &[("host", "a"), ("x_foo", "1"), ("x.dot", "2"), ("x-ok", "3")];
        let mut r = req("GET", "/", headers);
        check_request(&mut r, &HeadLimits::default()).unwrap();
        let names: Vec<_> = r.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["host", "x-ok"]);

        let mut r = req("GET", "/", headers);
        let underscores = HeadLimits {
            underscores: true,
            ..HeadLimits::default()
        };
        check_request(&mut r, &underscores).unwrap();
        assert!(r.headers().contains_key("x_foo") && !r.headers().contains_key("x.dot"));

        let mut r = req("GET", "/", headers);
        let keep = HeadLimits {
            ignore_invalid: false,
            ..HeadLimits::default()
        };
        check_request(&mut r, &keep).unwrap();
        assert_eq!(r.headers().len(), 4);
    }

    #[test]
    fn raw_framing() {
        let h = |name, value| httparse::Header { name, value };
        assert!(check_head(&[h("Content-Length", b"3")]).is_ok());
        assert!(check_head(&[h("Transfer-Encoding", b"chunked")]).is_ok());
        assert!(check_head(&[
            h("content-length", b"3"),
            h("Transfer-Encoding", b"chunked")
        ])
        .is_err());
        assert!(check_head(&[h("Content-Length", b"3"), h("content-length", b"3")]).is_err());
    }
}
