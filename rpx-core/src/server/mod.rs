//! Accept loop: HTTP/1.1 and HTTP/2 (h2c by prior knowledge, or ALPN over
//! TLS) on a TCP listener, upgrades on, connection info stamped on every
//! request, and a graceful stop that lets requests in flight finish.
//! Every request head, whichever reader parsed it, passes one check first
//! (`edge`: nginx's refusals, see docs/security.md). A `proxy_protocol`
//! listener reads the PROXY protocol header first ([`read_header`]).
//! Connections and requests are counted for `stub_status`
//! ([`crate::metrics::stub_status`]) as they change state.

mod body;
mod counted;
mod edge;
mod h1;
mod header_timer;
mod in_flight;
mod lifetime;
mod listeners;
mod proxy_protocol;
mod screen;
mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::future::Either;
use http::{HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;
use tower::{Layer, Service};

pub use body::RequestBody;
pub use edge::HeadLimits;
pub use listeners::{BindError, ListenerSet, ListenerSpec};
pub use proxy_protocol::{read_header, ReadHeaderError};
pub use tls::TlsListener;

/// A listener's TLS settings, swappable while it serves: a reload stores
/// new ones and the next accepted connection uses them.
pub type TlsCell = std::sync::Arc<arc_swap::ArcSwapOption<TlsListener>>;

use crate::call::{call_ready_in_place, CallFuture};
use crate::conn::{AddConnInfo, ConnInfo, ConnInfoLayer, Scheme};
use crate::error::BoxError;
use crate::metrics::stub_status;
use crate::reply::{error_page_titled, Reply, ReplyBody};
use crate::tls::{TlsConn, TlsInfo};

/// What the server calls for each request: the [`crate::Rpx`] stack, or any
/// service of its shape (clonable, answering with a body of [`bytes::Bytes`]
/// of any type, never failing: a `Rescue` layer, or axum's `Router`, make
/// errors responses). Implemented for every such service.
pub trait Served:
    Service<
        Request<RequestBody>,
        Response: ServedResponse,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S> Served for S
where
    S: Service<Request<RequestBody>, Error = Infallible> + Clone + Send + 'static,
    S::Response: ServedResponse,
    S::Future: Send + 'static,
{
}

/// A response the server can send: an `http::Response` whose body streams
/// [`bytes::Bytes`]. Implemented for every such response; it names the body
/// type for [`Served`].
pub trait ServedResponse: Send + 'static {
    /// The body type.
    type Body: http_body::Body<Data = bytes::Bytes, Error: Into<BoxError>> + Send + 'static;
    /// The response itself.
    fn into_response(self) -> Response<Self::Body>;
}

impl<B> ServedResponse for Response<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Body = B;

    #[inline]
    fn into_response(self) -> Response<B> {
        self
    }
}

/// What the server sends: the service's body, or the server's own page.
pub(crate) type SentBody<R> = http_body_util::Either<<R as ServedResponse>::Body, ReplyBody>;

