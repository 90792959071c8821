//! Prometheus metrics. Handles are created when a config is compiled, so
//! a request only bumps atomics; the text is served by a location whose
//! handler is `metrics` (on a listener the config chooses — keep it on
//! loopback or an admin network). The per-request series (`rpx_requests_*`,
//! `rpx_request_duration_seconds`) are recorded only by a config that has
//! such a location, or when an application installed its own recorder
//! instead of [`install`]'s: without a reader they would cost every request
//! two clock reads and a histogram entry.
//!
//! | metric | labels |
//! |---|---|
//! | `rpx_requests_total` | `server`, `class` (`2xx`…) |
//! | `rpx_request_duration_seconds` (histogram, to the response head) | `server` |
//! | `rpx_connections_active`, `rpx_connections_total` | `scheme` on the total |
//! | `rpx_requests_in_flight` (requests and HTTP/2 streams being answered) | `server` |
//! | `rpx_bytes_received_total`, `rpx_bytes_sent_total` (on the wire) | `listen` |
//! | `rpx_tls_handshakes_total` | `kind` (`full`, `resumed`, `failed`) |
//! | `rpx_reloads_total` | `result` (`ok`, `failed`) |
//! | `rpx_certificate_expiry_timestamp_seconds` | `name` |
//! | `rpx_upstream_selected_total`, `rpx_upstream_healthy` | `upstream`, `server` |
//! | `rpx_upstream_connections_total` (new connections: reuse = selected − connections) | `server` |

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
#[cfg(feature = "metrics")]
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use http::{header, HeaderValue, Request, Response};
use metrics::{Counter, Gauge, Histogram};
#[cfg(feature = "metrics")]
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower::{Layer, Service};

use crate::error::ProxyError;
use crate::reply::{reply, Reply};

pub mod stub_status;

#[cfg(feature = "metrics")]
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder for this process (once; later calls
/// return the same handle). Without it, metrics cost next to nothing and the
/// `metrics` handler says they are off.
///
/// # Errors
/// Another `metrics` recorder is already installed.
#[cfg(feature = "metrics")]
pub fn install() -> Result<&'static PrometheusHandle, String> {
    if let Some(h) = HANDLE.get() {
        return Ok(h);
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets(&[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])
        .map_err(|e| e.to_string())?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
    Ok(HANDLE.get_or_init(|| handle))
}

/// Without the `metrics` feature there is no Prometheus recorder to install.
///
/// # Errors
/// Always.
#[cfg(not(feature = "metrics"))]
pub fn install() -> Result<(), String> {
    Err("rpx-core was built without its `metrics` feature".into())
}

/// The current metrics as Prometheus text.
pub fn render() -> String {
    #[cfg(feature = "metrics")]
    if let Some(h) = HANDLE.get() {
        return h.render();
    }
    "# metrics are off: the recorder is not installed\n".into()
}

/// The response of a `metrics` location.
pub fn response() -> Reply {
    let mut res = reply(http::StatusCode::OK, render());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

/// A reload finished (`ok`) or kept the old config (`failed`).
pub fn reload_done(ok: bool) {
    metrics::counter!("rpx_reloads_total", "result" => if ok { "ok" } else { "failed" })
        .increment(1);
}

/// Whether a compiled config records per-request metrics (see the module):
/// when it serves them (`has_location`), or when rpx's recorder is not
/// installed (an application's own recorder, or none).
pub(crate) fn requests_recorded(has_location: bool) -> bool {
    #[cfg(feature = "metrics")]
    let ours = HANDLE.get().is_some();
    #[cfg(not(feature = "metrics"))]
    let ours = false;
    has_location || !ours
}

/// Per-server request metrics; see [`RequestMetrics`].
#[derive(Debug, Clone)]
pub struct RequestMetricsLayer {
    // Shared: a request's future holds one reference, not six handles.
    // `None`: recording is off and requests pass straight through.
    handles: Option<Arc<Handles>>,
}

#[derive(Debug)]
struct Handles {
    classes: [Counter; 5],
    duration: Histogram,
    in_flight: Gauge,
}

/// Counts a request in flight until its future is dropped (answered or
/// abandoned by the client).
#[derive(Debug)]
struct InFlight(Arc<Handles>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.decrement(1.0);
    }
}

impl RequestMetricsLayer {
    /// Handles for the server named `server` (created now, once).
    pub fn new(server: &str) -> Self {
        let server = server.to_owned();
        let class = |c: &'static str| metrics::counter!("rpx_requests_total", "server" => server.clone(), "class" => c);
        let classes = [
            class("1xx"),
            class("2xx"),
            class("3xx"),
            class("4xx"),
            class("5xx"),
        ];
        let duration =
            metrics::histogram!("rpx_request_duration_seconds", "server" => server.clone());
        let in_flight = metrics::gauge!("rpx_requests_in_flight", "server" => server.clone());
        RequestMetricsLayer {
            handles: Some(Arc::new(Handles {
                classes,
                duration,
                in_flight,
            })),
        }
    }

    /// A layer that records nothing.
    pub fn off() -> Self {
        RequestMetricsLayer { handles: None }
    }
}

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;
    fn layer(&self, inner: S) -> RequestMetrics<S> {
        RequestMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

/// Counts requests by status class and records their time to the response
/// head, for any inner service and body.
///
/// ```
/// use http_body_util::Empty;
/// use rpx_core::{error::ProxyError, metrics::RequestMetricsLayer};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let svc = ServiceBuilder::new()
///     .layer(RequestMetricsLayer::new("example.com"))
///     .service(service_fn(|_req: http::Request<()>| async {
///         Ok::<_, ProxyError>(http::Response::new(Empty::<bytes::Bytes>::new()))
///     }));
/// let res = svc.oneshot(http::Request::new(())).await.unwrap();
/// assert_eq!(res.status(), 200);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct RequestMetrics<S> {
    inner: S,
    layer: RequestMetricsLayer,
}

impl<S, B, ResB> Service<Request<B>> for RequestMetrics<S>
where
    S: Service<Request<B>, Response = Response<ResB>, Error = ProxyError>,
{
    type Response = Response<ResB>;
    type Error = ProxyError;
    type Future = RequestMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = &mut self.inner;
        self.layer.start(|| inner.call(req))
    }
}

impl RequestMetricsLayer {
    /// Counts the request in flight and calls `inner`.
    #[inline]
    pub(crate) fn start<F>(&self, inner: impl FnOnce() -> F) -> RequestMetricsFuture<F> {
        let recording = self.handles.as_ref().map(|h| {
            h.in_flight.increment(1.0);
            (InFlight(h.clone()), Instant::now())
        });
        RequestMetricsFuture {
            inner: inner(),
            recording,
        }
    }
}

pin_project_lite::pin_project! {
    /// Future of [`RequestMetrics`].
    #[must_use = "futures do nothing unless polled"]
    pub struct RequestMetricsFuture<F> {
        #[pin]
        inner: F,
        // The in-flight count (until the future is dropped) and the start.
        recording: Option<(InFlight, Instant)>,
    }
}

impl<F, B> Future for RequestMetricsFuture<F>
where
    F: Future<Output = Result<Response<B>, ProxyError>>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some((handles, started)) = this.recording {
            let status = match &result {
                Ok(res) => res.status(),
                Err(e) => e.status(),
            };
            let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
            handles.0.classes[class].increment(1);
            handles.0.duration.record(started.elapsed().as_secs_f64());
        }
        Poll::Ready(result)
    }
}
