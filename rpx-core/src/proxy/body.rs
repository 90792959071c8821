//! Body wrappers on the proxy path: they stream, and only count or time.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::BoxError;

/// A body stalled for longer than its idle timeout.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("body stalled for longer than {0:?}")]
pub struct BodyStalled(pub Duration);

pin_project_lite::pin_project! {
    /// Fails a body that produces nothing for `timeout` while it is being
    /// waited on. Time the reader spends elsewhere (a slow client) does not
    /// count: the clock starts when a poll finds the inner body pending.
    pub struct IdleTimeout<B> {
        #[pin]
        inner: B,
        // Made on the first wait: a body that is ready whenever it is
        // read (most small ones) never touches the timer.
        sleep: Option<Pin<Box<Sleep>>>,
        timeout: Option<Duration>,
        waiting: bool,
    }
}

impl<B> IdleTimeout<B> {
    /// Wraps `inner`; `None` disables the timeout. Must be polled inside a
    /// tokio runtime.
    pub fn new(inner: B, timeout: Option<Duration>) -> Self {
        IdleTimeout {
            inner,
            sleep: None,
            timeout,
            waiting: false,
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let Some(timeout) = *this.timeout else {
                    return Poll::Pending;
                };
                let sleep = match this.sleep {
                    Some(sleep) if *this.waiting => sleep,
                    Some(sleep) => {
                        sleep.as_mut().reset(Instant::now() + timeout);
                        sleep
                    }
                    None => this.sleep.insert(Box::pin(tokio::time::sleep(timeout))),
                };
                *this.waiting = true;
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(timeout))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the client's response body is: the upstream's, with `proxy_read_timeout`.
pub type UpstreamBody = IdleTimeout<super::PooledBody>;

pin_project_lite::pin_project! {
    /// Body of [`super::ProxyService`]'s responses: the upstream's, streamed
    /// (none after an upgrade, whose bytes are bridged apart). It keeps the
    /// group's server counted active (least_conn, max_conns) for as long as
    /// it streams.
    pub struct ProxyBody {
        #[pin]
        body: Option<UpstreamBody>,
        guard: Option<crate::upstream::Picked>,
        // `$upstream_response_length` and the end of `$upstream_response_time`.
        count: Option<Arc<crate::accesslog::BodyCount>>,
    }
}

impl ProxyBody {
    pub(super) fn new(
        body: UpstreamBody,
        guard: Option<crate::upstream::Picked>,
        count: Option<Arc<crate::accesslog::BodyCount>>,
    ) -> Self {
        if let Some(c) = &count {
            if body.is_end_stream() {
                c.end();
            }
        }
        ProxyBody {
            body: Some(body),
            guard,
            count,
        }
    }

    pub(super) fn empty() -> Self {
        ProxyBody {
            body: None,
            guard: None,
            count: None,
        }
    }
}

impl std::fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyBody").finish_non_exhaustive()
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = match this.body.as_pin_mut() {
            Some(body) => body.poll_frame(cx),
            None => Poll::Ready(None),
        };
        if let Some(count) = this.count {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        count.add(data.len());
                    }
                }
                Poll::Ready(None | Some(Err(_))) => count.end(),
                Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Some(body) => body.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}

pin_project_lite::pin_project! {
    /// Raises a flag when the inner body has ended, so the proxy knows when
    /// the request is fully sent and `proxy_read_timeout` starts to count.
    pub(crate) struct DoneFlag<B> {
        #[pin]
        inner: B,
        done: Arc<AtomicBool>,
    }
}

impl<B> DoneFlag<B> {
    pub(crate) fn new(inner: B, done: Arc<AtomicBool>) -> Self {
        DoneFlag { inner, done }
    }
}

impl<B: Body> Body for DoneFlag<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let res = this.inner.poll_frame(cx);
        if matches!(res, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.done.store(true, Ordering::Release);
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.done.store(true, Ordering::Release);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_fires_only_while_stalled() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let stream = tokio_stream_shim::ReceiverStream(rx);
        let mut body = std::pin::pin!(IdleTimeout::new(
            StreamBody::new(stream),
            Some(Duration::from_secs(10))
        ));
        tx.send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        // A reader that comes back late is not the upstream's fault.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(body.frame().await.unwrap().is_ok());
        let tx2 = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(9)).await;
            tx2.send(Ok(Frame::data(Bytes::from_static(b"b"))))
                .await
                .unwrap();
        });
        assert!(
            body.frame().await.unwrap().is_ok(),
            "9 s gap is within 10 s"
        );
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyStalled>());
        drop(tx);
    }

    mod tokio_stream_shim {
        use std::pin::Pin;
        use std::task::{Context, Poll};
        pub(super) struct ReceiverStream<T>(pub(super) tokio::sync::mpsc::Receiver<T>);
        impl<T> futures_util::Stream for ReceiverStream<T> {
            type Item = T;
            fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
                self.0.poll_recv(cx)
            }
        }
    }
}
