//! nginx's `resolver`: the DNS servers that names in a `proxy_pass` with
//! variables are resolved with at request time (the Docker idiom
//! `resolver 127.0.0.11; set $app app:3000; proxy_pass http://$app;`).
//!
//! Built on hickory-resolver: an async client of the servers named, with
//! its cache kept by the answers' TTLs, or by `valid=` when given (as
//! nginx). The hosts file is not read, as nginx's resolver does not read
//! it; names set with [`super::dns::override_host`] still win, for tests
//! and embedders.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

/// nginx's `resolver_timeout` default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a name that does not resolve is remembered as such, without
/// `valid=`: short, so a container that starts is found soon.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// Why a `resolver` line is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolverError {
    /// An address that is not `ip[:port]`.
    #[error("invalid resolver address \"{0}\": rpx needs an IP address, with an optional port")]
    Address(String),
    /// `valid=`, `ipv4=`, `ipv6=` with a bad value, or an unknown word.
    #[error("invalid parameter \"{0}\"")]
    Parameter(String),
    /// `ipv4=off ipv6=off`.
    #[error("\"ipv4\" and \"ipv6\" cannot both be \"off\"")]
    NoFamily,
    /// No address.
    #[error("no resolver address")]
    Empty,
    /// hickory refused the configuration.
    #[error("resolver: {0}")]
    Build(String),
}

/// `resolver address… [valid=time] [ipv4=on|off] [ipv6=on|off]` and
/// `resolver_timeout`, as written.
///
/// ```
/// use rpx_core::upstream::ResolverSpec;
/// let r = ResolverSpec::parse(&["127.0.0.11", "[::1]:5353", "valid=30s", "ipv6=off"]).unwrap();
/// assert_eq!(r.servers.len(), 2);
/// assert_eq!(r.servers[1].port(), 5353);
/// assert!(!r.ipv6);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverSpec {
    /// The DNS servers, port 53 unless written.
    pub servers: Vec<SocketAddr>,
    /// `valid=`: answers are kept this long, whatever their TTL.
    pub valid: Option<Duration>,
    /// `ipv4=`: A records are asked for (on by default).
    pub ipv4: bool,
    /// `ipv6=`: AAAA records are asked for (on by default).
    pub ipv6: bool,
    /// `resolver_timeout`.
    pub timeout: Duration,
}

impl ResolverSpec {
    /// Parses the words of a `resolver` directive.
    ///
    /// # Errors
    /// See [`ResolverError`].
    pub fn parse(words: &[&str]) -> Result<Self, ResolverError> {
        let mut spec = ResolverSpec {
            servers: Vec::new(),
            valid: None,
            ipv4: true,
            ipv6: true,
            timeout: DEFAULT_TIMEOUT,
        };
        let on_off = |w: &str, v: &str| match v {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(ResolverError::Parameter(w.into())),
        };
        for w in words {
            if let Some(v) = w.strip_prefix("valid=") {
                let d = crate::config::parse_duration(v)
                    .ok_or_else(|| ResolverError::Parameter((*w).into()))?;
                spec.valid = Some(d);
            } else if let Some(v) = w.strip_prefix("ipv4=") {
                spec.ipv4 = on_off(w, v)?;
            } else if let Some(v) = w.strip_prefix("ipv6=") {
                spec.ipv6 = on_off(w, v)?;
            } else if w.starts_with("status_zone=") {
                // nginx Plus's statistics zone: nothing to count into.
            } else {
                spec.servers.push(parse_address(w)?);
            }
        }
        if !spec.ipv4 && !spec.ipv6 {
            return Err(ResolverError::NoFamily);
        }
        if spec.servers.is_empty() {
            return Err(ResolverError::Empty);
        }
        Ok(spec)
    }

