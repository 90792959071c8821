//! nginx's `limit_conn_zone` / `limit_conn` (ngx_http_limit_conn_module):
//! how many requests per key are in progress at once. A request holds a
//! [`Slots`] while it is served, its response body included (a download
//! counts until it ends); an HTTP/2 stream is a request of its own, as in
//! nginx.
//!
//! A zone's size bounds how many keys can be counted at once (nginx's 64
//! bytes a key on 64-bit machines); a request whose key finds no room is
//! refused, as nginx refuses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{Request, StatusCode};

use super::rate::{zone_key, ZoneKey};

/// Bytes a key costs in nginx's accounting of a zone's size.
const STATE_BYTES: u64 = 64;
/// nginx ignores keys longer than this.
const MAX_KEY: usize = 255;

/// A `limit_conn_zone`: requests in progress per key.
#[derive(Debug)]
pub struct ConnZone {
    name: Arc<str>,
    key: ZoneKey,
    size: u64,
    capacity: usize,
    counts: Mutex<HashMap<Box<[u8]>, u32>>,
}

impl ConnZone {
    /// A zone `name` of `size` bytes keyed on `key`.
    ///
    /// # Errors
    /// A zone under 32 KiB (nginx's eight pages).
    pub fn new(name: &str, key: ZoneKey, size: u64) -> Result<ConnZone, super::rate::ZoneError> {
        if size < 8 * 4096 {
            return Err(super::rate::ZoneError::TooSmall(name.to_owned()));
        }
        Ok(ConnZone {
            name: name.into(),
            key,
            size,
            capacity: usize::try_from(size / STATE_BYTES).unwrap_or(usize::MAX),
            counts: Mutex::default(),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its size in bytes, as configured.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Requests in progress for `key`.
    pub fn count(&self, key: &[u8]) -> u32 {
        self.lock().get(key).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<[u8]>, u32>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more for `key` if under `max` (and the zone has room).
    fn take(&self, key: &[u8], max: u32) -> bool {
        let mut counts = self.lock();
        if let Some(n) = counts.get_mut(key) {
            if *n >= max {
                return false;
            }
            *n += 1;
            return true;
        }
        if counts.len() >= self.capacity {
            tracing::error!(
                "could not allocate node in limit_conn zone \"{}\"",
                self.name
            );
            return false;
        }
        counts.insert(key.into(), 1);
        true
    }

    fn give_back(&self, key: &[u8]) {
        let mut counts = self.lock();
        if let Some(n) = counts.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(key);
            }
        }
    }
}

/// One `limit_conn zone number`.
#[derive(Debug, Clone)]
pub struct ConnLimit {
    zone: Arc<ConnZone>,
    max: u32,
}

impl ConnLimit {
    /// At most `max` requests in progress per key of `zone`.
    pub fn new(zone: Arc<ConnZone>, max: u32) -> ConnLimit {
        ConnLimit { zone, max }
    }
}

/// A level's `limit_conn`s with `limit_conn_status` and
/// `limit_conn_dry_run`.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    limits: Arc<[ConnLimit]>,
    status: StatusCode,
    dry_run: bool,
    log_level: tracing::Level,
    server_name: Arc<str>,
}

/// What the limits decided (`$limit_conn_status`).
#[derive(Debug)]
pub enum ConnDecision {
    /// Counted: the request holds its slots until it is done.
    Passed(Slots),
    /// Over a limit: answered with the status.
    Rejected(StatusCode),
    /// `limit_conn_dry_run`: would have been refused; served, uncounted.
    RejectedDryRun,
}

/// `$limit_conn_status` once decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnStatus(pub &'static str);

impl ConnDecision {
    /// `$limit_conn_status`.
    pub fn status(&self) -> ConnStatus {
        ConnStatus(match self {
            ConnDecision::Passed(_) => "PASSED",
            ConnDecision::Rejected(_) => "REJECTED",
            ConnDecision::RejectedDryRun => "REJECTED_DRY_RUN",
        })
    }
}

/// The counts a request holds; given back when it is dropped.
#[derive(Debug, Default)]
pub struct Slots(Vec<(Arc<ConnZone>, Box<[u8]>)>);

impl Drop for Slots {
    fn drop(&mut self) {
        for (zone, key) in &self.0 {
            zone.give_back(key);
        }
    }
}

impl ConnLimits {
    /// `limits` in order; refused requests get `status` (nginx's 503).
    pub fn new(
        limits: Vec<ConnLimit>,
        status: StatusCode,
        dry_run: bool,
        server_name: Arc<str>,
    ) -> ConnLimits {
        ConnLimits {
            limits: limits.into(),
            status,
            dry_run,
            log_level: tracing::Level::ERROR,
            server_name,
        }
    }

    /// `limit_conn_log_level`.
    pub fn log_level(mut self, level: tracing::Level) -> ConnLimits {
        self.log_level = level;
        self
    }

    /// nginx's preaccess check: every zone counts the request, or none
    /// does. `None`: every key was empty.
    pub fn decide<B>(&self, req: &Request<B>) -> Option<ConnDecision> {
        let mut slots = Slots::default();
        for limit in self.limits.iter() {
            let key = zone_key(&limit.zone.key, req, &self.server_name);
            let key = key.bytes();
            if key.is_empty() || key.len() > MAX_KEY {
                continue;
            }
            if !limit.zone.take(key, limit.max) {
                // `slots` gives back what the earlier zones counted.
                if self.dry_run {
                    return Some(ConnDecision::RejectedDryRun);
                }
                self.log(&limit.zone.name);
                return Some(ConnDecision::Rejected(self.status));
            }
            slots.0.push((limit.zone.clone(), key.into()));
        }
        (!slots.0.is_empty()).then_some(ConnDecision::Passed(slots))
    }

    fn log(&self, zone: &str) {
        match self.log_level {
            tracing::Level::ERROR => {
                tracing::error!("limiting connections by zone \"{zone}\"");
            }
            tracing::Level::WARN => tracing::warn!("limiting connections by zone \"{zone}\""),
            _ => tracing::info!("limiting connections by zone \"{zone}\""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_given_back_when_dropped() {
        let zone = Arc::new(ConnZone::new("z", ZoneKey::BinaryRemoteAddr, 1 << 20).unwrap());
        let limits = ConnLimits::new(
            vec![ConnLimit::new(zone.clone(), 2)],
            StatusCode::SERVICE_UNAVAILABLE,
            false,
            "".into(),
        );
        let req = Request::new(());
        let a = limits.decide(&req).unwrap();
        let b = limits.decide(&req).unwrap();
        assert!(matches!(
            (&a, &b),
            (ConnDecision::Passed(_), ConnDecision::Passed(_))
        ));
        assert!(matches!(
            limits.decide(&req),
            Some(ConnDecision::Rejected(_))
        ));
        drop(a);
        assert!(matches!(limits.decide(&req), Some(ConnDecision::Passed(_))));
        drop(b);
        assert_eq!(
            zone.count(&[127, 0, 0, 1]),
            0,
            "the decision just made was dropped too"
        );
        assert!(zone.lock().is_empty(), "keys at zero are forgotten");
    }

    #[test]
    fn a_full_zone_refuses_new_keys() {
        let zone = Arc::new(ConnZone::new("z", ZoneKey::BinaryRemoteAddr, 8 * 4096).unwrap());
        let held: Vec<_> = (0..512u32)
            .map(|i| zone.take(&i.to_be_bytes(), 1))
            .collect();
        assert!(held.iter().all(|&t| t));
        assert!(!zone.take(&9999u32.to_be_bytes(), 1));
    }
}
