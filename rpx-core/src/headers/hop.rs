//! Hop-by-hop headers (RFC 9110 §7.6.1) never cross the proxy.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

static FIXED: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// One of [`FIXED`], by a match on the name's length and bytes rather
/// than seven comparisons of header names.
fn is_fixed(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// True when the request asks to switch protocols (`Connection: upgrade`
/// plus an `Upgrade` header).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Removes `Connection`, every header it lists, and the fixed hop-by-hop
/// set. With `upgrade`, `Upgrade` is kept and `Connection: upgrade` restored.
///
/// ```
/// use http::HeaderMap;
/// use rpx_core::headers::strip_hop_by_hop;
/// let mut h = HeaderMap::new();
/// h.insert("connection", "keep-alive, x-secret".parse().unwrap());
/// h.insert("x-secret", "1".parse().unwrap());
/// h.insert("te", "trailers".parse().unwrap());
/// h.insert("x-kept", "1".parse().unwrap());
/// strip_hop_by_hop(&mut h, false);
/// assert_eq!(h.len(), 1);
/// assert!(h.contains_key("x-kept"));
/// ```
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages carry none: one pass over the names instead of seven
    // hashed removals.
    if !headers.keys().any(is_fixed) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        // Collected first: the names borrow the map we remove from.
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            if !(upgrade && name == header::UPGRADE) {
                headers.remove(name);
            }
        }
    }
    let upgrade_value = if upgrade {
        headers.remove(header::UPGRADE)
    } else {
        None
    };
    for name in &FIXED {
        headers.remove(name);
    }
    if let Some(v) = upgrade_value {
        headers.insert(header::UPGRADE, v);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_fixed_set_is_what_is_fixed_finds() {
        assert!(FIXED.iter().all(is_fixed));
        for other in [
            "connectio",
            "x-connection",
            "host",
            "t",
            "upgrades",
            "trailers",
        ] {
            assert!(!is_fixed(&HeaderName::from_static(other)), "{other}");
        }
    }

    #[test]
    fn strips_listed_and_fixed() {
        let mut h = map(&[
            ("connection", "close, X-A"),
            ("connection", "x-b"),
            ("x-a", "1"),
            ("x-b", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-forwarded-for", "1.1.1.1"),
            ("host", "a"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        left.sort();
        assert_eq!(left, ["host", "x-forwarded-for"]);
    }

    #[test]
    fn keeps_upgrade_when_upgrading() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("keep-alive", "1"),
        ]);
        assert!(is_upgrade_request(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert!(!h.contains_key("keep-alive"));
        assert!(!is_upgrade_request(&map(&[("upgrade", "websocket")])));
        assert!(!is_upgrade_request(&map(&[("connection", "upgrade")])));
    }
}
