//! HTTP/2 to upstreams (`proxy_http_version 2`): shared, multiplexed
//! connections through hyper's client.
//!
//! A server gets one connection carrying up to [`MAX_STREAMS`] requests at
//! once as streams; more open another, and a closed one is replaced. Each
//! connection runs as one task (hyper's driver), none per request. For
//! `https://` the server's ALPN pick decides: `h2`, or HTTP/1.1 on that
//! same connection, which then joins the HTTP/1.1 pool, and the server is
//! sent HTTP/1.1 from then on (until the config is reloaded). Plain
//! `http://` servers get HTTP/2 with prior knowledge (h2c).
//!
//! The keep-alive settings (a group's, or the defaults) count per
//! connection, as nginx counts them for its HTTP/2 upstreams: one given
//! `keepalive_requests` streams, or older than `keepalive_time`, takes no
//! new ones and closes once those under way end; one with no stream under
//! way for `keepalive_timeout` is closed. Checkout applies them, and so
//! does one task per server ([`reap`]), for the connections no request
//! comes to look at.
//!
//! A request the server did not process (its stream refused with
//! `REFUSED_STREAM`, or above the last stream id of a GOAWAY; RFC 9113
//! §8.7) goes again on another connection, when it has no body: only its
//! head can be kept to send again.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HOST, TE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tower::Service;

use super::connector::UpstreamConnector;
use super::h1::Conn;
use super::pool::{Pool, PooledBody, SendError};
use super::{empty_body, UpstreamReqBody};
use crate::error::BoxError;
use crate::headers::strip_hop_by_hop;
use crate::upstream::KeepAlive;

/// Requests one connection carries at once before another is opened.
/// RFC 9113 asks servers to allow at least 100; below a server's own
/// lower limit, h2 queues the extra streams until one ends.
const MAX_STREAMS: usize = 100;

/// Connections a request may be handed back from unsent (each closed
/// under it, or refusing it) before it fails.
const MAX_TRIES: usize = 3;

/// The least time between two looks at a connection with streams under
/// way (`keepalive_timeout` 0 would otherwise have [`reap`] spin).
const MIN_RECHECK: Duration = Duration::from_millis(100);

/// The HTTP/2 connections of one `proxy_pass`, towards each of its servers.
#[derive(Debug, Clone)]
pub(crate) struct H2Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Offers `h2` first by ALPN for `https://`.
    connector: UpstreamConnector,
    scheme: Scheme,
    builder: http2::Builder<TokioExecutor>,
    /// Where the servers that answer in HTTP/1.1 go.
    http1: Pool,
    /// The HTTP/1.1 pool's settings, applied per connection.
    keepalive: KeepAlive,
    /// A linear search, as in the HTTP/1.1 pool: one server or a group's few.
    servers: Mutex<Vec<Arc<Server>>>,
}

#[derive(Debug)]
struct Server {
    authority: Authority,
    /// An async lock: held across a connect, so that requests arriving
    /// meanwhile share the new connection instead of each opening one.
    state: tokio::sync::Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    conns: Vec<H2Conn>,
    /// ALPN picked HTTP/1.1: the server goes to the HTTP/1.1 pool.
    http1: bool,
    /// The last connect failure, told to the requests that waited for it
    /// rather than each trying (and timing out) again in turn.
    failed: Option<(Instant, SharedError)>,
    /// A [`reap`] task looks after `conns`.
    reaping: bool,
}

/// A connection taking new streams. Dropped from the list (its last
/// handle once the requests using it have their heads), hyper closes it
/// with a GOAWAY when its streams have ended.
#[derive(Debug)]
struct H2Conn {
    send: SendRequest<UpstreamReqBody>,
    usage: Arc<Usage>,
    /// Streams it has been given (`keepalive_requests`).
    given: u32,
}

/// What a connection shares with its requests' response bodies.
#[derive(Debug)]
struct Usage {
    opened: Instant,
    /// Requests under way, until their response bodies end.
    streams: AtomicUsize,
    /// When a request last ended, in nanoseconds after `opened`
    /// (`keepalive_timeout` counts from there).
    last_end: AtomicU64,
}

