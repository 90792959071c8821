//! A request hyper serves, held in `stub_status`' counts until its
//! response body has ended ([`stub_status::Exchange`]): the call's future
//! holds the count, then the body it answers with. Whichever is dropped
//! last (the body ended, hyper dropped it, the client reset the stream or
//! closed the connection) lets go of it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};

use crate::metrics::stub_status;

pin_project_lite::pin_project! {
    /// The service's future, counted in flight.
    #[must_use = "futures do nothing unless polled"]
    pub(super) struct InFlight<F> {
        #[pin]
        inner: F,
        exchange: Option<stub_status::Exchange>,
    }
}

impl<F> InFlight<F> {
    pub(super) fn new(inner: F, exchange: stub_status::Exchange) -> Self {
        InFlight {
            inner,
            exchange: Some(exchange),
        }
    }
}

impl<F, B> Future for InFlight<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    type Output = Result<Response<InFlightBody<B>>, Infallible>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(res) = ready!(this.inner.poll(cx));
        let mut exchange = this.exchange.take();
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            // A tunnel now: writing for as long as the connection lives.
            if let Some(e) = &mut exchange {
                e.upgraded();
            }
        }
        Poll::Ready(Ok(res.map(|inner| InFlightBody { inner, exchange })))
    }
}

pin_project_lite::pin_project! {
    /// A response body, counted in flight until it ends or is dropped.
    pub(super) struct InFlightBody<B> {
        #[pin]
        inner: B,
        exchange: Option<stub_status::Exchange>,
    }
}

impl<B: Body> Body for InFlightBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if frame.is_none() {
            // The last byte is hyper's: the request is answered.
            *this.exchange = None;
        }
        Poll::Ready(frame)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
