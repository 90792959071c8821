//! rpx's own HTTP/1.1 server for the requests most connections carry:
//! without a body, an upgrade or an `Expect`.
//!
//! A proxy's time per small request is mostly its server codec and the
//! futures around the call; hyper's general one (request bodies through a
//! channel, a dispatcher polling both directions, a timer sleep and a new
//! read buffer per request) costs a third of rpx's instructions. This one
//! reads a head, calls the service and writes the response from one
//! future per connection, with one buffer each way reused across requests
//! and one timer re-armed only when it fires.
//!
//! The first request it does not take (a body, an upgrade, HTTP/1.0, the
//! HTTP/2 preface, a malformed or oversized head) hands the connection,
//! with the bytes read so far, to hyper for the rest of its life: hyper
//! answers exactly as it did before this reader existed.
//!
//! What it keeps of hyper's behaviour: the response framing and `Date`
//! ([`response`]); `Connection: close` from either side ends the
//! connection after the response; a client that closes while its response
//! is pending cancels it; `client_header_timeout` and `keepalive_timeout`
//! as [`super::header_timer`] gives them to hyper; the graceful stop ends
//! an idle connection at once and a busy one after its response.
//!
//! For `stub_status` a connection is reading from the first bytes of a
//! head it takes (a head for hyper is [`super::screen`]'s to count),
//! writing from the service's call ([`ConnService::start`]) until its
//! response is sent, then waiting.

mod date;
pub(super) mod head;
mod outbox;
mod response;

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use http::{Method, Request};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::io::poll_read_buf;
use tower::Service;

use super::edge::HeadLimits;
use super::{ConnService, RequestBody};
use crate::clock;
use crate::headers::HeadCopies;
use crate::lazy_sleep::LazySleep;
use head::Parsed;
use response::BodyLen;

/// Bytes read at a time.
const READ_BUF: usize = 8 * 1024;
/// A head not finished within this many bytes goes to hyper (which
/// answers 431 past its own limit).
const MAX_HEAD: usize = 64 * 1024;

/// How a connection's time on this path ended.
pub(super) enum Ended<I> {
    /// Closed: by either side, a timeout, the graceful stop or an error.
    Closed,
    /// For hyper: the connection and the bytes read from it not yet used.
    Handoff(I, BytesMut),
}

/// The connection's timeouts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// `client_header_timeout`.
    pub(super) header: Duration,
    /// `keepalive_timeout`; zero: one request per connection.
    pub(super) keepalive: Duration,
}

/// What the reader needs of the listener's settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    pub(super) timeouts: Timeouts,
    pub(super) limits: HeadLimits,
}

