//! nginx's units: sizes (`10m`, `512k`) and times (`30s`, `1m30s`, `1d`).

use std::time::Duration;

/// Parses an nginx size: bytes, or a number with `k`, `m` or `g` (either case).
///
/// ```
/// assert_eq!(rpx_core::config::parse_size("10m"), Some(10 * 1024 * 1024));
/// assert_eq!(rpx_core::config::parse_size("0"), Some(0));
/// ```
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1024),
        b'm' | b'M' => (&s[..s.len() - 1], 1024 * 1024),
        b'g' | b'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Most sessions a cache is given: rustls allocates the whole cache up
/// front, so a `shared:SSL:1g` must not reserve gigabytes.
pub const MAX_SESSION_CACHE: usize = 1 << 20;

/// Parses `ssl_session_cache` words into a number of sessions (0: no
/// cache): `off` and `none` (nginx keeps nothing either way),
/// `builtin[:sessions]` (20480 by default, as OpenSSL), and
/// `shared:name:size` at nginx's "about 4000 sessions per megabyte". Both
/// kinds together add up; the total is capped at [`MAX_SESSION_CACHE`].
///
/// ```
/// use rpx_core::config::parse_session_cache;
/// assert_eq!(parse_session_cache(&["shared:SSL:10m"]), Ok(40_000));
/// assert_eq!(parse_session_cache(&["off"]), Ok(0));
/// assert!(parse_session_cache(&["shared:SSL"]).is_err());
/// ```
///
/// # Errors
/// The word that is not one of these forms.
pub fn parse_session_cache(words: &[&str]) -> Result<usize, String> {
    if let [one] = words {
        if matches!(*one, "off" | "none") {
            return Ok(0);
        }
    }
    let mut total: usize = 0;
    for w in words {
        let n = match w.split(':').collect::<Vec<_>>().as_slice() {
            ["builtin"] => Some(20_480),
            ["builtin", n] => n.parse::<usize>().ok().filter(|n| *n > 0),
            ["shared", name, size] if !name.is_empty() => parse_size(size)
                .filter(|s| *s > 0)
                .map(|s| usize::try_from(s / 1024 * 4000 / 1024).unwrap_or(usize::MAX)),
            _ => None,
        }
        .ok_or_else(|| format!("invalid session cache \"{w}\""))?;
        total = total.saturating_add(n);
    }
    if total == 0 {
        return Err("invalid session cache: nothing given".into());
    }
    Ok(total.min(MAX_SESSION_CACHE))
}

/// Parses an nginx time: a bare number is seconds; otherwise a sequence of
/// `<n><unit>` with units `ms s m h d w M y`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(rpx_core::config::parse_duration("1m30s"), Some(Duration::from_secs(90)));
/// assert_eq!(rpx_core::config::parse_duration("86400"), Some(Duration::from_secs(86400)));
/// assert_eq!(rpx_core::config::parse_duration("500ms"), Some(Duration::from_millis(500)));
/// ```
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok().map(Duration::from_secs);
    }
    let mut total_ms: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            let ms = match rest.as_bytes().first()? {
                b's' => 1_000,
                b'm' => 60_000,
                b'h' => 3_600_000,
                b'd' => 86_400_000,
                b'w' => 604_800_000,
                b'M' => 2_592_000_000,
                b'y' => 31_536_000_000,
                _ => return None,
            };
            (ms, 1)
        };
        rest = &rest[len..];
        total_ms = total_ms.checked_add(n.checked_mul(unit_ms)?)?;
    }
    Some(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (s, want) in [
            ("1024", Some(1024)),
            ("1k", Some(1024)),
            ("1K", Some(1024)),
            ("8m", Some(8 << 20)),
            ("2g", Some(2 << 30)),
            ("", None),
            ("m", None),
            ("1.5m", None),
            ("-1", None),
            ("10x", None),
        ] {
            assert_eq!(parse_size(s), want, "{s:?}");
        }
    }

    #[test]
    fn durations() {
        let s = Duration::from_secs;
        for (t, want) in [
            ("30", Some(s(30))),
            ("30s", Some(s(30))),
            ("5m", Some(s(300))),
            ("1h", Some(s(3600))),
            ("1d", Some(s(86400))),
            ("1h30m", Some(s(5400))),
            ("250ms", Some(Duration::from_millis(250))),
            ("1w", Some(s(604800))),
            ("", None),
            ("s", None),
            ("10q", None),
            ("1.5s", None),
        ] {
            assert_eq!(parse_duration(t), want, "{t:?}");
        }
    }
}
