//! Accept loop: HTTP/1.1 and HTTP/2 (h2c by prior knowledge, or ALPN over
//! TLS) on a TCP listener, upgrades on, connection info stamped on every
//! request, and a graceful stop that lets requests in flight finish.

mod counted;
mod listeners;
mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, Service};

pub use listeners::{BindError, ListenerSet};
pub use tls::TlsListener;

/// A listener's TLS settings, swappable while it serves: a reload stores
/// new ones and the next accepted connection uses them.
pub type TlsCell = std::sync::Arc<arc_swap::ArcSwapOption<TlsListener>>;

use crate::body::RpxBody;
use crate::conn::{ConnInfo, ConnInfoLayer, Scheme};

/// How connections are served.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Time a client has to send a request head (`client_header_timeout`),
    /// or to finish a TLS handshake; also bounds an idle keep-alive
    /// connection. Default 60 s.
    pub header_timeout: Duration,
    /// How long a graceful stop waits for requests in flight. Default 30 s.
    pub shutdown_timeout: Duration,
    /// The configured listen address requests are routed by; default the
    /// listener's own address.
    pub listen: Option<SocketAddr>,
    /// TLS termination for this listener. Default none (plain HTTP).
    pub tls: Option<TlsListener>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            listen: None,
            tls: None,
        }
    }
}

/// Serves `service` on `listener` until `shutdown` resolves, then stops
/// accepting and waits (up to [`ServeOptions::shutdown_timeout`]) for open
/// connections to finish their requests.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let rpx = rpx_core::Rpx::from_toml(r#"
///     [[server]]
///     listen = "127.0.0.1:8080"
///     [[server.location]]
///     path = "/"
///     proxy_pass = "http://127.0.0.1:3000"
/// "#).expect("valid config");
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// rpx_core::server::serve(listener, rpx, std::future::pending()).await
/// # }
/// ```
///
/// # Errors
/// Only when the listener's address cannot be read; accept errors are
/// logged and the loop goes on.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<RpxBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    serve_with(listener, service, ServeOptions::default(), shutdown).await
}

/// [`serve`] with options.
///
/// # Errors
/// Only when the listener's address cannot be read.
pub async fn serve_with<S>(
    listener: TcpListener,
    service: S,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<RpxBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let cell: TlsCell = std::sync::Arc::new(arc_swap::ArcSwapOption::new(
        opts.tls.clone().map(std::sync::Arc::new),
    ));
    serve_with_cell(listener, service, opts, cell, shutdown).await
}

/// [`serve_with`] whose TLS settings come from `tls`, read at every accepted
/// connection (what [`ListenerSet`] uses to change them on reload).
/// `opts.tls` is ignored.
///
/// # Errors
/// Only when the listener's address cannot be read.
pub async fn serve_with_cell<S>(
    listener: TcpListener,
    service: S,
    opts: ServeOptions,
    tls: TlsCell,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<RpxBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let local = listener.local_addr()?;
    let listen = opts.listen.unwrap_or(local);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let reloader = tls::spawn_reloader(tls.clone());
    let bytes = counted::ByteCounters::new(listen);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let current = tls.load_full();
        let scheme = if current.is_some() {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let info = ConnInfo::new(peer, stream.local_addr().unwrap_or(local), listen, scheme);
        metrics::counter!("rpx_connections_total", "scheme" => scheme.as_str()).increment(1);
        let stream = counted::Counted::new(stream, bytes.clone());
        let conn = Conn {
            builder: builder.clone(),
            watcher: graceful.watcher(),
            layer: ConnInfoLayer::new(info),
        };
        let service = service.clone();
        match current {
            None => {
                tokio::spawn(conn.serve(TokioIo::new(stream), service));
            }
            Some(tls) => {
                let timeout = opts.header_timeout;
                tokio::spawn(async move { tls.serve(stream, timeout, conn, service).await });
            }
        }
    }
    drop(listener);
    reloader.abort();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(opts.shutdown_timeout) => {
            tracing::warn!(listen = %listen, "shutdown timeout: closing connections still open");
        }
    }
    Ok(())
}

/// What serving one accepted connection needs.
struct Conn {
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
    layer: ConnInfoLayer,
}

impl Conn {
    async fn serve<I, S>(self, io: I, service: S)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<RpxBody>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        // Per connection, not per request: the registry lookup is fine here.
        let active = metrics::gauge!("rpx_connections_active");
        active.increment(1.0);
        let svc = TowerToHyperService::new(self.layer.layer(service));
        let conn = self
            .builder
            .serve_connection_with_upgrades(io, svc)
            .into_owned();
        if let Err(e) = self.watcher.watch(conn).await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
        active.decrement(1.0);
    }
}

/// The stream type of accepted connections, named for the TLS module.
type Plain = counted::Counted<TcpStream>;
