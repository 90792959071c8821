//! Keep-alive connections to upstream servers (nginx's `keepalive`).
//!
//! One idle list per server, HTTP/1.1 through rpx's own codec ([`super::h1`]).
//! A connection goes back to its list the moment its response body ends,
//! from the body itself: no task per connection or request, no pool key
//! hashing. The most recently used connection is taken first; one found
//! closed at checkout is dropped, and one that closes under a request
//! before any answer (the body unread) hands the request to the next.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use tower::Service;

use super::connector::UpstreamConnector;
use super::h1::{Conn, Exchange, H1Error, ResponseBody};
use super::h2::H2Body;
use super::UpstreamReqBody;
use crate::error::BoxError;
use crate::upstream::KeepAlive;

/// Why a request got no response head.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection: refused, unreachable, TLS failed, `proxy_connect_timeout`.
    Connect(BoxError),
    /// The exchange failed on a connection (send timeout, reset, bad response).
    Http(BoxError),
}

impl From<H1Error> for SendError {
    fn from(e: H1Error) -> Self {
        // The causes travel bare, for the error mapping to find them.
        SendError::Http(match e {
            H1Error::Io(io) => Box::new(io),
            H1Error::Body(body) => body,
            other => Box::new(other),
        })
    }
}

/// The connections of one `proxy_pass`, towards each of its servers.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connector: UpstreamConnector,
    scheme: Scheme,
    keepalive: KeepAlive,
    /// `proxy_read_timeout` for response heads.
    read_timeout: Option<Duration>,
    /// Per server, oldest first. A linear search: a proxy has one server
    /// or a group's few.
    idle: Mutex<Vec<(Authority, Vec<Idle>)>>,
}

#[derive(Debug)]
struct Idle {
    conn: Conn,
    /// Its `keepalive_timeout` ends: checked in then, plus the timeout.
    expires: Instant,
    /// Its `keepalive_time` ends.
    retires: Instant,
}

