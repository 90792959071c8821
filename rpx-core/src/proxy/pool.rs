//! Keep-alive connections to upstream servers (nginx's `keepalive`).
//!
//! One idle list per server, HTTP/1.1 over `hyper::client::conn::http1`.
//! A connection goes back to its list the moment its response body ends,
//! from the body itself: no task per request, no pool key hashing. The
//! most recently used connection is taken first; one that went stale while
//! idle is dropped and the request, not yet sent, goes on the next.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use std::pin::Pin;
use tower::Service;

use super::connector::UpstreamConnector;
use super::UpstreamReqBody;
use crate::error::BoxError;

type Sender = http1::SendRequest<UpstreamReqBody>;

/// Why a request got no response head.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection: refused, unreachable, TLS failed, `proxy_connect_timeout`.
    Connect(BoxError),
    /// The exchange failed on a connection (send timeout, reset, bad response).
    Http(hyper::Error),
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
    max_idle: usize,
    idle_timeout: Duration,
    /// Per server, oldest first. A linear search: a proxy has one server
    /// or a group's few.
    idle: Mutex<Vec<(Authority, Vec<Idle>)>>,
}

#[derive(Debug)]
struct Idle {
    sender: Sender,
    since: Instant,
}

impl Pool {
    /// Keeps at most `max_idle` idle connections per server, each for at
    /// most `idle_timeout`; 0 keeps none (a connection per request).
    pub(crate) fn new(
        connector: UpstreamConnector,
        scheme: Scheme,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Self {
        Pool {
            inner: Arc::new(Inner {
                connector,
                scheme,
                max_idle,
                idle_timeout,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Sends `req` (origin-form URI) to `server` and waits for the head.
    pub(crate) async fn send(
        &self,
        server: &Authority,
        mut req: Request<UpstreamReqBody>,
    ) -> Result<Response<PooledBody>, SendError> {
        while let Some(mut sender) = self.inner.checkout(server) {
            // Alive and idle: ready at once. Closed while idle: an error.
            // Still busy (an early answer while the upload went on): not
            // worth waiting for, it closes when dropped.
            let ready = std::future::poll_fn(|cx| Poll::Ready(sender.poll_ready(cx))).await;
            if !matches!(ready, Poll::Ready(Ok(()))) {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(res) => return Ok(self.wrap(res, sender, server)),
                Err(mut e) => match e.take_message() {
                    // Not sent: the connection closed first. Next one.
                    Some(unsent) => req = unsent,
                    None => return Err(SendError::Http(e.into_error())),
                },
            }
        }
        let mut sender = self.connect(server).await?;
        let res = sender.send_request(req).await.map_err(SendError::Http)?;
        Ok(self.wrap(res, sender, server))
    }

    /// A new connection, its driver spawned.
    async fn connect(&self, server: &Authority) -> Result<Sender, SendError> {
        let uri = Uri::builder()
            .scheme(self.inner.scheme.clone())
            .authority(server.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| SendError::Connect(e.into()))?;
        let mut connector = self.inner.connector.clone();
        let io = connector.call(uri).await.map_err(SendError::Connect)?;
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(SendError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn wrap(
        &self,
        res: Response<Incoming>,
        sender: Sender,
        server: &Authority,
    ) -> Response<PooledBody> {
        // A switched connection belongs to the tunnel, never to the pool.
        let keep = self.inner.max_idle > 0 && res.status() != StatusCode::SWITCHING_PROTOCOLS;
        let (parts, body) = res.into_parts();
        let mut body = PooledBody {
            body,
            back: keep.then(|| Back {
                pool: self.inner.clone(),
                server: server.clone(),
                sender,
            }),
        };
        if body.body.is_end_stream() {
            body.give_back();
        }
        Response::from_parts(parts, body)
    }
}

impl Inner {
    /// The most recently used idle connection to `server`, if any.
    fn checkout(&self, server: &Authority) -> Option<Sender> {
        let mut idle = self.idle.lock().ok()?;
        let (_, list) = idle.iter_mut().find(|(a, _)| a == server)?;
        let now = Instant::now();
        while let Some(c) = list.pop() {
            if now.duration_since(c.since) < self.idle_timeout && !c.sender.is_closed() {
                return Some(c.sender);
            }
        }
        None
    }

    fn checkin(&self, server: Authority, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let list = match idle.iter().position(|(a, _)| *a == server) {
            Some(i) => &mut idle[i].1,
            None => {
                idle.push((server, Vec::new()));
                &mut idle.last_mut().expect("just pushed").1
            }
        };
        let now = Instant::now();
        // Expired ones first (dropping a sender closes its connection),
        // then the oldest beyond the limit.
        let expired = list
            .iter()
            .take_while(|c| now.duration_since(c.since) >= self.idle_timeout)
            .count();
        let over = (list.len() - expired + 1).saturating_sub(self.max_idle);
        list.drain(..expired + over);
        list.push(Idle { sender, since: now });
    }
}

/// Where a connection goes back once its response body has ended.
struct Back {
    pool: Arc<Inner>,
    server: Authority,
    sender: Sender,
}

/// A response body from the pool: the upstream's, and on its end the
/// connection goes back for the next request. Dropped early (the client
/// went away), the connection closes with it.
pub struct PooledBody {
    body: Incoming,
    back: Option<Back>,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("body", &self.body)
            .finish()
    }
}

impl PooledBody {
    fn give_back(&mut self) {
        if let Some(b) = self.back.take() {
            b.pool.checkin(b.server, b.sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        match &frame {
            // The last frame: the connection is free before the client
            // has even read it.
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.give_back(),
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Err(_))) => this.back = None,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
