//! Access logs as a layer: nginx's `combined` by default, `log_format`
//! templates with `escape=json`, per-location `access_log path [format] |
//! off`. A line is written when the response body ends (or the client goes
//! away), through a writer thread, so logging never blocks a request.

mod body;
mod format;
mod time;
mod upstream;
mod writer;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Instant, SystemTime};

use http::{Request, Response};
use tower::{Layer, Service};

pub use body::LoggedBody;
pub use format::{Captured, Escape, Finished, LogFormat, COMBINED};
pub(crate) use upstream::{BodyCount, ConnectTime};
pub use upstream::{UpstreamLog, UpstreamTry};
pub use writer::{reopen_all, LogFile, LogFileError};

pub(crate) use time::time_iso8601;

use crate::conn::conn_info;
use crate::error::ProxyError;
use crate::request::request_path;
use crate::vars::VarCtx;

/// One `access_log` destination.
#[derive(Debug, Clone)]
pub struct LogTarget {
    /// The file.
    pub file: Arc<LogFile>,
    /// The format.
    pub format: Arc<LogFormat>,
}

/// Layer writing access logs; see [`AccessLog`].
#[derive(Debug, Clone)]
pub struct AccessLogLayer {
    // One reference: the layer is cloned with its location per request.
    shared: Arc<Targets>,
}

#[derive(Debug)]
struct Targets {
    targets: Arc<[LogTarget]>,
    server_name: Box<str>,
    /// Whether a format reports `$upstream_*`.
    upstream: bool,
}

impl AccessLogLayer {
    /// Logs every response to each target. No targets: a pass-through.
    pub fn new(targets: Vec<LogTarget>, server_name: impl Into<Arc<str>>) -> Self {
        AccessLogLayer {
            shared: Arc::new(Targets {
                upstream: targets.iter().any(|t| t.format.needs_upstream()),
                targets: targets.into(),
                server_name: server_name.into().as_ref().into(),
            }),
        }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;
    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog {
            inner,
            layer: self.clone(),
        }
    }
}

/// Service of [`AccessLogLayer`]: any inner service's responses, their
/// bodies wrapped in [`LoggedBody`] so the line is written when they end.
///
/// ```
/// use std::sync::Arc;
/// use http_body_util::{BodyExt, Full};
/// use rpx_core::accesslog::{AccessLogLayer, Escape, LogFile, LogFormat, LogTarget};
/// use rpx_core::error::ProxyError;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let path = std::env::temp_dir().join(format!("rpx-doc-{}.log", std::process::id()));
/// let target = LogTarget {
///     file: LogFile::open(&path).unwrap(),
///     format: Arc::new(LogFormat::parse("$request_method $uri $status $body_bytes_sent", Escape::Default).unwrap()),
/// };
/// let svc = ServiceBuilder::new()
///     .layer(AccessLogLayer::new(vec![target], "example.com"))
///     .service(service_fn(|_req: http::Request<()>| async {
///         Ok::<_, ProxyError>(http::Response::new(Full::<bytes::Bytes>::from("hello")))
///     }));
/// let res = svc.oneshot(http::Request::get("/hi").body(()).unwrap()).await.unwrap();
/// // The line is written once the body has been read to its end.
/// res.into_body().collect().await.unwrap();
/// # let _ = std::fs::remove_file(&path);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
    layer: AccessLogLayer,
}

/// What a pending log line needs once the response is done.
#[derive(Debug)]
pub(crate) struct Pending {
    targets: Arc<[LogTarget]>,
    captured: Vec<Captured>,
    started: Instant,
    started_at: SystemTime,
    status: u16,
    header_bytes: u64,
    upstream: Option<UpstreamLog>,
    pub(crate) body_bytes: u64,
    written: bool,
}