/// How connections are served.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Time a client has to send a request head (`client_header_timeout`):
    /// from the connection's start for its first request, from the first
    /// byte for a later one; also the time to finish a TLS handshake, and
    /// to send the PROXY protocol header ([`ServeOptions::proxy_protocol`]).
    /// Default 60 s.
    pub header_timeout: Duration,
    /// How long a connection may wait idle for its next request
    /// (`keepalive_timeout`; HTTP/2: with no request started, then it is
    /// closed gracefully); zero turns HTTP/1 keep-alive off and leaves
    /// HTTP/2 connections open. Default 75 s.
    pub keepalive_timeout: Duration,
    /// Requests one connection carries (`keepalive_requests`): the last is
    /// answered with `Connection: close` (HTTP/2: GOAWAY after it, streams
    /// under way finish). 0 counts as 1. Default 1000, as nginx.
    pub keepalive_requests: u32,
    /// How long one connection carries requests (`keepalive_time`): the
    /// first request after it is the last (HTTP/2: GOAWAY when it passes).
    /// Default 1 h, as nginx.
    pub keepalive_time: Duration,
    /// How long a graceful stop waits for requests in flight. Default 30 s.
    pub shutdown_timeout: Duration,
    /// The configured listen address requests are routed by; default the
    /// listener's own address.
    pub listen: Option<SocketAddr>,
    /// TLS termination for this listener. Default none (plain HTTP).
    pub tls: Option<TlsListener>,
    /// HTTP/1.1 requests without a body are read and answered by rpx's own
    /// server code (faster, same answers); a connection goes to hyper from
    /// its first request that has a body, upgrades, or is not HTTP/1.1.
    /// False: hyper serves every connection. Default true.
    pub own_http1: bool,
    /// What a request head may be ([`HeadLimits`]); every reader refuses
    /// the same heads with the same answers.
    pub head: HeadLimits,
    /// How long a write may wait for the client to take bytes
    /// (`send_timeout`) before the connection is closed; zero: no limit.
    /// Default 60 s, as nginx.
    pub send_timeout: Duration,
    /// Every connection starts with a PROXY protocol header (`listen …
    /// proxy_protocol`), read before TLS within
    /// [`ServeOptions::header_timeout`]; its addresses go into
    /// [`ConnInfo::proxied`]. A connection without a valid one is closed
    /// unanswered, as nginx does. Default false.
    pub proxy_protocol: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            keepalive_requests: 1000,
            keepalive_time: Duration::from_secs(3600),
            shutdown_timeout: Duration::from_secs(30),
            listen: None,
            tls: None,
            own_http1: true,
            head: HeadLimits::default(),
            send_timeout: Duration::from_secs(60),
            proxy_protocol: false,
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
    S: Served,
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
    S: Served,
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
    S: Served,
{
    let local = listener.local_addr()?;
    let listen = opts.listen.unwrap_or(local);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .header_read_timeout(opts.header_timeout)
        .keep_alive(!opts.keepalive_timeout.is_zero())
        // Heads past this get hyper's 431; [`edge`] answers smaller ones as nginx.
        .max_buf_size((opts.head.total + opts.head.line).max(8192));
    builder.http2().timer(TokioTimer::new());
    // Connections hold a receiver: a send stops them, and the sender's
    // `closed` tells when the last one has ended.
    let (stop, stopping) = watch::channel(());
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
        // Held by the socket from here: counted open until it closes.
        let accepted = stub_status::Accepted::new(current.is_some());
        let received = Arc::new(header_timer::Received::default());
        let mut builder = builder.clone();
        // Its own: the timer keeps the connection's armed sleep.
        builder.http1().timer(header_timer::HeaderTimer::new(
            opts.header_timeout,
            opts.keepalive_timeout,
            received.clone(),
        ));
        let mut conn = HttpConn {
            builder,
            stop: stopping.clone(),
            requests: opts.keepalive_requests,
            limits: lifetime::Limits {
                idle: opts.keepalive_timeout,
                time: opts.keepalive_time,
            },
            own: opts.own_http1.then_some(h1::Settings {
                timeouts: h1::Timeouts {
                    header: opts.header_timeout,
                    keepalive: opts.keepalive_timeout,
                },
                limits: opts.head,
            }),
            head: opts.head,
            info,
            service: service.clone(),
            stat: accepted.connection().clone(),
        };
        let (bytes, send_timeout, timeout) =
            (bytes.clone(), opts.send_timeout, opts.header_timeout);
        if !opts.proxy_protocol {
            let stream = counted::Counted::new(stream, bytes, received, send_timeout, accepted);
            tokio::spawn(start(conn, stream, current, timeout));
            continue;
        }
        let mut stream = stream;
        let mut stop = conn.stop.clone();
        tokio::spawn(async move {
            let read = tokio::select! {
                read = read_header(&mut stream, timeout) => read,
                // A graceful stop need not wait for a header.
                _ = stop.changed() => return,
            };
            match read {
                Ok(header) => {
                    bytes.received(header.len);
                    conn.info = conn.info.with_proxied(header.addrs);
                }
                Err(e) => {
                    // nginx closes such a connection without an answer too.
                    tracing::info!(%peer, error = %e, "connection closed: no valid PROXY protocol header");
                    return;
                }
            }
            let stream = counted::Counted::new(stream, bytes, received, send_timeout, accepted);
            start(conn, stream, current, timeout).await;
        });
    }
    drop(listener);
    reloader.abort();
    drop(stopping);
    let _ = stop.send(());
    tokio::select! {
        () = stop.closed() => {}
        () = tokio::time::sleep(opts.shutdown_timeout) => {
            tracing::warn!(listen = %listen, "shutdown timeout: closing connections still open");
        }
    }
    Ok(())
}

