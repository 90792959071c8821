//! Virtual-host routing (`server_name`) with nginx's precedence: exact name,
//! longest `*.wildcard`, longest `wildcard.*`, first matching `~regex`, else
//! the listener's default server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use regex::RegexSet;

use crate::pattern::{Pattern, PatternError};
use tower::Service;

use crate::call::{call_ready, CallFuture};
use crate::conn::conn_info;
use crate::vars::request_host;

/// Why a host table did not build.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A `~regex` server name did not compile.
    #[error("invalid server_name regex {pattern:?}: {source}")]
    Regex {
        /// The pattern.
        pattern: String,
        /// The compiler's message.
        #[source]
        source: PatternError,
    },
    /// A wildcard in the middle, or several of them.
    #[error("invalid server_name wildcard {0:?}: use \"*.example.com\" or \"www.example.*\"")]
    Wildcard(String),
    /// A listener with no servers.
    #[error("no servers")]
    Empty,
}

/// The server names of one listener, compiled.
///
/// ```
/// use rpx_core::host::HostTable;
/// let t = HostTable::build(&[
///     (vec!["example.com".into(), "www.example.com".into()], false),
///     (vec!["*.example.com".into()], false),
///     (vec!["~^(?<app>[a-z]+)\\.apps\\.test$".into()], false),
///     (vec!["_".into()], true),
/// ]).unwrap();
/// assert_eq!(t.find(Some("WWW.Example.com")), 0);
/// assert_eq!(t.find(Some("api.example.com")), 1);
/// assert_eq!(t.find(Some("shop.apps.test")), 2);
/// assert_eq!(t.find(Some("other.org")), 3);
/// assert_eq!(t.find(None), 3);
/// ```
#[derive(Debug)]
pub struct HostTable {
    exact: HashMap<Box<str>, usize>,
    /// `*.example.com` stored as `.example.com`.
    leading: HashMap<Box<str>, usize>,
    /// `www.example.*` stored as `www.example.`.
    trailing: HashMap<Box<str>, usize>,
    regex_set: Option<RegexSet>,
    regexes: Vec<(Pattern, usize)>,
    default: usize,
    /// The server, when the table has one: every host goes to it.
    only: Option<usize>,
}

/// Longest host name looked up; longer ones go to the default server.
const MAX_HOST: usize = 255;

impl HostTable {
    /// Compiles `(server_names, default_server)` per server, in config order.
    /// The default is the server marked `default_server`, else the first.
    ///
    /// # Errors
    /// Bad regexes and wildcards, or no servers.
    pub fn build(servers: &[(Vec<String>, bool)]) -> Result<Self, HostError> {
        let entries: Vec<_> = servers
            .iter()
            .enumerate()
            .map(|(id, (names, default))| (id, names.as_slice(), *default))
            .collect();
        Self::build_with_ids(&entries)
    }

    /// Like [`HostTable::build`] with explicit ids: `(id, server_names,
    /// default_server)`, for listeners that carry a subset of all servers.
    ///
    /// # Errors
    /// Bad regexes and wildcards, or no servers.
    pub fn build_with_ids(servers: &[(usize, &[String], bool)]) -> Result<Self, HostError> {
        let Some(first) = servers.first() else {
            return Err(HostError::Empty);
        };
        let mut t = HostTable {
            exact: HashMap::new(),
            leading: HashMap::new(),
            trailing: HashMap::new(),
            regex_set: None,
            regexes: Vec::new(),
            default: servers.iter().find(|s| s.2).unwrap_or(first).0,
            only: (servers.len() == 1).then_some(first.0),
        };
        for (id, names, _) in servers {
            for name in names.iter() {
                t.add(name, *id)?;
            }
        }
        // A fast reject when every regex is linear (and the set builds);
        // otherwise each is tried in order.
        if !t.regexes.is_empty() && t.regexes.iter().all(|(r, _)| r.linear().is_some()) {
            let patterns = t
                .regexes
                .iter()
                .map(|(r, _)| format!("(?i:{})", r.as_str()));
            t.regex_set = RegexSet::new(patterns).ok();
        }
        Ok(t)
    }

