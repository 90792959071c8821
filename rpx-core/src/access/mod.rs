//! nginx's access phase: `allow` / `deny` (ngx_http_access_module), rules
//! checked in order against the client's address, the first that matches
//! decides, a client no rule matches is let in, a denied one gets a 403;
//! `auth_basic` ([`basic`]); `auth_request` ([`AuthRequest`]); and
//! `satisfy`, which says whether a request must pass them all or one
//! ([`Guard`]).
//!
//! rpx's stack decides a location's [`Guard`] in the router, where nginx's
//! access phase sits: after the rewrite phase (so a location's `return`
//! answers first) and before `try_files`. The address check is made there;
//! the checks that wait (a password, which may hash; a subrequest) are
//! left to the compiled stack as [`Pending`] on the request. [`AccessLayer`] and
//! [`BasicAuthLayer`] are the same checks as tower layers for an
//! embedder's own services.

pub mod basic;
mod guard;
pub mod htpasswd;
mod request;

pub use basic::{BasicAuth, BasicAuthLayer, Refusal, UserFile};
pub use guard::{Checked, Gate, Guard, Pending, Satisfy};
pub use request::{AuthRequest, Subrequest};

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use http::{Request, Response};
use ipnet::IpNet;
use tower::{Layer, Service};

use crate::conn::conn_info;
use crate::error::ProxyError;

/// Whether a rule lets the client in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `allow`.
    Allow,
    /// `deny`.
    Deny,
}

/// Who a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    All,
    Net(IpNet),
    /// `unix:`: clients on a unix socket (rpx listens on TCP only, so
    /// none).
    Unix,
}

/// A rule's text is not an address, a CIDR, `unix:` or `all`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid parameter {0:?}: an address, a CIDR (10.0.0.0/8, 2001:db8::/32), \"unix:\" or \"all\""
)]
pub struct RuleError(pub String);

/// An ordered list of `allow` / `deny` rules.
///
/// ```
/// use rpx_core::access::{AccessList, Verdict};
/// let list = AccessList::builder()
///     .allow("10.0.0.0/8").unwrap()
///     .allow("2001:db8::/32").unwrap()
///     .deny("all").unwrap()
///     .build();
/// assert_eq!(list.check("10.1.2.3".parse().unwrap()), Verdict::Allow);
/// assert_eq!(list.check("::ffff:10.1.2.3".parse().unwrap()), Verdict::Allow);
/// assert_eq!(list.check("192.0.2.1".parse().unwrap()), Verdict::Deny);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessList {
    rules: Arc<[(Verdict, Who)]>,
}

/// Builder of an [`AccessList`], rules in the order they are added.
#[derive(Debug, Default)]
pub struct AccessListBuilder {
    rules: Vec<(Verdict, Who)>,
}

impl AccessList {
    /// A builder.
    pub fn builder() -> AccessListBuilder {
        AccessListBuilder::default()
    }

    /// What the rules say of a client at `addr`; an IPv4-mapped IPv6
    /// address is checked as the IPv4 one, as nginx does.
    pub fn check(&self, addr: IpAddr) -> Verdict {
        self.first_match(addr).unwrap_or(Verdict::Allow)
    }

    /// The verdict of the first rule that matches `addr`, if one does.
    pub fn first_match(&self, addr: IpAddr) -> Option<Verdict> {
        let addr = addr.to_canonical();
        self.rules.iter().find_map(|(verdict, who)| {
            let matches = match who {
                Who::All => true,
                Who::Net(net) => net.contains(&addr),
                Who::Unix => false,
            };
            matches.then_some(*verdict)
        })
    }

    /// No rules: everyone is let in.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl AccessListBuilder {
    /// Adds `rule` (`allow`'s or `deny`'s argument) with `verdict`.
    ///
    /// # Errors
    /// A rule that is not an address, a CIDR, `unix:` or `all`.
    pub fn rule(mut self, verdict: Verdict, rule: &str) -> Result<Self, RuleError> {
        let who = match rule {
            "all" => Who::All,
            "unix:" => Who::Unix,
            _ => Who::Net(parse_net(rule).ok_or_else(|| RuleError(rule.to_owned()))?),
        };
        self.rules.push((verdict, who));
        Ok(self)
    }

    /// `allow rule`.
    ///
    /// # Errors
    /// As [`AccessListBuilder::rule`].
    pub fn allow(self, rule: &str) -> Result<Self, RuleError> {
        self.rule(Verdict::Allow, rule)
    }

    /// `deny rule`.
    ///
    /// # Errors
    /// As [`AccessListBuilder::rule`].
    pub fn deny(self, rule: &str) -> Result<Self, RuleError> {
        self.rule(Verdict::Deny, rule)
    }

    /// The list.
    pub fn build(self) -> AccessList {
        AccessList {
            rules: self.rules.into(),
        }
    }
}

