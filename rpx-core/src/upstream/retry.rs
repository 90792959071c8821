//! `proxy_next_upstream`, `proxy_next_upstream_tries` and
//! `proxy_next_upstream_timeout`, compiled into a [`RetryPolicy`].

use std::time::Duration;

use http::{Method, StatusCode};

use crate::error::ProxyError;

/// The conditions of `proxy_next_upstream`, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextUpstream(u16);

/// A word `proxy_next_upstream` does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid proxy_next_upstream value {0:?}: use error, timeout, invalid_header, http_500, http_502, http_503, http_504, http_403, http_404, http_429, non_idempotent or off")]
pub struct NextUpstreamError(pub String);

impl NextUpstream {
    /// `error`: connecting, sending the request or reading the response head failed.
    pub const ERROR: Self = Self(1);
    /// `timeout`: the same, out of time.
    pub const TIMEOUT: Self = Self(1 << 1);
    /// `invalid_header`: the response head was not valid HTTP.
    pub const INVALID_HEADER: Self = Self(1 << 2);
    /// `http_500`.
    pub const HTTP_500: Self = Self(1 << 3);
    /// `http_502`.
    pub const HTTP_502: Self = Self(1 << 4);
    /// `http_503`.
    pub const HTTP_503: Self = Self(1 << 5);
    /// `http_504`.
    pub const HTTP_504: Self = Self(1 << 6);
    /// `http_403`.
    pub const HTTP_403: Self = Self(1 << 7);
    /// `http_404`.
    pub const HTTP_404: Self = Self(1 << 8);
    /// `http_429`.
    pub const HTTP_429: Self = Self(1 << 9);
    /// `non_idempotent`: also retry POST, LOCK, PATCH once they were sent.
    pub const NON_IDEMPOTENT: Self = Self(1 << 10);
    /// `off`.
    pub const OFF: Self = Self(0);

    const STATUSES: [(u16, Self); 7] = [
        (500, Self::HTTP_500),
        (502, Self::HTTP_502),
        (503, Self::HTTP_503),
        (504, Self::HTTP_504),
        (403, Self::HTTP_403),
        (404, Self::HTTP_404),
        (429, Self::HTTP_429),
    ];

    /// Parses the directive's words.
    ///
    /// # Errors
    /// An unknown word, or `off` with others.
    pub fn parse<S: AsRef<str>>(words: &[S]) -> Result<Self, NextUpstreamError> {
        let mut set = Self::OFF;
        for w in words {
            let w = w.as_ref();
            set.0 |= match w {
                "error" => Self::ERROR.0,
                "timeout" => Self::TIMEOUT.0,
                "invalid_header" => Self::INVALID_HEADER.0,
                "non_idempotent" => Self::NON_IDEMPOTENT.0,
                "off" if words.len() == 1 => 0,
                _ => match w
                    .strip_prefix("http_")
                    .and_then(|c| c.parse::<u16>().ok())
                    .and_then(|c| Self::STATUSES.iter().find(|s| s.0 == c))
                {
                    Some((_, f)) => f.0,
                    None => return Err(NextUpstreamError(w.into())),
                },
            };
        }
        Ok(set)
    }

    /// Whether every condition of `other` is in `self`.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    fn status_flag(status: StatusCode) -> Option<Self> {
        Self::STATUSES
            .iter()
            .find(|s| s.0 == status.as_u16())
            .map(|s| s.1)
    }
}

impl Default for NextUpstream {
    /// nginx's default: `error timeout`.
    fn default() -> Self {
        Self(Self::ERROR.0 | Self::TIMEOUT.0)
    }
}

/// When a failed attempt goes on to the next server of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryPolicy {
    /// `proxy_next_upstream`. Default `error timeout`.
    pub next: NextUpstream,
    /// `proxy_next_upstream_tries`: attempts in all; 0 is as many as there
    /// are servers. Default 0.
    pub tries: u32,
    /// `proxy_next_upstream_timeout`: no new attempt after this long; `None`
    /// is unlimited. Default `None`.
    pub timeout: Option<Duration>,
}

/// What an attempt's failure was, for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Nothing was sent: connecting failed.
    Connect,
    /// Nothing was sent: connecting timed out.
    ConnectTimeout,
    /// `error` after the request was (possibly) sent.
    Error,
    /// `timeout` after the request was (possibly) sent.
    Timeout,
    /// `invalid_header`.
    InvalidHeader,
}

