//! Streaming reverse proxying: one [`ProxyService`] per `proxy_pass`.
//!
//! Bodies stream both ways (nothing waits for a whole body), `Upgrade`
//! requests are bridged, upstream connections are pooled (HTTP/1.1
//! keep-alive, or shared HTTP/2 connections with
//! [`UpstreamVersion::Http2`]), and each phase has its own timeout as in nginx.

mod body;
mod buffer;
mod connector;
pub(crate) mod h1;
mod h2;
mod pool;
mod pools;
mod reuse;
mod target;
mod upgrade;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderName, Request, Response, StatusCode, Version};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use tower::Service;

/// Groups moved to [`crate::upstream`]; re-exported for existing users.
pub use crate::upstream::UpstreamGroup;
pub use body::{BodyStalled, IdleTimeout, ProxyBody, UpstreamBody};
pub use connector::{SendTimedOut, TimedIo, UpstreamConnector, UpstreamIo};
use h2::H2Pool;
pub use pool::PooledBody;
use pool::{Pool, SendError};
pub use pools::UpstreamPools;
pub use target::{ProxyTarget, TargetError};

use crate::upstream::{retry, NextUpstream, PickInput, RetryPolicy, Tried};
use target::{Pick, Rendered, RenderedDest};

use crate::conn::conn_info;
use crate::error::{BoxError, ProxyError, TimeoutPhase};
use crate::headers::cookie::{CookieRules, PreparedCookies};
use crate::headers::{
    is_upgrade_request, strip_hop_by_hop, HeaderError, ProxyRedirect, RedirectRule, RequestHeaders,
    ResponseHeaders, SetHeader,
};
use crate::location::MatchKind;
use crate::request::request_path;
use crate::tls::UpstreamTls;
use crate::vars::{Template, VarCtx};
use pools::{PoolKey, Pools};

/// The body type sent upstream. Boxed once per proxied request: the proxy
/// accepts any downstream body type, and pooled connections need one.
type UpstreamReqBody = UnsyncBoxBody<Bytes, BoxError>;

/// Per-phase timeouts, nginx's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `proxy_connect_timeout`. Default 60 s.
    pub connect: Option<Duration>,
    /// `proxy_read_timeout`: response head, and between two reads. Default 60 s.
    pub read: Option<Duration>,
    /// `proxy_send_timeout`: between two writes. Default 60 s.
    pub send: Option<Duration>,
    /// `client_body_timeout`: between two reads of the client's body. Default 60 s.
    pub client_body: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        let minute = Some(Duration::from_secs(60));
        Timeouts {
            connect: minute,
            read: minute,
            send: minute,
            client_body: minute,
        }
    }
}

/// The HTTP version spoken to upstreams (`proxy_http_version`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamVersion {
    /// HTTP/1.1 with keep-alive. The default.
    #[default]
    Http1,
    /// HTTP/2 on shared, multiplexed connections: offered by ALPN to
    /// `https://` servers (one that picks HTTP/1.1 gets HTTP/1.1), with
    /// prior knowledge (h2c) to `http://` ones. Upgrade (WebSocket)
    /// requests still go over HTTP/1.1.
    Http2,
}

/// Why a [`ProxyService`] did not build.
#[derive(Debug, thiserror::Error)]
pub enum ProxyBuildError {
    /// The target URL.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A header rule.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// Upstream TLS settings.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Proxies requests to one `proxy_pass` target.
///
/// ```
/// use rpx_core::proxy::ProxyService;
/// use rpx_core::location::MatchKind;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let proxy = ProxyService::builder("http://127.0.0.1:3000/")
///     .location(MatchKind::Prefix, "/api/")
///     .set_header("X-Real-IP", "$remote_addr")
///     .set_header("X-Forwarded-For", "$proxy_add_x_forwarded_for")
///     .build()
///     .unwrap();
/// # let _ = proxy;
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct ProxyService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    target: ProxyTarget,
    location: (MatchKind, Box<str>),
    request_headers: RequestHeaders,
    response_headers: ResponseHeaders,
    timeouts: Timeouts,
    retry: RetryPolicy,
    pool: Pool,
    /// With [`UpstreamVersion::Http2`]: every request but upgrades.
    h2: Option<H2Pool>,
    server_name: Arc<str>,
    /// `Upgrade` requests are tunnelled; off, they are ordinary requests.
    upgrades: bool,
    /// Bytes of a request body read before the upstream is contacted
    /// ([`buffer`]); None: bodies stream from the first byte.
    request_buffer: Option<usize>,
    /// `proxy_pass_request_body`.
    pass_body: bool,
    /// `proxy_pass_request_headers`.
    pass_headers: bool,
    /// A URL with variables whose scheme is one: the `https://` pools
    /// beside the `http://` ones above.
    tls_pools: Option<Pools>,
    /// Names of a URL with variables can be resolved (`resolver`).
    resolves: bool,
    /// `proxy_cookie_*`.
    cookies: CookieRules,
}

/// Builder of a [`ProxyService`]; see its example.
#[derive(Debug)]
pub struct ProxyServiceBuilder {
    url: String,
    location: (MatchKind, String),
    set_headers: Vec<(String, String)>,
    hide: Vec<String>,
    pass: Vec<String>,
    redirect: ProxyRedirect,
    timeouts: Timeouts,
    retry: RetryPolicy,
    groups: HashMap<String, Arc<UpstreamGroup>>,
    server_name: Arc<str>,
    max_idle_per_host: usize,
    tls: UpstreamTls,
    version: UpstreamVersion,
    scope: crate::vars::Scope,
    pools: Option<UpstreamPools>,
    upgrades: bool,
    request_buffer: Option<usize>,
    pass_body: bool,
    pass_headers: bool,
    resolver: Option<crate::upstream::Resolver>,
    cookies: CookieRules,
}

