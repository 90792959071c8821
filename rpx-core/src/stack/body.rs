//! The response body of rpx's own stack.
//!
//! An enum rather than a boxed trait object: every response a location
//! of rpx's makes is one of these few shapes, so unifying them needs no
//! allocation per request. The layers are generic over bodies; this is
//! the one place that names which bodies rpx's stack carries.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Frame, SizeHint};

use crate::action::FileBody;
use crate::error::{BoxError, ProxyError};
use crate::limit::bandwidth::{Bandwidth, Pacer};
use crate::proxy::ProxyBody;
use crate::reply::{Reply, ReplyBody};

pin_project_lite::pin_project! {
    /// What a location of rpx's stack answers with: a reply rpx made
    /// (`return`, redirects, metrics), a proxied body, or a file.
    pub struct Body {
        #[pin]
        kind: Kind,
        // `limit_conn`'s counts, given back when the body is dropped (a
        // download counts until it ends). Boxed: most bodies have none.
        held: Option<Box<std::sync::Arc<crate::limit::conn::Slots>>>,
        // `limit_rate`'s pacing. Boxed: most bodies have none.
        pacer: Option<Box<Pacer>>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind {
        Reply { #[pin] body: ReplyBody },
        Upstream { #[pin] body: ProxyBody },
        File { #[pin] body: FileBody },
    }
}

impl From<ReplyBody> for Body {
    fn from(body: ReplyBody) -> Self {
        Body {
            kind: Kind::Reply { body },
            held: None,
            pacer: None,
        }
    }
}

impl From<ProxyBody> for Body {
    fn from(body: ProxyBody) -> Self {
        Body {
            kind: Kind::Upstream { body },
            held: None,
            pacer: None,
        }
    }
}

impl From<FileBody> for Body {
    fn from(body: FileBody) -> Self {
        Body {
            kind: Kind::File { body },
            held: None,
            pacer: None,
        }
    }
}

impl Body {
    /// Keeps `slots` until the body is dropped.
    pub(crate) fn hold(&mut self, slots: std::sync::Arc<crate::limit::conn::Slots>) {
        self.held = Some(Box::new(slots));
    }

    /// Paces the body's bytes (`limit_rate`).
    pub(crate) fn paced(mut self, limit: Option<Bandwidth>) -> Body {
        self.pacer = limit.map(|l| Box::new(Pacer::new(l)));
        self
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Reply { .. } => "reply",
            Kind::Upstream { .. } => "upstream",
            Kind::File { .. } => "file",
        };
        f.debug_struct("Body").field("kind", &kind).finish()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.pacer {
            None => poll_kind(this.kind, cx),
            Some(pacer) => {
                let mut kind = this.kind;
                pacer.poll_frame(cx, |cx| poll_kind(kind.as_mut(), cx))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Reply { body } => body.is_end_stream(),
            Kind::Upstream { body } => body.is_end_stream(),
            Kind::File { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Reply { body } => body.size_hint(),
            Kind::Upstream { body } => body.size_hint(),
            Kind::File { body } => body.size_hint(),
        }
    }
}

#[inline]
fn poll_kind(
    kind: Pin<&mut Kind>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    use http_body::Body as _;
    match kind.project() {
        KindProj::Reply { body } => body.poll_frame(cx).map_err(|e| match e {}),
        KindProj::Upstream { body } => body.poll_frame(cx),
        KindProj::File { body } => body.poll_frame(cx).map_err(Into::into),
    }
}

/// A reply as the stack's response.
pub(super) fn from_reply(reply: Reply) -> Response<Body> {
    reply.map(Body::from)
}

pin_project_lite::pin_project! {
    /// A leaf's future with its response body made the stack's [`Body`].
    #[must_use = "futures do nothing unless polled"]
    pub struct IntoBody<F> {
        #[pin]
        inner: F,
        pace: Option<Bandwidth>,
    }
}

impl<F> IntoBody<F> {
    /// `inner`, its body paced at `pace` (`limit_rate`).
    pub(super) fn new(inner: F, pace: Option<Bandwidth>) -> Self {
        IntoBody { inner, pace }
    }
}

impl<F, B> Future for IntoBody<F>
where
    F: Future<Output = Result<Response<B>, ProxyError>>,
    Body: From<B>,
{
    type Output = Result<Response<Body>, ProxyError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let pace = *this.pace;
        Poll::Ready(ready!(this.inner.poll(cx)).map(|res| res.map(|b| Body::from(b).paced(pace))))
    }
}

#[cfg(test)]
mod tests {
    /// Every response moves through each layer's future at its body's
    /// size: the stack's stays small (RpxBody was 128 bytes).
    #[test]
    fn the_stacks_response_body_stays_small() {
        assert!(std::mem::size_of::<super::super::ResponseBody>() <= 144);
    }
}
