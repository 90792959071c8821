//! Limits: `client_max_body_size` as a layer (here: a declared length
//! over the limit is refused with 413 before anything is forwarded; a
//! streamed body is cut off, and answered 413 if no response has started,
//! when it exceeds it), request rates ([`rate`]: `limit_req`), requests
//! in progress ([`conn`]: `limit_conn`) and response bandwidth
//! ([`bandwidth`]: `limit_rate`).

pub mod bandwidth;
mod body;
pub mod conn;
pub mod rate;

pub use body::{BodyTooLarge, Limited};

use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use http::{header, Request};
use tower::{Layer, Service};

use crate::error::ProxyError;

/// nginx's default `client_max_body_size`: 1 MiB.
pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024;

/// Layer limiting request bodies; see [`BodyLimit`].
#[derive(Debug, Clone, Copy)]
pub struct BodyLimitLayer {
    limit: u64,
}

impl BodyLimitLayer {
    /// At most `limit` bytes; `0` means unlimited, as in nginx.
    pub fn new(limit: u64) -> Self {
        BodyLimitLayer {
            limit: if limit == 0 { u64::MAX } else { limit },
        }
    }
}

impl BodyLimitLayer {
    /// The limit in bytes (`u64::MAX`: none).
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }
}

impl Default for BodyLimitLayer {
    /// [`DEFAULT_MAX_BODY`].
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BODY)
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;
    fn layer(&self, inner: S) -> BodyLimit<S> {
        BodyLimit {
            inner,
            limit: self.limit,
        }
    }
}

/// Refuses or cuts off bodies over the limit.
///
/// ```
/// use rpx_core::limit::BodyLimitLayer;
/// use http_body_util::Empty;
/// use rpx_core::error::ProxyError;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let svc = ServiceBuilder::new()
///     .layer(BodyLimitLayer::new(4))
///     .service(service_fn(|_r: http::Request<_>| async { Ok::<_, ProxyError>(http::Response::new(Empty::<bytes::Bytes>::new())) }));
/// let req = http::Request::post("/").header("content-length", "5")
///     .body(http_body_util::Full::new(bytes::Bytes::from_static(b"12345"))).unwrap();
/// assert!(matches!(svc.oneshot(req).await, Err(ProxyError::BodyTooLarge { limit: 4 })));
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct BodyLimit<S> {
    inner: S,
    limit: u64,
}

impl<S, B> Service<Request<B>> for BodyLimit<S>
where
    B: http_body::Body,
    S: Service<Request<Limited<B>>>,
    S::Error: From<ProxyError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = &mut self.inner;
        limited(self.limit, req, |req| inner.call(req))
    }
}

/// Refuses a declared length over `limit`, else calls `inner` with the
/// body counted: [`BodyLimit`]'s call, and the compiled stack's.
#[inline]
pub(crate) fn limited<B, F, R, E>(
    limit: u64,
    req: Request<B>,
    inner: impl FnOnce(Request<Limited<B>>) -> F,
) -> Either<Ready<Result<R, E>>, F>
where
    B: http_body::Body,
    E: From<ProxyError>,
{
    // A request whose body has ended (most: GET, HEAD) has nothing to refuse.
    let declared = (!req.body().is_end_stream())
        .then(|| req.headers().get(header::CONTENT_LENGTH))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Either::Left(ready(Err(ProxyError::BodyTooLarge { limit }.into())));
    }
    Either::Right(inner(req.map(|b| Limited::new(b, limit))))
}
