//! Upstream connections: TCP with `proxy_connect_timeout`, and an IO
//! wrapper enforcing `proxy_send_timeout` between two writes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tower::Service;

use crate::error::BoxError;

/// A write to the upstream stayed blocked for longer than `proxy_send_timeout`.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("upstream accepted no data for {0:?}")]
pub struct SendTimedOut(pub Duration);

/// Connects to upstreams over TCP (`TCP_NODELAY` on), with the connect and
/// send timeouts of one location.
#[derive(Debug, Clone)]
pub struct UpstreamConnector {
    http: HttpConnector,
    send_timeout: Option<Duration>,
}

impl UpstreamConnector {
    /// A connector; `None` disables a timeout.
    pub fn new(connect_timeout: Option<Duration>, send_timeout: Option<Duration>) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(connect_timeout);
        UpstreamConnector { http, send_timeout }
    }
}

impl Service<Uri> for UpstreamConnector {
    type Response = TimedIo<TokioIo<TcpStream>>;
    type Error = BoxError;
    // Boxed once per new upstream connection, not per request.
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.http.call(uri);
        let send_timeout = self.send_timeout;
        Box::pin(async move { Ok(TimedIo::new(connecting.await?, send_timeout)) })
    }
}

pin_project_lite::pin_project! {
    /// An IO whose writes fail with [`SendTimedOut`] after being blocked for
    /// the timeout.
    pub struct TimedIo<T> {
        #[pin]
        io: T,
        timeout: Option<Duration>,
        sleep: Option<Pin<Box<Sleep>>>,
        waiting: bool,
    }
}

impl<T> TimedIo<T> {
    fn new(io: T, timeout: Option<Duration>) -> Self {
        TimedIo {
            io,
            timeout,
            sleep: timeout.map(|t| Box::pin(tokio::time::sleep(t))),
            waiting: false,
        }
    }
}

/// Shared by write and flush: counts the time an operation stays pending.
fn check_blocked<R>(
    res: Poll<io::Result<R>>,
    cx: &mut Context<'_>,
    timeout: Option<Duration>,
    sleep: &mut Option<Pin<Box<Sleep>>>,
    waiting: &mut bool,
) -> Poll<io::Result<R>> {
    match res {
        Poll::Ready(r) => {
            *waiting = false;
            Poll::Ready(r)
        }
        Poll::Pending => {
            let (Some(timeout), Some(sleep)) = (timeout, sleep.as_mut()) else {
                return Poll::Pending;
            };
            if !*waiting {
                *waiting = true;
                sleep.as_mut().reset(Instant::now() + timeout);
            }
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    SendTimedOut(timeout),
                ))),
                Poll::Pending => Poll::Pending,
            }
        }
    }
}

impl<T: Read> Read for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<T: Write> Write for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let res = this.io.poll_write(cx, buf);
        check_blocked(res, cx, *this.timeout, this.sleep, this.waiting)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let res = this.io.poll_write_vectored(cx, bufs);
        check_blocked(res, cx, *this.timeout, this.sleep, this.waiting)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let res = this.io.poll_flush(cx);
        check_blocked(res, cx, *this.timeout, this.sleep, this.waiting)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for TimedIo<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}