impl ProxyService {
    /// A builder for `proxy_pass url`.
    pub fn builder(url: impl Into<String>) -> ProxyServiceBuilder {
        ProxyServiceBuilder {
            url: url.into(),
            location: (MatchKind::Prefix, "/".into()),
            set_headers: Vec::new(),
            hide: Vec::new(),
            pass: Vec::new(),
            redirect: ProxyRedirect::Default,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            groups: HashMap::new(),
            server_name: "".into(),
            max_idle_per_host: 256,
            tls: UpstreamTls::default(),
            version: UpstreamVersion::Http1,
            scope: crate::vars::Scope::default(),
            pools: None,
            upgrades: true,
            request_buffer: None,
            pass_body: true,
            pass_headers: true,
            resolver: None,
            cookies: CookieRules::default(),
        }
    }
}

impl ProxyServiceBuilder {
    /// The location this proxy serves, for the URI rewrite and
    /// `proxy_redirect default`. Default is the prefix `/`.
    pub fn location(mut self, kind: MatchKind, pattern: impl Into<String>) -> Self {
        self.location = (kind, pattern.into());
        self
    }

    /// `proxy_set_header name value`; an empty value stops the header.
    pub fn set_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_headers.push((name.into(), value.into()));
        self
    }

    /// `proxy_hide_header name`.
    pub fn hide_header(mut self, name: impl Into<String>) -> Self {
        self.hide.push(name.into());
        self
    }

    /// `proxy_pass_header name`: let a header hidden by default through.
    pub fn pass_header(mut self, name: impl Into<String>) -> Self {
        self.pass.push(name.into());
        self
    }

    /// `proxy_redirect`. Default is [`ProxyRedirect::Default`].
    pub fn redirect(mut self, redirect: ProxyRedirect) -> Self {
        self.redirect = redirect;
        self
    }

    /// The per-phase timeouts. Default is [`Timeouts::default`] (60 s each).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// When a failed attempt goes on to the next server of a group
    /// (`proxy_next_upstream*`). Default [`RetryPolicy::default`]: on
    /// connection errors and timeouts, idempotent requests only, as many
    /// attempts as servers.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Upstream groups a host name in the URL may refer to. Default none.
    pub fn groups(mut self, groups: HashMap<String, Arc<UpstreamGroup>>) -> Self {
        self.groups = groups;
        self
    }

    /// What `$server_name` renders as. Default empty.
    pub fn server_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.server_name = name.into();
        self
    }

    /// Variables the config defines (`map`), for header values. Default none.
    pub fn variables(mut self, scope: crate::vars::Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Idle keep-alive connections kept per upstream server. Default 256.
    pub fn max_idle_per_host(mut self, n: usize) -> Self {
        self.max_idle_per_host = n;
        self
    }

    /// TLS settings for `https://` targets. Default [`UpstreamTls::default`]
    /// (verify with the system's CAs, SNI on, session reuse on).
    pub fn tls(mut self, tls: UpstreamTls) -> Self {
        self.tls = tls;
        self
    }

    /// The HTTP version spoken to upstreams (`proxy_http_version`).
    /// Default [`UpstreamVersion::Http1`].
    ///
    /// ```
    /// use rpx_core::proxy::{ProxyService, UpstreamVersion};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// // gRPC and other HTTP/2 backends; h2c to a plain-text one.
    /// let proxy = ProxyService::builder("http://127.0.0.1:50051")
    ///     .http_version(UpstreamVersion::Http2)
    ///     .build()
    ///     .unwrap();
    /// # let _ = proxy;
    /// # });
    /// ```
    pub fn http_version(mut self, version: UpstreamVersion) -> Self {
        self.version = version;
        self
    }

    /// Whether an `Upgrade` request (WebSocket) is tunnelled to the upstream.
    /// Default on; off (nginx's behaviour for a location that does not
    /// forward `Upgrade` with `proxy_set_header`), `Upgrade` and
    /// `Connection: upgrade` are dropped and the request is an ordinary one.
    pub fn upgrades(mut self, on: bool) -> Self {
        self.upgrades = on;
        self
    }

    /// Reads up to `size` bytes of a request body before any upstream is
    /// contacted (nginx's `proxy_request_buffering on` with
    /// `client_body_buffer_size`): a body that fails within them (bad
    /// framing, over `client_max_body_size`, cut short) is answered 400,
    /// 413 or 408 and the upstream sees nothing; one read whole is sent
    /// with `Content-Length`, and again to the next server of a group.
    /// `None`, the default, streams from the first byte. gRPC requests
    /// always stream.
    pub fn request_buffering(mut self, size: Option<usize>) -> Self {
        self.request_buffer = size;
        self
    }

    /// Sends the client's request body on (nginx's
    /// `proxy_pass_request_body`). Off, the upstream gets no body and no
    /// `Content-Length` or `Transfer-Encoding` header for it, whatever the
    /// client sent (nginx keeps the length header unless a
    /// `proxy_set_header Content-Length ""` clears it). Default on.
    pub fn pass_request_body(mut self, on: bool) -> Self {
        self.pass_body = on;
        self
    }

    /// Sends the client's headers on (nginx's
    /// `proxy_pass_request_headers`). Off, the upstream gets only the
    /// headers [`set_header`](Self::set_header) gives, `Host`, and the
    /// body's framing. Default on.
    pub fn pass_request_headers(mut self, on: bool) -> Self {
        self.pass_headers = on;
        self
    }

    /// The DNS servers names in a URL with variables are resolved with at
    /// request time (nginx's `resolver`). Without one, such a URL may name
    /// an `upstream` group or an IP address; another name is a 502, as in
    /// nginx. Default none.
    pub fn resolver(mut self, resolver: Option<crate::upstream::Resolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Rewrites the upstream's `Set-Cookie` headers (nginx's
    /// `proxy_cookie_domain`, `proxy_cookie_path`, `proxy_cookie_flags`).
    pub fn cookies(mut self, rules: CookieRules) -> Self {
        self.cookies = rules;
        self
    }

    /// Shares connection pools with the other proxies built with `pools`
    /// (one per snapshot in rpx's stack): proxies to the same upstream with
    /// the same connection settings use one pool. Default: a pool of its own.
    pub fn pools(mut self, pools: &UpstreamPools) -> Self {
        self.pools = Some(pools.clone());
        self
    }

    /// Compiles the proxy.
    ///
    /// # Errors
    /// A bad URL, header name or value, or unknown variable.
    pub fn build(self) -> Result<ProxyService, ProxyBuildError> {
        let target = ProxyTarget::parse_in(&self.url, &self.groups, &self.scope)?;
        if target.has_uri() && self.location.0.is_regex() {
            return Err(TargetError::UriInRegex(self.url).into());
        }
        let set = self
            .set_headers
            .iter()
            .map(|(n, v)| SetHeader::new_in(n, v, &self.scope))
            .collect::<Result<Vec<_>, _>>()?;
        let names = |v: &[String]| {
            v.iter()
                .map(|n| {
                    HeaderName::from_bytes(n.as_bytes()).map_err(|_| HeaderError::Name(n.clone()))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let hidden = ResponseHeaders::hidden_set(&names(&self.hide)?, &names(&self.pass)?);
        let resolve_interval = target
            .group()
            .map_or(crate::upstream::dns::DEFAULT_INTERVAL, |g| {
                g.resolve_interval()
            });
        // A group's `keepalive` settings decide the pool towards its servers.
        let keepalive = match target.group() {
            Some(g) => g.keepalive(),
            None => crate::upstream::KeepAlive {
                idle_per_server: self.max_idle_per_host,
                ..Default::default()
            },
        };
        let upstream = match target.group() {
            Some(g) => g.name().to_owned(),
            // One pool for every request of a URL with variables; its
            // connections are found by `host:port`.
            None if target.is_dynamic() => format!(
                "{} resolved by {:?}",
                target.url(),
                self.resolver.as_ref().map(|r| r.spec())
            ),
            None => format!(
                "{}://{}:{}",
                if target.is_https() { "https" } else { "http" },
                target.proxy_host(),
                target.proxy_port()
            ),
        };
        let pools_of = |https: bool| {
            let key = PoolKey::new(
                upstream.clone(),
                self.version,
                https.then(|| self.tls.clone()),
                &self.timeouts,
                keepalive,
                resolve_interval,
            );
            let make = || self.make_pools(https, keepalive, resolve_interval);
            match &self.pools {
                Some(pools) => pools.get_or_make(key, make),
                None => make(),
            }
        };
        let Pools { h1: pool, h2 } = pools_of(target.is_https())?;
        let tls_pools = match target.scheme_varies() {
            true => Some(pools_of(true)?),
            false => None,
        };
        let redirects = match self.redirect {
            ProxyRedirect::Off => Vec::new(),
            ProxyRedirect::Rules(rules) => rules,
            // nginx has no default for a URL with variables.
            ProxyRedirect::Default if target.is_dynamic() => Vec::new(),
            ProxyRedirect::Default => default_redirect(&target, &self.location),
        };
        Ok(ProxyService {
            inner: Arc::new(Inner {
                target,
                location: (self.location.0, self.location.1.into()),
                request_headers: RequestHeaders::new(set),
                response_headers: ResponseHeaders::new(hidden, redirects),
                timeouts: self.timeouts,
                retry: self.retry,
                pool,
                h2,
                server_name: self.server_name,
                upgrades: self.upgrades,
                request_buffer: self.request_buffer,
                pass_body: self.pass_body,
                pass_headers: self.pass_headers,
                tls_pools,
                resolves: self.resolver.is_some(),
                cookies: self.cookies,
            }),
        })
    }
}

impl ProxyServiceBuilder {
    /// The connectors, their TLS client configurations and the pools of
    /// one upstream, as this builder's settings make them.
    fn make_pools(
        &self,
        https: bool,
        keepalive: crate::upstream::KeepAlive,
        resolve_interval: std::time::Duration,
    ) -> Result<Pools, ProxyBuildError> {
        let new_connector = || {
            let resolver = crate::upstream::dns::CachedResolver::new(resolve_interval)
                .with_dns(self.resolver.clone());
            UpstreamConnector::with_resolver(self.timeouts.connect, self.timeouts.send, resolver)
        };
        let mut connector = new_connector();
        let mut h2_connector = (self.version == UpstreamVersion::Http2).then(new_connector);
        if https {
            let name = match &self.tls.name {
                Some(n) => Some(
                    rustls::pki_types::ServerName::try_from(n.clone())
                        .map_err(|_| TargetError::Url(format!("proxy_ssl_name {n:?}")))?,
                ),
                None => None,
            };
            let config = crate::tls::client_config(&self.tls)?;
            connector = connector.with_tls(config, name.clone());
            // HTTP/2 connections offer `h2` first; the HTTP/1.1 pool keeps
            // offering `http/1.1` alone, as upgrades need.
            if let Some(c) = h2_connector.take() {
                let config = crate::tls::client_config_h2(&self.tls)?;
                h2_connector = Some(c.with_tls(config, name));
            }
        }
        let scheme = if https {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        };
        let pool = Pool::new(connector, scheme.clone(), keepalive, self.timeouts.read);
        let h2 = h2_connector.map(|c| H2Pool::new(c, scheme, pool.clone()));
        Ok(Pools { h1: pool, h2 })
    }
}

/// nginx's `proxy_redirect default`: the `proxy_pass` URL maps back onto the
/// location (or `URL/` onto `/` without a URI part). Regex locations get none.
fn default_redirect(target: &ProxyTarget, location: &(MatchKind, String)) -> Vec<RedirectRule> {
    if location.0.is_regex() {
        return Vec::new();
    }
    let (from, to) = if target.has_uri() {
        (target.url().to_owned(), location.1.clone())
    } else {
        (format!("{}/", target.url()), "/".to_owned())
    };
    match Template::parse(&to) {
        Ok(to) => vec![RedirectRule { from, to }],
        Err(_) => Vec::new(),
    }
}

/// Future of [`ProxyService`]. One allocation per proxied request: the proxy future is large and
/// recursive through the client; boxing keeps every router's type small.
pub type ProxyFuture =
    Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>;

impl<B> Service<Request<B>> for ProxyService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = ProxyFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.forward(req)
    }
}

impl ProxyService {
    /// Proxies `req`: [`Service::call`], and the compiled stack's call,
    /// which needs no `&mut`.
    pub fn forward<B>(&self, req: Request<B>) -> ProxyFuture
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        match prepare(&self.inner, req) {
            Ok(prepared) => Box::pin(forward(self.inner.clone(), prepared)),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}

/// What the attempts need from the client's request: its head rewritten
/// for the upstream, its body, and what the response rules and the
/// balancer use. Made without waiting, so that the rendering's locals live
/// on the stack and not in every proxied request's future (which is boxed,
/// and moved once, at its size).
struct Prepared {
    /// The upstream request's head, its URI in origin-form (the server is
    /// the pool's business). HTTP/1.1 attempts borrow it; HTTP/2 ones take
    /// it, or a copy while another attempt may follow.
    parts: Option<http::request::Parts>,
    redirect_targets: Vec<String>,
    /// The group's rendered `hash` key.
    key: Option<String>,
    client_ip: std::net::IpAddr,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// HTTP/2 to the upstream (never for an upgrade: only HTTP/1.1 can answer 101).
    h2: bool,
    te_trailers: bool,
    /// The body, and the handle a retry takes it back with.
    body: Option<(
        reuse::Reusable<UpstreamReqBody>,
        reuse::ReusableHandle<UpstreamReqBody>,
    )>,
    /// Set once the request body has been sent whole.
    body_done: Option<Arc<AtomicBool>>,
    /// A body to read into memory first ([`buffer`]), before `body`.
    unread: Option<UpstreamReqBody>,
    /// The body, read whole: every attempt sends it.
    whole: Option<buffer::Whole>,
    /// Where the access log wants the tries (`$upstream_*`).
    log: Option<crate::accesslog::UpstreamLog>,
    /// Where a URL with variables sends this request (boxed: most
    /// targets have none).
    rendered: Option<Box<Rendered>>,
    /// The `proxy_cookie_*` replacements' variables, rendered.
    cookies: PreparedCookies,
}

impl Prepared {
    /// The group of this request's target, if it names one.
    fn group<'a>(&'a self, inner: &'a Inner) -> Option<&'a Arc<UpstreamGroup>> {
        group_of(inner, self.rendered.as_deref())
    }

    /// `$proxy_host` of this request.
    fn proxy_host<'a>(&'a self, inner: &'a Inner) -> &'a str {
        self.rendered
            .as_deref()
            .map_or(inner.target.proxy_host(), |r| &r.proxy_host)
    }

    /// The pools this request's scheme uses.
    fn pools<'a>(&self, inner: &'a Inner) -> (&'a Pool, Option<&'a H2Pool>) {
        match (&inner.tls_pools, self.rendered.as_deref()) {
            (Some(tls), Some(r)) if r.https => (&tls.h1, tls.h2.as_ref()),
            _ => (&inner.pool, inner.h2.as_ref()),
        }
    }
}

/// The group a request goes to: the target's, or the one a URL with
/// variables named.
fn group_of<'a>(
    inner: &'a Inner,
    rendered: Option<&'a Rendered>,
) -> Option<&'a Arc<UpstreamGroup>> {
    match rendered {
        Some(Rendered {
            dest: RenderedDest::Group(g),
            ..
        }) => Some(g),
        Some(_) => None,
        None => inner.target.group(),
    }
}