/// A new connection: HTTP/2, or what a server that did not pick `h2` speaks.
enum Opened {
    H2(SendRequest<UpstreamReqBody>),
    Http1(Conn),
}

/// [`Opened`], with the request's stream counted on an HTTP/2 one.
enum Connected {
    H2(SendRequest<UpstreamReqBody>, StreamSlot),
    Http1(Conn),
}

/// A connect failure shared by every request that waited for it; the
/// cause stays in the source chain for the error mapping (504 on timeout).
#[derive(Debug, Clone)]
struct SharedError(Arc<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// The request gave up after connections closed under it each time.
#[derive(Debug, thiserror::Error)]
#[error("upstream HTTP/2 connections closed before the request was sent")]
struct ClosedUnsent;

impl H2Pool {
    /// `connector` offers `h2` by ALPN (or connects in plain text for h2c);
    /// `http1` takes the servers and requests that stay on HTTP/1.1, and
    /// its keep-alive settings hold for the HTTP/2 connections too.
    pub(crate) fn new(connector: UpstreamConnector, scheme: Scheme, http1: Pool) -> Self {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new());
        H2Pool {
            inner: Arc::new(Inner {
                connector,
                scheme,
                builder,
                keepalive: http1.keepalive(),
                http1,
                servers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Sends `req` (origin-form URI, hop-by-hop headers stripped) to
    /// `server` and waits for the head. `te_trailers`: the client said
    /// `TE: trailers` (gRPC needs it to reach the server).
    pub(crate) async fn send(
        &self,
        server: &Authority,
        req: Request<UpstreamReqBody>,
        te_trailers: bool,
    ) -> Result<Response<PooledBody>, SendError> {
        let entry = self.inner.server(server);
        let asked = Instant::now();
        // Without a body, a request the server did not process can go again.
        let replayable = req.body().is_end_stream();
        let mut req = req;
        // Once rewritten for HTTP/2: whether `Host` moved into the URI.
        let mut h2_form = None;
        // The connection that refused the request, not asked again.
        let mut refused_by = None;
        // How long a new connection took, for `$upstream_connect_time`.
        let mut connected = None;
        for tries_left in (0..MAX_TRIES).rev() {
            let (mut send, slot) = {
                let mut state = entry.state.lock().await;
                match state.checkout(&self.inner.keepalive, refused_by.as_ref()) {
                    Some(found) => found,
                    None if state.http1 => {
                        drop(state);
                        let (head, body) = into_h1(req, h2_form).into_parts();
                        return self.inner.http1.send(server, &head, body).await;
                    }
                    None => match self.inner.connect(&entry, &mut state, asked).await? {
                        Connected::H2(send, slot) => {
                            connected = Some(asked.elapsed());
                            (send, slot)
                        }
                        Connected::Http1(conn) => {
                            let connected = asked.elapsed();
                            drop(state);
                            let (head, body) = into_h1(req, h2_form).into_parts();
                            let mut res = self.inner.http1.send_on(conn, &head, body).await?;
                            res.extensions_mut()
                                .insert(crate::accesslog::ConnectTime(connected));
                            return Ok(res);
                        }
                    },
                }
            };
            if h2_form.is_none() {
                let (mut head, body) = req.into_parts();
                let moved = to_h2(&mut head, &self.inner.scheme, server, te_trailers)
                    .map_err(|e| SendError::Http(e.into()))?;
                h2_form = Some(moved);
                req = Request::from_parts(head, body);
            }
            // hyper consumes the request even when the server turns it
            // down: a copy of the head is the way to send it again.
            let again = (replayable && tries_left > 0).then(|| head_copy(&req));
            match send.try_send_request(req).await {
                Ok(res) => {
                    let mut res = wrap(res, slot);
                    if let Some(c) = connected {
                        res.extensions_mut()
                            .insert(crate::accesslog::ConnectTime(c));
                    }
                    return Ok(res);
                }
                // The connection closed before taking the request (a
                // GOAWAY, an idle close): nothing was sent, the next
                // connection gets it.
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => {
                        let e = e.into_error();
                        match again {
                            Some(copy) if unprocessed(&e) => {
                                tracing::debug!(upstream = %server, error = %e, "upstream did not process the request: sending it again");
                                refused_by = Some(slot.0.clone());
                                req = copy;
                            }
                            _ => return Err(SendError::Http(Box::new(e))),
                        }
                    }
                },
            }
        }
        Err(SendError::Http(Box::new(ClosedUnsent)))
    }
}

/// A bodiless request's copy (its extensions are empty by then).
fn head_copy(req: &Request<UpstreamReqBody>) -> Request<UpstreamReqBody> {
    let mut copy = Request::new(empty_body());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy
}

/// Whether the server said it did not process the request (RFC 9113
/// §8.7): it refused the stream, or its GOAWAY's last stream id is below
/// it. h2 fails the streams above that id, and the ones started after the
/// GOAWAY, with the GOAWAY itself; a stream within it that breaks off
/// later gets another error.
fn unprocessed(e: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            return h2.is_remote()
                && (h2.is_go_away() || h2.reason() == Some(h2::Reason::REFUSED_STREAM));
        }
        source = s.source();
    }
    false
}

impl Inner {
    fn server(&self, authority: &Authority) -> Arc<Server> {
        let mut servers = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = servers.iter().find(|s| s.authority == *authority) {
            return s.clone();
        }
        let s = Arc::new(Server {
            authority: authority.clone(),
            state: tokio::sync::Mutex::new(State::default()),
        });
        servers.push(s.clone());
        s
    }

    /// A new connection to `entry`, with its state locked. A failure
    /// since `asked` (of a connect this request waited for) is its answer.
    async fn connect(
        &self,
        entry: &Arc<Server>,
        state: &mut State,
        asked: Instant,
    ) -> Result<Connected, SendError> {
        if let Some((at, e)) = &state.failed {
            if *at >= asked {
                return Err(SendError::Connect(Box::new(e.clone())));
            }
        }
        let server = &entry.authority;
        match self.open(server).await {
            Ok(Opened::H2(send)) => {
                state.failed = None;
                let usage = Arc::new(Usage {
                    opened: Instant::now(),
                    streams: AtomicUsize::new(0),
                    last_end: AtomicU64::new(0),
                });
                let slot = StreamSlot::take(&usage);
                // `keepalive_requests` 0 or 1: the first stream is its last.
                if self.keepalive.requests > 1 {
                    state.conns.push(H2Conn {
                        send: send.clone(),
                        usage,
                        given: 1,
                    });
                    if !state.reaping {
                        state.reaping = true;
                        tokio::spawn(reap(Arc::downgrade(entry), self.keepalive));
                    }
                }
                Ok(Connected::H2(send, slot))
            }
            Ok(Opened::Http1(conn)) => {
                state.failed = None;
                state.http1 = true;
                tracing::info!(upstream = %server, "upstream did not pick h2 by ALPN: using HTTP/1.1");
                Ok(Connected::Http1(conn))
            }
            Err(e) => {
                let shared = SharedError(Arc::from(e));
                state.failed = Some((Instant::now(), shared.clone()));
                Err(SendError::Connect(Box::new(shared)))
            }
        }
    }

    /// Connects and sets up HTTP/2, or hands back an HTTP/1.1 connection.
    async fn open(&self, server: &Authority) -> Result<Opened, BoxError> {
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(server.clone())
            .path_and_query("/")
            .build()?;
        let io = self.connector.clone().call(uri).await?;
        let h2 = self.scheme == Scheme::HTTP || io.get_ref().alpn_protocol() == Some(b"h2");
        if !h2 {
            return Ok(Opened::Http1(Conn::new(TokioIo::new(io), server.clone())));
        }
        let (send, conn) = self.builder.handshake(io).await?;
        let name = server.to_string();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(upstream = %name, error = %e, "HTTP/2 connection ended");
            }
        });
        Ok(Opened::H2(send))
    }
}

