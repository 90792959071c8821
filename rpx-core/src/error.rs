//! Request-path errors and the one place they become responses.
//!
//! Every leaf service reports failure as a [`ProxyError`]; the [`Rescue`]
//! layer at the top of the stack turns it into a status code and logs it with
//! whose fault it was. Nothing else in the stack formats error pages.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::reply::{error_page, Reply, ReplyBody};

/// A boxed error as used by bodies and connectors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whose fault a failed request was: decides the log level and the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something wrong or too slowly.
    Downstream,
    /// The upstream refused, failed or timed out.
    Upstream,
    /// A bug or a local resource problem.
    Internal,
}

/// Which phase of talking to an upstream ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// `proxy_connect_timeout`.
    Connect,
    /// `proxy_read_timeout`: waiting for the response head or between two reads.
    Read,
    /// `proxy_send_timeout`: between two writes of the request.
    Send,
}

impl std::fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::Read => "read",
            TimeoutPhase::Send => "send",
        })
    }
}

/// A failure on the request path, mapped to a response by [`Rescue`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// No location of the chosen server matches the path (404).
    #[error("no location matches the request path")]
    NoRoute,
    /// The request itself is malformed (400).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// `deny` refused the client (403).
    #[error("access forbidden by rule")]
    Forbidden,
    /// `auth_basic` wants credentials the client did not send or that do
    /// not match (401 with `WWW-Authenticate: Basic realm="…"`).
    #[error("authorization required")]
    Unauthorized {
        /// The realm the browser shows.
        realm: std::sync::Arc<str>,
    },
    /// `auth_request`'s subrequest answered 401 or 403: that status, with
    /// a 401's `WWW-Authenticate` headers.
    #[error("access refused by the authorization subrequest ({status})")]
    AuthRequest {
        /// 401 or 403.
        status: StatusCode,
        /// The subrequest's `WWW-Authenticate` headers.
        challenges: Vec<http::HeaderValue>,
    },
    /// A method the handler does not serve: a static file for anything but
    /// GET and HEAD (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request path does not normalise: a `..` above the root, a NUL (400).
    #[error("invalid request path")]
    BadPath,
    /// `rewrite`s and internal redirects went round more than nginx's ten
    /// times (500).
    #[error("rewrite or internal redirection cycle")]
    RewriteCycle,
    /// A `try_files` or rewrite target that is not a path, or a named
    /// location that is missing: a config rpx could not check (500).
    #[error("bad internal redirect: {0}")]
    BadRedirect(String),
    /// The request body is larger than `client_max_body_size` (413).
    #[error("request body larger than client_max_body_size ({limit} bytes)")]
    BodyTooLarge {
        /// The configured limit in bytes.
        limit: u64,
    },
    /// The client stopped sending its body for longer than the body timeout (408).
    #[error("client body timed out")]
    ClientTimeout,
    /// The upstream could not be reached (502).
    #[error("connecting to upstream {upstream} failed: {source}")]
    UpstreamConnect {
        /// `host:port` of the upstream.
        upstream: String,
        /// What the connector said.
        #[source]
        source: BoxError,
    },
    /// The upstream did not answer in time (504).
    #[error("upstream {upstream} timed out ({phase})")]
    UpstreamTimeout {
        /// `host:port` of the upstream.
        upstream: String,
        /// Which phase timed out.
        phase: TimeoutPhase,
    },
    /// The upstream broke the protocol or the connection (502).
    #[error("upstream {upstream} failed: {source}")]
    UpstreamProtocol {
        /// `host:port` of the upstream.
        upstream: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// The upstream answered `101` although the client did not ask to upgrade (502).
    #[error("upstream {upstream} switched protocols without being asked")]
    UnexpectedUpgrade {
        /// `host:port` of the upstream.
        upstream: String,
    },
    /// A `proxy_pass` with variables named a host, and no `resolver` is set.
    #[error("no resolver defined to resolve {host}")]
    NoResolver {
        /// The name.
        host: String,
    },
    /// Every server of an upstream group is marked down (502).
    #[error("no live server in upstream group {group}")]
    NoLiveUpstream {
        /// The group's name.
        group: String,
    },
    /// Something inside rpx failed (500).
    #[error("internal error: {0}")]
    Internal(BoxError),
}