fn prepare<B>(inner: &Inner, mut req: Request<B>) -> Result<Prepared, ProxyError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let conn = conn_info(&req);
    let upgrading =
        inner.upgrades && req.version() != Version::HTTP_2 && is_upgrade_request(req.headers());
    let client_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));

    // Everything derived from the original request is computed before it is
    // taken apart: the path, the rendered header values, redirect targets,
    // the balancing key.
    let path = request_path(&req);
    let mut ctx = VarCtx::new(&req, &conn, path, &inner.server_name);
    let rendered = inner.target.render(&ctx)?.map(Box::new);
    if let Some(Rendered {
        dest: RenderedDest::Fixed(a),
        ..
    }) = rendered.as_deref()
    {
        if !inner.resolves && crate::upstream::dns::literal_ip(a.host()).is_none() {
            return Err(ProxyError::NoResolver {
                host: a.host().to_owned(),
            });
        }
    }
    let pq = match rendered.as_ref().and_then(|r| r.uri.clone()) {
        Some(uri) => uri,
        None => inner
            .target
            .upstream_path(
                req.uri(),
                path,
                (inner.location.0, &inner.location.1),
                req.extensions().get::<crate::vars::OriginalUri>().is_some(),
            )
            .map_err(|_| ProxyError::BadRequest("request URI cannot be rewritten"))?,
    };
    let host_header = match rendered.as_deref() {
        Some(r) => {
            ctx.proxy_host = &r.proxy_host;
            ctx.proxy_port = r.proxy_port;
            &r.host_header
        }
        None => {
            ctx.proxy_host = inner.target.proxy_host();
            ctx.proxy_port = inner.target.proxy_port();
            inner.target.host_header()
        }
    };
    let set_headers = inner.request_headers.prepare(&ctx, host_header);
    let redirect_targets = inner.response_headers.prepare(&ctx);
    let cookies = inner.cookies.prepare(&ctx);
    let key = group_of(inner, rendered.as_deref())
        .and_then(|g| g.key())
        .map(|t| t.render_to_string(&ctx));

    // An HTTP/2 upstream gets `TE: trailers` on (gRPC needs it), and an
    // upgrade stays on HTTP/1.1: only it can answer 101.
    let h2 = inner.h2.is_some() && !upgrading;
    let te_trailers = h2 && asks_for_trailers(req.headers());

    let log = req
        .extensions()
        .get::<crate::accesslog::UpstreamLog>()
        .cloned();
    let (mut parts, body) = req.into_parts();
    if !inner.pass_headers {
        keep_only_framing(&mut parts.headers);
    }
    if !inner.pass_body {
        parts.headers.remove(http::header::CONTENT_LENGTH);
        parts.headers.remove(http::header::TRANSFER_ENCODING);
    }
    strip_hop_by_hop(&mut parts.headers, upgrading);
    set_headers.apply(&mut parts.headers);
    parts.version = Version::HTTP_11;
    parts.uri = http::Uri::from(pq);
    // Extensions belong to the downstream connection.
    parts.extensions = http::Extensions::new();

    // A request without a body (most of them) needs no timers or flags.
    let (body, body_done, unread) = if !inner.pass_body || body.is_end_stream() {
        (None, None, None)
    } else {
        let done = Arc::new(AtomicBool::new(false));
        let body = UnsyncBoxBody::new(body::DoneFlag::new(
            IdleTimeout::new(body, inner.timeouts.client_body),
            done.clone(),
        ));
        if inner.request_buffer.is_some() && !is_grpc(&parts.headers) {
            (None, Some(done), Some(body))
        } else {
            (Some(reuse::Reusable::new(body)), Some(done), None)
        }
    };
    Ok(Prepared {
        parts: Some(parts),
        redirect_targets,
        key,
        client_ip: conn.peer.ip(),
        client_upgrade,
        h2,
        te_trailers,
        body,
        body_done,
        unread,
        whole: None,
        log,
        rendered,
        cookies,
    })
}

