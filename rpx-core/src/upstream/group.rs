//! A named group of servers: primaries and backups, a balancing method,
//! and the pick that hands out a server for one request attempt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;

use super::balance::{Eligible, Method, PickInput, Tier};
use super::health::HealthCheck;
use super::peer::{now_ms, Peer, ServerSpec};
use crate::vars::Template;

/// Why a group did not build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// No servers at all.
    #[error("upstream group {0:?} has no servers")]
    Empty(String),
    /// Only `backup` servers.
    #[error("upstream group {0:?} has only backup servers")]
    OnlyBackups(String),
    /// A server address that is not `host:port`.
    #[error("invalid upstream server address {0:?}")]
    Server(String),
}

/// The servers already tried by one request, by index in the group.
#[derive(Debug, Default, Clone)]
pub struct Tried {
    bits: u64,
    // Groups of more than 64 servers spill here; empty (no allocation) else.
    more: Vec<usize>,
}

impl Tried {
    /// Marks `i` as tried.
    pub fn insert(&mut self, i: usize) {
        if i < 64 {
            self.bits |= 1 << i;
        } else {
            self.more.push(i);
        }
    }

    /// Whether `i` was tried.
    pub fn contains(&self, i: usize) -> bool {
        if i < 64 {
            self.bits & (1 << i) != 0
        } else {
            self.more.contains(&i)
        }
    }
}

struct Check<'a> {
    tried: &'a Tried,
    now: u64,
    single: bool,
}

impl Eligible for Check<'_> {
    fn ok(&self, i: usize, peer: &Peer) -> bool {
        !self.tried.contains(i) && peer.usable(self.now, self.single)
    }
}

/// A server chosen for one attempt. Counts as an active request of that
/// server until dropped (keep it alive as long as the response streams).
#[derive(Debug)]
pub struct Picked {
    peer: Arc<Peer>,
    index: usize,
}

impl Picked {
    /// `host:port` to connect to.
    pub fn authority(&self) -> &Authority {
        &self.peer.authority
    }

    /// The server's index in its group, for [`Tried`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// Records a failed attempt; true when it took the server out.
    pub fn failure(&self) -> bool {
        self.peer.failure(now_ms())
    }

    /// Records a successful attempt.
    pub fn success(&self) {
        self.peer.success()
    }
}

impl Drop for Picked {
    fn drop(&mut self) {
        self.peer.release();
    }
}

/// A named group of upstream servers (`upstream name {}`).
///
/// ```
/// use rpx_core::upstream::{Method, PickInput, ServerSpec, Tried, UpstreamGroup};
/// let group = UpstreamGroup::builder("app")
///     .server(ServerSpec::new("127.0.0.1:3001").weight(2))
///     .server(ServerSpec::new("127.0.0.1:3002"))
///     .server(ServerSpec::new("127.0.0.1:3003").backup())
///     .method(Method::LeastConn)
///     .build()
///     .unwrap();
/// let picked = group.pick(&PickInput::default(), &Tried::default()).unwrap();
/// assert_ne!(picked.authority().port_u16(), Some(3003));
/// ```
#[derive(Debug)]
pub struct UpstreamGroup {
    name: Box<str>,
    method: Method,
    primary: Tier,
    backup: Tier,
    /// A group of one primary and no backup ignores `max_fails`, as nginx.
    single: bool,
    keepalive: KeepAlive,
    health: Option<HealthCheck>,
    resolve_interval: Duration,
    started: AtomicBool,
}

/// Connection keeping towards a group's servers (`keepalive`,
/// `keepalive_timeout`, `keepalive_requests`, `keepalive_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Idle connections kept per server. Default 256 (nginx keeps none
    /// without `keepalive N`; rpx always pools).
    pub idle_per_server: usize,
    /// How long an idle connection is kept. Default 60 s.
    pub timeout: std::time::Duration,
    /// Requests one connection carries before it is closed. Default 1000
    /// (nginx's); 0 or 1 closes each connection after its first request.
    pub requests: u32,
    /// How long one connection carries requests before it is closed (the
    /// request under way finishes). Default 1 h (nginx's).
    pub time: std::time::Duration,
}

impl Default for KeepAlive {
    fn default() -> Self {
        KeepAlive {
            idle_per_server: 256,
            timeout: std::time::Duration::from_secs(60),
            requests: 1000,
            time: std::time::Duration::from_secs(3600),
        }
    }
}

/// Builder of an [`UpstreamGroup`]; see its example.
#[derive(Debug)]
pub struct UpstreamGroupBuilder {
    name: String,
    servers: Vec<ServerSpec>,
    method: Method,
    keepalive: KeepAlive,
    health: Option<HealthCheck>,
    resolve_interval: Duration,
    previous: Option<Arc<UpstreamGroup>>,
}