impl Failure {
    /// The upstream's failures; the client's (body too large, stalled) are none.
    pub(crate) fn of(err: &ProxyError) -> Option<Failure> {
        use crate::error::TimeoutPhase;
        match err {
            ProxyError::UpstreamConnect { .. } => Some(Failure::Connect),
            ProxyError::UpstreamTimeout {
                phase: TimeoutPhase::Connect,
                ..
            } => Some(Failure::ConnectTimeout),
            ProxyError::UpstreamTimeout { .. } => Some(Failure::Timeout),
            ProxyError::UpstreamProtocol { source, .. } => {
                let mut e: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
                while let Some(x) = e {
                    if x.downcast_ref::<hyper::Error>()
                        .is_some_and(hyper::Error::is_parse)
                    {
                        return Some(Failure::InvalidHeader);
                    }
                    e = x.source();
                }
                Some(Failure::Error)
            }
            ProxyError::UnexpectedUpgrade { .. } => Some(Failure::InvalidHeader),
            _ => None,
        }
    }
}

/// nginx's non-idempotent methods.
fn idempotent(method: &Method) -> bool {
    !matches!(method.as_str(), "POST" | "LOCK" | "PATCH")
}

impl RetryPolicy {
    /// Whether `failure` of a request with `method` goes to the next server.
    /// A connect failure sent nothing, so any method may go on.
    pub(crate) fn retries_failure(&self, failure: Failure, method: &Method) -> bool {
        let flag = match failure {
            Failure::Connect | Failure::Error => NextUpstream::ERROR,
            Failure::Timeout | Failure::ConnectTimeout => NextUpstream::TIMEOUT,
            Failure::InvalidHeader => NextUpstream::INVALID_HEADER,
        };
        let sent = !matches!(failure, Failure::Connect | Failure::ConnectTimeout);
        self.next.contains(flag)
            && (!sent || idempotent(method) || self.next.contains(NextUpstream::NON_IDEMPOTENT))
    }

    /// Whether a response with `status` goes to the next server.
    pub(crate) fn retries_status(&self, status: StatusCode, method: &Method) -> bool {
        NextUpstream::status_flag(status).is_some_and(|f| self.next.contains(f))
            && (idempotent(method) || self.next.contains(NextUpstream::NON_IDEMPOTENT))
    }

    /// Whether a response with `status` counts against the server's
    /// `max_fails`: 500, 502, 503, 504 and 429 when listed, as nginx.
    pub(crate) fn status_is_failure(&self, status: StatusCode) -> bool {
        matches!(status.as_u16(), 500 | 502 | 503 | 504 | 429)
            && NextUpstream::status_flag(status).is_some_and(|f| self.next.contains(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_words() {
        let n = NextUpstream::parse(&["error", "http_502", "non_idempotent"]).unwrap();
        assert!(n.contains(NextUpstream::ERROR) && n.contains(NextUpstream::HTTP_502));
        assert!(!n.contains(NextUpstream::TIMEOUT));
        assert_eq!(NextUpstream::parse(&["off"]).unwrap(), NextUpstream::OFF);
        assert!(NextUpstream::parse(&["off", "error"]).is_err());
        assert!(NextUpstream::parse(&["http_501"]).is_err());
    }

    #[test]
    fn policy() {
        let p = RetryPolicy::default();
        let (get, post) = (Method::GET, Method::POST);
        assert!(p.retries_failure(Failure::Connect, &post));
        assert!(p.retries_failure(Failure::Error, &get));
        assert!(!p.retries_failure(Failure::Error, &post));
        assert!(!p.retries_failure(Failure::InvalidHeader, &get));
        assert!(!p.retries_status(StatusCode::BAD_GATEWAY, &get));
        let p = RetryPolicy {
            next: NextUpstream::parse(&["http_503", "http_404", "non_idempotent"]).unwrap(),
            ..p
        };
        assert!(p.retries_status(StatusCode::SERVICE_UNAVAILABLE, &post));
        assert!(p.status_is_failure(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!p.status_is_failure(StatusCode::NOT_FOUND));
        assert!(!p.retries_failure(Failure::Connect, &get), "no `error`");
    }
}
