//! What a location asks of a request before serving it: its address list,
//! its `auth_basic` and `auth_request`, and whether one passing is enough
//! (`satisfy`).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};

use super::{AccessList, AuthRequest, BasicAuth, Verdict};
use crate::error::ProxyError;
use crate::limit::conn::Slots;
use crate::vars::SetVars;

/// `satisfy all | any`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Satisfy {
    /// Every check must pass (nginx's default).
    #[default]
    All,
    /// One passing is enough: an `allow` rule that matches, or the
    /// password.
    Any,
}

/// A location's access checks.
///
/// ```
/// use rpx_core::access::{AccessList, BasicAuth, Gate, Guard, Satisfy};
/// let office = AccessList::builder().allow("10.0.0.0/8").unwrap().deny("all").unwrap().build();
/// let guard = Guard::from(office)
///     .with_basic(BasicAuth::new("Staff", "/etc/rpx/htpasswd"))
///     .with_satisfy(Satisfy::Any);
/// assert!(matches!(guard.gate("10.1.2.3".parse().unwrap()), Gate::Pass));
/// assert!(matches!(guard.gate("192.0.2.1".parse().unwrap()), Gate::Check));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Guard {
    list: Option<AccessList>,
    basic: Option<BasicAuth>,
    request: Option<AuthRequest>,
    satisfy: Satisfy,
}

/// What a [`Guard`] says of a client before its credentials are looked at.
#[derive(Debug)]
pub enum Gate {
    /// Let in.
    Pass,
    /// 403.
    Deny,
    /// Let in if the password (`auth_basic`) and the subrequest
    /// (`auth_request`) say so, all or any of them as `satisfy` says.
    Check,
}

impl From<AccessList> for Guard {
    fn from(list: AccessList) -> Guard {
        Guard::default().with_list(list)
    }
}

impl Guard {
    /// Checks `list` (an empty one checks nothing).
    pub fn with_list(mut self, list: AccessList) -> Guard {
        self.list = (!list.is_empty()).then_some(list);
        self
    }

    /// Asks for a password of `basic`.
    pub fn with_basic(mut self, basic: BasicAuth) -> Guard {
        self.basic = Some(basic);
        self
    }

    /// Asks `request`'s target.
    pub fn with_request(mut self, request: AuthRequest) -> Guard {
        self.request = Some(request);
        self
    }

    /// `satisfy`.
    pub fn with_satisfy(mut self, satisfy: Satisfy) -> Guard {
        self.satisfy = satisfy;
        self
    }

    /// Checks nothing.
    pub fn is_empty(&self) -> bool {
        self.list.is_none() && self.basic.is_none() && self.request.is_none()
    }

    /// nginx's access phase for a client at `addr`, up to the checks that
    /// wait: with `satisfy any` only a matching `allow` rule is a pass (a
    /// client no rule matches still needs the other checks), and a failed
    /// password is a 401 even where `deny` matched.
    pub fn gate(&self, addr: IpAddr) -> Gate {
        let rule = self.list.as_ref().and_then(|l| l.first_match(addr));
        let checks = self.basic.is_some() || self.request.is_some();
        match (self.satisfy, rule, checks) {
            (Satisfy::All, Some(Verdict::Deny), _) => Gate::Deny,
            (Satisfy::Any, Some(Verdict::Allow), _) => Gate::Pass,
            (_, _, true) => Gate::Check,
            (_, Some(Verdict::Deny), false) => Gate::Deny,
            _ => Gate::Pass,
        }
    }
}

/// The checks of one guard left to wait for.
#[derive(Debug, Clone)]
struct Check {
    basic: Option<BasicAuth>,
    request: Option<AuthRequest>,
    any: bool,
}

/// What the router left on a request for the stack to do before it is
/// served: `limit_req`'s delay, then the checks that wait (a password, a
/// subrequest), one set per location passed on the way (an internal
/// redirect from a protected location still needs that location's).
#[derive(Debug, Clone, Default)]
pub struct Pending {
    delay: Option<Duration>,
    checks: Vec<Check>,
    /// `limit_conn`'s counts, held until the response is done.
    slots: Option<Arc<Slots>>,
}

/// The outcome of the checks, and what `auth_request_set` set.
pub type Checked = (Result<(), ProxyError>, Option<SetVars>);

impl Pending {
    /// Adds `guard`'s waiting checks to the request's.
    pub(crate) fn add<B>(req: &mut Request<B>, guard: &Guard) {
        let pending = req.extensions_mut().get_or_insert_default::<Pending>();
        let same = |c: &Check| {
            let basic = match (&c.basic, &guard.basic) {
                (Some(a), Some(b)) => a.same(b),
                (a, b) => a.is_none() && b.is_none(),
            };
            let request = match (&c.request, &guard.request) {
                (Some(a), Some(b)) => Arc::ptr_eq(a.target(), b.target()),
                (a, b) => a.is_none() && b.is_none(),
            };
            basic && request
        };
        if !pending.checks.iter().any(same) {
            pending.checks.push(Check {
                basic: guard.basic.clone(),
                request: guard.request.clone(),
                any: guard.satisfy == Satisfy::Any,
            });
        }
    }

