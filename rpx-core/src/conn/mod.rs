//! Connection facts every request carries in its extensions.
//!
//! The server loop knows the peer, the local address and the listener (and,
//! behind a load balancer speaking the [`proxy_protocol`], the addresses its
//! header gave); the [`ConnInfoLayer`] puts them into each request so that
//! routing and variables (`$remote_addr`, `$server_port`, `$scheme`,
//! `$proxy_protocol_addr`) can read them.

pub mod proxy_protocol;

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tower::{Layer, Service};

use crate::tls::TlsInfo;

pub use proxy_protocol::ProxiedAddrs;

/// The URL scheme a connection was accepted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port a URL of this scheme implies.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// The client's address (`$remote_addr`, `$remote_port`).
    pub peer: SocketAddr,
    /// The address the connection was accepted on (`$server_addr`, `$server_port`).
    pub local: SocketAddr,
    /// The configured listen address that accepted it; selects the set of
    /// virtual servers (a wildcard `0.0.0.0:80` listener differs from `local`).
    pub listen: SocketAddr,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The addresses of the PROXY protocol header the connection began
    /// with (`listen … proxy_protocol`), when it gave some.
    pub proxied: Option<ProxiedAddrs>,
    /// `$connection`: the connection's serial number in this process.
    pub serial: u64,
    /// `$connection_requests`: requests the connection carried so far,
    /// this one included (stamped per request by [`AddConnInfo`]).
    pub requests: u64,
}

/// Connections numbered from 1, as nginx's `$connection`.
static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl ConnInfo {
    /// Info for a plain-HTTP connection accepted on `listen`.
    pub fn new(peer: SocketAddr, local: SocketAddr, listen: SocketAddr, scheme: Scheme) -> Self {
        ConnInfo {
            peer,
            local,
            listen,
            scheme,
            proxied: None,
            serial: SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            requests: 0,
        }
    }

    /// The same, with the addresses of the connection's PROXY protocol
    /// header.
    #[must_use]
    pub fn with_proxied(mut self, proxied: Option<ProxiedAddrs>) -> Self {
        self.proxied = proxied;
        self
    }

    /// The port the client connected to (`$server_port`).
    pub fn server_port(&self) -> u16 {
        self.local.port()
    }
}

/// Inserts a [`ConnInfo`] into every request's extensions.
///
/// ```
/// use rpx_core::conn::{ConnInfo, ConnInfoLayer, Scheme};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let addr = "127.0.0.1:8080".parse().unwrap();
/// let info = ConnInfo::new("127.0.0.1:5000".parse().unwrap(), addr, addr, Scheme::Http);
/// let svc = ServiceBuilder::new()
///     .layer(ConnInfoLayer::new(info))
///     .service(service_fn(|req: http::Request<()>| async move {
///         Ok::<_, std::convert::Infallible>(req.extensions().get::<ConnInfo>().copied())
///     }));
/// let seen = svc.oneshot(http::Request::new(())).await.unwrap().unwrap();
/// assert_eq!((seen.peer, seen.requests), (info.peer, 1)); // the first request
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct ConnInfoLayer {
    info: ConnInfo,
    tls: Option<Arc<TlsInfo>>,
}

impl ConnInfoLayer {
    /// A layer stamping `info` on every request.
    pub fn new(info: ConnInfo) -> Self {
        ConnInfoLayer { info, tls: None }
    }

    /// Also stamps the connection's TLS facts (as `Arc<TlsInfo>`).
    pub fn with_tls(mut self, tls: Arc<TlsInfo>) -> Self {
        self.tls = Some(tls);
        self
    }
}

impl<S> Layer<S> for ConnInfoLayer {
    type Service = AddConnInfo<S>;
    fn layer(&self, inner: S) -> AddConnInfo<S> {
        AddConnInfo {
            inner,
            info: self.info,
            tls: self.tls.clone(),
        }
    }
}

/// Service of [`ConnInfoLayer`].
#[derive(Debug, Clone)]
pub struct AddConnInfo<S> {
    inner: S,
    info: ConnInfo,
    tls: Option<Arc<TlsInfo>>,
}

impl<S, B> Service<Request<B>> for AddConnInfo<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        self.info.requests += 1;
        req.extensions_mut().insert(self.info);
        if let Some(tls) = &self.tls {
            req.extensions_mut().insert(tls.clone());
        }
        self.inner.call(req)
    }
}

/// The connection info of a request, or a loopback placeholder when the
/// stack is driven without a server (tests, embedding with `oneshot`).
pub fn conn_info<B>(req: &Request<B>) -> ConnInfo {
    req.extensions()
        .get::<ConnInfo>()
        .copied()
        .unwrap_or_else(|| {
            // Unnumbered: `$connection` 0, one `$request_id` per request.
            let lo = SocketAddr::from(([127, 0, 0, 1], 0));
            ConnInfo {
                serial: 0,
                ..ConnInfo::new(lo, lo, lo, Scheme::Http)
            }
        })
}
