//! One server of a group: its configuration and the live counters every
//! request reads and updates without a lock.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use http::uri::Authority;

/// A `server` line of an `upstream {}` block.
///
/// ```
/// use rpx_core::upstream::ServerSpec;
/// let s = ServerSpec::new("10.0.0.1:8080").weight(3).max_fails(2);
/// assert_eq!(s.weight, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// `host:port`.
    pub addr: String,
    /// `weight=N`. Default 1.
    pub weight: u32,
    /// `max_fails=N`: failures within `fail_timeout` that take the server
    /// out; 0 disables the accounting. Default 1.
    pub max_fails: u32,
    /// `fail_timeout=T`: the window failures are counted in, and how long
    /// the server stays out. Default 10 s.
    pub fail_timeout: Duration,
    /// `backup`: serves only when every primary server is out.
    pub backup: bool,
    /// `down`: never chosen.
    pub down: bool,
    /// `max_conns=N`: active connections allowed; 0 is unlimited. Default 0.
    pub max_conns: u32,
}

impl ServerSpec {
    /// A server with nginx's defaults.
    pub fn new(addr: impl Into<String>) -> Self {
        ServerSpec {
            addr: addr.into(),
            weight: 1,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            backup: false,
            down: false,
            max_conns: 0,
        }
    }

    /// `weight=N`.
    pub fn weight(mut self, w: u32) -> Self {
        self.weight = w;
        self
    }

    /// `max_fails=N`.
    pub fn max_fails(mut self, n: u32) -> Self {
        self.max_fails = n;
        self
    }

    /// `fail_timeout=T`.
    pub fn fail_timeout(mut self, t: Duration) -> Self {
        self.fail_timeout = t;
        self
    }

    /// `backup`.
    pub fn backup(mut self) -> Self {
        self.backup = true;
        self
    }

    /// `down`.
    pub fn down(mut self) -> Self {
        self.down = true;
        self
    }

    /// `max_conns=N`.
    pub fn max_conns(mut self, n: u32) -> Self {
        self.max_conns = n;
        self
    }
}

/// Milliseconds on a monotonic clock (tokio's, so paused-time tests work).
pub(crate) fn now_ms() -> u64 {
    static EPOCH: LazyLock<tokio::time::Instant> = LazyLock::new(tokio::time::Instant::now);
    // Starts at 1 so that 0 can mean "never".
    EPOCH.elapsed().as_millis() as u64 + 1
}

/// A server of a group with its live state.
///
/// Passive health follows nginx's round-robin module exactly, with atomics
/// instead of its shared-memory lock: `fails` counts failures, `checked` is
/// when the window was last (re)opened, `accessed` when the last failure
/// happened. A server with `fails >= max_fails` is out while
/// `now - checked <= fail_timeout`; the first pick after that re-opens the
/// window, and a success after a re-opened window clears `fails`.
#[derive(Debug)]
pub struct Peer {
    pub(crate) authority: Authority,
    pub(crate) weight: u32,
    max_fails: u32,
    fail_timeout_ms: u64,
    max_conns: u32,
    down: bool,
    active: AtomicU32,
    fails: AtomicU32,
    checked: AtomicU64,
    accessed: AtomicU64,
    /// Cleared by active health checks.
    healthy: AtomicBool,
    /// `rpx_upstream_selected_total`: made once, bumped per request.
    selected: metrics::Counter,
    /// `rpx_upstream_healthy`: 1 or 0 as active checks see it.
    health_gauge: metrics::Gauge,
}

impl Peer {
    pub(crate) fn new(spec: &ServerSpec, authority: Authority) -> Self {
        Peer {
            authority,
            weight: spec.weight.max(1),
            max_fails: spec.max_fails,
            fail_timeout_ms: spec.fail_timeout.as_millis() as u64,
            max_conns: spec.max_conns,
            down: spec.down,
            active: AtomicU32::new(0),
            fails: AtomicU32::new(0),
            checked: AtomicU64::new(0),
            accessed: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            selected: metrics::Counter::noop(),
            health_gauge: metrics::Gauge::noop(),
        }
    }

    /// Registers its metrics under `group` (once, when the group is built).
    pub(crate) fn with_metrics(mut self, group: &str) -> Self {
        let labels = [
            ("upstream", group.to_owned()),
            ("server", self.authority.to_string()),
        ];
        self.selected = metrics::counter!("rpx_upstream_selected_total", &labels);
        self.health_gauge = metrics::gauge!("rpx_upstream_healthy", &labels);
        self.health_gauge.set(1.0);
        self
    }