/// Serves an accepted connection: HTTP, after the TLS handshake (bounded
/// by `handshake`) on a TLS listener.
async fn start<S: Served>(
    conn: HttpConn<S>,
    stream: counted::Counted<TcpStream>,
    tls: Option<Arc<TlsListener>>,
    handshake: Duration,
) {
    match tls {
        None => {
            let _ = conn.oneshot(stream).await;
        }
        Some(tls) => {
            let _ = tls.acceptor(handshake).layer(conn).oneshot(stream).await;
        }
    }
}

/// The connection service rpx serves HTTP with: HTTP/1.1 and HTTP/2 on one
/// accepted connection, plain or a [`TlsConn`] from the TLS layer, with
/// the connection's facts stamped on every request.
#[derive(Clone)]
struct HttpConn<S> {
    builder: auto::Builder<TokioExecutor>,
    /// The graceful stop's signal.
    stop: watch::Receiver<()>,
    /// `keepalive_requests`.
    requests: u32,
    /// `keepalive_timeout` for HTTP/2 and `keepalive_time` ([`lifetime`]).
    limits: lifetime::Limits,
    /// The settings of [`h1`]; None: hyper serves every connection
    /// ([`ServeOptions::own_http1`]).
    own: Option<h1::Settings>,
    /// What request heads may be.
    head: HeadLimits,
    info: ConnInfo,
    service: S,
    /// The connection's place in `stub_status`' counts.
    stat: Arc<stub_status::Connection>,
}

/// What an accepted connection says about TLS.
trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The session's facts and nginx's 400 verdict, over TLS.
    fn tls(&self) -> Option<(&Arc<TlsInfo>, Option<&'static str>)> {
        None
    }
}

impl Transport for counted::Counted<TcpStream> {}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for TlsConn<IO> {
    fn tls(&self) -> Option<(&Arc<TlsInfo>, Option<&'static str>)> {
        Some((self.info(), self.rejection()))
    }
}

impl<S, I> Service<I> for HttpConn<S>
where
    I: Transport,
    S: Served,
{
    type Response = ();
    type Error = Infallible;
    // Boxed once per connection.
    type Future = Pin<Box<dyn Future<Output = Result<(), Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, io: I) -> Self::Future {
        let (tls, rejection) = match io.tls() {
            Some((info, rejection)) => (Some(info.clone()), rejection),
            None => (None, None),
        };
        if tls.is_some() {
            self.stat.handshaken();
        }
        let activity = lifetime::Activity::new(self.requests);
        let mut conn_info = ConnInfoLayer::new(self.info);
        if let Some(tls) = tls {
            conn_info = conn_info.with_tls(tls);
        }
        let svc = ConnService {
            service: std::cell::RefCell::new(conn_info.layer(self.service.clone())),
            rejection,
            activity: activity.clone(),
            head: self.head,
            stat: self.stat.clone(),
        };
        let stop = self.stop.clone();
        let limits = self.limits;
        let builder = self.builder.clone();
        let own = self.own;
        Box::pin(async move {
            // Per connection, not per request: the registry lookup is fine here.
            let active = metrics::gauge!("rpx_connections_active");
            active.increment(1.0);
            let stopping = Arc::new(AtomicBool::new(false));
            let conn = Connection {
                fut: serve_connection(io, svc, builder, own, stopping.clone()),
                stopping,
            };
            let result =
                lifetime::Serve::new(conn, Connection::shut_down, stop, activity, limits).await;
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            active.decrement(1.0);
            Ok(())
        })
    }
}

/// One connection: rpx's HTTP/1 reader first ([`h1`]), then hyper's
/// HTTP/1 or HTTP/2 for the rest of it when the reader hands it over.
async fn serve_connection<I, S>(
    io: I,
    mut svc: ConnService<S>,
    builder: auto::Builder<TokioExecutor>,
    own: Option<h1::Settings>,
    stopping: Arc<AtomicBool>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: Transport,
    S: Served,
{
    let (io, read) = match own {
        None => (io, bytes::BytesMut::new()),
        Some(settings) => match h1::serve(io, &mut svc, settings, &stopping).await {
            h1::Ended::Closed => return Ok(()),
            h1::Ended::Handoff(io, read) => (io, read),
        },
    };
    let screen = screen::Screen::new(io, read, svc.stat.clone());
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(screen), svc)
        .into_owned();
    Graceful {
        conn,
        shutdown: |c| c.graceful_shutdown(),
        stopping,
        shut: false,
    }
    .await
}

pin_project_lite::pin_project! {
    /// A connection future with a flag for its graceful stop: [`h1`] reads
    /// it between requests, [`Graceful`] passes it on to hyper.
    struct Connection<F> {
        #[pin]
        fut: F,
        stopping: Arc<AtomicBool>,
    }
}

