//! The `Date` header value, formatted once a second per thread.
//!
//! The wall clock is read when the second changes; in between, the
//! connection's tick ([`crate::clock`]) says whether it has.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::clock;

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
const LEN: usize = 29;

struct Cached {
    /// When the wall clock's next second begins; None: not formatted yet.
    until: Option<Instant>,
    value: [u8; LEN],
}

thread_local! {
    static CACHED: RefCell<Cached> = const {
        RefCell::new(Cached { until: None, value: [0; LEN] })
    };
}

/// Appends the current HTTP date to `out`.
pub(super) fn extend(out: &mut Vec<u8>) {
    let now = clock::now();
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        if c.until.is_none_or(|until| now >= until) {
            let wall = SystemTime::now();
            let text = httpdate::fmt_http_date(wall);
            if text.len() != LEN {
                out.extend_from_slice(text.as_bytes());
                return;
            }
            c.value.copy_from_slice(text.as_bytes());
            let into = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
            c.until = Some(
                now + (Duration::from_secs(1) - Duration::from_nanos(into.subsec_nanos().into())),
            );
        }
        out.extend_from_slice(&c.value);
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_date_is_an_http_date_of_now() {
        let mut out = Vec::new();
        super::extend(&mut out);
        let text = std::str::from_utf8(&out).unwrap();
        let when = httpdate::parse_http_date(text).unwrap();
        let off = std::time::SystemTime::now().duration_since(when).unwrap();
        assert!(off.as_secs() < 5, "{text}");
    }
}
