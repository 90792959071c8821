//! Connection pools shared by every proxy of one compiled config: the
//! locations that proxy to the same upstream (a group, or one host) with
//! the same connection settings use one keep-alive pool and one TLS client
//! configuration, as nginx's `keepalive` cache belongs to its `upstream`
//! block and not to each `proxy_pass`.
//!
//! Looked up while building, never per request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::h2::H2Pool;
use super::pool::Pool;
use super::{Timeouts, UpstreamVersion};
use crate::tls::UpstreamTls;
use crate::upstream::KeepAlive;

/// The pools of one snapshot's proxies; see the module doc. Clones share
/// the pools. [`super::ProxyServiceBuilder::pools`] takes it; a builder
/// without one keeps a pool of its own.
///
/// ```
/// use rpx_core::proxy::{ProxyService, UpstreamPools};
///
/// let pools = UpstreamPools::new();
/// let a = ProxyService::builder("http://127.0.0.1:3000").pools(&pools).build().unwrap();
/// let b = ProxyService::builder("http://127.0.0.1:3000/v2/").pools(&pools).build().unwrap();
/// assert_eq!(pools.len(), 1); // one upstream, one pool
/// # drop((a, b));
/// ```
#[derive(Debug, Clone, Default)]
pub struct UpstreamPools {
    made: Arc<Mutex<Vec<(PoolKey, Pools)>>>,
}

/// What a pool's connections depend on: two proxies that agree on all of
/// it can share one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolKey {
    /// The group's name, or `scheme://host:port`.
    pub(crate) upstream: String,
    pub(crate) version: UpstreamVersion,
    pub(crate) tls: Option<UpstreamTls>,
    pub(crate) connect: Option<Duration>,
    pub(crate) send: Option<Duration>,
    pub(crate) read: Option<Duration>,
    pub(crate) keepalive: KeepAlive,
    pub(crate) resolve_interval: Duration,
}

impl PoolKey {
    pub(crate) fn new(
        upstream: String,
        version: UpstreamVersion,
        tls: Option<UpstreamTls>,
        timeouts: &Timeouts,
        keepalive: KeepAlive,
        resolve_interval: Duration,
    ) -> Self {
        PoolKey {
            upstream,
            version,
            tls,
            connect: timeouts.connect,
            send: timeouts.send,
            read: timeouts.read,
            keepalive,
            resolve_interval,
        }
    }
}

/// One upstream's pools: HTTP/1.1, and HTTP/2 where the proxy speaks it.
#[derive(Debug, Clone)]
pub(crate) struct Pools {
    pub(crate) h1: Pool,
    pub(crate) h2: Option<H2Pool>,
}

impl UpstreamPools {
    /// No pools yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many distinct pools have been made.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True before the first pool.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pools for `key`, made by `make` the first time.
    pub(crate) fn get_or_make<E>(
        &self,
        key: PoolKey,
        make: impl FnOnce() -> Result<Pools, E>,
    ) -> Result<Pools, E> {
        let mut made = self.lock();
        // A linear search: a config has a few upstreams, and this runs at
        // compile time only.
        if let Some((_, pools)) = made.iter().find(|(k, _)| *k == key) {
            return Ok(pools.clone());
        }
        let pools = make()?;
        made.push((key, pools.clone()));
        Ok(pools)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(PoolKey, Pools)>> {
        self.made.lock().unwrap_or_else(|e| e.into_inner())
    }
}
