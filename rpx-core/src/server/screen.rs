//! The bytes of an HTTP/1 connection hyper serves, screened on their way
//! to it: every request head passes [`edge::check_head`] before hyper sees
//! it, as on rpx's own reader.
//!
//! hyper folds the framing headers as it parses (a repeated equal
//! `Content-Length` is kept once, `Content-Length` beside
//! `Transfer-Encoding` is dropped), so the service never learns of them.
//! This reads ahead of hyper, one message at a time: a head is held back
//! until it is complete and checked, then the body is followed by its
//! framing (`Content-Length` counted, chunked sizes read) to find the next
//! head. A head that fails the check reaches hyper as bytes that are no
//! request at all, and hyper answers them as nginx answers the head: 400,
//! connection closed. The body bytes go through uncopied but for chunk-size
//! lines.
//!
//! Anything this does not follow (HTTP/2, an upgrade, a head or chunk
//! hyper will refuse itself) is passed through as it is.
//!
//! Where it finds a head beginning it tells `stub_status` the connection
//! is reading; where it finds the HTTP/2 preface, that it speaks HTTP/2.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING, UPGRADE};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::io::poll_read_buf;

use super::edge;
use crate::metrics::stub_status;
use crate::proxy::h1::decode::{Chunked, Decoded};

/// Header lines a head may have, as hyper's limit.
const MAX_HEADERS: usize = 100;
/// A head not complete in this many bytes is hyper's (it answers 431).
const MAX_HEAD: usize = 512 * 1024;
/// What hyper is given in place of a refused head: no request line parses
/// from a NUL, so hyper answers 400 and closes.
const REFUSED: &[u8] = b"\0 refused\r\n\r\n";

#[derive(Debug)]
enum State {
    /// Before a request head.
    Head,
    /// In a body of this many bytes.
    Length(u64),
    /// In a chunked body.
    Chunked(Chunked),
    /// Not followed any more: everything goes through.
    Through,
    /// A refused head was handed over: nothing after it.
    Refused,
}

/// `io` screened for hyper; see the module.
#[derive(Debug)]
pub(crate) struct Screen<I> {
    io: I,
    /// Read from `io`, not yet given to hyper.
    pending: BytesMut,
    /// How much of `pending` may be given to hyper.
    ready: usize,
    state: State,
    /// The connection's first bytes are still to come: an HTTP/2 preface
    /// would be there.
    first: bool,
    eof: bool,
    /// The connection's place in `stub_status`' counts.
    stat: Arc<stub_status::Connection>,
}

impl<I> Screen<I> {
    /// Screens `io`, whose first bytes (read already) are `read`; `stat`
    /// is told where heads begin.
    pub(crate) fn new(io: I, read: BytesMut, stat: Arc<stub_status::Connection>) -> Self {
        Screen {
            io,
            pending: read,
            ready: 0,
            state: State::Head,
            first: true,
            eof: false,
            stat,
        }
    }

    /// Moves `ready` on over what is known to be let through; true when it
    /// moved or the state changed.
    fn advance(&mut self) -> bool {
        let start = self.ready;
        let rest = &self.pending[start..];
        match &mut self.state {
            State::Through => self.ready = self.pending.len(),
            State::Refused => {}
            State::Length(left) => {
                let n = (*left).min(rest.len() as u64);
                *left -= n;
                self.ready += n as usize;
                if *left == 0 {
                    self.state = State::Head;
                    return true;
                }
            }
            State::Chunked(c) => {
                // Data in a chunk is counted; only size lines, the CRLF
                // after data and trailers are decoded, from a copy.
                if let Chunked::Data(left) = c {
                    let n = (*left).min(rest.len() as u64);
                    if n > 0 {
                        *c = if n == *left {
                            Chunked::DataEnd
                        } else {
                            Chunked::Data(*left - n)
                        };
                        self.ready += n as usize;
                        return true;
                    }
                    return false;
                }
                let mut copy = BytesMut::from(rest);
                let before = copy.len();
                let decoded = c.decode(&mut copy);
                let used = before - copy.len();
                self.ready += used;
                match decoded {
                    Ok(Decoded::End) => self.state = State::Head,
                    // hyper refuses the body itself.
                    Err(_) => self.state = State::Through,
                    Ok(_) => {}
                }
                return used > 0 || !matches!(self.state, State::Chunked(_));
            }
            State::Head => return self.head(),
        }
        self.ready != start
    }

