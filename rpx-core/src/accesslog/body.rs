//! The response body of a logged request: the inner body, counted, with
//! the log line written when it ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};

use super::Pending;

pin_project_lite::pin_project! {
    /// Body of [`super::AccessLog`]'s responses: `B` as it is, counting its
    /// bytes (`$body_bytes_sent`) when a line is pending, which is written
    /// at its end, its error, or its drop (a client gone mid-body).
    pub struct LoggedBody<B> {
        #[pin]
        inner: B,
        // Boxed: only logged responses carry it, and a body moves through
        // every outer layer at its size.
        pending: Option<Box<Pending>>,
    }
}

impl<B> LoggedBody<B> {
    pub(super) fn new(inner: B, pending: Option<Box<Pending>>) -> Self {
        LoggedBody { inner, pending }
    }

    /// The body inside.
    pub fn get_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// `inner` with no log line pending: what a stack that logs some
    /// responses answers the others with.
    pub fn unlogged(inner: B) -> Self {
        LoggedBody {
            inner,
            pending: None,
        }
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for LoggedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedBody")
            .field("inner", &self.inner)
            .field("logged", &self.pending.is_some())
            .finish()
    }
}

impl<B: Body> Body for LoggedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let res = this.inner.poll_frame(cx);
        if let Some(pending) = this.pending {
            match &res {
                Poll::Ready(Some(Ok(frame))) => {
                    pending.body_bytes += frame
                        .data_ref()
                        .map_or(0, |d| bytes::Buf::remaining(d) as u64);
                }
                Poll::Ready(None) | Poll::Ready(Some(Err(_))) => pending.finish(),
                Poll::Pending => {}
            }
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