    fn add(&mut self, name: &str, id: usize) -> Result<(), HostError> {
        if let Some(pattern) = name.strip_prefix('~') {
            // Server names match case-insensitively, regexes included.
            let regex = Pattern::new(pattern, true).map_err(|source| HostError::Regex {
                pattern: pattern.into(),
                source,
            })?;
            self.regexes.push((regex, id));
            return Ok(());
        }
        let name = name.to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        let stars = name.matches('*').count();
        let first = |m: &mut HashMap<Box<str>, usize>, k: &str| {
            // nginx keeps the first server for a duplicated name.
            m.entry(k.into()).or_insert(id);
        };
        if let Some(suffix) = name.strip_prefix('*') {
            if stars != 1 || !suffix.starts_with('.') {
                return Err(HostError::Wildcard(name.into()));
            }
            first(&mut self.leading, suffix);
        } else if let Some(prefix) = name.strip_suffix('*') {
            if stars != 1 || !prefix.ends_with('.') {
                return Err(HostError::Wildcard(name.into()));
            }
            first(&mut self.trailing, prefix);
        } else if stars > 0 {
            return Err(HostError::Wildcard(name.into()));
        } else if let Some(base) = name.strip_prefix('.') {
            // `.example.com` is `example.com` plus `*.example.com`.
            first(&mut self.exact, base);
            first(&mut self.leading, name);
        } else {
            first(&mut self.exact, name);
        }
        Ok(())
    }

    /// The server for a request host (port already stripped). Allocates nothing.
    pub fn find(&self, host: Option<&str>) -> usize {
        let Some(host) = host else {
            return self.exact.get("").copied().unwrap_or(self.default);
        };
        let mut buf = [0u8; MAX_HOST];
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.len() > MAX_HOST {
            return self.default;
        }
        let lower = &mut buf[..host.len()];
        lower.copy_from_slice(host.as_bytes());
        lower.make_ascii_lowercase();
        let Ok(host) = std::str::from_utf8(lower) else {
            return self.default;
        };
        if let Some(&id) = self.exact.get(host) {
            return id;
        }
        // Suffixes from the longest: `a.b.example.com` tries `.b.example.com`
        // first. Each try hashes, so tables without wildcards skip them.
        if !self.leading.is_empty() {
            for (i, _) in host.match_indices('.') {
                if let Some(&id) = self.leading.get(&host[i..]) {
                    return id;
                }
            }
        }
        if !self.trailing.is_empty() {
            for (i, _) in host.rmatch_indices('.') {
                if let Some(&id) = self.trailing.get(&host[..=i]) {
                    return id;
                }
            }
        }
        let maybe = self.regex_set.as_ref().is_none_or(|set| set.is_match(host));
        if maybe {
            if let Some((_, id)) = self.regexes.iter().find(|(r, _)| r.is_match(host)) {
                return *id;
            }
        }
        self.default
    }
}

/// Routes each request to the virtual server its host names, among the
/// servers of the listener that accepted it.
///
/// ```
/// use http_body_util::Full;
/// use rpx_core::host::{HostRouter, HostTable};
/// use tower::{service_fn, ServiceExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let svc = |text: &'static str| service_fn(move |_r: http::Request<()>| async move {
///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::<bytes::Bytes>::from(text)))
/// });
/// let table = HostTable::build(&[(vec!["a.test".into()], false), (vec!["b.test".into()], false)]).unwrap();
/// let router = HostRouter::single(table, vec![svc("a"), svc("b")]);
/// let req = http::Request::get("/").header("host", "b.test:8080").body(()).unwrap();
/// let res = router.oneshot(req).await.unwrap();
/// assert_eq!(http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes(), "b");
/// # });
/// ```
#[derive(Debug)]
pub struct HostRouter<S> {
    /// One table per listen address; the first also serves unknown listeners.
    tables: Arc<[(SocketAddr, HostTable)]>,
    services: Arc<[S]>,
}

impl<S> Clone for HostRouter<S> {
    fn clone(&self) -> Self {
        HostRouter {
            tables: self.tables.clone(),
            services: self.services.clone(),
        }
    }
}

impl<S> HostRouter<S> {
    /// One table for every listener.
    pub fn single(table: HostTable, services: Vec<S>) -> Self {
        Self::per_listener(vec![(SocketAddr::from(([0, 0, 0, 0], 0)), table)], services)
    }

    /// A table per listen address; ids in every table index `services`.
    ///
    /// # Panics
    /// When `tables` is empty: a bug in the caller.
    pub fn per_listener(tables: Vec<(SocketAddr, HostTable)>, services: Vec<S>) -> Self {
        assert!(!tables.is_empty(), "at least one listener");
        HostRouter {
            tables: tables.into(),
            services: services.into(),
        }
    }

    /// The service of the server `req` is for, by reference: the compiled
    /// stack calls its servers through this.
    pub fn chosen<B>(&self, req: &Request<B>) -> &S {
        &self.services[self.pick(req)]
    }

