//! nginx's `expires` (ngx_http_headers_module): `Expires` and `Cache-Control`
//! on 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308 responses.
//!
//! The directive is parsed once into an [`ExpiresRule`]; a value with
//! variables (nginx 1.7.9, `expires $expires;`) is rendered and parsed per
//! request by [`ExpiresRule::prepare`], and the resulting [`Expires`] is
//! written on the response by [`Expires::apply`] with the request's clock.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use http::{HeaderMap, StatusCode};
//! use rpx_core::headers::expires::Expires;
//!
//! let rule = Expires::parse(&["1h"]).unwrap();
//! let mut headers = HeaderMap::new();
//! let now = UNIX_EPOCH + Duration::from_secs(1_795_383_934);
//! rule.apply(StatusCode::OK, &mut headers, now);
//! assert_eq!(headers["expires"], "Sun, 22 Nov 2026 22:45:34 GMT");
//! assert_eq!(headers["cache-control"], "max-age=3600");
//! ```
//!
//! Where rpx differs from nginx, on purpose:
//! - `@time` is a time of day in UTC. nginx uses the server's local time zone
//!   (`ngx_next_time` calls `localtime`/`mktime`); rpx keeps no time zone and
//!   logs in UTC too (see `accesslog`), so on a UTC host both agree.
//! - An `Expires` date outside 1970–9999 is clamped to that range.
//! - A negative time is always `no-cache`. nginx tests the sign of the
//!   config's constant, so a variable rendering `-1h` under `modified` with a
//!   `Last-Modified` far enough ahead gets `max-age` there; here it does not.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{CACHE_CONTROL, EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::vars::{Scope, Template, TemplateError, VarCtx};

/// `Expires` of `epoch`.
const EPOCH_DATE: &str = "Thu, 01 Jan 1970 00:00:01 GMT";
/// `Expires` of `max`.
const MAX_DATE: &str = "Thu, 31 Dec 2037 23:55:55 GMT";
/// `Cache-Control` of `max`: ten years.
const MAX_AGE_MAX: &str = "max-age=315360000";
const NO_CACHE: &str = "no-cache";
const DAY: i64 = 86_400;
/// The last second an HTTP date (and `httpdate`) can show: 9999-12-31T23:59:59Z.
const LAST_HTTP_DATE: i64 = 253_402_300_799;

/// Why an `expires` value is refused, in nginx's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpiresError {
    /// Not one or two words (the count given).
    #[error("invalid number of arguments in \"expires\" directive ({0} given)")]
    Arity(usize),
    /// Not `epoch`, `max`, `off` or a time (or a first word other than `modified`).
    #[error("invalid value \"{0}\"")]
    InvalidValue(String),
    /// `expires modified @…`.
    #[error("daily time cannot be used with \"modified\" parameter")]
    DailyWithModified,
    /// `@` with more than 24 hours.
    #[error("daily time value must be less than 24 hours: \"{0}\"")]
    DailyTooLong(String),
    /// A variable problem in the value.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// A parsed `expires`. The default, as in nginx, is `Off`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Expires {
    /// `off`: the headers are left as they are.
    #[default]
    Off,
    /// `epoch`: `Expires: Thu, 01 Jan 1970 00:00:01 GMT`, `Cache-Control: no-cache`.
    Epoch,
    /// `max`: `Expires: Thu, 31 Dec 2037 23:55:55 GMT`, `Cache-Control: max-age=315360000`.
    Max,
    /// `[modified] [+|-]time`: `seconds` after now, or after the response's
    /// `Last-Modified` when `modified` (now when it has none).
    After {
        /// Negative means already expired: `Cache-Control: no-cache`.
        seconds: i64,
        /// Count from `Last-Modified`.
        modified: bool,
    },
    /// `@time`: the next such time of day (UTC), today or tomorrow.
    DailyAt {
        /// 0 to 86400 (`@24h` is allowed, as in nginx).
        seconds_of_day: u32,
    },
}

impl Expires {
    /// Parses the directive's words: `[modified] time`, `epoch`, `max` or `off`,
    /// taken literally (see [`ExpiresRule::new`] for values with variables).
    ///
    /// # Errors
    /// Not one or two words, or a value nginx refuses.
    pub fn parse(words: &[&str]) -> Result<Self, ExpiresError> {
        let (modified, value) = split_words(words)?;
        parse_value(value, modified)
    }