impl ProxyError {
    /// The status code the client receives.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::Forbidden => StatusCode::FORBIDDEN,
            ProxyError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::AuthRequest { status, .. } => *status,
            ProxyError::BadRequest(_) | ProxyError::BadPath => StatusCode::BAD_REQUEST,
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::UpstreamConnect { .. }
            | ProxyError::UpstreamProtocol { .. }
            | ProxyError::UnexpectedUpgrade { .. }
            | ProxyError::NoLiveUpstream { .. }
            | ProxyError::NoResolver { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::RewriteCycle | ProxyError::BadRedirect(_) | ProxyError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Whose fault the failure was.
    pub fn fault(&self) -> Fault {
        match self {
            ProxyError::NoRoute
            | ProxyError::Forbidden
            | ProxyError::Unauthorized { .. }
            | ProxyError::AuthRequest { .. }
            | ProxyError::BadRequest(_)
            | ProxyError::BadPath
            | ProxyError::MethodNotAllowed
            | ProxyError::BodyTooLarge { .. }
            | ProxyError::ClientTimeout => Fault::Downstream,
            ProxyError::UpstreamConnect { .. }
            | ProxyError::UpstreamTimeout { .. }
            | ProxyError::UpstreamProtocol { .. }
            | ProxyError::UnexpectedUpgrade { .. }
            | ProxyError::NoLiveUpstream { .. }
            | ProxyError::NoResolver { .. } => Fault::Upstream,
            ProxyError::RewriteCycle | ProxyError::BadRedirect(_) | ProxyError::Internal(_) => {
                Fault::Internal
            }
        }
    }

    /// The response a client gets for this error: nginx-style HTML page.
    /// After a 400, 413, 414, 500 or 501 the connection closes, as nginx
    /// closes it (what follows a bad request cannot be trusted to be framed
    /// as the client meant).
    pub fn to_response(&self) -> Reply {
        let status = self.status();
        let mut page = error_page(status);
        if let ProxyError::Unauthorized { realm } = self {
            // As nginx: the realm as written, in quotes.
            let value = format!("Basic realm=\"{realm}\"");
            if let Ok(v) = http::HeaderValue::try_from(value) {
                page.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
            }
        }
        if let ProxyError::AuthRequest { challenges, .. } = self {
            for c in challenges {
                page.headers_mut()
                    .append(http::header::WWW_AUTHENTICATE, c.clone());
            }
        }
        if matches!(status.as_u16(), 400 | 413 | 414 | 500 | 501) {
            page.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        page
    }
}

/// The body of what [`Rescue`] answers: the inner service's own, or the
/// error page it made.
pub type RescueBody<B> = http_body_util::Either<B, ReplyBody>;

/// Layer that turns [`ProxyError`]s into responses; see [`Rescue`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RescueLayer;

impl<S> Layer<S> for RescueLayer {
    type Service = Rescue<S>;
    fn layer(&self, inner: S) -> Rescue<S> {
        Rescue { inner }
    }
}

/// Maps every [`ProxyError`] of the inner service to its response, and logs it
/// once with whose fault it was. Its error type is [`std::convert::Infallible`].
///
/// ```
/// use http_body_util::Empty;
/// use rpx_core::error::{ProxyError, RescueLayer};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # tokio_test_shim::block_on(async {
/// let svc = ServiceBuilder::new().layer(RescueLayer).service(service_fn(
///     |_req: http::Request<()>| async {
///         Err::<http::Response<Empty<bytes::Bytes>>, _>(ProxyError::NoRoute)
///     },
/// ));
/// let res = svc.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(res.status(), 404);
/// # });
/// # mod tokio_test_shim { pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f) } }
/// ```
#[derive(Debug, Clone)]
pub struct Rescue<S> {
    inner: S,
}

impl<S> Rescue<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Rescue { inner }
    }
}

impl<S, B, ResB> Service<Request<B>> for Rescue<S>
where
    S: Service<Request<B>, Response = Response<ResB>, Error = ProxyError>,
{
    type Response = Response<RescueBody<ResB>>;
    type Error = std::convert::Infallible;
    type Future = RescueFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match ready!(self.inner.poll_ready(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            // An inner service that cannot become ready is a bug; report it
            // per request instead of killing the connection.
            Err(e) => {
                tracing::error!(error = %e, "service not ready");
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        RescueFuture::new(self.inner.call(req))
    }
}

pin_project_lite::pin_project! {
    /// Future of [`Rescue`].
    #[must_use = "futures do nothing unless polled"]
    pub struct RescueFuture<F> {
        #[pin]
        inner: F,
        server: Option<&'static http::HeaderValue>,
    }
}

impl<F> RescueFuture<F> {
    /// Rescues what `inner` answers.
    pub(crate) fn new(inner: F) -> Self {
        RescueFuture {
            inner,
            server: None,
        }
    }

    /// Gives every answer this `Server` header unless it has one (an
    /// upstream's, passed with `proxy_pass_header Server`), as nginx.
    pub(crate) fn with_server(mut self, server: &'static http::HeaderValue) -> Self {
        self.server = Some(server);
        self
    }
}

impl<F, B> Future for RescueFuture<F>
where
    F: Future<Output = Result<Response<B>, ProxyError>>,
{
    type Output = Result<Response<RescueBody<B>>, std::convert::Infallible>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = match ready!(this.inner.poll(cx)) {
            Ok(res) => res.map(RescueBody::Left),
            Err(err) => {
                log_error(&err);
                err.to_response().map(RescueBody::Right)
            }
        };
        if let Some(server) = *this.server {
            if let http::header::Entry::Vacant(e) = res.headers_mut().entry(http::header::SERVER) {
                e.insert(server.clone());
            }
        }
        Poll::Ready(Ok(res))
    }
}

/// Logs `err` once, with whose fault it was.
pub(crate) fn log_error(err: &ProxyError) {
    let status = err.status().as_u16();
    match err.fault() {
        Fault::Downstream => tracing::info!(status, fault = "downstream", "{err}"),
        Fault::Upstream => tracing::warn!(status, fault = "upstream", "{err}"),
        Fault::Internal => tracing::error!(status, fault = "internal", "{err}"),
    }
}