    /// Which service a request goes to.
    pub fn pick<B>(&self, req: &Request<B>) -> usize {
        let table = match &*self.tables {
            [(_, only)] => only,
            tables => {
                let listen = conn_info(req).listen;
                &tables
                    .iter()
                    .find(|(addr, _)| *addr == listen)
                    .unwrap_or(&tables[0])
                    .1
            }
        };
        // As nginx: an address with one server reads no Host.
        if let Some(id) = table.only {
            return id;
        }
        table.find(request_host(req.uri(), req.headers()))
    }
}

impl<S, B> Service<Request<B>> for HostRouter<S>
where
    S: Service<Request<B>> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = CallFuture<S, Request<B>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        call_ready(self.chosen(&req).clone(), req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_table() {
        let t = HostTable::build(&[
            (vec!["example.com".into()], false),                  // 0
            (vec!["*.example.com".into()], false),                // 1
            (vec!["*.api.example.com".into()], false),            // 2
            (vec!["www.example.*".into()], false),                // 3
            (vec!["www.*".into()], false),                        // 4
            (vec![r"~^(?<sub>.+)\.example\.org$".into()], false), // 5
            (vec![r"~^shop\..+\.org$".into()], false),            // 6
            (vec![".wild.test".into()], false),                   // 7
            (vec!["_".into()], true),                             // 8
            (vec!["".into(), "Upper.Test".into()], false),        // 9
        ])
        .unwrap();
        let cases = [
            ("example.com", 0),
            ("EXAMPLE.com.", 0),
            ("a.example.com", 1),
            ("a.b.example.com", 1),
            ("x.api.example.com", 2),
            ("www.example.com", 1), // leading wildcard beats trailing
            ("www.example.net", 3),
            ("www.other.net", 4),
            ("shop.example.org", 5),
            ("www.example.org", 3),  // trailing wildcard beats regexes
            ("shop.example.org", 5), // first regex in config order
            ("shop.x.org", 6),
            ("wild.test", 7),
            ("deep.wild.test", 7),
            ("upper.test", 9),
            ("unknown.net", 8),
            ("_", 8),
        ];
        for (host, want) in cases {
            assert_eq!(t.find(Some(host)), want, "host {host}");
        }
        assert_eq!(
            t.find(None),
            9,
            "empty server_name catches requests without Host"
        );
        assert_eq!(t.find(Some(&"a".repeat(300))), 8);
    }

    #[test]
    fn a_listener_with_one_server_takes_every_host_and_one_with_more_routes_by_host() {
        use crate::conn::{ConnInfo, Scheme};
        let (one_addr, more_addr) = (
            "127.0.0.1:80".parse().unwrap(),
            "127.0.0.2:80".parse().unwrap(),
        );
        let one = HostTable::build_with_ids(&[(0, &["a.test".into()], false)]).unwrap();
        let more = HostTable::build_with_ids(&[
            (1, &["b.test".into()], false),
            (2, &["c.test".into()], false),
        ])
        .unwrap();
        let router =
            HostRouter::per_listener(vec![(one_addr, one), (more_addr, more)], vec![(); 3]);
        let pick = |listen, host| {
            let mut req = Request::get("/").header("host", host).body(()).unwrap();
            let peer = "127.0.0.9:5000".parse().unwrap();
            req.extensions_mut()
                .insert(ConnInfo::new(peer, listen, listen, Scheme::Http));
            router.pick(&req)
        };
        assert_eq!(
            pick(one_addr, "c.test"),
            0,
            "the only server of its listener"
        );
        assert_eq!(pick(more_addr, "c.test"), 2);
        assert_eq!(pick(more_addr, "zzz"), 1, "the listener's default");

        let single = HostRouter::per_listener(
            vec![(
                one_addr,
                HostTable::build(&[(vec!["a.test".into()], false)]).unwrap(),
            )],
            vec![()],
        );
        let bare = Request::get("/").header("host", "zzz").body(()).unwrap();
        assert_eq!(
            single.pick(&bare),
            0,
            "one listener, one server: no lookup at all"
        );
    }

    #[test]
    fn default_is_first_unless_marked() {
        let t = HostTable::build(&[(vec!["a".into()], false), (vec!["b".into()], false)]).unwrap();
        assert_eq!(t.find(Some("zzz")), 0);
        assert_eq!(t.find(None), 0);
    }

    #[test]
    fn bad_names() {
        for bad in ["a.*.com", "*example.com", "www.ex*", "*.a.*"] {
            assert!(
                matches!(
                    HostTable::build(&[(vec![bad.into()], false)]),
                    Err(HostError::Wildcard(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            HostTable::build(&[(vec!["~(".into()], false)]),
            Err(HostError::Regex { .. })
        ));
    }
}
