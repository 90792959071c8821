//! A request body a second attempt can take back, as long as the first
//! never read from it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};

/// A request body that can be given to a second attempt as long as the
/// first one never read from it: the connection failed before the body was
/// due. Once read, it belongs to that attempt for good, since rpx streams
/// bodies instead of buffering them (so it cannot be sent twice).
pub(crate) struct Reusable<B> {
    slot: Arc<Mutex<Option<B>>>,
    body: Option<B>,
    hint: SizeHint,
}

impl<B: Body> Reusable<B> {
    /// The body and the handle to take it back with.
    pub(crate) fn new(body: B) -> (Self, ReusableHandle<B>) {
        let hint = body.size_hint();
        Self::pair(body, hint)
    }

    fn pair(body: B, hint: SizeHint) -> (Self, ReusableHandle<B>) {
        let slot = Arc::new(Mutex::new(Some(body)));
        (
            Reusable {
                slot: slot.clone(),
                body: None,
                hint,
            },
            ReusableHandle { slot, hint },
        )
    }
}

/// Takes an unread body back for the next attempt.
pub(crate) struct ReusableHandle<B> {
    slot: Arc<Mutex<Option<B>>>,
    hint: SizeHint,
}

impl<B: Body> ReusableHandle<B> {
    /// The body again, if the attempt never read from it.
    pub(crate) fn take_back(self) -> Option<(Reusable<B>, ReusableHandle<B>)> {
        let body = self.slot.lock().ok()?.take()?;
        Some(Reusable::pair(body, self.hint))
    }
}

impl<B: Body + Unpin> Body for Reusable<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        if self.body.is_none() {
            // One lock per attempt, on the first read.
            let taken = self.slot.lock().ok().and_then(|mut s| s.take());
            match taken {
                Some(b) => self.body = Some(b),
                None => return Poll::Ready(None),
            }
        }
        match self.body.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_some_and(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Some(b) => b.size_hint(),
            None => self.hint,
        }
    }
}
