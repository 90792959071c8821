//! From a config model to the running service.
//!
//! [`compile`] builds an immutable [`Snapshot`] (routing tables, header
//! programs, proxies); [`Rpx`] serves whichever snapshot is current behind
//! an `ArcSwap`, so a reload is building a new one and swapping it in.
//!
//! The compiled servers and locations, and the order their layers run in,
//! are in `compiled.rs`; the one response body type of rpx's own stack,
//! [`Body`], in `body.rs`; `rpx check`'s [`check_file`] in `check.rs`.

mod body;
mod check;
mod compile;
mod compiled;
mod pages;

use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures_util::future::{ready, Either, Ready};
use http::{Request, Response};
use tower::Service;

pub use body::Body;
pub use check::check_file;
pub use compile::{compile, compile_with, CompileOptions};

use crate::accesslog::LoggedBody;
use crate::config::{Config, ConfigError, ConfigErrors};
use crate::error::{BoxError, RescueBody, RescueFuture};
use crate::host::HostRouter;
use crate::server::ListenerSpec;
use compiled::{Server, ServerFuture};

/// The response body of [`Rpx`]: a location's [`Body`], logged where it
/// has an access log, or the rescue layer's error page.
pub type ResponseBody = RescueBody<LoggedBody<Body>>;

/// A compiled configuration: immutable, cheap to share.
#[derive(Debug)]
pub struct Snapshot {
    router: HostRouter<Server>,
    listeners: Vec<ListenerSpec>,
    summary: Vec<String>,
    /// Upstream groups, for their background tasks.
    groups: Vec<Arc<crate::upstream::UpstreamGroup>>,
    warnings: Vec<ConfigError>,
    shutdown_timeout: Option<std::time::Duration>,
    /// Automatic certificates; also answers http-01 challenges.
    acme: Option<Arc<crate::acme::AcmeManager>>,
    /// Where the config wants rpx's own log (the binary applies it).
    error_log: Option<crate::config::ErrorLogConfig>,
    /// `limit_req_zone`s by name: a reload keeps their buckets.
    rate_zones: std::collections::HashMap<String, std::sync::Arc<crate::limit::rate::RateZone>>,
    /// `limit_conn_zone`s by name (with the key as written): a reload
    /// keeps their counts of requests in progress.
    conn_zones:
        std::collections::HashMap<String, (String, std::sync::Arc<crate::limit::conn::ConnZone>)>,
}

impl Snapshot {
    /// The config's `error_log`: None means stderr at level `info`.
    pub fn error_log(&self) -> Option<&crate::config::ErrorLogConfig> {
        self.error_log.as_ref()
    }

    /// The addresses to listen on.
    pub fn listeners(&self) -> &[ListenerSpec] {
        &self.listeners
    }

    /// One line per server and location, for the startup log.
    pub fn summary(&self) -> &[String] {
        &self.summary
    }

    /// `worker_shutdown_timeout` / `shutdown_timeout`, when the config sets it.
    pub fn shutdown_timeout(&self) -> Option<std::time::Duration> {
        self.shutdown_timeout
    }

    /// The upstream groups of the config.
    pub fn groups(&self) -> &[Arc<crate::upstream::UpstreamGroup>] {
        &self.groups
    }

    /// Starts the background work of every upstream group (active health
    /// checks, DNS re-resolution) on the current tokio runtime. Call it once
    /// the snapshot is going to serve; calling it again does nothing. The
    /// tasks stop by themselves once the snapshot is dropped (after a
    /// reload). A group also starts them on its first request, so a
    /// snapshot served without this call still gets them, only later.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start_background(&self) {
        for g in &self.groups {
            g.start_background();
        }
        if let Some(acme) = &self.acme {
            acme.start();
        }
    }

    /// The ACME manager, when the config has automatic certificates.
    pub fn acme(&self) -> Option<&Arc<crate::acme::AcmeManager>> {
        self.acme.as_ref()
    }

    /// What the compiler found that works differently from what the config
    /// asks (an expired certificate, a cipher rustls lacks…): the snapshot
    /// runs, but a user should hear about these, as `rpx check` says them.
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }
}

/// The whole proxy as one `tower::Service`: host routing, location routing,
/// actions, and the rescue layer mapping errors to responses.
///
/// ```
/// use rpx_core::{config::{Config, LocationConfig, ServerConfig}, Rpx};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let config = Config::new().server(
///     ServerConfig::new()
///         .listen("127.0.0.1:8080".parse().unwrap())
///         .name("example.com")
///         .location(LocationConfig::new("= /health").returns(200, Some("ok"))),
/// );
/// let rpx = Rpx::from_config(&config).unwrap();
/// let req = http::Request::get("/health").header("host", "example.com")
///     .body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
/// let res = rpx.oneshot(req).await.unwrap();
/// assert_eq!(res.status(), 200);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Rpx {
    current: Arc<ArcSwap<Snapshot>>,
}

impl Rpx {
    /// Serves `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        Rpx {
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
        }
    }

    /// Compiles `config` and serves it.
    ///
    /// # Errors
    /// Every problem found while compiling.
    pub fn from_config(config: &Config) -> Result<Self, ConfigErrors> {
        Ok(Self::new(compile(config)?))
    }

    /// Parses TOML text and serves it.
    ///
    /// # Errors
    /// Every problem in the text.
    pub fn from_toml(src: &str) -> Result<Self, ConfigErrors> {
        Self::from_config(&crate::config::parse_toml(src, "<toml>")?)
    }

    /// The snapshot serving new requests.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot: new requests use it at once, requests in
    /// flight finish on the one they started with. Returns the previous one.
    pub fn swap(&self, snapshot: Snapshot) -> Arc<Snapshot> {
        self.current.swap(Arc::new(snapshot))
    }

    /// Puts a previous snapshot back (a reload whose listeners failed).
    pub fn restore(&self, snapshot: Arc<Snapshot>) {
        self.current.store(snapshot);
    }
}

impl<B> Service<Request<B>> for Rpx
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = std::convert::Infallible;
    type Future = Either<
        Ready<Result<Response<ResponseBody>, std::convert::Infallible>>,
        RescueFuture<ServerFuture>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The guard is dropped before returning: the future owns what it
        // needs of the snapshot (the proxy, the rules that apply).
        let snapshot = self.current.load();
        // http-01 answers come before routing: a server that only
        // redirects to HTTPS must still pass the challenge.
        if let Some(acme) = &snapshot.acme {
            if let Some(res) = acme.challenges().http01_response(req.uri().path()) {
                return Either::Left(ready(Ok(res.map(ResponseBody::Right))));
            }
        }
        let server = snapshot.router.chosen(&req);
        Either::Right(RescueFuture::new(server.call(req)).with_server(server.server_header))
    }
}