    /// The words that [`ResolverSpec::parse`] reads back (without the
    /// timeout, which is a directive of its own).
    pub fn words(&self) -> Vec<String> {
        let mut w: Vec<String> = self
            .servers
            .iter()
            .map(|a| match (a.ip(), a.port()) {
                (IpAddr::V4(ip), 53) => ip.to_string(),
                (IpAddr::V6(ip), 53) => format!("[{ip}]"),
                _ => a.to_string(),
            })
            .collect();
        if let Some(v) = self.valid {
            w.push(format!("valid={}s", v.as_secs()));
        }
        if !self.ipv4 {
            w.push("ipv4=off".into());
        }
        if !self.ipv6 {
            w.push("ipv6=off".into());
        }
        w
    }
}

/// `ip`, `ip:port`, `[ip6]`, `[ip6]:port`.
fn parse_address(w: &str) -> Result<SocketAddr, ResolverError> {
    let bad = || ResolverError::Address(w.into());
    if let Ok(a) = w.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip = w
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(w);
    ip.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| bad())
}

/// A compiled `resolver`: a client of its servers, with its cache. Clones
/// share both.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<TokioResolver>,
    spec: Arc<ResolverSpec>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("spec", &self.spec)
            .finish()
    }
}

impl Resolver {
    /// A client of `spec`'s servers. Sends nothing until asked.
    ///
    /// # Errors
    /// hickory refused the configuration.
    pub fn new(spec: &ResolverSpec) -> Result<Self, ResolverError> {
        let servers = spec
            .servers
            .iter()
            .map(|a| {
                let mut udp = ConnectionConfig::udp();
                udp.port = a.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = a.port();
                let mut ns = NameServerConfig::udp_and_tcp(a.ip());
                ns.connections = vec![udp, tcp];
                ns
            })
            .collect();
        let config = ResolverConfig::from_parts(None, Vec::new(), servers);
        let mut opts = ResolverOpts::default();
        opts.timeout = spec.timeout;
        opts.attempts = 2;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ip_strategy = match (spec.ipv4, spec.ipv6) {
            (true, true) => LookupIpStrategy::Ipv4AndIpv6,
            (true, false) => LookupIpStrategy::Ipv4Only,
            _ => LookupIpStrategy::Ipv6Only,
        };
        // Names are used as written: no search domains, no `ndots`.
        opts.ndots = 0;
        if let Some(v) = spec.valid {
            opts.positive_min_ttl = Some(v);
            opts.positive_max_ttl = Some(v);
        }
        opts.negative_max_ttl = Some(spec.valid.unwrap_or(NEGATIVE_TTL).min(NEGATIVE_TTL));
        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| ResolverError::Build(e.to_string()))?;
        Ok(Resolver {
            inner: Arc::new(inner),
            spec: Arc::new(spec.clone()),
        })
    }

    /// What it was made of.
    pub fn spec(&self) -> &ResolverSpec {
        &self.spec
    }

    /// The addresses of `host` (an [`super::dns::override_host`] entry
    /// first), from the cache while it is fresh.
    ///
    /// # Errors
    /// The name does not resolve, or the servers did not answer in time;
    /// the message is nginx's `… could not be resolved (…)`.
    pub async fn lookup(&self, host: &str) -> io::Result<Arc<[IpAddr]>> {
        if let Some(ips) = super::dns::overridden(host) {
            return Ok(ips);
        }
        // A trailing dot: the name is absolute, as nginx treats it.
        let fqdn = if host.ends_with('.') {
            host.to_owned()
        } else {
            format!("{host}.")
        };
        let not_found = |why: String| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} could not be resolved ({why})"),
            )
        };
        match self.inner.lookup_ip(fqdn.as_str()).await {
            Ok(found) => {
                let ips: Arc<[IpAddr]> = found.iter().collect();
                if ips.is_empty() {
                    return Err(not_found("no addresses".into()));
                }
                Ok(ips)
            }
            Err(e) => Err(not_found(e.to_string())),
        }
    }
}