/// `proxy_pass_request_headers off`: of the client's headers, only those
/// that frame its body stay.
fn keep_only_framing(headers: &mut http::HeaderMap) {
    let length = headers.remove(http::header::CONTENT_LENGTH);
    let chunked = headers.remove(http::header::TRANSFER_ENCODING);
    headers.clear();
    if let Some(v) = length {
        headers.insert(http::header::CONTENT_LENGTH, v);
    }
    if let Some(v) = chunked {
        headers.insert(http::header::TRANSFER_ENCODING, v);
    }
}

/// gRPC streams messages both ways: its bodies are never buffered.
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Sends the request to the target's servers (several for a group that
/// retries) and makes the client's response of the answer.
///
/// An `async` block, not an `async fn`: an async fn moves its arguments
/// into locals, and `p` would be stored twice in the future (which is
/// boxed, and moved once at its size); the block uses it in place.
#[expect(clippy::manual_async_fn, reason = "an async fn would store `p` twice")]
fn forward(
    inner: Arc<Inner>,
    mut p: Prepared,
) -> impl Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send {
    async move {
        if let Some(unread) = p.unread.take() {
            let max = inner.request_buffer.unwrap_or(0);
            match buffer::read(unread, max).await? {
                buffer::Buffered::Whole(whole) => p.whole = Some(whole),
                buffer::Buffered::Partial(rest) => {
                    p.body = Some(reuse::Reusable::new(rest.boxed()));
                }
            }
        }
        let input = PickInput {
            client_ip: Some(p.client_ip),
            key: p.key.as_deref(),
        };
        let group = p.group(&inner).cloned();
        let group = group.as_ref();
        let (pool, h2) = p.pools(&inner);
        let h2 = h2.filter(|_| p.h2);

        // A group may send the request again, so its head is kept; an HTTP/2
        // attempt but the last sends a copy (the price nginx pays by keeping
        // its request buffer). HTTP/1.1 attempts only borrow it.
        let retries = group.is_some() && inner.retry.next != NextUpstream::OFF;
        let max_tries = match (group, inner.retry.tries) {
            (None, _) => 1,
            (Some(g), 0) => g.len(),
            (Some(_), n) => n as usize,
        };
        let deadline = inner.retry.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut tried = Tried::default();
        // Boxed: kept only while another server is tried, and small otherwise.
        let mut last: Option<Result<Box<Answered>, ProxyError>> = None;
        for attempt in 1.. {
            let Some(pick) = inner.target.pick(p.rendered.as_deref(), &input, &tried) else {
                return match last {
                    Some(Ok(answered)) => respond(&inner, *answered, &mut p),
                    Some(Err(e)) => Err(e),
                    None => {
                        let e = ProxyError::NoLiveUpstream {
                            group: p.proxy_host(&inner).to_owned(),
                        };
                        // nginx names the group when it could pick no server.
                        log_failed(&p, p.proxy_host(&inner), &e, None);
                        Err(e)
                    }
                };
            };
            // An earlier attempt's response is only kept for when no server
            // is left; it is over once another is tried.
            if let (Some(Ok(answered)), Some(log)) = (last.take(), &p.log) {
                log_replaced(log, &answered);
            }
            if let Pick::Group(p) = &pick {
                tried.insert(p.index());
            }
            let upstream = pick.authority().clone();
            let more = retries
                && attempt < max_tries
                && deadline.is_none_or(|d| tokio::time::Instant::now() < d);
            let (req_body, handle) = match (&p.whole, p.body.take()) {
                (Some(whole), _) => (whole.body(), None),
                (None, None) => (empty_body(), None),
                (None, Some((b, h))) => (UnsyncBoxBody::new(b), Some(h)),
            };
            let sent_at = p.log.is_some().then(std::time::Instant::now);
            let result = match h2 {
                // Boxed: the HTTP/2 send is large and would grow every
                // proxied request's future (memcpy per request) otherwise.
                Some(h2) => {
                    let head = match (&mut p.parts, more) {
                        (Some(head), true) => head_copy(head),
                        (head, _) => head.take().expect("the head is kept while attempts remain"),
                    };
                    let up_req = Request::from_parts(head, req_body);
                    let sent = Box::pin(h2.send(&upstream, up_req, p.te_trailers));
                    await_head(&inner, sent, p.body_done.as_deref(), &upstream).await
                }
                // The HTTP/1.1 exchange keeps `proxy_read_timeout` itself.
                None => {
                    let head = p.parts.as_ref().expect("HTTP/1.1 attempts borrow the head");
                    let sent = pool.send(&upstream, head, req_body).await;
                    sent.map_err(|e| classify(e, &upstream))
                }
            };
            let try_log = sent_at.map(|t| TryLog {
                started: t,
                header: t.elapsed(),
            });
            // A body read by this attempt cannot be sent again.
            let body_again = match handle {
                None => true,
                Some(h) => match h.take_back() {
                    Some(b) => {
                        p.body = Some(b);
                        true
                    }
                    None => false,
                },
            };
            let method = p.parts.as_ref().map(|p| &p.method);
            match result {
                Ok(res) => {
                    let status = res.status();
                    if let Pick::Group(p) = &pick {
                        if inner.retry.status_is_failure(status) {
                            took_out(p, group, &status);
                        } else {
                            p.success();
                        }
                    }
                    let again = more
                        && body_again
                        && method.is_some_and(|m| inner.retry.retries_status(status, m));
                    if !again {
                        return respond(&inner, (res, pick, try_log), &mut p);
                    }
                    tracing::info!(upstream = %upstream, status = status.as_u16(), "trying the next server");
                    last = Some(Ok(Box::new((res, pick, try_log))));
                }
                Err(err) => {
                    let failure = retry::Failure::of(&err);
                    if let (Pick::Group(p), Some(_)) = (&pick, failure) {
                        took_out(p, group, &err);
                    }
                    let again = more
                        && body_again
                        && failure
                            .zip(method)
                            .is_some_and(|(f, m)| inner.retry.retries_failure(f, m));
                    log_failed(&p, upstream.as_ref(), &err, try_log);
                    if !again {
                        return Err(err);
                    }
                    tracing::info!(upstream = %upstream, error = %err, "trying the next server");
                    last = Some(Err(err));
                }
            }
        }
        unreachable!("the attempt loop returns")
    }
}