impl State {
    /// An open connection with a stream to spare (not `refused_by`'s),
    /// that stream counted. Those due to close are dropped first.
    fn checkout(
        &mut self,
        keepalive: &KeepAlive,
        refused_by: Option<&Arc<Usage>>,
    ) -> Option<(SendRequest<UpstreamReqBody>, StreamSlot)> {
        let now = Instant::now();
        self.conns.retain(|c| c.time_left(now, keepalive).is_some());
        let i = self.conns.iter().position(|c| {
            c.usage.streams.load(Ordering::Acquire) < MAX_STREAMS
                && refused_by.is_none_or(|r| !Arc::ptr_eq(r, &c.usage))
        })?;
        let c = &mut self.conns[i];
        c.given += 1;
        let slot = StreamSlot::take(&c.usage);
        if c.given >= keepalive.requests {
            // Its last stream (`keepalive_requests`): out of the list, it
            // closes when the streams under way end.
            return Some((self.conns.remove(i).send, slot));
        }
        Some((c.send.clone(), slot))
    }

    /// Drops the connections due to close; the time until the next one
    /// is, or `None` (and no longer reaping) when none is left.
    fn reap(&mut self, keepalive: &KeepAlive) -> Option<Duration> {
        let now = Instant::now();
        let mut next: Option<Duration> = None;
        self.conns.retain(|c| {
            let left = c.time_left(now, keepalive);
            if let Some(l) = left {
                next = Some(next.map_or(l, |n| n.min(l)));
            }
            left.is_some()
        });
        self.reaping = next.is_some();
        next
    }
}

