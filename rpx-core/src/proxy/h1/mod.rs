//! HTTP/1.1 to upstreams, driven by the request that uses the connection.
//!
//! No task per connection and no channels: the proxy future writes the
//! request and reads the response head itself, and the response body reads
//! the rest (and finishes an upload still going on) as the client takes it.
//! This is how nginx talks to upstreams; against hyper's client, whose
//! connection ran as its own task, it cut rpx's user-space instructions per
//! proxied request by a fifth (`benches/instructions.sh`).

pub(crate) mod decode;
mod encode;

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::uri::Authority;
use http::Method;
use http_body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::connector::{TimedIo, UpstreamIo};
use super::UpstreamReqBody;
use crate::error::BoxError;
use crate::headers::HeadCopies;
use crate::lazy_sleep::LazySleep;
use decode::{Decoded, Framing, MAX_HEAD};
use encode::{chunk_header, encode_head, last_chunk_with, BodyFraming};

/// The byte stream to one upstream server.
pub(crate) type Io = TokioIo<TimedIo<UpstreamIo>>;

/// Bytes asked of the socket by an exchange's first read: a head and a
/// small body fit, and a connection that carries small answers keeps a
/// small buffer.
const READ_MIN: usize = 16 * 1024;
/// The most asked per read. Each read that fills what it asked doubles the
/// next, up to this: a body streaming in is read in fewer, larger pieces
/// (1 MiB bodies: +7–9% throughput at 64 KiB against 16 KiB, and less at
/// 256 KiB, whose buffers no longer stay in cache).
const READ_MAX: usize = 64 * 1024;

/// What went wrong on an upstream connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum H1Error {
    /// The upstream closed the connection before the message ended.
    #[error("upstream closed the connection prematurely")]
    Closed,
    /// The upstream's response is not valid HTTP/1.x.
    #[error("invalid response from upstream: {0}")]
    Malformed(String),
    /// The response head exceeds [`MAX_HEAD`].
    #[error("upstream sent a response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// Reading or writing the connection failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The request body (the client's) failed.
    #[error("request body: {0}")]
    Body(#[source] BoxError),
    /// No response head within `proxy_read_timeout` of the request's end.
    #[error("no response head within {0:?}")]
    HeadTimeout(Duration),
}

/// An open connection to an upstream server, between two requests.
/// Boxed once per connection: requests and response bodies that use it
/// move a pointer, not the IO and its buffers.
pub(crate) struct Conn(Box<ConnState>);

struct ConnState {
    io: Io,
    buf: BytesMut,
    /// Where response heads are copied to (see [`HeadCopies`]).
    heads: HeadCopies,
    out: Out,
    /// Requests started on this connection (`keepalive_requests`).
    served: u32,
    /// When it was opened (`keepalive_time`).
    opened: Instant,
    /// The server it goes to, for the pool to take it back.
    server: Authority,
    /// `proxy_read_timeout` of the current exchange, for the response head.
    read_timeout: Option<Duration>,
    /// When the current exchange's head is late, once its request is sent.
    head_deadline: Option<tokio::time::Instant>,
    /// The response-head timer, kept for the connection's life.
    head_timer: LazySleep,
    /// Bytes the next read asks for (`READ_MIN` to `READ_MAX`).
    read_size: usize,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

impl Conn {
    /// A connection to `server`.
    pub(crate) fn new(io: Io, server: Authority) -> Self {
        Conn(Box::new(ConnState {
            io,
            buf: BytesMut::new(),
            heads: HeadCopies::default(),
            out: Out::one(Bytes::new()),
            served: 0,
            opened: Instant::now(),
            server,
            read_timeout: None,
            head_deadline: None,
            head_timer: LazySleep::default(),
            read_size: READ_MIN,
        }))
    }

    /// The server it goes to.
    pub(crate) fn server(&self) -> &Authority {
        &self.0.server
    }

    /// Requests started on this connection.
    pub(crate) fn served(&self) -> u32 {
        self.0.served
    }

