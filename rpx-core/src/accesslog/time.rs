//! Timestamps for logs without a date crate: UTC civil time from the Unix
//! clock (rpx logs in UTC, as containers usually run).

use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Year, month (1–12), day, hour, minute, second of a Unix time (UTC).
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// nginx's `$time_local`: `22/Nov/2026:21:25:34 +0000`.
pub(crate) fn time_local(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(unix(t));
    format!(
        "{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02} +0000",
        MONTHS[(mo - 1) as usize]
    )
}

/// nginx's `$time_iso8601`: `2026-11-22T21:25:34+00:00`.
pub(crate) fn time_iso8601(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(unix(t));
    format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+00:00")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_383_934); // 2026-11-22T21:45:34Z
        assert_eq!(time_local(t), "22/Nov/2026:21:45:34 +0000");
        assert_eq!(time_iso8601(t), "2026-11-22T21:45:34+00:00");
        assert_eq!(time_iso8601(UNIX_EPOCH), "1970-01-01T00:00:00+00:00");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(time_iso8601(leap), "2000-02-29T00:00:00+00:00");
    }
}
