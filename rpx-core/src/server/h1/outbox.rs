//! A response on its way out: the head and small chunks copied into one
//! buffer, large chunks queued as they came, written with vectored writes.
//! The body is read ahead while the client is slow, up to a bound, so a
//! fast upstream and a slow client overlap (as through hyper's queue).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName};
use http_body::Frame;
use tokio::io::{AsyncRead, AsyncWrite};

use super::response::Framing;

/// Chunks up to this size are copied next to their framing (one write);
/// larger ones are queued as they are.
const COPY_MAX: usize = 8 * 1024;
/// How much of a body is read ahead of a slow client.
const MAX_QUEUED: usize = 256 * 1024;
/// Slices per vectored write.
const MAX_SLICES: usize = 16;

/// The bytes of a response not yet written.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    /// The head, and chunks copied after it; written from `pos`.
    buf: Vec<u8>,
    pos: usize,
    /// What comes after `buf`.
    chunks: VecDeque<Bytes>,
    queued: usize,
}

impl Outbox {
    /// The buffer a head is written into; the outbox must be empty.
    pub(super) fn head(&mut self) -> &mut Vec<u8> {
        debug_assert!(self.is_empty());
        self.buf.clear();
        self.pos = 0;
        &mut self.buf
    }

    fn len(&self) -> usize {
        self.buf.len() - self.pos + self.queued
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, data: Bytes) {
        if self.chunks.is_empty() && data.len() <= COPY_MAX {
            self.buf.extend_from_slice(&data);
        } else {
            self.queued += data.len();
            self.chunks.push_back(data);
        }
    }

    fn push_slice(&mut self, data: &[u8]) {
        if self.chunks.is_empty() {
            self.buf.extend_from_slice(data);
        } else {
            self.push(Bytes::copy_from_slice(data));
        }
    }

    /// Writes everything queued, then flushes the stream.
    fn poll_write<I: AsyncWrite + Unpin>(
        &mut self,
        io: &mut I,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.is_empty() {
            let mut slices = [io::IoSlice::new(&[]); MAX_SLICES];
            let mut n = 0;
            if self.pos < self.buf.len() {
                slices[0] = io::IoSlice::new(&self.buf[self.pos..]);
                n = 1;
            }
            for chunk in self.chunks.iter().take(MAX_SLICES - n) {
                slices[n] = io::IoSlice::new(chunk);
                n += 1;
            }
            let written = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.consume(written);
        }
        Pin::new(io).poll_flush(cx)
    }

    fn consume(&mut self, mut n: usize) {
        let in_buf = (self.buf.len() - self.pos).min(n);
        self.pos += in_buf;
        n -= in_buf;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        while n > 0 {
            let front = self.chunks.front_mut().expect("written bytes were queued");
            let take = front.len().min(n);
            front.advance(take);
            self.queued -= take;
            n -= take;
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
    }
}

/// How the body is framed, and where it is.
struct Framer {
    /// Bytes still owed under `Content-Length`; None: chunked.
    left: Option<u64>,
    /// The trailer fields the head declared (chunked only).
    trailers: Vec<HeaderName>,
    /// The last chunk is queued (by trailers).
    last_chunk: bool,
}

impl Framer {
    fn data(&mut self, data: Bytes, out: &mut Outbox) -> io::Result<()> {
        if data.is_empty() || self.last_chunk {
            return Ok(());
        }
        match &mut self.left {
            Some(left) => {
                let len = data.len() as u64;
                if len > *left {
                    return Err(io::Error::other("body longer than its Content-Length"));
                }
                *left -= len;
                out.push(data);
            }
            None => {
                let mut line = [0u8; 18];
                out.push_slice(chunk_line(data.len(), &mut line));
                out.push(data);
                out.push_slice(b"\r\n");
            }
        }
        Ok(())
    }

    fn trailers(&mut self, fields: &HeaderMap, out: &mut Outbox) {
        if self.left.is_some() || self.last_chunk {
            return;
        }
        let mut last = b"0\r\n".to_vec();
        for name in &self.trailers {
            for value in fields.get_all(name) {
                last.extend_from_slice(name.as_str().as_bytes());
                last.extend_from_slice(b": ");
                last.extend_from_slice(value.as_bytes());
                last.extend_from_slice(b"\r\n");
            }
        }
        last.extend_from_slice(b"\r\n");
        out.push_slice(&last);
        self.last_chunk = true;
    }