    /// When this connection was opened.
    pub(crate) fn opened(&self) -> Instant {
        self.0.opened
    }

    /// Whether an idle connection can carry a request: the upstream has
    /// neither closed it nor sent anything unasked.
    pub(crate) fn is_idle_and_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        matches!(
            Pin::new(&mut self.0.io).poll_read(&mut cx, &mut probe),
            Poll::Pending
        )
    }

    /// Starts an exchange: `head` is written first, then `body`; the
    /// response head must come within `read_timeout` of the request's end.
    pub(crate) fn exchange(
        mut self,
        head: &http::request::Parts,
        body: UpstreamReqBody,
        read_timeout: Option<Duration>,
    ) -> Exchange {
        let has_body = !body.is_end_stream();
        let (bytes, framing) =
            encode_head(head, has_body, body.size_hint().exact(), &mut self.0.heads);
        self.0.out = Out::one(bytes);
        self.0.served = self.0.served.saturating_add(1);
        self.0.read_timeout = read_timeout;
        self.0.head_deadline = None;
        self.0.read_size = READ_MIN;
        Exchange {
            conn: self,
            upload: has_body.then_some(body),
            chunked: framing == BodyFraming::Chunked,
            upload_started: false,
            upload_failed: false,
            write_error: None,
            flushed: false,
            head_request: head.method == Method::HEAD,
            got_bytes: false,
        }
    }
}

/// Bytes waiting to be written: a head, or a chunk with its framing.
struct Out {
    parts: [Bytes; 3],
    first: usize,
}

impl Out {
    fn one(b: Bytes) -> Self {
        Out {
            parts: [b, Bytes::new(), Bytes::new()],
            first: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.parts[self.first..].iter().all(Bytes::is_empty)
    }

    fn set(&mut self, parts: [Bytes; 3]) {
        self.parts = parts;
        self.first = 0;
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 && self.first < 3 {
            let p = &mut self.parts[self.first];
            let k = n.min(p.len());
            p.advance(k);
            n -= k;
            if p.is_empty() {
                // Let go of the buffer it shares: a head's space is
                // taken back for the next one (see `HeadCopies`).
                *p = Bytes::new();
                self.first += 1;
            }
        }
    }
}

/// One request and its response on a connection. Kept small: it lives in
/// every proxied response's body, which moves through each layer's future.
pub(crate) struct Exchange {
    conn: Conn,
    /// The request body still to send.
    upload: Option<UpstreamReqBody>,
    chunked: bool,
    /// The body was polled: it cannot be sent again elsewhere.
    upload_started: bool,
    /// Writing failed: the connection cannot be kept, and without an
    /// answer this is the error to report.
    upload_failed: bool,
    write_error: Option<Box<H1Error>>,
    flushed: bool,
    /// The request is a HEAD: its answer has no body.
    head_request: bool,
    /// The upstream has sent something in answer.
    got_bytes: bool,
}

/// Why an exchange gave no response head.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) error: H1Error,
    /// Nothing was answered and the body was never read: the request can
    /// go out again on another connection (this body, if any, with it).
    pub(crate) retryable: Option<UpstreamReqBody>,
}

impl Exchange {
    fn upload_done(&self) -> bool {
        self.upload.is_none() && self.conn.0.out.is_empty() && self.flushed
    }

