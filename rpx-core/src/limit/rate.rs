//! nginx's `limit_req_zone` / `limit_req` (ngx_http_limit_req_module): a
//! leaky bucket per key, in nginx's own integer arithmetic (thousandths of
//! a request, milliseconds), so a burst is let through, delayed or refused
//! exactly where nginx does it.
//!
//! A zone keeps one bucket per key; its size bounds how many (nginx's 128
//! bytes a state on 64-bit machines), the least recently used going first
//! when it is full, as nginx evicts. A zone outlives a reload that keeps
//! its name, size and key ([`RateZone::carry_over`]).

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use lru::LruCache;

use crate::conn::conn_info;
use crate::request::request_path;
use crate::vars::{Template, VarCtx};

/// Bytes a bucket costs in nginx's accounting of a zone's size.
const STATE_BYTES: u64 = 128;

/// What makes a zone's key.
#[derive(Debug, Clone)]
pub enum ZoneKey {
    /// `$binary_remote_addr`: the client's address, as bytes.
    BinaryRemoteAddr,
    /// Any other text with variables; an empty value is not limited.
    Template(Template),
}

/// A `limit_req_zone`: its rate and its buckets.
#[derive(Debug)]
pub struct RateZone {
    name: Arc<str>,
    key: ZoneKey,
    /// The key as written, to tell a reload that changes it.
    key_text: Box<str>,
    /// Requests per 1000 seconds (nginx stores `r/s` × 1000).
    rate: u64,
    size: u64,
    buckets: Arc<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    epoch: Instant,
    map: Mutex<LruCache<Box<[u8]>, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Requests over the rate, in thousandths.
    excess: u64,
    /// When it was last accounted, in ms since the zone's epoch.
    last: u64,
}

/// Why a zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    /// Below nginx's minimum of eight pages.
    #[error("zone \"{0}\" is too small")]
    TooSmall(String),
    /// Not `Nr/s` or `Nr/m` with N > 0.
    #[error("invalid rate \"{0}\"")]
    Rate(String),
}

