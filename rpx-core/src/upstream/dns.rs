//! Server names resolved on a schedule, so a container restarted with a new
//! address is followed without a reload.
//!
//! New upstream connections take their addresses from a process-wide cache
//! whose entries are valid for the group's `resolve_interval`; a stale entry
//! is resolved again when a connection needs it (and by the group's
//! background task, which also logs changes). When resolving fails, the
//! last known addresses are kept. Names set with [`override_host`] resolve
//! to what was set, hosts-file style: tests and embedders use it to move a
//! name.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::dns::Name;

use super::group::UpstreamGroup;
use super::peer::now_ms;

/// How long resolved addresses are used before resolving again, unless a
/// group says otherwise. 10 s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Entry {
    ips: Arc<[IpAddr]>,
    at: u64,
}

/// Name → value, shared by the whole process.
type Table<V> = LazyLock<RwLock<HashMap<Box<str>, V>>>;

static CACHE: Table<Entry> = LazyLock::new(Default::default);
static HOSTS: Table<Arc<[IpAddr]>> = LazyLock::new(Default::default);

/// Makes `name` resolve to `ips` in this process (a hosts-file entry for
/// rpx's upstream connections); takes effect as cached entries expire.
pub fn override_host(name: &str, ips: &[IpAddr]) {
    if let Ok(mut h) = HOSTS.write() {
        h.insert(name.to_ascii_lowercase().into(), ips.into());
    }
}

/// Removes an [`override_host`] entry.
pub fn clear_override(name: &str) {
    if let Ok(mut h) = HOSTS.write() {
        h.remove(name.to_ascii_lowercase().as_str());
    }
}

/// Resolves `host` now: the overrides, else the system resolver.
async fn resolve(host: &str) -> io::Result<Arc<[IpAddr]>> {
    if let Some(ips) = overridden(host) {
        return Ok(ips);
    }
    let ips: Vec<IpAddr> = tokio::net::lookup_host((host, 0))
        .await?
        .map(|a| a.ip())
        .collect();
    if ips.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no addresses"));
    }
    Ok(ips.into())
}

pub(super) fn overridden(host: &str) -> Option<Arc<[IpAddr]>> {
    HOSTS
        .read()
        .ok()?
        .get(host.to_ascii_lowercase().as_str())
        .cloned()
}

/// `host` as an IP address, when it is one (`[…]` allowed).
pub(crate) fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Resolves `host` once, blocking: for `resolve_strict` at startup.
///
/// # Errors
/// The name does not resolve.
pub fn resolve_blocking(host: &str) -> io::Result<()> {
    if overridden(host).is_some() || host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()?
        .next()
        .map(|_| ())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no addresses"))
}

/// The addresses of `host`, from the cache while younger than `valid`.
/// A failed lookup keeps the last known addresses (and says so).
pub(crate) async fn lookup(host: &str, valid: Duration) -> io::Result<Arc<[IpAddr]>> {
    if let Some(ip) = literal_ip(host) {
        return Ok(Arc::from([ip]));
    }
    let cached = CACHE.read().ok().and_then(|c| c.get(host).cloned());
    if let Some(e) = &cached {
        if now_ms().saturating_sub(e.at) < valid.as_millis() as u64 {
            return Ok(e.ips.clone());
        }
    }
    refresh(host, cached).await
}

async fn refresh(host: &str, cached: Option<Entry>) -> io::Result<Arc<[IpAddr]>> {
    match resolve(host).await {
        Ok(ips) => {
            if let Some(old) = cached.as_ref().filter(|e| e.ips != ips) {
                tracing::info!(host, from = ?old.ips, to = ?ips, "upstream name resolves to new addresses");
            }
            if let Ok(mut c) = CACHE.write() {
                c.insert(
                    host.into(),
                    Entry {
                        ips: ips.clone(),
                        at: now_ms(),
                    },
                );
            }
            Ok(ips)
        }
        Err(e) => match cached {
            Some(old) => {
                tracing::warn!(host, error = %e, "resolving upstream name failed; keeping {:?}", old.ips);
                Ok(old.ips)
            }
            None => Err(e),
        },
    }
}

/// Resolves the names of `group` at start (a name that does not resolve
/// yet is a warning) and again every `interval`, until the group is gone.
pub(crate) async fn run(group: Weak<UpstreamGroup>, interval: Duration) {
    let mut warned: Vec<Box<str>> = Vec::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(g) = group.upgrade() else { return };
        let hosts: Vec<String> = g
            .peers()
            .map(|p| p.authority().host().to_owned())
            .filter(|h| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_err()
            })
            .collect();
        let name = g.name().to_owned();
        drop(g);
        for host in hosts {
            let cached = CACHE
                .read()
                .ok()
                .and_then(|c| c.get(host.as_str()).cloned());
            match refresh(&host, cached).await {
                Ok(_) => {
                    if let Some(i) = warned.iter().position(|w| **w == *host) {
                        warned.swap_remove(i);
                        tracing::info!(group = name, host, "upstream name resolves now");
                    }
                }
                Err(e) => {
                    if !warned.iter().any(|w| **w == *host) {
                        tracing::warn!(group = name, host, error = %e, "upstream name does not resolve; retrying every {interval:?}");
                        warned.push(host.into());
                    }
                }
            }
        }
    }
}

/// The resolver of upstream connections: the cache above, or the DNS
/// servers of a `resolver` directive.
#[derive(Debug, Clone)]
pub struct CachedResolver {
    valid: Duration,
    dns: Option<super::Resolver>,
}

impl CachedResolver {
    /// Addresses are reused for `valid` before being resolved again.
    pub fn new(valid: Duration) -> Self {
        CachedResolver { valid, dns: None }
    }

    /// Names are asked of `dns`'s servers (and kept by its cache) instead.
    pub fn with_dns(mut self, dns: Option<super::Resolver>) -> Self {
        self.dns = dns;
        self
    }
}

impl tower::Service<Name> for CachedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    // Boxed once per new upstream connection to a name, not per request.
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let valid = self.valid;
        let dns = self.dns.clone();
        Box::pin(async move {
            let host = name.as_str();
            let ips = match dns {
                Some(dns) if literal_ip(host).is_none() => dns.lookup(host).await?,
                _ => lookup(host, valid).await?,
            };
            // The connector sets the port.
            Ok(ips
                .iter()
                .map(|ip| SocketAddr::new(*ip, 0))
                .collect::<Vec<_>>()
                .into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overrides_and_cache() {
        let a: IpAddr = "127.0.0.7".parse().unwrap();
        let b: IpAddr = "127.0.0.8".parse().unwrap();
        override_host("dns-unit.test", &[a]);
        assert_eq!(
            &*lookup("dns-unit.test", DEFAULT_INTERVAL).await.unwrap(),
            [a]
        );
        override_host("dns-unit.test", &[b]);
        // Cached until it is stale.
        assert_eq!(
            &*lookup("dns-unit.test", DEFAULT_INTERVAL).await.unwrap(),
            [a]
        );
        assert_eq!(
            &*lookup("dns-unit.test", Duration::ZERO).await.unwrap(),
            [b]
        );
        clear_override("dns-unit.test");
        assert_eq!(
            &*lookup("127.0.0.9", Duration::ZERO).await.unwrap(),
            ["127.0.0.9".parse::<IpAddr>().unwrap()]
        );
        assert!(resolve_blocking("dns-unit-missing.invalid").is_err());
    }
}
