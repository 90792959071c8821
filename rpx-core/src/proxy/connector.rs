//! Upstream connections: TCP (and TLS for `https://`) with
//! `proxy_connect_timeout`, and an IO wrapper enforcing
//! `proxy_send_timeout` between two writes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tower::Service;

use crate::error::BoxError;
use crate::upstream::dns::{CachedResolver, DEFAULT_INTERVAL};

/// A write to the upstream stayed blocked for longer than `proxy_send_timeout`.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("upstream accepted no data for {0:?}")]
pub struct SendTimedOut(pub Duration);

/// The TLS side of a connector: rustls config plus the name to verify.
#[derive(Clone)]
struct TlsSide {
    connector: TlsConnector,
    name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for TlsSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSide").field("name", &self.name).finish()
    }
}

/// Connects to upstreams over TCP (`TCP_NODELAY` on) and, for `https://`
/// URIs, TLS, with the connect and send timeouts of one location.
#[derive(Debug, Clone)]
pub struct UpstreamConnector {
    http: HttpConnector<CachedResolver>,
    connect_timeout: Option<Duration>,
    send_timeout: Option<Duration>,
    tls: Option<TlsSide>,
}

impl UpstreamConnector {
    /// A plain-TCP connector; `None` disables a timeout. Names are
    /// resolved through [`crate::upstream::dns`], reused for 10 s.
    pub fn new(connect_timeout: Option<Duration>, send_timeout: Option<Duration>) -> Self {
        Self::resolving(connect_timeout, send_timeout, DEFAULT_INTERVAL)
    }

    /// [`UpstreamConnector::new`] with resolved addresses reused for
    /// `resolve_interval`.
    pub fn resolving(
        connect_timeout: Option<Duration>,
        send_timeout: Option<Duration>,
        resolve_interval: Duration,
    ) -> Self {
        Self::with_resolver(
            connect_timeout,
            send_timeout,
            CachedResolver::new(resolve_interval),
        )
    }

    /// [`UpstreamConnector::new`] with names resolved by `resolver`.
    pub fn with_resolver(
        connect_timeout: Option<Duration>,
        send_timeout: Option<Duration>,
        resolver: CachedResolver,
    ) -> Self {
        let mut http = HttpConnector::new_with_resolver(resolver);
        http.set_nodelay(true);
        http.set_connect_timeout(connect_timeout);
        http.enforce_http(false);
        UpstreamConnector {
            http,
            connect_timeout,
            send_timeout,
            tls: None,
        }
    }

    /// Adds TLS for `https://` URIs; `name` overrides the name verified
    /// (and sent as SNI when the config enables SNI).
    pub fn with_tls(
        mut self,
        config: Arc<rustls::ClientConfig>,
        name: Option<ServerName<'static>>,
    ) -> Self {
        self.tls = Some(TlsSide {
            connector: TlsConnector::from(config),
            name,
        });
        self
    }
}

impl Service<Uri> for UpstreamConnector {
    type Response = TimedIo<UpstreamIo>;
    type Error = BoxError;
    // Boxed once per new upstream connection, not per request.
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        // New connections per server; with the selection counts this gives
        // the reuse of pooled connections. Per connection, not per request.
        let label = uri.authority().map_or_else(String::new, |a| a.to_string());
        metrics::counter!("rpx_upstream_connections_total", "server" => label).increment(1);
        let connecting = self.http.call(uri);
        let send_timeout = self.send_timeout;
        let connect_timeout = self.connect_timeout;
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = connecting.await?;
            if !https {
                return Ok(TimedIo::new(UpstreamIo::Plain(tcp), send_timeout));
            }
            let tls = tls.ok_or("https upstream without TLS settings")?;
            let name = match tls.name {
                Some(n) => n,
                None => ServerName::try_from(host)?,
            };
            let handshake = tls.connector.connect(name, tcp.into_inner());
            let stream = match connect_timeout {
                Some(t) => tokio::time::timeout(t, handshake).await.map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??,
                None => handshake.await?,
            };
            Ok(TimedIo::new(
                UpstreamIo::Tls(Box::new(TokioIo::new(stream))),
                send_timeout,
            ))
        })
    }
}

/// A connection to an upstream: plain TCP or TLS over it.
#[derive(Debug)]
pub enum UpstreamIo {
    /// `http://`.
    Plain(TokioIo<TcpStream>),
    /// `https://` (boxed: the TLS state is large and connections are few).
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl UpstreamIo {
    /// The protocol the server picked by ALPN; `None` for plain TCP or a
    /// server that picked none.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match self {
            UpstreamIo::Plain(_) => None,
            UpstreamIo::Tls(io) => io.inner().get_ref().1.alpn_protocol(),
        }
    }
}

impl Read for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_read(cx, buf),
            UpstreamIo::Tls(io) => Pin::new(&mut **io).poll_read(cx, buf),
        }
    }
}

impl Write for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_write(cx, buf),
            UpstreamIo::Tls(io) => Pin::new(&mut **io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(io) => Pin::new(&mut **io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(io) => io.is_write_vectored(),
            UpstreamIo::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_flush(cx),
            UpstreamIo::Tls(io) => Pin::new(&mut **io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_shutdown(cx),
            UpstreamIo::Tls(io) => Pin::new(&mut **io).poll_shutdown(cx),
        }
    }
}

pin_project_lite::pin_project! {
    /// An IO whose writes fail with [`SendTimedOut`] after being blocked for
    /// the timeout.
    pub struct TimedIo<T> {
        #[pin]
        io: T,
        timeout: Option<Duration>,
        sleep: Option<Pin<Box<Sleep>>>,
        waiting: bool,
    }
}

impl<T> TimedIo<T> {
    pub(super) fn new(io: T, timeout: Option<Duration>) -> Self {
        TimedIo {
            io,
            timeout,
            sleep: timeout.map(|t| Box::pin(tokio::time::sleep(t))),
            waiting: false,
        }
    }
}

impl<T> TimedIo<T> {
    /// The wrapped IO.
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

/// Shared by write and flush: counts the time an operation stays pending.
fn check_blocked<R>(
    res: Poll<io::Result<R>>,
    cx: &mut Context<'_>,
    timeout: Option<Duration>,
    sleep: &mut Option<Pin<Box<Sleep>>>,
    waiting: &mut bool,
) -> Poll<io::Result<R>> {
    match res {
        Poll::Ready(r) => {
            *waiting = false;
            Poll::Ready(r)
        }
        Poll::Pending => {
            let (Some(timeout), Some(sleep)) = (timeout, sleep.as_mut()) else {
                return Poll::Pending;
            };
            if !*waiting {
                *waiting = true;
                sleep.as_mut().reset(Instant::now() + timeout);
            }
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    SendTimedOut(timeout),
                ))),
                Poll::Pending => Poll::Pending,
            }
        }
    }
}

impl<T: Read> Read for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<T: Write> Write for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let res = this.io.poll_write(cx, buf);
        check_blocked(res, cx, *this.timeout, this.sleep, this.waiting)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let res = this.io.poll_write_vectored(cx, bufs);
        check_blocked(res, cx, *this.timeout, this.sleep, this.waiting)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let res = this.io.poll_flush(cx);
        check_blocked(res, cx, *this.timeout, this.sleep, this.waiting)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}