    /// Counts the request in `limit_conn` zones until it is done: the
    /// stack keeps `slots` with the response body.
    pub(crate) fn hold<B>(req: &mut Request<B>, slots: Slots) {
        req.extensions_mut()
            .get_or_insert_default::<Pending>()
            .slots = Some(Arc::new(slots));
    }

    /// The `limit_conn` counts, taken off the checks; they are given back
    /// when the last clone is dropped.
    pub fn take_slots(&mut self) -> Option<Arc<Slots>> {
        self.slots.take()
    }

    /// Holds the request `delay` first.
    pub(crate) fn delay<B>(req: &mut Request<B>, delay: Duration) {
        req.extensions_mut()
            .get_or_insert_default::<Pending>()
            .delay = Some(delay);
    }

    /// The checks left on `req`, taken off it.
    pub fn take<B>(req: &mut Request<B>) -> Option<Pending> {
        req.extensions_mut().remove::<Pending>()
    }

    /// Waits out the delay, then makes every set of checks on `req`; the
    /// first that fails is the error to answer with. What
    /// `auth_request_set` set comes back to be put on the request.
    pub fn check<B>(self, req: &Request<B>) -> Pin<Box<dyn Future<Output = Checked> + Send>> {
        let delay = self.delay;
        let checks: Vec<_> = self.checks.into_iter().map(|c| c.start(req)).collect();
        Box::pin(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            let mut vars = None;
            for check in checks {
                let (result, set) = check.await;
                vars = set.or(vars);
                if result.is_err() {
                    return (result, vars);
                }
            }
            (Ok(()), vars)
        })
    }
}

impl Check {
    /// nginx's order, `auth_basic` then `auth_request`: with `satisfy
    /// all` both must pass; with `any` the first that passes lets the
    /// request in, and a 401 is the answer before a 403.
    fn start<B>(self, req: &Request<B>) -> Pin<Box<dyn Future<Output = Checked> + Send>> {
        let basic = self.basic.map(|b| {
            let check = b.check(req.headers());
            async move { check.await.map_err(|r| b.error(r)) }
        });
        let request = self.request.map(|r| r.check(req));
        let any = self.any;
        Box::pin(async move {
            let mut refused: Option<ProxyError> = None;
            if let Some(basic) = basic {
                match (basic.await, any) {
                    (Ok(()), true) => return (Ok(()), None),
                    (Ok(()), false) => {}
                    (Err(e), false) => return (Err(e), None),
                    (Err(e), true) => refused = Some(e),
                }
            }
            let Some(request) = request else {
                return (refused.map_or(Ok(()), Err), None);
            };
            let (result, vars) = request.await;
            let result = match (result, refused) {
                (Ok(()), _) => Ok(()),
                // A 500 ends it at once; otherwise an earlier 401 stands.
                (Err(e), _) if e.status() == StatusCode::INTERNAL_SERVER_ERROR => Err(e),
                (Err(e), Some(first)) if first.status() == StatusCode::UNAUTHORIZED => {
                    drop(e);
                    Err(first)
                }
                (Err(e), _) => Err(e),
            };
            (result, vars)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(rules: &[(Verdict, &str)], basic: bool, satisfy: Satisfy) -> Guard {
        let list = rules
            .iter()
            .fold(AccessList::builder(), |b, (v, r)| b.rule(*v, r).unwrap())
            .build();
        let g = Guard::from(list).with_satisfy(satisfy);
        if basic {
            g.with_basic(BasicAuth::new("r", "/nonexistent"))
        } else {
            g
        }
    }

    fn gate(g: &Guard, addr: &str) -> &'static str {
        match g.gate(addr.parse().unwrap()) {
            Gate::Pass => "pass",
            Gate::Deny => "deny",
            Gate::Check => "auth",
        }
    }

    #[test]
    fn satisfy_decides_as_nginx() {
        use Satisfy::*;
        use Verdict::*;
        let office = [(Allow, "10.0.0.0/8"), (Deny, "192.0.2.0/24")];
        let all = guard(&office, true, All);
        assert_eq!(gate(&all, "10.0.0.1"), "auth");
        assert_eq!(gate(&all, "192.0.2.1"), "deny");
        assert_eq!(gate(&all, "198.51.100.1"), "auth");
        let any = guard(&office, true, Any);
        assert_eq!(gate(&any, "10.0.0.1"), "pass");
        assert_eq!(gate(&any, "192.0.2.1"), "auth");
        // No rule matched: not an `allow`, so the password is asked for.
        assert_eq!(gate(&any, "198.51.100.1"), "auth");
        let no_password = guard(&office, false, Any);
        assert_eq!(gate(&no_password, "192.0.2.1"), "deny");
        assert_eq!(gate(&no_password, "198.51.100.1"), "pass");
        assert_eq!(gate(&guard(&[], false, All), "10.0.0.1"), "pass");
    }
}