    /// Takes over `old`'s live state on a reload, so that a server the
    /// config keeps stays out (or in) as it was: passive failures always,
    /// the active-check verdict only when both groups are checked (a group
    /// that no longer checks would otherwise keep a server down for good).
    pub(crate) fn carry_from(&self, old: &Peer, checked_both: bool) {
        self.fails
            .store(old.fails.load(Ordering::Relaxed), Ordering::Relaxed);
        self.checked
            .store(old.checked.load(Ordering::Relaxed), Ordering::Relaxed);
        self.accessed
            .store(old.accessed.load(Ordering::Relaxed), Ordering::Relaxed);
        if checked_both {
            self.set_healthy(old.is_healthy());
        }
    }

    /// `host:port` as configured.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Requests being served by it now.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// True while active health checks consider it healthy.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Sets the active-check state; true when it changed.
    pub(crate) fn set_healthy(&self, up: bool) -> bool {
        self.health_gauge.set(if up { 1.0 } else { 0.0 });
        self.healthy.swap(up, Ordering::Relaxed) != up
    }

    /// Whether a request may go to it now. `single` groups ignore
    /// `max_fails`, as nginx does for a group of one.
    pub(crate) fn usable(&self, now: u64, single: bool) -> bool {
        if self.down || !self.is_healthy() {
            return false;
        }
        if !single && self.is_failed(now) {
            return false;
        }
        self.max_conns == 0 || self.active() < self.max_conns
    }

    /// Out by passive health right now.
    pub(crate) fn is_failed(&self, now: u64) -> bool {
        self.max_fails > 0
            && self.fails.load(Ordering::Relaxed) >= self.max_fails
            && now.saturating_sub(self.checked.load(Ordering::Relaxed)) <= self.fail_timeout_ms
    }

    /// Called when chosen: counts the request and re-opens an expired
    /// failure window.
    pub(crate) fn acquire(&self, now: u64) {
        self.selected.increment(1);
        self.active.fetch_add(1, Ordering::Relaxed);
        let checked = self.checked.load(Ordering::Relaxed);
        if now.saturating_sub(checked) > self.fail_timeout_ms {
            // A lost race means another request re-opened it: same result.
            let _ =
                self.checked
                    .compare_exchange(checked, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    pub(crate) fn release(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// Records a failure; true when it took the server out.
    pub(crate) fn failure(&self, now: u64) -> bool {
        self.accessed.store(now, Ordering::Relaxed);
        self.checked.store(now, Ordering::Relaxed);
        let fails = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_fails > 0 && fails == self.max_fails
    }

    /// Records a success: clears failures once the window was re-opened.
    pub(crate) fn success(&self) {
        if self.fails.load(Ordering::Relaxed) > 0
            && self.accessed.load(Ordering::Relaxed) < self.checked.load(Ordering::Relaxed)
        {
            self.fails.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(max_fails: u32) -> Peer {
        let spec = ServerSpec::new("a:1")
            .max_fails(max_fails)
            .fail_timeout(Duration::from_secs(10));
        Peer::new(&spec, "a:1".parse().unwrap())
    }

    #[test]
    fn max_fails_within_fail_timeout_takes_it_out_for_fail_timeout() {
        let p = peer(2);
        let t = 1_000;
        assert!(p.usable(t, false));
        assert!(!p.failure(t));
        assert!(p.usable(t + 1, false));
        assert!(p.failure(t + 2));
        assert!(!p.usable(t + 3, false));
        assert!(p.usable(t + 3, true), "a group of one ignores max_fails");
        assert!(!p.usable(t + 2 + 10_000, false));
        // After fail_timeout one request is let through…
        let later = t + 2 + 10_001;
        assert!(p.usable(later, false));
        p.acquire(later);
        p.release();
        // …and one more failure takes it out again at once.
        p.failure(later + 1);
        assert!(!p.usable(later + 2, false));
        // A success after the window re-opened clears the count.
        let again = later + 1 + 10_001;
        p.acquire(again);
        p.release();
        p.success();
        assert!(p.usable(again + 1, false));
        assert!(!p.failure(again + 2));
    }

    #[test]
    fn max_conns_and_down() {
        let mut spec = ServerSpec::new("a:1").max_conns(1);
        let p = Peer::new(&spec, "a:1".parse().unwrap());
        p.acquire(1);
        assert!(!p.usable(1, false));
        p.release();
        assert!(p.usable(1, false));
        spec.down = true;
        assert!(!Peer::new(&spec, "a:1".parse().unwrap()).usable(1, true));
        assert!(!peer(0).failure(1), "max_fails=0 never takes it out");
    }
}