impl UpstreamGroup {
    /// A builder for the group `name`.
    pub fn builder(name: impl Into<String>) -> UpstreamGroupBuilder {
        UpstreamGroupBuilder {
            name: name.into(),
            servers: Vec::new(),
            method: Method::RoundRobin,
            keepalive: KeepAlive::default(),
            health: None,
            resolve_interval: super::dns::DEFAULT_INTERVAL,
            previous: None,
        }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every server, primaries first, in group index order.
    pub fn peers(&self) -> impl Iterator<Item = &Arc<Peer>> {
        self.primary.peers.iter().chain(self.backup.peers.iter())
    }

    /// The balancing method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The `hash` key, rendered once per request by the caller.
    pub fn key(&self) -> Option<&Template> {
        match &self.method {
            Method::Hash(t) | Method::Consistent(t) => Some(t),
            _ => None,
        }
    }

    /// Idle connection settings.
    pub fn keepalive(&self) -> KeepAlive {
        self.keepalive
    }

    /// How long resolved server addresses are used.
    pub fn resolve_interval(&self) -> Duration {
        self.resolve_interval
    }

    /// Starts the group's background tasks (active health checks, DNS
    /// re-resolution) on the current tokio runtime; see
    /// [`crate::Snapshot::start_background`]. Idempotent. The tasks hold the
    /// group weakly and end once it is dropped.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start_background(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(check) = &self.health {
            tokio::spawn(super::health::run(Arc::downgrade(self), check.clone()));
        }
        if self
            .peers()
            .any(|p| p.authority().host().parse::<std::net::IpAddr>().is_err())
        {
            tokio::spawn(super::dns::run(Arc::downgrade(self), self.resolve_interval));
        }
    }

    /// Starts the background tasks on first use when nobody did (one
    /// relaxed load per request once started).
    pub(crate) fn ensure_started(self: &Arc<Self>) {
        if !self.started.load(Ordering::Relaxed) && tokio::runtime::Handle::try_current().is_ok() {
            self.start_background();
        }
    }

    /// Number of servers, backups included.
    pub fn len(&self) -> usize {
        self.primary.peers.len() + self.backup.peers.len()
    }

    /// Always false: a group has servers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A server for one attempt, none of `tried`: a primary by the group's
    /// method, else a backup when no primary is usable; `None` at once when
    /// every server is out.
    pub fn pick(&self, input: &PickInput<'_>, tried: &Tried) -> Option<Picked> {
        let now = now_ms();
        let check = Check {
            tried,
            now,
            single: self.single,
        };
        let (tier, i) = match self.primary.pick(&self.method, input, &check) {
            Some(i) => (&self.primary, i),
            None => {
                // Backups share the load by round robin (least_conn keeps
                // its own rule), as nginx.
                let method = match self.method {
                    Method::LeastConn => Method::LeastConn,
                    _ => Method::RoundRobin,
                };
                (&self.backup, self.backup.pick(&method, input, &check)?)
            }
        };
        let peer = tier.peers[i].clone();
        peer.acquire(now);
        Some(Picked {
            peer,
            index: tier.base + i,
        })
    }
}

impl UpstreamGroupBuilder {
    /// Adds a server.
    pub fn server(mut self, spec: ServerSpec) -> Self {
        self.servers.push(spec);
        self
    }

    /// The balancing method. Default [`Method::RoundRobin`].
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Idle connection settings. Default [`KeepAlive::default`].
    pub fn keepalive(mut self, keepalive: KeepAlive) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// Active health checks. Default none.
    pub fn health_check(mut self, check: HealthCheck) -> Self {
        self.health = Some(check);
        self
    }

    /// How long resolved addresses of server names are used before they
    /// are resolved again. Default 10 s.
    pub fn resolve_interval(mut self, interval: Duration) -> Self {
        self.resolve_interval = interval;
        self
    }

    /// The group this one replaces (a reload): servers with the same
    /// address keep their failure count and health verdict.
    pub fn previous(mut self, group: Arc<UpstreamGroup>) -> Self {
        self.previous = Some(group);
        self
    }