/// Serves requests on `io` until it closes or meets one for hyper.
/// `stopping`: the graceful stop has begun.
pub(super) async fn serve<I, S>(
    mut io: I,
    svc: &mut ConnService<S>,
    settings: Settings,
    stopping: &AtomicBool,
) -> Ended<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
    S: Service<Request<RequestBody>, Error = Infallible> + Clone,
    S::Response: super::ServedResponse,
{
    let Settings { timeouts, limits } = settings;
    let mut buf = BytesMut::with_capacity(READ_BUF);
    let mut out = outbox::Outbox::default();
    let mut heads = HeadCopies::default();
    let mut deadline = Deadline::new(clock::now() + timeouts.header);
    // Waiting for a next request, no byte of it yet: the keep-alive
    // timeout runs, not the header one.
    let mut idle = false;
    loop {
        let (req, asked_close) = loop {
            if !buf.is_empty() {
                match head::parse(&mut buf, &mut heads, &limits) {
                    Parsed::Request { req, close } => break (req, close),
                    Parsed::Partial if buf.len() < MAX_HEAD => svc.stat.reading(),
                    Parsed::Refused(refusal) => {
                        // Counted as a request when the connection closes.
                        svc.stat.reading();
                        let (parts, body) = refusal.page(http::Version::HTTP_11).into_parts();
                        if let Ok((framing, _)) = response::encode_head(
                            out.head(),
                            &parts,
                            body.size_hint()
                                .exact()
                                .map_or(BodyLen::Unknown, BodyLen::Known),
                            false,
                            true,
                        ) {
                            let _ = outbox::send(&mut io, &mut out, body, framing, &mut buf).await;
                        }
                        let _ = io.shutdown().await;
                        return Ended::Closed;
                    }
                    _ => return Ended::Handoff(io, buf),
                }
                if idle {
                    idle = false;
                    deadline.at = clock::now() + timeouts.header;
                }
            }
            let read =
                poll_fn(|cx| poll_head_bytes(&mut io, &mut buf, &mut deadline, stopping, cx)).await;
            if !read {
                return Ended::Closed;
            }
        };
        let head_request = req.method() == Method::HEAD;
        let (call, last) = svc.start(req);
        // Polled where it is: the stack's future is large, and each move
        // of it is a copy.
        let mut call = pin!(call);
        let answered = poll_fn(|cx| {
            if let Poll::Ready(Ok(res)) = call.as_mut().poll(cx) {
                return Poll::Ready(Some(res));
            }
            // A client gone first cancels the call, as hyper does.
            if poll_client_gone(&mut io, &mut buf, cx) {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        let Some(res) = answered else {
            return Ended::Closed;
        };
        let close =
            asked_close || last || timeouts.keepalive.is_zero() || stopping.load(Ordering::Relaxed);
        let (parts, body) = res.into_parts();
        let len = if body.is_end_stream() {
            BodyLen::None
        } else {
            body.size_hint()
                .exact()
                .map_or(BodyLen::Unknown, BodyLen::Known)
        };
        let Ok((framing, close)) =
            response::encode_head(out.head(), &parts, len, head_request, close)
        else {
            tracing::warn!(status = %parts.status, "response head with conflicting lengths: connection closed");
            return Ended::Closed;
        };
        // Its map, emptied, is the next request's.
        heads.keep(parts.headers);
        if let Err(e) = outbox::send(&mut io, &mut out, body, framing, &mut buf).await {
            tracing::debug!(error = %e, "response not sent whole: connection closed");
            return Ended::Closed;
        }
        if close {
            let _ = io.shutdown().await;
            return Ended::Closed;
        }
        // Answered: idle until the next head (maybe already in `buf`).
        svc.stat.waiting();
        let now = clock::now();
        idle = buf.is_empty();
        deadline.at = now
            + if idle {
                timeouts.keepalive
            } else {
                timeouts.header
            };
    }
}

/// Reads more of a head. Ready(false): the connection is to close (the
/// client closed it or failed, the deadline passed, or the graceful stop
/// finds it idle).
fn poll_head_bytes<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut BytesMut,
    deadline: &mut Deadline,
    stopping: &AtomicBool,
    cx: &mut Context<'_>,
) -> Poll<bool> {
    match poll_read(io, buf, cx) {
        Poll::Ready(Ok(n)) => return Poll::Ready(n > 0),
        Poll::Ready(Err(_)) => return Poll::Ready(false),
        Poll::Pending => {}
    }
    if buf.is_empty() && stopping.load(Ordering::Relaxed) {
        return Poll::Ready(false);
    }
    if deadline.poll_passed(cx) {
        return Poll::Ready(false);
    }
    Poll::Pending
}

/// One read into `buf`, with room made first.
fn poll_read<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < READ_BUF / 4 {
        buf.reserve(READ_BUF);
    }
    poll_read_buf(Pin::new(io), cx, buf)
}

/// Whether the client has closed its side (or failed). Bytes it sends
/// meanwhile (a pipelined request) are kept in `buf`, up to a head's worth.
fn poll_client_gone<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> bool {
    while buf.len() < MAX_HEAD {
        match poll_read(io, buf, cx) {
            Poll::Ready(Ok(0) | Err(_)) => return true,
            Poll::Ready(Ok(_)) => {}
            Poll::Pending => return false,
        }
    }
    false
}

/// The connection's head deadline: moving `at` is a clock read, and the
/// one [`LazySleep`] behind it touches no timer wheel per request.
struct Deadline {
    at: Instant,
    sleep: LazySleep,
}

impl Deadline {
    fn new(at: Instant) -> Self {
        Deadline {
            at,
            sleep: LazySleep::default(),
        }
    }

    fn poll_passed(&mut self, cx: &mut Context<'_>) -> bool {
        self.sleep.poll_until(self.at, cx).is_ready()
    }
}