impl Pending {
    /// Writes the line(s); once.
    pub(crate) fn finish(&mut self) {
        if std::mem::replace(&mut self.written, true) {
            return;
        }
        let done = Finished {
            status: self.status,
            body_bytes: self.body_bytes,
            header_bytes: self.header_bytes,
            elapsed: self.started.elapsed(),
            started: Some(self.started_at),
            upstream: self
                .upstream
                .as_ref()
                .map(UpstreamLog::tries)
                .unwrap_or_default(),
        };
        for (t, c) in self.targets.iter().zip(&self.captured) {
            t.file.write(t.format.render(c, &done));
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // A client that went away mid-body is still logged.
        self.finish();
    }
}

impl<S, B, ResB> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<ResB>, Error = ProxyError>,
{
    type Response = Response<LoggedBody<ResB>>;
    type Error = ProxyError;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = &mut self.inner;
        self.layer.start(req, |req| inner.call(req))
    }
}

impl AccessLogLayer {
    /// Captures what the log line needs from the request and calls `inner`:
    /// [`AccessLog`]'s call, and the compiled stack's, which calls its
    /// locations by reference.
    #[inline]
    pub(crate) fn start<B, F>(
        &self,
        req: Request<B>,
        inner: impl FnOnce(Request<B>) -> F,
    ) -> AccessLogFuture<F> {
        let mut req = req;
        AccessLogFuture {
            pending: self.capture(&mut req),
            inner: inner(req),
        }
    }

    /// What the line needs of `req`, taken before the request is served;
    /// nothing without targets. [`Pending::attach`] gives it the response.
    /// A format with `$upstream_*` puts an [`UpstreamLog`] on the request
    /// for the proxy to fill.
    #[inline]
    pub(crate) fn capture<B>(&self, req: &mut Request<B>) -> Option<Box<Pending>> {
        let Targets {
            targets,
            server_name,
            upstream,
        } = &*self.shared;
        let upstream = upstream.then(|| match req.extensions().get::<UpstreamLog>() {
            Some(log) => {
                log.redirected();
                log.clone()
            }
            None => {
                let log = UpstreamLog::default();
                req.extensions_mut().insert(log.clone());
                log
            }
        });
        let req = &*req;
        // Boxed: the future is moved through every outer layer, logging or not.
        (!targets.is_empty()).then(|| {
            let conn = conn_info(req);
            let ctx = VarCtx::new(req, &conn, request_path(req), server_name);
            Box::new(Pending {
                captured: targets.iter().map(|t| t.format.capture(&ctx)).collect(),
                targets: targets.clone(),
                started: Instant::now(),
                started_at: SystemTime::now(),
                status: 0,
                header_bytes: 0,
                upstream,
                body_bytes: 0,
                written: false,
            })
        })
    }
}

impl Pending {
    /// Gives a captured line its request's outcome: the line is written
    /// when the body ends, or now for an error (which the rescue layer
    /// above turns into its page).
    #[inline]
    pub(crate) fn attach<B>(
        pending: Option<Box<Pending>>,
        result: Result<Response<B>, ProxyError>,
    ) -> Result<Response<LoggedBody<B>>, ProxyError> {
        let Some(mut pending) = pending else {
            return result.map(|res| res.map(LoggedBody::unlogged));
        };
        match result {
            Ok(res) => {
                pending.status = res.status().as_u16();
                pending.header_bytes = head_size(&res);
                Ok(res.map(|b| LoggedBody::new(b, Some(pending))))
            }
            Err(e) => {
                pending.status = e.status().as_u16();
                pending.finish();
                Err(e)
            }
        }
    }

    /// Drops the line unwritten: the request was answered by another
    /// location (`error_page`), whose line it is.
    pub(crate) fn discard(&mut self) {
        self.written = true;
    }
}

pin_project_lite::pin_project! {
    /// Future of [`AccessLog`].
    #[must_use = "futures do nothing unless polled"]
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Box<Pending>>,
    }
}

impl<F, B> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response<B>, ProxyError>>,
{
    type Output = Result<Response<LoggedBody<B>>, ProxyError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        Poll::Ready(Pending::attach(this.pending.take(), result))
    }
}

/// Approximate size of the response head as sent (`$bytes_sent`).
fn head_size<B>(res: &Response<B>) -> u64 {
    let headers: usize = res
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    (headers + 19) as u64
}