/// An address (a host route) or a CIDR; host bits are dropped, as nginx
/// drops them (with a warning there: "low address bits are meaningless").
fn parse_net(rule: &str) -> Option<IpNet> {
    if rule.contains('/') {
        let net: IpNet = rule.parse().ok()?;
        Some(net.trunc())
    } else {
        let addr: IpAddr = rule.parse().ok()?;
        Some(IpNet::from(addr))
    }
}

/// `limit_except GET … { … }`: requests with a method not listed are held
/// to `guard`. `GET` covers `HEAD`, as nginx.
#[derive(Debug, Clone)]
pub struct LimitExcept {
    methods: Vec<http::Method>,
    guard: Guard,
}

impl LimitExcept {
    /// `guard` (an [`AccessList`] converts) for methods other than
    /// `methods`.
    pub fn new(methods: Vec<http::Method>, guard: impl Into<Guard>) -> Self {
        LimitExcept {
            methods,
            guard: guard.into(),
        }
    }

    /// The guard a request with `method` is held to, if this one.
    pub fn guard_for(&self, method: &http::Method) -> Option<&Guard> {
        let left_alone = self.methods.contains(method)
            || (method == http::Method::HEAD && self.methods.contains(&http::Method::GET));
        (!left_alone).then_some(&self.guard)
    }
}

/// Whether `rule` names a network with host bits set (`10.0.0.1/8`), which
/// nginx warns about.
pub fn has_host_bits(rule: &str) -> bool {
    rule.parse::<IpNet>().is_ok_and(|n| n.trunc() != n)
}

/// The address access is decided on: the peer's.
pub(crate) fn client_addr<B>(req: &Request<B>) -> IpAddr {
    conn_info(req).peer.ip()
}

/// Layer checking an [`AccessList`]; see [`Access`].
#[derive(Debug, Clone)]
pub struct AccessLayer {
    list: AccessList,
}

impl AccessLayer {
    /// Checks `list` before the inner service.
    pub fn new(list: AccessList) -> Self {
        AccessLayer { list }
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = Access<S>;
    fn layer(&self, inner: S) -> Access<S> {
        Access {
            inner,
            list: self.list.clone(),
        }
    }
}

/// Calls the inner service for clients the list lets in; others get
/// [`ProxyError::Forbidden`] (a 403 from the rescue layer).
///
/// ```
/// use rpx_core::access::{AccessLayer, AccessList};
/// use rpx_core::conn::{ConnInfoLayer, ConnInfo, Scheme};
/// use rpx_core::error::ProxyError;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let list = AccessList::builder().allow("127.0.0.1").unwrap().deny("all").unwrap().build();
/// let svc = |peer: &str| {
///     let addr: std::net::SocketAddr = peer.parse().unwrap();
///     ServiceBuilder::new()
///         .layer(ConnInfoLayer::new(ConnInfo::new(addr, addr, addr, Scheme::Http)))
///         .layer(AccessLayer::new(list.clone()))
///         .service(service_fn(|_r: http::Request<()>| async {
///             Ok::<_, ProxyError>(http::Response::new(()))
///         }))
/// };
/// assert!(svc("127.0.0.1:9").oneshot(http::Request::new(())).await.is_ok());
/// let denied = svc("192.0.2.1:9").oneshot(http::Request::new(())).await;
/// assert_eq!(denied.unwrap_err().status(), 403);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Access<S> {
    inner: S,
    list: AccessList,
}

impl<S, B, ResB> Service<Request<B>> for Access<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: From<ProxyError>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<ResB>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.list.check(client_addr(&req)) {
            Verdict::Allow => Either::Right(self.inner.call(req)),
            Verdict::Deny => Either::Left(ready(Err(ProxyError::Forbidden.into()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rules: &[(Verdict, &str)]) -> AccessList {
        rules
            .iter()
            .fold(AccessList::builder(), |b, (v, r)| b.rule(*v, r).unwrap())
            .build()
    }

    #[test]
    fn the_first_match_decides() {
        use Verdict::*;
        let l = list(&[
            (Deny, "192.168.1.1"),
            (Allow, "192.168.1.0/24"),
            (Allow, "10.1.1.0/16"),
            (Allow, "2001:0db8::/32"),
            (Deny, "all"),
        ]);
        for (addr, want) in [
            ("192.168.1.1", Deny),
            ("192.168.1.2", Allow),
            ("10.1.200.1", Allow),
            ("10.2.0.1", Deny),
            ("2001:db8::1", Allow),
            ("2001:db9::1", Deny),
            ("::ffff:192.168.1.2", Allow),
            ("::ffff:192.168.1.1", Deny),
        ] {
            assert_eq!(l.check(addr.parse().unwrap()), want, "{addr}");
        }
        assert_eq!(list(&[]).check("1.2.3.4".parse().unwrap()), Allow);
        assert_eq!(
            list(&[(Deny, "unix:")]).check("1.2.3.4".parse().unwrap()),
            Allow
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0",
            "example.com",
            "",
            "::1/129",
            "unix",
        ] {
            assert!(AccessList::builder().allow(bad).is_err(), "{bad}");
        }
        assert!(has_host_bits("10.1.1.0/16") && !has_host_bits("10.1.0.0/16"));
    }
}