    /// A head at `ready`: checked once complete.
    fn head(&mut self) -> bool {
        const PREFACE: &[u8] = b"PRI * HTTP/2.0";
        let rest = &self.pending[self.ready..];
        if self.first {
            if starts_like(rest, PREFACE) {
                if rest.len() < PREFACE.len() {
                    return false;
                }
                // Idle while it has no stream open.
                self.stat.http2();
                self.state = State::Through;
                return true;
            }
            self.first = false;
        }
        if rest.is_empty() {
            return false;
        }
        // A head has begun (one whole already is hyper's next at once).
        self.stat.reading();
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(rest, &mut headers) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if rest.len() < MAX_HEAD => return false,
            // hyper answers these itself (400, 431).
            _ => {
                self.state = State::Through;
                return true;
            }
        };
        if edge::check_head(req.headers).is_err() {
            self.pending.truncate(self.ready);
            self.pending.extend_from_slice(REFUSED);
            self.ready = self.pending.len();
            self.state = State::Refused;
            return true;
        }
        let mut next = State::Head;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str()) {
                next = State::Chunked(Chunked::default());
            } else if h.name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str()) {
                if !matches!(next, State::Chunked(_)) {
                    next = match std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                    {
                        Some(0) => State::Head,
                        Some(n) => State::Length(n),
                        // hyper refuses it.
                        None => State::Through,
                    };
                }
            } else if h.name.eq_ignore_ascii_case(UPGRADE.as_str()) {
                next = State::Through;
                break;
            }
        }
        if req.method == Some("CONNECT") {
            next = State::Through;
        }
        self.ready += len;
        self.state = next;
        true
    }
}

/// Whether `bytes` is `prefix` or its start so far.
fn starts_like(bytes: &[u8], prefix: &[u8]) -> bool {
    let n = bytes.len().min(prefix.len());
    bytes[..n] == prefix[..n]
}

impl<I: AsyncRead + Unpin> AsyncRead for Screen<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready > 0 {
                let n = this.ready.min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            match this.state {
                // Nothing after a refused head.
                State::Refused => return Poll::Ready(Ok(())),
                State::Through if this.pending.is_empty() => {
                    return Pin::new(&mut this.io).poll_read(cx, buf)
                }
                _ => {}
            }
            if this.advance() {
                continue;
            }
            if this.eof {
                // What is left is hyper's to judge (an unfinished message).
                this.state = State::Through;
                if this.pending.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if this.pending.capacity() - this.pending.len() < 4096 {
                this.pending.reserve(8192);
            }
            match poll_read_buf(Pin::new(&mut this.io), cx, &mut this.pending) {
                Poll::Ready(Ok(0)) => this.eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Screen<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What hyper would read from `input` written in `pieces`-byte writes.
    async fn screened(input: &[u8], piece: usize) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let input = input.to_vec();
        let writer = tokio::spawn(async move {
            for chunk in input.chunks(piece) {
                client.write_all(chunk).await.unwrap();
            }
            drop(client);
        });
        let mut s = Screen::new(server, BytesMut::new(), stub_status::Connection::detached());
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        writer.await.unwrap();
        out
    }

    #[tokio::test]
    async fn good_messages_pass_whole_and_bad_heads_are_replaced() {
        let good = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
            POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\nT: 1\r\n\r\n\
            GET /c HTTP/1.1\r\nHost: a\r\n\r\n";
        let smuggle = b"POST /d HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /e HTTP/1.1\r\n\r\n";
        for piece in [1, 5, 4096] {
            assert_eq!(screened(good, piece).await, good.to_vec(), "piece {piece}");
            let mut both = good.to_vec();
            both.extend_from_slice(smuggle);
            let mut want = good.to_vec();
            want.extend_from_slice(REFUSED);
            assert_eq!(screened(&both, piece).await, want, "piece {piece}");
        }
    }

    #[tokio::test]
    async fn what_it_does_not_follow_goes_through() {
        for input in [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"[..],
            b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ] {
            assert_eq!(screened(input, 3).await, input.to_vec());
        }
    }
}