    fn end(&mut self, out: &mut Outbox) -> io::Result<()> {
        match self.left {
            Some(0) => Ok(()),
            Some(_) => Err(io::Error::other("body shorter than its Content-Length")),
            None => {
                if !self.last_chunk {
                    out.push_slice(b"0\r\n\r\n");
                    self.last_chunk = true;
                }
                Ok(())
            }
        }
    }
}

/// Sends the head in `out` and `body` after it. A body that is all there
/// at once goes out with its head in one write; one that waits has what
/// came so far written meanwhile. A client gone while the body waits ends
/// it (`ConnectionAborted`); `buf` keeps what the client sent meanwhile.
pub(super) async fn send<I, B>(
    io: &mut I,
    out: &mut Outbox,
    body: B,
    framing: Framing,
    buf: &mut BytesMut,
) -> io::Result<()>
where
    I: AsyncRead + AsyncWrite + Unpin,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<crate::error::BoxError>,
{
    let mut framer = match framing {
        Framing::Length(0) => {
            drop(body);
            return poll_fn(|cx| out.poll_write(io, cx)).await;
        }
        Framing::Length(n) => Framer {
            left: Some(n),
            trailers: Vec::new(),
            last_chunk: false,
        },
        Framing::Chunked { trailers } => Framer {
            left: None,
            trailers,
            last_chunk: false,
        },
    };
    let mut body = pin!(body);
    let mut ended = false;
    poll_fn(|cx| loop {
        let mut waiting = false;
        while !ended && out.len() < MAX_QUEUED {
            match body.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => on_frame(frame, &mut framer, out)?,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(io::Error::other(e.into()))),
                Poll::Ready(None) => {
                    framer.end(out)?;
                    ended = true;
                }
                Poll::Pending => {
                    waiting = true;
                    break;
                }
            }
        }
        if out.is_empty() && waiting {
            if super::poll_client_gone(io, buf, cx) {
                return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
            }
            return Poll::Pending;
        }
        ready!(out.poll_write(io, cx))?;
        if ended {
            return Poll::Ready(Ok(()));
        }
    })
    .await
}

/// `len` in hex and CRLF, the line that opens a chunk; written into
/// `line` (no allocation per chunk).
fn chunk_line(mut len: usize, line: &mut [u8; 18]) -> &[u8] {
    let mut at = 16;
    line[16..].copy_from_slice(b"\r\n");
    loop {
        at -= 1;
        line[at] = b"0123456789abcdef"[len % 16];
        len /= 16;
        if len == 0 {
            return &line[at..];
        }
    }
}

fn on_frame(frame: Frame<Bytes>, framer: &mut Framer, out: &mut Outbox) -> io::Result<()> {
    match frame.into_data() {
        Ok(data) => framer.data(data, out),
        Err(frame) => {
            if let Ok(fields) = frame.into_trailers() {
                framer.trailers(&fields, out);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_leave_in_order_across_the_buffer_and_the_queue() {
        let mut out = Outbox::default();
        out.head().extend_from_slice(b"head;");
        out.push(Bytes::from_static(b"small;"));
        out.push(Bytes::from(vec![b'L'; COPY_MAX + 1]));
        out.push_slice(b";after");
        assert_eq!(out.len(), 5 + 6 + COPY_MAX + 1 + 6);
        let mut wire = Vec::new();
        // Drain in uneven steps, as partial writes would.
        while !out.is_empty() {
            let mut next = out.buf[out.pos..].to_vec();
            for c in &out.chunks {
                next.extend_from_slice(c);
            }
            let n = next.len().min(7);
            wire.extend_from_slice(&next[..n]);
            out.consume(n);
        }
        let mut want = b"head;small;".to_vec();
        want.extend(vec![b'L'; COPY_MAX + 1]);
        want.extend_from_slice(b";after");
        assert_eq!(wire, want);
        assert!(out.buf.is_empty() && out.chunks.is_empty());
    }

    #[test]
    fn chunks_are_framed_and_the_declared_trailers_kept() {
        let mut out = Outbox::default();
        let mut framer = Framer {
            left: None,
            trailers: vec![HeaderName::from_static("x-sum")],
            last_chunk: false,
        };
        framer.data(Bytes::from_static(b"hello"), &mut out).unwrap();
        let mut fields = HeaderMap::new();
        fields.insert("x-sum", "9".parse().unwrap());
        fields.insert("x-undeclared", "1".parse().unwrap());
        framer.trailers(&fields, &mut out);
        framer.end(&mut out).unwrap();
        assert_eq!(out.buf, b"5\r\nhello\r\n0\r\nx-sum: 9\r\n\r\n");
    }

    #[test]
    fn chunk_lines_are_hex() {
        let mut line = [0; 18];
        assert_eq!(chunk_line(0, &mut line), b"0\r\n");
        assert_eq!(chunk_line(255, &mut line), b"ff\r\n");
        assert_eq!(chunk_line(usize::MAX, &mut line), b"ffffffffffffffff\r\n");
    }

    #[test]
    fn a_length_is_held_to() {
        let mut out = Outbox::default();
        let mut framer = Framer {
            left: Some(3),
            trailers: Vec::new(),
            last_chunk: false,
        };
        assert!(framer.data(Bytes::from_static(b"four"), &mut out).is_err());
        framer.data(Bytes::from_static(b"ab"), &mut out).unwrap();
        assert!(framer.end(&mut out).is_err(), "one byte short");
    }
}