    /// The nginx words that parse back to this value (for the TOML writer).
    pub fn words(&self) -> Vec<String> {
        match *self {
            Expires::Off => vec!["off".into()],
            Expires::Epoch => vec!["epoch".into()],
            Expires::Max => vec!["max".into()],
            Expires::After {
                seconds,
                modified: false,
            } => vec![format_time(seconds)],
            Expires::After {
                seconds,
                modified: true,
            } => vec!["modified".into(), format_time(seconds)],
            Expires::DailyAt { seconds_of_day } => {
                vec![format!(
                    "@{}",
                    format_units(seconds_of_day.into(), DAILY_UNITS)
                )]
            }
        }
    }

    /// Sets `Expires` and `Cache-Control` on a response with `status`, as
    /// nginx's header filter does: only on the statuses listed in the module
    /// docs; `Expires` replaced, every `Cache-Control` collapsed into one.
    /// `now` is the request's clock (whole seconds count).
    pub fn apply(&self, status: StatusCode, headers: &mut HeaderMap, now: SystemTime) {
        if !status_allows(status) {
            return;
        }
        if let Some((expires, cache_control)) = self.values(headers, unix_secs(now)) {
            // `insert` keeps a present name where it was and drops its other
            // values: nginx rewrites the first `Cache-Control` and hides the rest.
            headers.insert(EXPIRES, expires);
            headers.insert(CACHE_CONTROL, cache_control);
        }
    }

    /// `Expires` and `Cache-Control` for a response at `now`; `None` for `off`.
    fn values(&self, headers: &HeaderMap, now: i64) -> Option<(HeaderValue, HeaderValue)> {
        let (at, no_cache) = match *self {
            Expires::Off => return None,
            Expires::Epoch => return Some((static_value(EPOCH_DATE), static_value(NO_CACHE))),
            Expires::Max => return Some((static_value(MAX_DATE), static_value(MAX_AGE_MAX))),
            // nginx special-cases zero, `modified 0` included: now, `max-age=0`.
            Expires::After { seconds: 0, .. } => {
                return Some((http_date(now)?, static_value("max-age=0")))
            }
            Expires::After { seconds, modified } => {
                let from = if modified {
                    last_modified(headers).unwrap_or(now)
                } else {
                    now
                };
                (from.saturating_add(seconds), seconds < 0)
            }
            Expires::DailyAt { seconds_of_day } => (next_daily(now, seconds_of_day), false),
        };
        let max_age = at.saturating_sub(now);
        let cache_control = if no_cache || max_age < 0 {
            static_value(NO_CACHE)
        } else {
            HeaderValue::try_from(format!("max-age={max_age}")).ok()?
        };
        Some((http_date(at)?, cache_control))
    }
}

/// nginx sets `expires` headers only on these statuses (as `add_header`
/// without `always`).
fn status_allows(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

/// The compiled `expires`: a constant, or a value with variables parsed per
/// request.
#[derive(Debug, Clone)]
pub struct ExpiresRule {
    kind: RuleKind,
}

#[derive(Debug, Clone)]
enum RuleKind {
    Const(Expires),
    /// The `modified` flag is fixed by the words; the value is rendered.
    Var {
        value: Template,
        modified: bool,
    },
}

impl ExpiresRule {
    /// Compiles the directive's words; a value without variables is parsed
    /// now, so a bad one fails the config as in nginx.
    ///
    /// # Errors
    /// Not one or two words, a value nginx refuses, or an unknown variable.
    pub fn new(words: &[&str], scope: &Scope) -> Result<Self, ExpiresError> {
        let (modified, value) = split_words(words)?;
        let template = Template::parse_in(value, scope)?;
        let kind = match template.as_constant() {
            Some(text) => RuleKind::Const(parse_value(text, modified)?),
            None => RuleKind::Var {
                value: template,
                modified,
            },
        };
        Ok(ExpiresRule { kind })
    }

    /// The value of a rule without variables.
    pub fn as_constant(&self) -> Option<&Expires> {
        match &self.kind {
            RuleKind::Const(e) => Some(e),
            RuleKind::Var { .. } => None,
        }
    }

    /// What this request's responses get. A rendered value that does not
    /// parse is `Off`: nginx skips it without a word in its log.
    pub fn prepare(&self, ctx: &VarCtx<'_>) -> Expires {
        match &self.kind {
            RuleKind::Const(e) => e.clone(),
            RuleKind::Var { value, modified } => {
                let text = value.render_to_string(ctx);
                parse_value(&text, *modified).unwrap_or_else(|e| {
                    tracing::debug!(value = %text, error = %e, "expires value skipped");
                    Expires::Off
                })
            }
        }
    }
}

/// `[modified] value` → (modified, value).
fn split_words<'w>(words: &[&'w str]) -> Result<(bool, &'w str), ExpiresError> {
    match *words {
        [value] => Ok((false, value)),
        ["modified", value] => Ok((true, value)),
        [first, _] => Err(ExpiresError::InvalidValue(first.to_owned())),
        _ => Err(ExpiresError::Arity(words.len())),
    }
}