/// Whether the client's `TE` lists `trailers`.
fn asks_for_trailers(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

/// Records a failed attempt and logs when it took the server out.
fn took_out(
    p: &crate::upstream::Picked,
    group: Option<&Arc<UpstreamGroup>>,
    why: &dyn std::fmt::Display,
) {
    if p.failure() {
        tracing::warn!(
            group = group.map_or("", |g| g.name()),
            upstream = %p.authority(),
            "server temporarily disabled after failures ({why})"
        );
    }
}

fn empty_body() -> UpstreamReqBody {
    let empty = http_body_util::Empty::new().map_err(|e: std::convert::Infallible| match e {});
    UnsyncBoxBody::new(empty)
}

/// A copy of a request head for one attempt (extensions are empty by then).
fn head_copy(p: &http::request::Parts) -> http::request::Parts {
    let (mut head, ()) = Request::new(()).into_parts();
    head.method = p.method.clone();
    head.uri = p.uri.clone();
    head.version = p.version;
    head.headers = p.headers.clone();
    head
}

/// The client's response from an upstream's: hop-by-hop headers out,
/// response rules applied, upgrades bridged.
/// An upstream's answer kept while another server is tried: the response,
/// whose server it is, and its times for the access log.
type Answered = (Response<PooledBody>, Pick, Option<TryLog>);

/// When a try started and got its response head, for `$upstream_*`.
#[derive(Debug, Clone, Copy)]
struct TryLog {
    started: std::time::Instant,
    header: Duration,
}

/// The connection time a pool put on `res` (none: a kept-alive one).
fn connect_time<B>(res: &Response<B>) -> Duration {
    res.extensions()
        .get::<crate::accesslog::ConnectTime>()
        .map_or(Duration::ZERO, |c| c.0)
}

/// A try that got no answer.
fn log_failed(p: &Prepared, addr: &str, e: &ProxyError, times: Option<TryLog>) {
    if let Some(log) = &p.log {
        log.tried(crate::accesslog::UpstreamTry {
            addr: addr.into(),
            status: e.status().as_u16(),
            connect: None,
            header: None,
            response: times.map_or(Duration::ZERO, |t| t.started.elapsed()),
            length: 0,
        });
    }
}

/// A try whose answer another server's replaced.
fn log_replaced(log: &crate::accesslog::UpstreamLog, (res, pick, times): &Answered) {
    log.tried(crate::accesslog::UpstreamTry {
        addr: pick.authority().to_string().into(),
        status: res.status().as_u16(),
        connect: Some(connect_time(res)),
        header: times.map(|t| t.header),
        response: times.map_or(Duration::ZERO, |t| t.started.elapsed()),
        length: 0,
    });
}

/// The client's response from the upstream's answer to `p`.
fn respond(
    inner: &Inner,
    (res, pick, times): Answered,
    p: &mut Prepared,
) -> Result<Response<ProxyBody>, ProxyError> {
    let count = p.log.as_ref().zip(times).map(|(log, t)| {
        let this = crate::accesslog::UpstreamTry {
            addr: pick.authority().to_string().into(),
            status: res.status().as_u16(),
            connect: Some(connect_time(&res)),
            header: Some(t.header),
            response: Duration::ZERO,
            length: 0,
        };
        log.answered(this, t.started)
    });
    let redirect_targets = &p.redirect_targets[..];
    let client_upgrade = p.client_upgrade.take();
    let upstream = pick.authority();
    if res.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(ProxyError::UnexpectedUpgrade {
                upstream: upstream.to_string(),
            });
        };
        let (mut parts, body) = res.into_parts();
        let Some(upstream_io) = body.into_upgraded() else {
            return Err(ProxyError::UnexpectedUpgrade {
                upstream: upstream.to_string(),
            });
        };
        tokio::spawn(upgrade::bridge(
            client_upgrade,
            upstream_io,
            upstream.to_string(),
        ));
        strip_hop_by_hop(&mut parts.headers, true);
        inner
            .response_headers
            .apply(redirect_targets, &mut parts.headers);
        inner.cookies.apply(&p.cookies, &mut parts.headers);
        return Ok(Response::from_parts(parts, ProxyBody::empty()));
    }

    let (mut parts, body) = res.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    inner
        .response_headers
        .apply(redirect_targets, &mut parts.headers);
    inner.cookies.apply(&p.cookies, &mut parts.headers);
    let mut body = body;
    // The request's map, sent and not needed again, is the connection's
    // next response map: on a keep-alive connection no head allocates one.
    if let Some(sent) = p.parts.as_mut() {
        body.keep_map(std::mem::take(&mut sent.headers));
    }
    let body = IdleTimeout::new(body, inner.timeouts.read);
    let guard = match pick {
        Pick::Group(p) => Some(p),
        Pick::Fixed(_) => None,
    };
    Ok(Response::from_parts(
        parts,
        ProxyBody::new(body, guard, count),
    ))
}

