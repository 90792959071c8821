//! What a location asks of a request before serving it: its address list
//! and its `auth_basic`, and whether one passing is enough (`satisfy`).

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Request};

use super::{AccessList, BasicAuth, Verdict};
use crate::error::ProxyError;
use crate::limit::conn::Slots;

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
/// assert!(matches!(guard.gate("192.0.2.1".parse().unwrap()), Gate::Authenticate(_)));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Guard {
    list: Option<AccessList>,
    basic: Option<BasicAuth>,
    satisfy: Satisfy,
}

/// What a [`Guard`] says of a client before its password is looked at.
#[derive(Debug)]
pub enum Gate<'g> {
    /// Let in.
    Pass,
    /// 403.
    Deny,
    /// Let in if the credentials match (else 401).
    Authenticate(&'g BasicAuth),
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

    /// `satisfy`.
    pub fn with_satisfy(mut self, satisfy: Satisfy) -> Guard {
        self.satisfy = satisfy;
        self
    }

    /// Checks nothing.
    pub fn is_empty(&self) -> bool {
        self.list.is_none() && self.basic.is_none()
    }

    /// nginx's access phase for a client at `addr`: with `satisfy any`
    /// only a matching `allow` rule is a pass (a client no rule matches
    /// still needs the password), and a failed password is a 401 even
    /// where `deny` matched.
    pub fn gate(&self, addr: IpAddr) -> Gate<'_> {
        let rule = self.list.as_ref().and_then(|l| l.first_match(addr));
        match (self.satisfy, rule, &self.basic) {
            (Satisfy::All, Some(Verdict::Deny), _) => Gate::Deny,
            (Satisfy::Any, Some(Verdict::Allow), _) => Gate::Pass,
            (_, _, Some(basic)) => Gate::Authenticate(basic),
            (_, Some(Verdict::Deny), None) => Gate::Deny,
            _ => Gate::Pass,
        }
    }
}

/// What the router left on a request for the stack to do before it is
/// served: `limit_req`'s delay, then the password checks, one per location
/// passed on the way (an internal redirect from a protected location still
/// needs that location's).
#[derive(Debug, Clone, Default)]
pub struct Pending {
    delay: Option<Duration>,
    basic: Vec<BasicAuth>,
    /// `limit_conn`'s counts, held until the response is done.
    slots: Option<Arc<Slots>>,
}

impl Pending {
    /// Adds `basic` to the request's checks.
    pub(crate) fn add<B>(req: &mut Request<B>, basic: &BasicAuth) {
        let pending = req.extensions_mut().get_or_insert_default::<Pending>();
        if !pending.basic.iter().any(|b| b.same(basic)) {
            pending.basic.push(basic.clone());
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

    /// Makes every check on the credentials in `headers`; the first that
    /// fails is the error to answer with.
    pub fn check(
        self,
        headers: &HeaderMap,
    ) -> impl Future<Output = Result<(), ProxyError>> + Send + 'static {
        let delay = self.delay;
        let checks: Vec<_> = self
            .basic
            .into_iter()
            .map(|basic| {
                let check = basic.check(headers);
                (basic, check)
            })
            .collect();
        async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            for (basic, check) in checks {
                check.await.map_err(|r| basic.error(r))?;
            }
            Ok(())
        }
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
            Gate::Authenticate(_) => "auth",
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