/// `ngx_http_parse_expires`: after `modified`, `epoch`/`max`/`off` are not
/// keywords (so they are invalid) and `@` is refused.
fn parse_value(value: &str, modified: bool) -> Result<Expires, ExpiresError> {
    if !modified {
        match value {
            "epoch" => return Ok(Expires::Epoch),
            "max" => return Ok(Expires::Max),
            "off" => return Ok(Expires::Off),
            _ => {}
        }
    }
    let invalid = || ExpiresError::InvalidValue(value.to_owned());
    if let Some(time) = value.strip_prefix('@') {
        if modified {
            return Err(ExpiresError::DailyWithModified);
        }
        let seconds = parse_seconds(time).ok_or_else(invalid)?;
        return match u32::try_from(seconds) {
            Ok(seconds_of_day) if seconds <= DAY => Ok(Expires::DailyAt { seconds_of_day }),
            _ => Err(ExpiresError::DailyTooLong(value.to_owned())),
        };
    }
    let (negative, time) = match value.as_bytes().first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    let seconds = parse_seconds(time).ok_or_else(invalid)?;
    Ok(Expires::After {
        seconds: if negative { -seconds } else { seconds },
        modified,
    })
}

/// nginx's `ngx_parse_time` in seconds mode. Stricter than
/// [`crate::config::parse_duration`], as nginx is: units `y M w d h m s`
/// once each and largest first, no `ms`, a bare number is seconds, spaces
/// may follow a unit, and overflow is an error.
fn parse_seconds(text: &str) -> Option<i64> {
    /// Rank of `s`; a bare number followed by a space must come before it.
    const SEC: u8 = 7;
    let bytes = text.as_bytes();
    let (mut step, mut value, mut total, mut valid) = (0u8, 0i64, 0i64, false);
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        i += 1;
        if c.is_ascii_digit() {
            value = value.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
            valid = true;
            continue;
        }
        let (rank, scale): (u8, i64) = match c {
            b'y' => (1, 365 * DAY),
            b'M' => (2, 30 * DAY),
            b'w' => (3, 7 * DAY),
            b'd' => (4, DAY),
            b'h' => (5, 3600),
            b'm' if bytes.get(i) == Some(&b's') => return None,
            b'm' => (6, 60),
            b's' => (SEC, 1),
            b' ' => (SEC + 2, 1),
            _ => return None,
        };
        if step >= rank.min(SEC) {
            return None;
        }
        step = rank;
        total = total.checked_add(value.checked_mul(scale)?)?;
        value = 0;
        while bytes.get(i) == Some(&b' ') {
            i += 1;
        }
    }
    if valid {
        total.checked_add(value)
    } else {
        None
    }
}

const UNITS: &[(char, u64)] = &[
    ('y', 365 * 86_400),
    ('d', 86_400),
    ('h', 3600),
    ('m', 60),
    ('s', 1),
];
/// `@24h` reads better than `@1d`.
const DAILY_UNITS: &[(char, u64)] = &[('h', 3600), ('m', 60), ('s', 1)];

/// A signed time in nginx units: `-1s`, `30d`, `1h30m`.
fn format_time(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    format!("{sign}{}", format_units(seconds.unsigned_abs(), UNITS))
}

fn format_units(mut seconds: u64, units: &[(char, u64)]) -> String {
    if seconds == 0 {
        return "0".into();
    }
    let mut out = String::new();
    for &(unit, scale) in units {
        if seconds >= scale {
            // Writing to a `String` cannot fail.
            let _ = write!(out, "{}{unit}", seconds / scale);
            seconds %= scale;
        }
    }
    out
}

