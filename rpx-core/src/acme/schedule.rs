//! When to renew and when to retry: two thirds into a certificate's
//! lifetime (or inside the CA's ARI window), spread by jitter so that many
//! certificates issued together are not renewed together; failures back
//! off exponentially.

use std::time::{Duration, SystemTime};

/// A uniform random number in `[0, 1)` from the crypto provider's RNG.
pub(crate) fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    if crate::tls::provider().secure_random.fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Two thirds into the validity period, earlier by up to a thirtieth of it
/// (`r` in `[0, 1)` picks how much).
pub(crate) fn renewal_time(not_before: SystemTime, not_after: SystemTime, r: f64) -> SystemTime {
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    let at = not_before + lifetime.mul_f64(2.0 / 3.0);
    at.checked_sub(lifetime.mul_f64(r.clamp(0.0, 1.0) / 30.0))
        .unwrap_or(at)
}

/// A point inside the CA's suggested window (RFC 9773 §4.2).
pub(crate) fn in_window(start: SystemTime, end: SystemTime, r: f64) -> SystemTime {
    let width = end.duration_since(start).unwrap_or(Duration::ZERO);
    start + width.mul_f64(r.clamp(0.0, 1.0))
}

/// The wait after the `failures`-th failure in a row: `min` doubled each
/// time up to `max`, with ±10 % jitter (`r` in `[0, 1)`).
pub(crate) fn backoff(failures: u32, min: Duration, max: Duration, r: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let base = min.saturating_mul(1u32 << exp.min(20)).min(max);
    base.mul_f64(0.9 + 0.2 * r.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn renewal_is_two_thirds_in_minus_jitter() {
        let nb = SystemTime::UNIX_EPOCH + DAY * 1000;
        let na = nb + DAY * 90;
        assert_eq!(renewal_time(nb, na, 0.0), nb + DAY * 60);
        assert_eq!(renewal_time(nb, na, 1.0), nb + DAY * 57);
        let mid = renewal_time(nb, na, 0.5);
        assert!(mid > nb + DAY * 57 && mid < nb + DAY * 60);
    }

    #[test]
    fn window_points_stay_inside() {
        let s = SystemTime::UNIX_EPOCH + DAY;
        let e = s + DAY * 2;
        assert_eq!(in_window(s, e, 0.0), s);
        assert_eq!(in_window(s, e, 0.5), s + DAY);
        // A window the wrong way round is its start.
        assert_eq!(in_window(e, s, 0.7), e);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let min = Duration::from_secs(10);
        let max = Duration::from_secs(3600);
        assert_eq!(backoff(1, min, max, 0.5), min);
        assert_eq!(backoff(2, min, max, 0.5), min * 2);
        assert_eq!(backoff(4, min, max, 0.5), min * 8);
        assert_eq!(backoff(40, min, max, 0.5), max);
        assert!(backoff(1, min, max, 0.0) < min && backoff(1, min, max, 0.99) > min);
    }

    #[test]
    fn random_numbers_are_in_range() {
        for _ in 0..100 {
            let r = unit_random();
            assert!((0.0..1.0).contains(&r));
        }
    }
}