/// Waits for the response head of the HTTP/2 request `sent`. `proxy_read_timeout`
/// counts from the end of the request body, as nginx counts it from the
/// last write: a long upload does not eat into it.
async fn await_head(
    inner: &Inner,
    sent: impl Future<Output = Result<Response<PooledBody>, SendError>>,
    body_done: Option<&AtomicBool>,
    upstream: &Authority,
) -> Result<Response<PooledBody>, ProxyError> {
    let Some(timeout) = inner.timeouts.read else {
        return sent.await.map_err(|e| classify(e, upstream));
    };
    tokio::pin!(sent);
    let is_done = || body_done.is_none_or(|d| d.load(Ordering::Acquire));
    let mut body_was_done = is_done();
    loop {
        tokio::select! {
            // The answer first: no random draw, and a ready answer does not
            // poll the timer.
            biased;
            res = &mut sent => return res.map_err(|e| classify(e, upstream)),
            () = tokio::time::sleep(timeout) => {
                if body_was_done {
                    return Err(ProxyError::UpstreamTimeout {
                        upstream: upstream.to_string(),
                        phase: TimeoutPhase::Read,
                    });
                }
                // Still uploading (the body's own idle timeout guards a
                // stalled client); give the upstream a full period once done.
                body_was_done = is_done();
            }
        }
    }
}