impl<F> Connection<F> {
    fn shut_down(self: Pin<&mut Self>) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

impl<F: Future> Future for Connection<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        let _tick = crate::clock::Tick::start();
        self.project().fut.poll(cx)
    }
}

pin_project_lite::pin_project! {
    /// hyper's connection, shut down gracefully once the flag is up. The
    /// flag is set just before the connection is polled ([`lifetime::Serve`]).
    struct Graceful<C> {
        #[pin]
        conn: C,
        shutdown: fn(Pin<&mut C>),
        stopping: Arc<AtomicBool>,
        shut: bool,
    }
}

impl<C> Future for Graceful<C>
where
    C: Future,
{
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.shut && this.stopping.load(Ordering::Relaxed) {
            *this.shut = true;
            (this.shutdown)(this.conn.as_mut());
        }
        this.conn.poll(cx)
    }
}

/// hyper's service for one connection: stamps the connection's facts on
/// each request (through [`crate::conn::ConnInfoLayer`]) and calls the
/// stack, or answers with nginx's client-certificate 400. hyper calls it
/// by reference, so unlike hyper-util's tower adapter it moves no request
/// through `Oneshot`.
struct ConnService<S> {
    /// The connection's own copy, called in place: hyper calls by
    /// reference, and a clone per request would be two atomic operations
    /// for each `Arc` in it. Requests start one at a time.
    /// Stamps the connection's facts on each request, as an embedder's own
    /// server would with the same layer.
    service: std::cell::RefCell<AddConnInfo<S>>,
    /// nginx's verdict on the client certificate, when it refuses.
    rejection: Option<&'static str>,
    activity: Arc<lifetime::Activity>,
    /// What request heads may be ([`edge::check_request`]).
    head: HeadLimits,
    /// The connection's place in `stub_status`' counts: [`h1`] and
    /// [`screen::Screen`] move it as heads arrive, [`ConnService::start`]
    /// counts each request.
    stat: Arc<stub_status::Connection>,
}

pin_project_lite::pin_project! {
    /// What a request starts: the stack's call, or nginx's
    /// client-certificate 400.
    #[project = StartedProj]
    enum Started<F> {
        Call { #[pin] call: F },
        Refused { page: Option<Reply> },
    }
}

impl<F, R> Future for Started<F>
where
    F: Future<Output = Result<R, Infallible>>,
    R: ServedResponse,
{
    type Output = Result<Response<SentBody<R>>, Infallible>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(match self.project() {
            StartedProj::Call { call } => {
                let Ok(res) = std::task::ready!(call.poll(cx));
                res.into_response().map(SentBody::<R>::Left)
            }
            StartedProj::Refused { page } => page
                .take()
                .expect("polled after completion")
                .map(SentBody::<R>::Right),
        }))
    }
}

type StartedCall<S> = Started<CallFuture<AddConnInfo<S>, Request<RequestBody>>>;

impl<S> ConnService<S>
where
    S: Service<Request<RequestBody>, Error = Infallible> + Clone,
{
    /// Stamps the connection's facts on `req` and calls the stack. True
    /// with it when `req` is an HTTP/1 connection's last request
    /// (`keepalive_requests`, `keepalive_time`).
    fn start(&self, mut req: Request<RequestBody>) -> (StartedCall<S>, bool) {
        self.stat.request(req.version());
        let last = self.activity.request(req.version()) && req.version() < Version::HTTP_2;
        if let Some(reason) = self.rejection {
            let page = error_page_titled(StatusCode::BAD_REQUEST, reason);
            return (Started::Refused { page: Some(page) }, last);
        }
        if let Err(refusal) = edge::check_request(&mut req, &self.head) {
            let page = refusal.page(req.version());
            return (Started::Refused { page: Some(page) }, last);
        }
        let call = call_ready_in_place(&mut *self.service.borrow_mut(), req);
        (Started::Call { call }, last)
    }
}

impl<S> hyper::service::Service<Request<Incoming>> for ConnService<S>
where
    S: Service<Request<RequestBody>, Error = Infallible> + Clone,
    S::Response: ServedResponse,
{
    type Response = Response<in_flight::InFlightBody<SentBody<S::Response>>>;
    type Error = Infallible;
    type Future = in_flight::InFlight<Either<StartedCall<S>, Closing<StartedCall<S>>>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        // Until its response body is done: an HTTP/2 stream is writing,
        // an HTTP/1 connection goes back to waiting after it.
        let exchange = stub_status::Exchange::begin(&self.stat, req.version());
        let started = match self.start(req.map(RequestBody::from)) {
            (started, false) => Either::Left(started),
            (started, true) => Either::Right(Closing { inner: started }),
        };
        in_flight::InFlight::new(started, exchange)
    }
}

