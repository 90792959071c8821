//! Bytes in and out of each connection, on the wire (TLS included), for
//! `rpx_bytes_received_total` / `rpx_bytes_sent_total` (one atomic add per
//! read or write) and for the connection's header timer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use metrics::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::header_timer::Received;

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
}

/// A stream that counts what passes through it.
#[derive(Debug)]
pub(crate) struct Counted<T> {
    inner: T,
    counters: Arc<ByteCounters>,
    received: Arc<Received>,
}

impl<T> Counted<T> {
    pub(crate) fn new(inner: T, counters: Arc<ByteCounters>, received: Arc<Received>) -> Self {
        Counted {
            inner,
            counters,
            received,
        }
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
        res
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
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