impl H2Conn {
    /// How long it may take new streams from `now` on, as things stand;
    /// `None`: no longer (closed, too old, or idle too long).
    fn time_left(&self, now: Instant, keepalive: &KeepAlive) -> Option<Duration> {
        if self.send.is_closed() {
            return None;
        }
        let u = &self.usage;
        let age = now.saturating_duration_since(u.opened);
        let idle_left = if u.streams.load(Ordering::Acquire) == 0 {
            let idle = age.saturating_sub(Duration::from_nanos(u.last_end.load(Ordering::Relaxed)));
            keepalive.timeout.saturating_sub(idle)
        } else {
            // Busy: it cannot idle out before this much time has passed.
            keepalive.timeout.max(MIN_RECHECK)
        };
        let left = keepalive.time.saturating_sub(age).min(idle_left);
        (!left.is_zero()).then_some(left)
    }
}

/// Closes `server`'s connections when they fall due, for those no request
/// comes to look at (an idle one above all: nothing else would close it).
/// One task per server, from its first connection until it has none.
async fn reap(server: Weak<Server>, keepalive: KeepAlive) {
    loop {
        // Not held while sleeping: the pool may go (a reload) meanwhile.
        let Some(entry) = server.upgrade() else {
            return;
        };
        let next = entry.state.lock().await.reap(&keepalive);
        drop(entry);
        match next {
            Some(wait) => tokio::time::sleep(wait).await,
            None => return,
        }
    }
}

/// Rewrites an HTTP/1.1-shaped head for HTTP/2: connection-specific
/// headers out (malformed in HTTP/2, RFC 9113 §8.2.2; `proxy_set_header`
/// may have added some after the hop-by-hop strip), `Host` moved into the
/// URI's authority (hyper writes it as `:authority`), the scheme added.
/// True when a `Host` header was moved.
fn to_h2(
    head: &mut http::request::Parts,
    scheme: &Scheme,
    server: &Authority,
    te_trailers: bool,
) -> Result<bool, http::uri::InvalidUriParts> {
    strip_hop_by_hop(&mut head.headers, false);
    if te_trailers {
        head.headers
            .insert(TE, HeaderValue::from_static("trailers"));
    }
    let host = head
        .headers
        .get(HOST)
        .and_then(|h| Authority::try_from(h.as_bytes()).ok());
    let moved = host.is_some();
    let authority = match host {
        Some(a) => {
            head.headers.remove(HOST);
            a
        }
        // No Host, or one that is no authority: the server's name, and an
        // odd Host stays as it was.
        None => server.clone(),
    };
    let mut parts = std::mem::take(&mut head.uri).into_parts();
    parts.scheme = Some(scheme.clone());
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    head.uri = Uri::from_parts(parts)?;
    head.version = Version::HTTP_2;
    Ok(moved)
}

