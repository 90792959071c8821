//! Bytes in and out of each connection, on the wire (TLS included), for
//! `rpx_bytes_received_total` / `rpx_bytes_sent_total` (one atomic add per
//! read or write) and for the connection's header timer; and nginx's
//! `send_timeout`: a write the client does not take for that long fails
//! the connection. The timer is armed only when a write has to wait.
//! It also holds the connection's place in `stub_status`' counts
//! ([`Accepted`]): as long as the socket lives, upgraded or not.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::time::Duration;

use metrics::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::header_timer::Received;
use crate::lazy_sleep::LazySleep;
use crate::metrics::stub_status::Accepted;

/// A listener's byte counters (made once per listener).
#[derive(Debug)]
pub(crate) struct ByteCounters {
    received: Counter,
    sent: Counter,
}

impl ByteCounters {
    pub(crate) fn new(listen: std::net::SocketAddr) -> Arc<Self> {
        let listen = listen.to_string();
        Arc::new(ByteCounters {
            received: metrics::counter!("rpx_bytes_received_total", "listen" => listen.clone()),
            sent: metrics::counter!("rpx_bytes_sent_total", "listen" => listen),
        })
    }

    /// Counts bytes read before the stream was wrapped (a PROXY protocol
    /// header).
    pub(crate) fn received(&self, n: usize) {
        self.received.increment(n as u64);
    }
}

/// A stream that counts what passes through it.
#[derive(Debug)]
pub(crate) struct Counted<T> {
    inner: T,
    counters: Arc<ByteCounters>,
    received: Arc<Received>,
    send_timeout: Duration,
    /// Since when writes have been waiting for the client.
    stalled: Option<Instant>,
    sleep: LazySleep,
    /// Counted open until the socket is dropped.
    stat: Accepted,
}

impl<T> Counted<T> {
    pub(crate) fn new(
        inner: T,
        counters: Arc<ByteCounters>,
        received: Arc<Received>,
        send_timeout: Duration,
        stat: Accepted,
    ) -> Self {
        Counted {
            inner,
            counters,
            received,
            send_timeout,
            stalled: None,
            sleep: LazySleep::default(),
            stat,
        }
    }

    /// A write's result, with `send_timeout` kept: waiting longer than it
    /// since the first write that had to wait is an error.
    fn timed<R>(&mut self, res: Poll<io::Result<R>>, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        if res.is_ready() {
            self.stalled = None;
            return res;
        }
        if self.send_timeout.is_zero() {
            return res;
        }
        let since = *self.stalled.get_or_insert_with(crate::clock::now);
        if self
            .sleep
            .poll_until(since + self.send_timeout, cx)
            .is_ready()
        {
            tracing::debug!("client timed out (send_timeout)");
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "send_timeout: the client took nothing",
            )));
        }
        res
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.counters.received.increment(n as u64);
            self.received.add(n);
            self.stat.received();
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            self.counters.sent.increment(n as u64);
        }
        self.timed(res, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            self.counters.sent.increment(n as u64);
        }
        self.timed(res, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_flush(cx);
        self.timed(res, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