    /// Writes what it can of the request; Ready once all of it is sent.
    fn poll_upload(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), H1Error>> {
        loop {
            while !self.conn.0.out.is_empty() {
                let state = &mut *self.conn.0;
                let slices = [
                    IoSlice::new(&state.out.parts[0]),
                    IoSlice::new(&state.out.parts[1]),
                    IoSlice::new(&state.out.parts[2]),
                ];
                let io = Pin::new(&mut state.io);
                let n = ready!(io.poll_write_vectored(cx, &slices[state.out.first..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
                }
                self.conn.0.out.advance(n);
                self.flushed = false;
            }
            let Some(body) = self.upload.as_mut() else {
                if !self.flushed {
                    ready!(Pin::new(&mut self.conn.0.io).poll_flush(cx))?;
                    self.flushed = true;
                }
                return Poll::Ready(Ok(()));
            };
            self.upload_started = true;
            let frame = match Pin::new(body).poll_frame(cx) {
                Poll::Pending => {
                    // What was written must leave (TLS buffers it) while
                    // the client's next bytes are awaited.
                    if !self.flushed {
                        ready!(Pin::new(&mut self.conn.0.io).poll_flush(cx))?;
                        self.flushed = true;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    self.upload = None;
                    if self.chunked {
                        self.conn.0.out.set([
                            Bytes::from_static(b"0\r\n\r\n"),
                            Bytes::new(),
                            Bytes::new(),
                        ]);
                    }
                    continue;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(H1Error::Body(e))),
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) if data.is_empty() => {}
                Ok(data) if self.chunked => self.conn.0.out.set([
                    chunk_header(data.len()),
                    data,
                    Bytes::from_static(b"\r\n"),
                ]),
                Ok(data) => self.conn.0.out.set([data, Bytes::new(), Bytes::new()]),
                Err(frame) => {
                    // Trailers end the body; only chunked framing carries them.
                    if let (true, Ok(trailers)) = (self.chunked, frame.into_trailers()) {
                        let last = last_chunk_with(&trailers);
                        self.conn.0.out.set([last, Bytes::new(), Bytes::new()]);
                        self.chunked = false;
                    }
                    self.upload = None;
                }
            }
        }
    }

    /// Sends what it can without waiting; a failure ends the upload (the
    /// response may still come) and rules out keeping the connection.
    fn drive_upload(&mut self, cx: &mut Context<'_>) -> Result<(), H1Error> {
        if self.upload_failed || self.upload_done() {
            return Ok(());
        }
        match self.poll_upload(cx) {
            Poll::Ready(Err(H1Error::Body(e))) => Err(H1Error::Body(e)),
            Poll::Ready(Err(e)) => {
                self.upload_failed = true;
                self.write_error = Some(Box::new(e));
                self.upload = None;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Reads into the buffer; Ready(0) at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let state = &mut *self.conn.0;
        let ask = state.read_size;
        state.buf.reserve(ask);
        // Limited: a buffer taken back whole may have more room than asked.
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut state.io),
            cx,
            &mut (&mut state.buf).limit(ask)
        ))?;
        if n == ask {
            state.read_size = (state.read_size * 2).min(READ_MAX);
        }
        self.got_bytes |= n > 0;
        Poll::Ready(Ok(n))
    }

    /// Sends the request and reads the response head, uploading the body
    /// meanwhile. Informational answers other than 101 are skipped.
    pub(crate) async fn response(mut self) -> Result<(decode::Head, Self), Failed> {
        let head = poll_fn(|cx| self.poll_head(cx)).await;
        match head {
            Ok(head) => Ok((head, self)),
            Err(error) => {
                // A timed-out request may be in the works upstream: it is
                // not sent again on another pooled connection.
                let retryable = !self.got_bytes
                    && !self.upload_started
                    && !matches!(error, H1Error::HeadTimeout(_));
                Err(Failed {
                    retryable: retryable
                        .then(|| self.upload.take().unwrap_or_else(super::empty_body)),
                    error,
                })
            }
        }
    }

    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<decode::Head, H1Error>> {
        self.drive_upload(cx)?;
        loop {
            if !self.conn.0.buf.is_empty() {
                let st = &mut *self.conn.0;
                if let Some(head) =
                    decode::parse_head(&mut st.buf, &mut st.heads, self.head_request)?
                {
                    let status = head.response.status();
                    if status.is_informational() && status != http::StatusCode::SWITCHING_PROTOCOLS
                    {
                        continue;
                    }
                    return Poll::Ready(Ok(head));
                }
                if self.conn.0.buf.len() > MAX_HEAD {
                    return Poll::Ready(Err(H1Error::HeadTooLarge));
                }
            }
            // After a failed write, an answer already sent (an early 413,
            // say) is still read; without one, the write error is the cause.
            match self.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(self
                        .write_error
                        .take()
                        .map_or(H1Error::Closed, |e| *e)))
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(self.write_error.take().map_or(e.into(), |e| *e)))
                }
                Poll::Pending => {
                    if let Some(e) = self.write_error.take() {
                        return Poll::Ready(Err(*e));
                    }
                    return self.poll_head_timeout(cx);
                }
            }
        }
    }

    /// `proxy_read_timeout` for the head, counted from the end of the
    /// request as nginx counts it from its last write: a long upload does
    /// not eat into it. The connection's [`LazySleep`] keeps it, so most
    /// requests never touch the timer wheel.
    fn poll_head_timeout(&mut self, cx: &mut Context<'_>) -> Poll<Result<decode::Head, H1Error>> {
        let Some(timeout) = self.conn.0.read_timeout else {
            return Poll::Pending;
        };
        if !(self.upload_failed || self.upload_done()) {
            return Poll::Pending;
        }
        let state = &mut *self.conn.0;
        let deadline = *state
            .head_deadline
            .get_or_insert_with(|| crate::clock::now() + timeout);
        ready!(state.head_timer.poll_until(deadline, cx));
        Poll::Ready(Err(H1Error::HeadTimeout(timeout)))
    }

    /// The response body, reading from this exchange; once it has ended,
    /// [`ResponseBody::take_reusable`] has the connection if it can carry
    /// another request.
    pub(crate) fn body(self, head: &decode::Head) -> ResponseBody {
        let mut body = ResponseBody {
            framing: head.framing,
            keep_alive: head.keep_alive,
            exchange: Some(self),
            reusable: None,
            eof: false,
        };
        // Nobody polls a body known to be empty. A 101 keeps its
        // connection for the tunnel.
        if body.framing == Framing::Empty
            && head.response.status() != http::StatusCode::SWITCHING_PROTOCOLS
        {
            body.finish();
        }
        body
    }

    /// The connection after a 101: the IO and whatever the upstream sent
    /// after the head.
    pub(crate) fn into_upgraded(self) -> (Io, Bytes) {
        let state = *self.conn.0;
        (state.io, state.buf.freeze())
    }
}