impl Pool {
    /// Keeps connections as `keepalive` says; `idle_per_server` 0 keeps
    /// none (a connection per request). Response heads must come within
    /// `read_timeout` of the request's end.
    pub(crate) fn new(
        connector: UpstreamConnector,
        scheme: Scheme,
        keepalive: KeepAlive,
        read_timeout: Option<Duration>,
    ) -> Self {
        Pool {
            inner: Arc::new(Inner {
                connector,
                scheme,
                keepalive,
                read_timeout,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The keep-alive settings it was made with.
    pub(crate) fn keepalive(&self) -> KeepAlive {
        self.inner.keepalive
    }

    /// Sends the request `head` (origin-form URI) and `body` to `server`
    /// and waits for the response head. The head is borrowed: a retry sends
    /// it again without a copy.
    pub(crate) async fn send(
        &self,
        server: &Authority,
        head: &http::request::Parts,
        mut body: UpstreamReqBody,
    ) -> Result<Response<PooledBody>, SendError> {
        while let Some(conn) = self.inner.checkout(server) {
            match conn
                .exchange(head, body, self.inner.read_timeout)
                .response()
                .await
            {
                Ok((res, exchange)) => return Ok(self.wrap(res, exchange)),
                // Closed under us before any answer, body unread: the
                // next connection gets the request (as nginx does).
                Err(failed) => match failed.retryable {
                    Some(unsent) => body = unsent,
                    None => return Err(failed.error.into()),
                },
            }
        }
        let started = std::time::Instant::now();
        let conn = self.connect(server).await?;
        let connected = started.elapsed();
        let mut res = self.send_on(conn, head, body).await?;
        res.extensions_mut()
            .insert(crate::accesslog::ConnectTime(connected));
        Ok(res)
    }

    /// Sends a request on a new connection `conn`, which joins the idle
    /// list of its server afterwards (an HTTP/1.1 answer to an HTTP/2 offer).
    pub(crate) async fn send_on(
        &self,
        conn: Conn,
        head: &http::request::Parts,
        body: UpstreamReqBody,
    ) -> Result<Response<PooledBody>, SendError> {
        let (res, exchange) = conn
            .exchange(head, body, self.inner.read_timeout)
            .response()
            .await
            .map_err(|f| SendError::from(f.error))?;
        Ok(self.wrap(res, exchange))
    }

    /// A new connection.
    async fn connect(&self, server: &Authority) -> Result<Conn, SendError> {
        let uri = Uri::builder()
            .scheme(self.inner.scheme.clone())
            .authority(server.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| SendError::Connect(e.into()))?;
        let mut connector = self.inner.connector.clone();
        let io = connector.call(uri).await.map_err(SendError::Connect)?;
        Ok(Conn::new(TokioIo::new(io), server.clone()))
    }

    fn wrap(&self, head: super::h1::Head, exchange: Exchange) -> Response<PooledBody> {
        // A switched connection belongs to the tunnel, never to the pool.
        let keep = self.inner.keepalive.idle_per_server > 0
            && head.response.status() != StatusCode::SWITCHING_PROTOCOLS;
        let mut body = PooledBody {
            kind: Kind::H1 {
                body: exchange.body(&head),
                back: keep.then(|| self.inner.clone()),
            },
        };
        // An empty body has ended already.
        body.give_back();
        let (parts, ()) = head.response.into_parts();
        Response::from_parts(parts, body)
    }
}

impl Inner {
    /// The most recently used idle connection to `server` still open.
    fn checkout(&self, server: &Authority) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        // Byte equality: the names come from the same config text, and
        // `Authority`'s own comparison folds case byte by byte.
        let (_, list) = idle
            .iter_mut()
            .find(|(a, _)| a.as_str() == server.as_str())?;
        let now = crate::clock::now().into_std();
        while let Some(mut c) = list.pop() {
            if now < c.expires && now < c.retires && c.conn.is_idle_and_open() {
                return Some(c.conn);
            }
        }
        None
    }

    fn checkin(&self, conn: Conn) {
        let now = crate::clock::now().into_std();
        let retires = later(conn.opened(), self.keepalive.time);
        // `keepalive_requests` and `keepalive_time`: a connection that has
        // served its share closes here, between two requests.
        if conn.served() >= self.keepalive.requests || now >= retires {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let server = conn.server().as_str();
        let list = match idle.iter().position(|(a, _)| a.as_str() == server) {
            Some(i) => &mut idle[i].1,
            None => {
                idle.push((conn.server().clone(), Vec::new()));
                &mut idle.last_mut().expect("just pushed").1
            }
        };
        // Expired ones first (dropping a connection closes it), then the
        // oldest beyond the limit.
        let expired = list.iter().take_while(|c| now >= c.expires).count();
        let over = (list.len() - expired + 1).saturating_sub(self.keepalive.idle_per_server);
        list.drain(..expired + over);
        list.push(Idle {
            conn,
            expires: later(now, self.keepalive.timeout),
            retires,
        });
    }
}

/// `t + d`; a `d` too long to add (an embedder's `Duration::MAX`) is a
/// century.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .unwrap_or_else(|| t + Duration::from_secs(100 * 365 * 86_400))
}

/// A response body from the pool: the upstream's, and on its end the
/// connection goes back for the next request. Dropped early (the client
/// went away), the connection closes with it. An HTTP/2 body is one stream
/// of a shared connection.
#[derive(Debug)]
pub struct PooledBody {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    H1 {
        body: ResponseBody,
        /// The pool the connection goes back to.
        back: Option<Arc<Inner>>,
    },
    H2(H2Body),
}

impl PooledBody {
    pub(crate) fn h2(body: H2Body) -> Self {
        PooledBody {
            kind: Kind::H2(body),
        }
    }

    fn give_back(&mut self) {
        let Kind::H1 { body, back } = &mut self.kind else {
            return;
        };
        if let Some(conn) = body.take_reusable() {
            if let Some(pool) = back.take() {
                pool.checkin(conn);
            }
        }
    }

    /// Keeps `map`, a request head's that was sent, for the connection's
    /// next response head (HTTP/1.1; dropped otherwise).
    pub(crate) fn keep_map(&mut self, map: http::HeaderMap) {
        if let Kind::H1 { body, .. } = &mut self.kind {
            body.keep_map(map);
        }
    }

    /// The connection of a 101 answer, for the tunnel: its IO and what the
    /// upstream already sent past the head. HTTP/1.1 only.
    pub(crate) fn into_upgraded(self) -> Option<(super::h1::Io, Bytes)> {
        match self.kind {
            Kind::H1 { mut body, .. } => body.take_exchange().map(Exchange::into_upgraded),
            Kind::H2(_) => None,
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = match &mut self.kind {
            Kind::H1 { body, .. } => Pin::new(body).poll_frame(cx),
            Kind::H2(body) => return Pin::new(body).poll_frame(cx),
        };
        // The connection is free as soon as its last bytes are read,
        // before the client has even taken them.
        if frame.is_ready() {
            self.give_back();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::H1 { body, .. } => body.is_end_stream(),
            Kind::H2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::H1 { body, .. } => body.size_hint(),
            Kind::H2(body) => body.size_hint(),
        }
    }
}