    /// Builds the group.
    ///
    /// # Errors
    /// No servers, only backups, or an address that is not `host:port`.
    pub fn build(self) -> Result<UpstreamGroup, GroupError> {
        if self.servers.is_empty() {
            return Err(GroupError::Empty(self.name));
        }
        let mut primary = Vec::new();
        let mut backup = Vec::new();
        for s in &self.servers {
            let authority: Authority = s
                .addr
                .parse()
                .map_err(|_| GroupError::Server(s.addr.clone()))?;
            if authority.port().is_none() {
                return Err(GroupError::Server(s.addr.clone()));
            }
            let peer = Peer::new(s, authority).with_metrics(&self.name);
            if let Some(prev) = &self.previous {
                if let Some(old) = prev.peers().find(|p| p.authority == peer.authority) {
                    peer.carry_from(old, self.health.is_some() && prev.health.is_some());
                }
            }
            let peer = Arc::new(peer);
            if s.backup {
                backup.push(peer);
            } else {
                primary.push(peer);
            }
        }
        if primary.is_empty() {
            return Err(GroupError::OnlyBackups(self.name));
        }
        let consistent = matches!(self.method, Method::Consistent(_));
        let single = primary.len() == 1 && backup.is_empty();
        let n = primary.len();
        Ok(UpstreamGroup {
            name: self.name.into(),
            primary: Tier::new(primary, 0, consistent),
            backup: Tier::new(backup, n, false),
            method: self.method,
            single,
            keepalive: self.keepalive,
            health: self.health,
            resolve_interval: self.resolve_interval,
            started: AtomicBool::new(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(specs: Vec<ServerSpec>) -> UpstreamGroup {
        specs
            .into_iter()
            .fold(UpstreamGroup::builder("g"), |b, s| b.server(s))
            .build()
            .unwrap()
    }

    #[test]
    fn backups_serve_only_when_every_primary_is_out() {
        let g = group(vec![
            ServerSpec::new("a:1"),
            ServerSpec::new("b:1"),
            ServerSpec::new("c:1").backup(),
        ]);
        let none = Tried::default();
        let p = |tried: &Tried| g.pick(&PickInput::default(), tried).map(|p| p.index());
        for _ in 0..10 {
            assert!(p(&none).unwrap() < 2);
        }
        g.primary.peers[0].failure(now_ms());
        assert_eq!(p(&none), Some(1));
        g.primary.peers[1].failure(now_ms());
        assert_eq!(p(&none), Some(2));
        let mut tried = Tried::default();
        tried.insert(2);
        assert_eq!(p(&tried), None, "all out: no server, at once");
    }

    #[test]
    fn picked_counts_active_requests() {
        let g = group(vec![ServerSpec::new("a:1")]);
        let picked = g.pick(&PickInput::default(), &Tried::default()).unwrap();
        assert_eq!(g.primary.peers[0].active(), 1);
        // A group of one ignores max_fails.
        picked.failure();
        drop(picked);
        assert_eq!(g.primary.peers[0].active(), 0);
        assert!(g.pick(&PickInput::default(), &Tried::default()).is_some());
    }

    #[test]
    fn a_rebuilt_group_keeps_the_state_of_servers_it_keeps() {
        let check = HealthCheck {
            interval: Duration::from_secs(1),
            path: "/".into(),
            status: 200..=399,
            rise: 1,
            fall: 1,
            timeout: Duration::from_secs(1),
            port: None,
        };
        let build =
            |addrs: &[&str], health: Option<&HealthCheck>, prev: Option<&Arc<UpstreamGroup>>| {
                let mut b = UpstreamGroup::builder("g");
                for a in addrs {
                    b = b.server(ServerSpec::new(*a).max_fails(1));
                }
                if let Some(h) = health {
                    b = b.health_check(h.clone());
                }
                if let Some(p) = prev {
                    b = b.previous(p.clone());
                }
                Arc::new(b.build().unwrap())
            };
        let old = build(&["a:1", "b:1", "c:1"], Some(&check), None);
        old.primary.peers[0].failure(now_ms());
        old.primary.peers[1].set_healthy(false);
        let now = now_ms();
        assert!(old.primary.peers[0].is_failed(now));

        // b:1 moved to the front, a:1 second, c:1 gone, d:1 new.
        let new = build(&["b:1", "a:1", "d:1"], Some(&check), Some(&old));
        let peer = |g: &UpstreamGroup, a: &str| {
            g.peers()
                .find(|p| p.authority().as_str() == a)
                .unwrap()
                .clone()
        };
        assert!(
            peer(&new, "a:1").is_failed(now),
            "passive failures carry over"
        );
        assert!(
            !peer(&new, "b:1").is_healthy(),
            "the active verdict carries over"
        );
        assert!(peer(&new, "d:1").is_healthy() && !peer(&new, "d:1").is_failed(now));
        for _ in 0..6 {
            let p = new.pick(&PickInput::default(), &Tried::default()).unwrap();
            assert_eq!(p.authority().as_str(), "d:1");
        }

        // Without active checks any more, nothing could bring b:1 back.
        let unchecked = build(&["b:1", "a:1"], None, Some(&new));
        assert!(peer(&unchecked, "b:1").is_healthy());
        assert!(peer(&unchecked, "a:1").is_failed(now));
    }

    #[test]
    fn build_errors() {
        let b = |s: Vec<ServerSpec>| {
            s.into_iter()
                .fold(UpstreamGroup::builder("g"), |b, s| b.server(s))
                .build()
        };
        assert!(matches!(b(vec![]), Err(GroupError::Empty(_))));
        assert!(matches!(
            b(vec![ServerSpec::new("a:1").backup()]),
            Err(GroupError::OnlyBackups(_))
        ));
        assert!(matches!(
            b(vec![ServerSpec::new("a b")]),
            Err(GroupError::Server(_))
        ));
        let mut t = Tried::default();
        t.insert(3);
        t.insert(100);
        assert!(t.contains(3) && t.contains(100) && !t.contains(4));
    }
}