/// The next `seconds_of_day` (UTC) strictly after `now`, as `ngx_next_time`.
fn next_daily(now: i64, seconds_of_day: u32) -> i64 {
    let today = now.div_euclid(DAY) * DAY + i64::from(seconds_of_day);
    if today > now {
        today
    } else {
        today + DAY
    }
}

/// The response's `Last-Modified` (the last one, as nginx's upstream keeps);
/// one that does not parse counts as absent, as in nginx.
fn last_modified(headers: &HeaderMap) -> Option<i64> {
    let value = headers.get_all(LAST_MODIFIED).iter().next_back()?;
    let time = httpdate::parse_http_date(value.to_str().ok()?).ok()?;
    Some(unix_secs(time))
}

/// Whole seconds since the Unix epoch, negative before it.
fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// An HTTP date; `None` never happens (the text is ASCII) but costs nothing.
fn http_date(secs: i64) -> Option<HeaderValue> {
    // `httpdate` panics outside 1970–9999.
    let secs = u64::try_from(secs.clamp(0, LAST_HTTP_DATE)).ok()?;
    let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
    HeaderValue::try_from(text).ok()
}

fn static_value(s: &'static str) -> HeaderValue {
    HeaderValue::from_static(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sun, 22 Nov 2026 21:45:34 GMT.
    const NOW: u64 = 1_795_383_934;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn after(seconds: i64) -> Expires {
        Expires::After {
            seconds,
            modified: false,
        }
    }

    /// (Expires, Cache-Control) after applying `words` to a 200 with `headers`.
    fn run(words: &[&str], mut headers: HeaderMap) -> (Option<String>, Vec<String>) {
        Expires::parse(words)
            .unwrap()
            .apply(StatusCode::OK, &mut headers, now());
        let text = |v: &HeaderValue| v.to_str().unwrap().to_owned();
        (
            headers.get(EXPIRES).map(text),
            headers.get_all(CACHE_CONTROL).iter().map(text).collect(),
        )
    }

    fn pair(expires: &str, cache_control: &str) -> (Option<String>, Vec<String>) {
        (Some(expires.into()), vec![cache_control.into()])
    }

    fn with_last_modified(date: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LAST_MODIFIED, HeaderValue::from_str(date).unwrap());
        h
    }

    #[test]
    fn each_form() {
        let empty = HeaderMap::new;
        for (words, want) in [
            (
                &["1h"][..],
                pair("Sun, 22 Nov 2026 22:45:34 GMT", "max-age=3600"),
            ),
            (
                &["+1d"],
                pair("Mon, 23 Nov 2026 21:45:34 GMT", "max-age=86400"),
            ),
            (&["-1"], pair("Sun, 22 Nov 2026 21:45:33 GMT", "no-cache")),
            (&["-1h"], pair("Sun, 22 Nov 2026 20:45:34 GMT", "no-cache")),
            // Zero is `max-age=0` (nginx docs: "positive or zero"), Expires now.
            (&["0"], pair("Sun, 22 Nov 2026 21:45:34 GMT", "max-age=0")),
            (&["epoch"], pair(EPOCH_DATE, "no-cache")),
            (&["max"], pair(MAX_DATE, "max-age=315360000")),
            // Later today, then tomorrow once the time has passed.
            (
                &["@22h"],
                pair("Sun, 22 Nov 2026 22:00:00 GMT", "max-age=866"),
            ),
            (
                &["@15h30m"],
                pair("Mon, 23 Nov 2026 15:30:00 GMT", "max-age=63866"),
            ),
            (
                &["@21h45m34s"],
                pair("Mon, 23 Nov 2026 21:45:34 GMT", "max-age=86400"),
            ),
            (
                &["@24h"],
                pair("Mon, 23 Nov 2026 00:00:00 GMT", "max-age=8066"),
            ),
            // Without Last-Modified, `modified` counts from now.
            (
                &["modified", "2h"],
                pair("Sun, 22 Nov 2026 23:45:34 GMT", "max-age=7200"),
            ),
        ] {
            assert_eq!(run(words, empty()), want, "{words:?}");
        }
        assert_eq!(run(&["off"], empty()), (None, vec![]));
    }

    #[test]
    fn modified_counts_from_last_modified() {
        let lm = || with_last_modified("Sun, 22 Nov 2026 20:45:34 GMT");
        assert_eq!(
            run(&["modified", "+2h"], lm()),
            pair("Sun, 22 Nov 2026 22:45:34 GMT", "max-age=3600")
        );
        // Already past: the date in the past and no-cache.
        assert_eq!(
            run(&["modified", "30m"], lm()),
            pair("Sun, 22 Nov 2026 21:15:34 GMT", "no-cache")
        );
        assert_eq!(
            run(&["modified", "-1h"], lm()),
            pair("Sun, 22 Nov 2026 19:45:34 GMT", "no-cache")
        );
        // nginx's zero case ignores Last-Modified.
        assert_eq!(
            run(&["modified", "0"], lm()),
            pair("Sun, 22 Nov 2026 21:45:34 GMT", "max-age=0")
        );
        // An unparseable Last-Modified counts as none.
        assert_eq!(
            run(&["modified", "1h"], with_last_modified("yesterday")),
            pair("Sun, 22 Nov 2026 22:45:34 GMT", "max-age=3600")
        );
    }

    #[test]
    fn only_nginx_statuses() {
        let rule = after(3600);
        for code in [200, 201, 204, 206, 301, 302, 303, 304, 307, 308] {
            let mut h = HeaderMap::new();
            rule.apply(StatusCode::from_u16(code).unwrap(), &mut h, now());
            assert_eq!(h.len(), 2, "{code}");
        }
        for code in [100, 202, 203, 205, 300, 305, 400, 404, 410, 500, 502] {
            let mut h = HeaderMap::new();
            h.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
            rule.apply(StatusCode::from_u16(code).unwrap(), &mut h, now());
            assert_eq!(h.len(), 1, "{code}");
            assert_eq!(h[CACHE_CONTROL], "private");
        }
    }

    #[test]
    fn replaces_upstream_headers_in_place() {
        let mut h = HeaderMap::new();
        h.append(CACHE_CONTROL, HeaderValue::from_static("private"));
        h.insert("x-a", HeaderValue::from_static("1"));
        h.append(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(EXPIRES, HeaderValue::from_static("0"));
        after(3600).apply(StatusCode::OK, &mut h, now());
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["cache-control", "x-a", "expires"]);
        assert_eq!(h.get_all(CACHE_CONTROL).iter().count(), 1);
        assert_eq!(h[CACHE_CONTROL], "max-age=3600");
        assert_eq!(h.get_all(EXPIRES).iter().count(), 1);
        assert_eq!(h[EXPIRES], "Sun, 22 Nov 2026 22:45:34 GMT");

        // `off` leaves them alone.
        let mut h = HeaderMap::new();
        h.insert(EXPIRES, HeaderValue::from_static("0"));
        Expires::Off.apply(StatusCode::OK, &mut h, now());
        assert_eq!(h.len(), 1);
        assert_eq!(h[EXPIRES], "0");
    }

    #[test]
    fn parses_like_ngx_parse_time() {
        for (value, want) in [
            ("30", 30),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("1h30", 3630),
            ("1y", 31_536_000),
            ("1M", 2_592_000),
            ("2w", 1_209_600),
            (
                "1y2M3w4d5h6m7s",
                31_536_000 + 5_184_000 + 1_814_400 + 345_600 + 18_367,
            ),
        ] {
            assert_eq!(parse_seconds(value), Some(want), "{value}");
        }
        for value in [
            "",
            "h",
            "1x",
            "1ms",
            "1s1h",
            "1h1h",
            "1.5h",
            " 1h",
            "99999999999999999999",
            "300000000000y",
        ] {
            assert_eq!(parse_seconds(value), None, "{value}");
        }
    }

    #[test]
    fn parse_errors() {
        use ExpiresError::*;
        let invalid = |s: &str| Err(InvalidValue(s.into()));
        for (words, want) in [
            (&[][..], Err(Arity(0))),
            (&["modified", "1h", "x"], Err(Arity(3))),
            (&["later", "1h"], invalid("later")),
            (&["Modified", "1h"], invalid("Modified")),
            (&["soon"], invalid("soon")),
            (&[""], invalid("")),
            (&["1ms"], invalid("1ms")),
            (&["--1"], invalid("--1")),
            (&["@-1h"], invalid("@-1h")),
            (&["@25h"], Err(DailyTooLong("@25h".into()))),
            (&["modified", "@1h"], Err(DailyWithModified)),
            // After `modified`, keywords are not keywords.
            (&["modified", "epoch"], invalid("epoch")),
            (&["modified", "off"], invalid("off")),
        ] {
            assert_eq!(Expires::parse(words), want, "{words:?}");
        }
        assert_eq!(
            InvalidValue("soon".into()).to_string(),
            "invalid value \"soon\""
        );
        let err = ExpiresRule::new(&["$nope"], &Scope::new()).unwrap_err();
        assert!(matches!(err, Template(TemplateError::UnknownVariable(_))));
        // A constant value is checked when the config is built.
        assert!(ExpiresRule::new(&["soon"], &Scope::new()).is_err());
    }

    #[test]
    fn words_round_trip() {
        for (e, words) in [
            (Expires::Off, &["off"][..]),
            (Expires::Epoch, &["epoch"]),
            (Expires::Max, &["max"]),
            (after(0), &["0"]),
            (after(-1), &["-1s"]),
            (after(30 * 86_400), &["30d"]),
            (after(31_536_000 + 5400), &["1y1h30m"]),
            (
                Expires::After {
                    seconds: 86_400,
                    modified: true,
                },
                &["modified", "1d"],
            ),
            (
                Expires::DailyAt {
                    seconds_of_day: 55_800,
                },
                &["@15h30m"],
            ),
            (
                Expires::DailyAt {
                    seconds_of_day: 86_400,
                },
                &["@24h"],
            ),
        ] {
            assert_eq!(e.words(), words);
            assert_eq!(Expires::parse(words), Ok(e));
        }
    }

    fn prepared(rule: &ExpiresRule, uri: &str) -> Expires {
        let req = http::Request::get(uri)
            .header("host", "h")
            .body(())
            .unwrap();
        let conn = crate::conn::conn_info(&req);
        let ctx = VarCtx::new(&req, &conn, "/", "s");
        rule.prepare(&ctx)
    }

    #[test]
    fn variable_value_parsed_per_request() {
        let rule = ExpiresRule::new(&["$arg_e"], &Scope::new()).unwrap();
        assert_eq!(rule.as_constant(), None);
        assert_eq!(prepared(&rule, "/?e=1h"), after(3600));
        assert_eq!(prepared(&rule, "/?e=-1"), after(-1));
        assert_eq!(prepared(&rule, "/?e=epoch"), Expires::Epoch);
        assert_eq!(prepared(&rule, "/?e=max"), Expires::Max);
        assert_eq!(prepared(&rule, "/?e=off"), Expires::Off);
        assert_eq!(
            prepared(&rule, "/?e=@15h"),
            Expires::DailyAt {
                seconds_of_day: 54_000
            }
        );
        // Values that do not parse are skipped, as nginx does.
        assert_eq!(prepared(&rule, "/?e=soon"), Expires::Off);
        assert_eq!(prepared(&rule, "/"), Expires::Off);

        let mut h = HeaderMap::new();
        prepared(&rule, "/?e=1h").apply(StatusCode::OK, &mut h, now());
        assert_eq!(h[CACHE_CONTROL], "max-age=3600");

        let rule = ExpiresRule::new(&["modified", "$arg_e"], &Scope::new()).unwrap();
        assert_eq!(
            prepared(&rule, "/?e=2h"),
            Expires::After {
                seconds: 7200,
                modified: true
            }
        );
        assert_eq!(prepared(&rule, "/?e=epoch"), Expires::Off);
        assert_eq!(prepared(&rule, "/?e=@1h"), Expires::Off);
    }

    #[test]
    fn constant_rule() {
        let rule = ExpiresRule::new(&["modified", "1h"], &Scope::new()).unwrap();
        let want = Expires::After {
            seconds: 3600,
            modified: true,
        };
        assert_eq!(rule.as_constant(), Some(&want));
        assert_eq!(prepared(&rule, "/"), want);
    }

    #[test]
    fn dates_clamped() {
        let mut h = HeaderMap::new();
        after(20_000 * 31_536_000).apply(StatusCode::OK, &mut h, now());
        assert_eq!(h[EXPIRES], "Fri, 31 Dec 9999 23:59:59 GMT");
        let mut h = with_last_modified("Thu, 01 Jan 1970 00:00:00 GMT");
        Expires::parse(&["modified", "-1y"])
            .unwrap()
            .apply(StatusCode::OK, &mut h, now());
        assert_eq!(h[EXPIRES], "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(h[CACHE_CONTROL], "no-cache");
    }
}