/// Names the cause of a client error: our own body and IO errors travel
/// inside hyper's, so the source chain is searched for them.
fn classify(err: SendError, upstream: &Authority) -> ProxyError {
    let upstream = upstream.to_string();
    let (is_connect, err): (bool, BoxError) = match err {
        SendError::Connect(e) => (true, e),
        SendError::Http(e) => (false, e),
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&*err);
    while let Some(e) = source {
        if let Some(t) = e.downcast_ref::<crate::limit::BodyTooLarge>() {
            return ProxyError::BodyTooLarge { limit: t.limit };
        }
        if e.is::<BodyStalled>() {
            return ProxyError::ClientTimeout;
        }
        if let Some(h1::H1Error::HeadTimeout(_)) = e.downcast_ref::<h1::H1Error>() {
            return ProxyError::UpstreamTimeout {
                upstream,
                phase: TimeoutPhase::Read,
            };
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.get_ref().is_some_and(|i| i.is::<SendTimedOut>()) {
                return ProxyError::UpstreamTimeout {
                    upstream,
                    phase: TimeoutPhase::Send,
                };
            }
            if io.kind() == std::io::ErrorKind::TimedOut && is_connect {
                return ProxyError::UpstreamTimeout {
                    upstream,
                    phase: TimeoutPhase::Connect,
                };
            }
        }
        source = e.source();
    }
    if is_connect {
        ProxyError::UpstreamConnect {
            upstream,
            source: err,
        }
    } else {
        ProxyError::UpstreamProtocol {
            upstream,
            source: err,
        }
    }
}
#[cfg(test)]
mod size_tests {
    use std::mem::size_of;