pub(crate) use decode::Head;

/// An upstream response body, decoded from its connection as it is read.
pub(crate) struct ResponseBody {
    framing: Framing,
    keep_alive: bool,
    exchange: Option<Exchange>,
    /// The connection, clean after the end of the body.
    reusable: Option<Conn>,
    eof: bool,
}

impl ResponseBody {
    /// Ends the exchange; the connection is kept if nothing rules it out.
    fn finish(&mut self) {
        let Some(ex) = self.exchange.take() else {
            return;
        };
        let clean =
            self.keep_alive && !ex.upload_failed && ex.upload_done() && ex.conn.0.buf.is_empty();
        if clean {
            self.reusable = Some(ex.conn);
        }
    }

    /// The connection, once the body has ended cleanly.
    pub(crate) fn take_reusable(&mut self) -> Option<Conn> {
        self.reusable.take()
    }

    /// Takes the exchange out, for a 101.
    pub(crate) fn take_exchange(&mut self) -> Option<Exchange> {
        self.exchange.take()
    }

    pub(crate) fn is_end(&self) -> bool {
        self.exchange.is_none() || self.framing == Framing::Empty
    }

    /// Keeps `map` (a request head's, sent) for the connection's next
    /// response head; see [`HeadCopies::keep`].
    pub(crate) fn keep_map(&mut self, map: http::HeaderMap) {
        let conn = match (&mut self.exchange, &mut self.reusable) {
            (Some(ex), _) => &mut ex.conn,
            (None, Some(conn)) => conn,
            (None, None) => return,
        };
        conn.0.heads.keep(map);
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(ex) = this.exchange.as_mut() else {
                return Poll::Ready(None);
            };
            // An upload the upstream answered early goes on meanwhile.
            if let Err(e) = ex.drive_upload(cx) {
                this.exchange = None;
                return Poll::Ready(Some(Err(e.into())));
            }
            let decoded = match this.framing.decode(&mut ex.conn.0.buf, this.eof) {
                Ok(d) => d,
                Err(e) => {
                    this.exchange = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            };
            match decoded {
                Decoded::Data(d) => {
                    if matches!(this.framing, Framing::Length(0)) {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Decoded::Trailers(t) => {
                    this.finish();
                    return Poll::Ready(Some(Ok(Frame::trailers(t))));
                }
                Decoded::End => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Decoded::More => match ex.poll_fill(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(0)) => this.eof = true,
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(e)) => {
                        this.exchange = None;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.is_end()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Empty => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_part_lets_go_of_its_buffer_for_the_next_head() {
        let mut copies = HeadCopies::default();
        let head = copies.write(16, |b| b.extend_from_slice(&[1; 16]));
        let at = head.as_ptr();
        let mut out = Out::one(head);
        out.advance(10);
        assert!(!out.is_empty());
        out.advance(6);
        assert!(out.is_empty());
        let next = copies.write(16, |b| b.extend_from_slice(&[2; 16]));
        assert_eq!(next.as_ptr(), at, "the sent head's space is used again");
    }

    /// A loopback upstream answering each request on its one connection
    /// with a body of `len` bytes, sent as fast as the socket takes it.
    async fn upstream_sending(len: usize) -> Conn {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            loop {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let Ok(b) = s.read_u8().await else { return };
                    head.push(b);
                }
                let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
                s.write_all(answer.as_bytes()).await.unwrap();
                s.write_all(&vec![b'x'; len]).await.unwrap();
            }
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let io = super::super::connector::TimedIo::new(
            super::super::connector::UpstreamIo::Plain(TokioIo::new(tcp)),
            None,
        );
        Conn::new(TokioIo::new(io), Authority::from_static("upstream"))
    }

    /// One exchange on `conn`: the sizes of its body's frames, and the
    /// connection if it can be used again.
    async fn frame_sizes(conn: Conn) -> (Vec<usize>, Option<Conn>) {
        use http_body_util::BodyExt;
        let (head, _) = http::Request::get("/").body(()).unwrap().into_parts();
        let exchange = conn.exchange(&head, super::super::empty_body(), None);
        let timed = tokio::time::timeout(Duration::from_secs(10), async move {
            let (head, exchange) = exchange.response().await.unwrap();
            let mut body = exchange.body(&head);
            let mut sizes = Vec::new();
            while let Some(frame) = body.frame().await {
                sizes.push(frame.unwrap().into_data().unwrap().len());
            }
            (sizes, body.take_reusable())
        });
        timed.await.expect("the body ends within 10 s")
    }

    #[tokio::test]
    async fn a_streaming_body_is_read_in_pieces_growing_from_read_min_to_read_max() {
        const LEN: usize = 1 << 20;
        let (sizes, conn) = frame_sizes(upstream_sending(LEN).await).await;
        assert_eq!(sizes.iter().sum::<usize>(), LEN);
        assert!(
            sizes[0] < READ_MIN,
            "the first read asks READ_MIN: {sizes:?}"
        );
        let largest = sizes.iter().max().copied().unwrap_or(0);
        assert_eq!(
            largest, READ_MAX,
            "reads grow to READ_MAX and no further: {sizes:?}"
        );

        // The next exchange on the connection starts small again.
        let conn = conn.expect("the connection is kept after a whole body");
        let (sizes, _) = frame_sizes(conn).await;
        assert_eq!(sizes.iter().sum::<usize>(), LEN);
        assert!(
            sizes[0] < READ_MIN,
            "a new exchange asks READ_MIN first: {sizes:?}"
        );
    }
}