impl RateZone {
    /// A zone `name` of `size` bytes keyed on `key` (written as in the
    /// config, e.g. `$binary_remote_addr`) at `rate` (`10r/s`, `30r/m`).
    ///
    /// # Errors
    /// A zone under 32 KiB, a rate that does not parse.
    pub fn new(
        name: &str,
        key: ZoneKey,
        key_text: &str,
        size: u64,
        rate: &str,
    ) -> Result<RateZone, ZoneError> {
        if size < 8 * 4096 {
            return Err(ZoneError::TooSmall(name.to_owned()));
        }
        let rate = parse_rate(rate).ok_or_else(|| ZoneError::Rate(rate.to_owned()))?;
        Ok(RateZone {
            name: name.into(),
            key,
            key_text: key_text.into(),
            rate,
            size,
            buckets: Arc::new(Buckets::new(size)),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Keeps the buckets of `previous` (the zone of the config being
    /// replaced) when it has the same size and key, as nginx keeps a shared
    /// zone across a reload; a new rate applies to them from now on.
    ///
    /// # Errors
    /// The key changed: nginx refuses such a reload.
    pub fn carry_over(&mut self, previous: &RateZone) -> Result<(), String> {
        if previous.key_text != self.key_text {
            return Err(format!(
                "limit_req \"{}\" uses the \"{}\" key while previously it used the \"{}\" key",
                self.name, self.key_text, previous.key_text
            ));
        }
        if previous.size == self.size {
            self.buckets = previous.buckets.clone();
        }
        Ok(())
    }

    /// How many keys have a bucket.
    pub fn len(&self) -> usize {
        self.buckets.lock().len()
    }

    /// No key has a bucket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Buckets {
    fn new(size: u64) -> Buckets {
        let capacity = usize::try_from(size / STATE_BYTES).unwrap_or(usize::MAX);
        Buckets {
            epoch: Instant::now(),
            map: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Box<[u8]>, Bucket>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// `10r/s` → 10000, `30r/m` → 500: requests per 1000 s, rounded down as
/// nginx rounds.
fn parse_rate(text: &str) -> Option<u64> {
    let (n, scale) = if let Some(n) = text.strip_suffix("r/s") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix("r/m") {
        (n, 60)
    } else {
        (text, 1)
    };
    let n: u64 = n.parse().ok().filter(|&n| n > 0)?;
    Some(n.checked_mul(1000)? / scale).filter(|&r| r > 0)
}

/// One `limit_req zone=… [burst=N] [nodelay | delay=N]`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    zone: Arc<RateZone>,
    /// Thousandths of a request.
    burst: u64,
    /// Excess let through undelayed, in thousandths (`u64::MAX`:
    /// `nodelay`).
    delay: u64,
}

impl RateLimit {
    /// `zone` with `burst` requests over the rate held, the first `delay`
    /// of them not delayed (`None`: `nodelay`, none delayed).
    pub fn new(zone: Arc<RateZone>, burst: u64, delay: Option<u64>) -> RateLimit {
        RateLimit {
            zone,
            burst: burst.saturating_mul(1000),
            delay: delay.map_or(u64::MAX, |d| d.saturating_mul(1000)),
        }
    }
}

/// A level's `limit_req`s with `limit_req_status` and `limit_req_dry_run`.
#[derive(Debug, Clone)]
pub struct RateLimits {
    limits: Arc<[RateLimit]>,
    status: StatusCode,
    dry_run: bool,
    /// `limit_req_log_level`.
    log_level: tracing::Level,
    /// `$server_name` for keys that use it.
    server_name: Arc<str>,
}

/// What the limits decided (`$limit_req_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Under the rate, or within what is let through undelayed.
    Passed,
    /// Within the burst: served after the delay.
    Delayed(Duration),
    /// Over the burst: answered with the status.
    Rejected(StatusCode),
    /// `limit_req_dry_run`: would have been delayed; served now.
    DelayedDryRun,
    /// `limit_req_dry_run`: would have been refused; served.
    RejectedDryRun,
}

impl RateDecision {
    /// `$limit_req_status`.
    pub fn as_str(self) -> &'static str {
        match self {
            RateDecision::Passed => "PASSED",
            RateDecision::Delayed(_) => "DELAYED",
            RateDecision::Rejected(_) => "REJECTED",
            RateDecision::DelayedDryRun => "DELAYED_DRY_RUN",
            RateDecision::RejectedDryRun => "REJECTED_DRY_RUN",
        }
    }
}

impl RateLimits {
    /// `limits` in order; refused requests get `status` (nginx's default
    /// 503); `dry_run` counts but never delays or refuses. Refusals are
    /// logged as errors, delays as warnings; see [`RateLimits::log_level`].
    pub fn new(
        limits: Vec<RateLimit>,
        status: StatusCode,
        dry_run: bool,
        server_name: Arc<str>,
    ) -> RateLimits {
        RateLimits {
            limits: limits.into(),
            status,
            dry_run,
            log_level: tracing::Level::ERROR,
            server_name,
        }
    }

    /// `limit_req_log_level`: refusals at `level`, delays one lower.
    pub fn log_level(mut self, level: tracing::Level) -> RateLimits {
        self.log_level = level;
        self
    }

    /// nginx's preaccess check for `req`, accounted in every zone. `None`:
    /// every key was empty, nothing was limited.
    pub fn decide<B>(&self, req: &Request<B>) -> Option<RateDecision> {
        // nginx: each zone but the last is looked at, the last is
        // accounted; if none refuses, the earlier ones are accounted after.
        let mut looked: Vec<(&RateLimit, Key)> = Vec::new();
        let mut accounted = None;
        for (n, limit) in self.limits.iter().enumerate() {
            let key = zone_key(&limit.zone.key, req, &self.server_name);
            if key.is_empty() {
                continue;
            }
            match lookup(limit, key.bytes(), n == self.limits.len() - 1) {
                Lookup::Busy => {
                    if self.dry_run {
                        return Some(RateDecision::RejectedDryRun);
                    }
                    self.log(false, limit);
                    return Some(RateDecision::Rejected(self.status));
                }
                Lookup::Accounted(excess) => accounted = Some((limit, excess)),
                Lookup::Looked => looked.push((limit, key)),
            }
        }
        if accounted.is_none() && looked.is_empty() {
            return None;
        }
        let (mut delay, mut by) = accounted.map_or((0, None), |(l, e)| (delay_of(l, e), Some(l)));
        for (limit, key) in looked.iter().rev() {
            let d = delay_of(limit, account(limit, key.bytes()));
            if d > delay {
                (delay, by) = (d, Some(*limit));
            }
        }
        Some(match (delay, self.dry_run, by) {
            (0, _, _) | (_, _, None) => RateDecision::Passed,
            (_, true, _) => RateDecision::DelayedDryRun,
            (ms, false, Some(limit)) => {
                self.log(true, limit);
                RateDecision::Delayed(Duration::from_millis(ms))
            }
        })
    }

    /// nginx logs refusals at `limit_req_log_level`, delays one level
    /// lower.
    fn log(&self, delayed: bool, limit: &RateLimit) {
        use tracing::Level;
        let what = if delayed {
            "delaying request"
        } else {
            "limiting requests"
        };
        let zone = &*limit.zone.name;
        let level = match (self.log_level, delayed) {
            (l, false) => l,
            (Level::ERROR, true) => Level::WARN,
            (_, true) => Level::INFO,
        };
        match level {
            Level::ERROR => tracing::error!("{what} by zone \"{zone}\""),
            Level::WARN => tracing::warn!("{what} by zone \"{zone}\""),
            _ => tracing::info!("{what} by zone \"{zone}\""),
        }
    }
}

/// A request's key in one zone.
pub(super) enum Key {
    Addr([u8; 16], usize),
    Text(String),
}

impl Key {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Key::Addr(b, n) => &b[..*n],
            Key::Text(t) => t.as_bytes(),
        }
    }

    fn is_empty(&self) -> bool {
        self.bytes().is_empty() || self.bytes().len() > 65535
    }
}

/// The key `req` has in a zone keyed on `key`.
pub(super) fn zone_key<B>(key: &ZoneKey, req: &Request<B>, server_name: &str) -> Key {
    match key {
        ZoneKey::BinaryRemoteAddr => {
            let mut b = [0; 16];
            match conn_info(req).peer.ip().to_canonical() {
                IpAddr::V4(a) => {
                    b[..4].copy_from_slice(&a.octets());
                    Key::Addr(b, 4)
                }
                IpAddr::V6(a) => Key::Addr(a.octets(), 16),
            }
        }
        ZoneKey::Template(t) => {
            let conn = conn_info(req);
            Key::Text(t.render_to_string(&VarCtx::new(req, &conn, request_path(req), server_name)))
        }
    }
}

enum Lookup {
    Busy,
    /// The last zone: accounted, with its excess.
    Accounted(u64),
    /// An earlier zone: within its burst, accounted later.
    Looked,
}

/// nginx's `ngx_http_limit_req_lookup`.
fn lookup(limit: &RateLimit, key: &[u8], account: bool) -> Lookup {
    let buckets = &limit.zone.buckets;
    let now = buckets.now();
    let mut map = buckets.lock();
    let Some(b) = map.get_mut(key) else {
        // A new key starts with no excess.
        if account {
            map.put(
                key.into(),
                Bucket {
                    excess: 0,
                    last: now,
                },
            );
            return Lookup::Accounted(0);
        }
        return Lookup::Looked;
    };
    let excess = leaked(b, limit.zone.rate, now);
    if excess > limit.burst {
        return Lookup::Busy;
    }
    if account {
        *b = Bucket { excess, last: now };
        return Lookup::Accounted(excess);
    }
    Lookup::Looked
}

/// nginx's `ngx_http_limit_req_account` for one earlier zone.
fn account(limit: &RateLimit, key: &[u8]) -> u64 {
    let buckets = &limit.zone.buckets;
    let now = buckets.now();
    let mut map = buckets.lock();
    match map.get_mut(key) {
        Some(b) => {
            let excess = leaked(b, limit.zone.rate, now);
            *b = Bucket { excess, last: now };
            excess
        }
        None => {
            map.put(
                key.into(),
                Bucket {
                    excess: 0,
                    last: now,
                },
            );
            0
        }
    }
}

/// The bucket's excess with this request added and what leaked since
/// its last request taken away.
fn leaked(b: &Bucket, rate: u64, now: u64) -> u64 {
    let ms = now.saturating_sub(b.last);
    (b.excess + 1000).saturating_sub(rate.saturating_mul(ms) / 1000)
}

/// How long `excess` waits under `limit`, in ms.
fn delay_of(limit: &RateLimit, excess: u64) -> u64 {
    if excess <= limit.delay {
        0
    } else {
        (excess - limit.delay) * 1000 / limit.zone.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(rate: &str) -> Arc<RateZone> {
        let key = ZoneKey::Template(Template::parse("k").unwrap());
        Arc::new(RateZone::new("z", key, "k", 1 << 20, rate).unwrap())
    }

    #[test]
    fn rates_parse_as_nginx() {
        assert_eq!(parse_rate("10r/s"), Some(10_000));
        assert_eq!(parse_rate("1r/m"), Some(16));
        assert_eq!(parse_rate("30r/m"), Some(500));
        assert_eq!(parse_rate("5"), Some(5000));
        assert_eq!(parse_rate("0r/s"), None);
        assert_eq!(parse_rate("r/s"), None);
        assert!(RateZone::new("z", ZoneKey::BinaryRemoteAddr, "", 4096, "1r/s").is_err());
    }

    /// At one a second with a burst of 2: the first passes, two are held
    /// (delayed 1 s and 2 s), the fourth is refused; `nodelay` lets the
    /// held ones through at once; `delay=1` the first of them.
    #[test]
    fn the_bucket_fills_as_nginx_fills_it() {
        let req = Request::new(());
        let run = |delay: Option<u64>| {
            let limits = RateLimits::new(
                vec![RateLimit::new(zone("1r/s"), 2, delay)],
                StatusCode::SERVICE_UNAVAILABLE,
                false,
                "".into(),
            );
            (0..4)
                .map(|_| limits.decide(&req).unwrap())
                .collect::<Vec<_>>()
        };
        use RateDecision::*;
        let ms = Duration::from_millis;
        let refused = Rejected(StatusCode::SERVICE_UNAVAILABLE);
        // Each call is within the same millisecond or so: allow for one.
        let got = run(Some(0));
        assert_eq!(got[0], Passed);
        assert!(
            matches!(got[1], Delayed(d) if d <= ms(1000) && d >= ms(990)),
            "{got:?}"
        );
        assert!(
            matches!(got[2], Delayed(d) if d <= ms(2000) && d >= ms(1990)),
            "{got:?}"
        );
        assert_eq!(got[3], refused);
        assert_eq!(run(None), vec![Passed, Passed, Passed, refused]);
        let got = run(Some(1));
        assert_eq!(&got[..2], &[Passed, Passed]);
        assert!(matches!(got[2], Delayed(d) if d <= ms(1000)), "{got:?}");
    }

    #[test]
    fn dry_run_counts_without_refusing() {
        let limits = RateLimits::new(
            vec![RateLimit::new(zone("1r/m"), 0, None)],
            StatusCode::TOO_MANY_REQUESTS,
            true,
            "".into(),
        );
        let req = Request::new(());
        assert_eq!(limits.decide(&req), Some(RateDecision::Passed));
        assert_eq!(limits.decide(&req), Some(RateDecision::RejectedDryRun));
    }

    #[test]
    fn a_full_zone_forgets_the_least_recent_key() {
        let z = Arc::new(
            RateZone::new(
                "z",
                ZoneKey::BinaryRemoteAddr,
                "$binary_remote_addr",
                8 * 4096,
                "1r/m",
            )
            .unwrap(),
        );
        let limit = RateLimit::new(z.clone(), 0, None);
        for i in 0..300u32 {
            assert!(matches!(
                lookup(&limit, &i.to_be_bytes(), true),
                Lookup::Accounted(0)
            ));
        }
        assert_eq!(z.len(), 256);
        // The first keys were evicted: they start again.
        assert!(matches!(
            lookup(&limit, &0u32.to_be_bytes(), true),
            Lookup::Accounted(0)
        ));
        assert!(matches!(
            lookup(&limit, &299u32.to_be_bytes(), true),
            Lookup::Busy
        ));
    }
}