pin_project_lite::pin_project! {
    /// The response to an HTTP/1 connection's last request
    /// (`keepalive_requests`, `keepalive_time`): `Connection: close` tells
    /// the client, and hyper closes the connection after it.
    struct Closing<F> {
        #[pin]
        inner: F,
    }
}

impl<F, B> Future for Closing<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let mut res = std::task::ready!(self.project().inner.poll(cx))?;
        // A 101 has switched protocols: nothing to close.
        if res.status() != StatusCode::SWITCHING_PROTOCOLS {
            res.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(res))
    }
}

/// Entry points for rpx's fuzz targets (`fuzz/`); not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use super::edge::{self, HeadLimits};
    use super::h1::head::{self, Parsed};
    use super::proxy_protocol::{self, Peek};
    use crate::conn::proxy_protocol::ProxyHeader;
    use crate::headers::HeadCopies;

    /// What rpx's PROXY protocol reader makes of a connection that sends
    /// `data` in pieces of `piece` bytes (0: all at once): the header and
    /// how many bytes it took, or why it closed the connection. Fails when
    /// the reader takes bytes it has not peeked.
    pub fn read_proxy_header(data: &[u8], piece: usize) -> Result<(ProxyHeader, usize), String> {
        let mut conn = Arriving {
            data,
            piece: if piece == 0 { data.len() } else { piece },
            arrived: 0,
            taken: 0,
        };
        let read = futures_util::FutureExt::now_or_never(proxy_protocol::read(&mut conn))
            .ok_or("the reader waits on bytes in memory")?;
        match read {
            Ok(header) => Ok((header, conn.taken)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// A connection's bytes arriving a piece at a time, once all before
    /// them are taken.
    struct Arriving<'a> {
        data: &'a [u8],
        piece: usize,
        arrived: usize,
        taken: usize,
    }

    impl Peek for Arriving<'_> {
        async fn peek(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.taken == self.arrived {
                self.arrived = (self.arrived + self.piece).min(self.data.len());
            }
            let n = (self.arrived - self.taken).min(buf.len());
            buf[..n].copy_from_slice(&self.data[self.taken..self.taken + n]);
            Ok(n)
        }

        async fn take(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
            let end = self.taken + buf.len();
            if end > self.arrived || buf != &self.data[self.taken..end] {
                return Err(std::io::Error::other("took bytes it had not peeked"));
            }
            self.taken = end;
            Ok(())
        }
    }

    /// What rpx's HTTP/1.1 reader and the edge check make of one head.
    #[derive(Debug)]
    pub enum HeadVerdict {
        /// Taken and accepted: the method, target and `$host`, and the
        /// header names left after the edge dropped the ones nginx ignores.
        Accepted {
            method: String,
            target: String,
            host: Option<String>,
            names: Vec<String>,
        },
        /// More bytes needed.
        Partial,
        /// Left for hyper.
        Hyper,
        /// Refused with this status.
        Refused(u16),
    }

    /// Reads `data` as rpx's reader does, with header buffers of `line`
    /// bytes and `total` in all.
    pub fn read_head(data: &[u8], line: usize, total: usize) -> HeadVerdict {
        let limits = HeadLimits {
            line,
            total,
            ..HeadLimits::default()
        };
        let mut buf = bytes::BytesMut::from(data);
        match head::parse(&mut buf, &mut HeadCopies::default(), &limits) {
            Parsed::Request { mut req, .. } => match edge::check_request(&mut req, &limits) {
                Ok(()) => HeadVerdict::Accepted {
                    method: req.method().to_string(),
                    target: req.uri().to_string(),
                    host: crate::vars::request_host(req.uri(), req.headers()).map(str::to_owned),
                    names: req
                        .headers()
                        .keys()
                        .map(|n| n.as_str().to_owned())
                        .collect(),
                },
                Err(r) => HeadVerdict::Refused(r.status.as_u16()),
            },
            Parsed::Partial => HeadVerdict::Partial,
            Parsed::Refused(r) => HeadVerdict::Refused(r.status.as_u16()),
            Parsed::Other => HeadVerdict::Hyper,
        }
    }
}