    /// Every proxied response moves through each layer's future at the
    /// size of its body, and a request's future is boxed and moved once at
    /// its size: both stay small (they were 232 bytes and 3 KiB; the body
    /// has 8 more for `$upstream_response_length`'s count).
    #[test]
    fn response_bodies_and_exchanges_stay_small() {
        assert!(size_of::<super::ProxyBody>() <= 136);
        assert!(size_of::<super::h1::Exchange>() <= 40);
    }
}

/// Entry points for rpx's fuzz targets (`fuzz/`); not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use bytes::BytesMut;

    use super::h1::decode::{parse_head, Decoded, Framing};
    use crate::headers::HeadCopies;

    /// What the upstream response decoder made of a response.
    #[derive(Debug, PartialEq, Eq)]
    pub struct DecodedResponse {
        /// The status.
        pub status: u16,
        /// `Content-Length`, when that framed the body.
        pub length: Option<u64>,
        /// The body's bytes.
        pub body: Vec<u8>,
        /// Trailers came.
        pub trailers: bool,
    }

    /// Decodes `data` as an upstream's response, fed `piece` bytes at a
    /// time as reads would bring them; an error as text.
    ///
    /// # Panics
    /// When the decoder stops making progress: a bug the fuzzer is for.
    pub fn decode_response(
        data: &[u8],
        piece: usize,
        head_request: bool,
    ) -> Result<DecodedResponse, String> {
        let piece = piece.max(1);
        let mut buf = BytesMut::new();
        let mut fed = 0;
        let mut feed = |buf: &mut BytesMut| {
            let end = (fed + piece).min(data.len());
            buf.extend_from_slice(&data[fed..end]);
            fed = end;
            fed == data.len()
        };
        let mut copies = HeadCopies::default();
        let mut eof = data.is_empty();
        let head = loop {
            match parse_head(&mut buf, &mut copies, head_request).map_err(|e| e.to_string())? {
                Some(head) => break head,
                None if eof => return Err("incomplete head".into()),
                None => eof = feed(&mut buf),
            }
        };
        let mut framing = head.framing;
        let length = match framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        let mut out = DecodedResponse {
            status: head.response.status().as_u16(),
            length,
            body: Vec::new(),
            trailers: false,
        };
        // Every step takes bytes or ends; more steps than bytes is a loop.
        for _ in 0..4 * data.len() + 16 {
            match framing.decode(&mut buf, eof).map_err(|e| e.to_string())? {
                Decoded::Data(d) => {
                    assert!(!d.is_empty(), "empty data frame");
                    out.body.extend_from_slice(&d);
                }
                Decoded::Trailers(_) => out.trailers = true,
                Decoded::End => return Ok(out),
                Decoded::More if eof => panic!("More at the end of the input"),
                Decoded::More => eof = feed(&mut buf),
            }
        }
        panic!("the decoder makes no progress");
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reads_of_any_size_decode_alike() {
            let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n";
            for piece in [1, 4, chunked.len()] {
                let d = decode_response(chunked, piece, false).unwrap();
                assert_eq!(
                    (d.status, &d.body[..], d.trailers),
                    (200, &b"abcde"[..], true)
                );
                let d = decode_response(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                    piece,
                    false,
                )
                .unwrap();
                assert_eq!((d.length, &d.body[..]), (Some(5), &b"hello"[..]));
            }
            assert!(
                decode_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", 2, false)
                    .is_err()
            );
        }
    }
}