/// The request for the HTTP/1.1 pool: as the proxy made it, or with
/// [`to_h2`] undone (`h2_form`: it was applied, and whether `Host` moved).
fn into_h1(req: Request<UpstreamReqBody>, h2_form: Option<bool>) -> Request<UpstreamReqBody> {
    let Some(host_moved) = h2_form else {
        return req;
    };
    let (mut head, body) = req.into_parts();
    back_to_h1(&mut head, host_moved);
    Request::from_parts(head, body)
}

/// Undoes [`to_h2`] for a server that answered in HTTP/1.1 (the HTTP/1.1
/// writer takes the path from an absolute URI as well).
fn back_to_h1(head: &mut http::request::Parts, host_moved: bool) {
    head.headers.remove(TE);
    if host_moved {
        if let Some(a) = head.uri.authority() {
            if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                head.headers.insert(HOST, v);
            }
        }
    }
    head.version = Version::HTTP_11;
}

fn wrap(res: Response<Incoming>, slot: StreamSlot) -> Response<PooledBody> {
    let (mut parts, body) = res.into_parts();
    // The client is answered in its own version by the server side; 1.1
    // here keeps hyper's HTTP/1 writer on its fast path (it would coerce
    // 2 to 1.1 anyway).
    parts.version = Version::HTTP_11;
    let body = H2Body {
        body,
        slot: Some(slot),
    };
    Response::from_parts(parts, PooledBody::h2(body))
}

/// One request counted on its connection until its response ends.
#[derive(Debug)]
struct StreamSlot(Arc<Usage>);

impl StreamSlot {
    fn take(usage: &Arc<Usage>) -> Self {
        usage.streams.fetch_add(1, Ordering::AcqRel);
        StreamSlot(usage.clone())
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let u = &self.0;
        // The end time first: whoever sees the count at 0 sees it too.
        let ended = u64::try_from(u.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        u.last_end.fetch_max(ended, Ordering::Relaxed);
        u.streams.fetch_sub(1, Ordering::Release);
    }
}

/// A response body on an HTTP/2 stream; frames (trailers too) pass as
/// they arrive. Dropped early, hyper resets the stream and the connection
/// carries on.
#[derive(Debug)]
pub(crate) struct H2Body {
    body: Incoming,
    slot: Option<StreamSlot>,
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(frame, Poll::Ready(None | Some(Err(_)))) {
            // The stream is over: its place on the connection is free.
            self.slot = None;
        }
        frame.map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = Request::get(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn h2_form_moves_host_to_authority_and_drops_connection_headers() {
        let server: Authority = "10.0.0.1:8443".parse().unwrap();
        let mut h = head(
            "/a?b=1",
            &[
                ("host", "app.test"),
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("keep-alive", "timeout=5"),
                ("transfer-encoding", "chunked"),
                ("x-kept", "1"),
            ],
        );
        let moved = to_h2(&mut h, &Scheme::HTTPS, &server, true).unwrap();
        assert!(moved);
        assert_eq!(h.uri, "https://app.test/a?b=1");
        let mut names: Vec<&str> = h.headers.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["te", "x-kept"]);
        assert_eq!(h.headers[TE], "trailers");
        back_to_h1(&mut h, moved);
        assert_eq!(h.headers[HOST], "app.test");
        assert!(!h.headers.contains_key(TE));
        assert_eq!(h.uri.path_and_query().unwrap(), "/a?b=1");
    }

    #[test]
    fn h2_form_without_host_names_the_server() {
        let server: Authority = "backend:9000".parse().unwrap();
        let mut h = head("/", &[]);
        assert!(!to_h2(&mut h, &Scheme::HTTP, &server, false).unwrap());
        assert_eq!(h.uri, "http://backend:9000/");
        assert!(h.headers.is_empty());
    }
}
