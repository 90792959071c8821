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
use crate::compress::sub_filter::{PreparedSub, SubFilter, SubFilterState};
use crate::compress::{Asked, Gzip, GzipBody};
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
        // What some bodies carry besides: boxed, as most have none.
        extra: Option<Box<Extra>>,
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
            extra: None,
        }
    }
}

impl From<ProxyBody> for Body {
    fn from(body: ProxyBody) -> Self {
        Body {
            kind: Kind::Upstream { body },
            extra: None,
        }
    }
}

impl From<FileBody> for Body {
    fn from(body: FileBody) -> Self {
        Body {
            kind: Kind::File { body },
            extra: None,
        }
    }
}

/// What a body may carry besides its bytes.
#[derive(Debug, Default)]
struct Extra {
    /// `limit_conn`'s counts, given back when the body is dropped (a
    /// download counts until it ends).
    held: Option<std::sync::Arc<crate::limit::conn::Slots>>,
    /// `sub_filter`'s scan, before `gzip` sees the bytes.
    sub: Option<SubFilterState>,
    /// `gzip`'s encoder.
    gzip: Option<GzipBody>,
    /// `limit_rate`'s pacing, of what goes out (compressed or not).
    pacer: Option<Pacer>,
}

impl Body {
    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Keeps `slots` until the body is dropped.
    pub(crate) fn hold(&mut self, slots: std::sync::Arc<crate::limit::conn::Slots>) {
        self.extra().held = Some(slots);
    }

    /// Paces the body's bytes (`limit_rate`).
    pub(crate) fn paced(mut self, limit: Option<Bandwidth>) -> Body {
        if let Some(l) = limit {
            self.extra().pacer = Some(Pacer::new(l));
        }
        self
    }

    /// Replaces strings in the body as it streams (`sub_filter`).
    pub(crate) fn sub_filtered(mut self, state: Option<SubFilterState>) -> Body {
        if state.is_some() {
            self.extra().sub = state;
        }
        self
    }

    /// Compresses the body with a coding at a level.
    pub(crate) fn gzipped(mut self, encoding: Option<(crate::compress::Coding, u32)>) -> Body {
        if let Some((c, l)) = encoding {
            self.extra().gzip = Some(GzipBody::new(c, l));
        }
        self
    }

    /// The bytes are not the handler's (compressed or filtered): their
    /// length and end are unknown.
    fn transformed(&self) -> bool {
        self.extra
            .as_ref()
            .is_some_and(|e| e.gzip.is_some() || e.sub.is_some())
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
        let Some(extra) = this.extra.as_deref_mut() else {
            return poll_kind(this.kind, cx);
        };
        let mut kind = this.kind;
        let (sub, gzip) = (&mut extra.sub, &mut extra.gzip);
        let mut filtered = |cx: &mut Context<'_>| match sub {
            None => poll_kind(kind.as_mut(), cx),
            Some(s) => s.poll_frame(cx, |cx| poll_kind(kind.as_mut(), cx)),
        };
        let mut encoded = |cx: &mut Context<'_>| match gzip {
            None => filtered(cx),
            Some(g) => g.poll_frame(cx, &mut filtered),
        };
        match &mut extra.pacer {
            None => encoded(cx),
            Some(pacer) => pacer.poll_frame(cx, encoded),
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.transformed() {
            return false;
        }
        match &self.kind {
            Kind::Reply { body } => body.is_end_stream(),
            Kind::Upstream { body } => body.is_end_stream(),
            Kind::File { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.transformed() {
            return SizeHint::default();
        }
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

/// What a location does to its handler's body on the way out.
#[derive(Debug, Default)]
pub(crate) struct Shape {
    /// `gzip`, with what the request said about it.
    pub(crate) gzip: Option<(std::sync::Arc<Gzip>, Asked)>,
    /// `sub_filter`, with the request's strings.
    pub(crate) sub: Option<(SubFilter, PreparedSub)>,
    /// `limit_rate`.
    pub(crate) pace: Option<Bandwidth>,
    /// The status an `error_page` sends its page with.
    pub(crate) status: Option<http::StatusCode>,
}

/// The status a page's handler answered with, before `error_page` gave it
/// the page's: what decides whether that answer is replaced in turn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HandlerStatus(pub(crate) http::StatusCode);

impl Shape {
    /// Gives `res` the page's status, unless it is an error answer of
    /// rpx's own, whose status wins (nginx's `err_status` is the last
    /// error's).
    pub(crate) fn restatus<B>(&self, res: &mut Response<B>) {
        let Some(status) = self.status else { return };
        if res.extensions().get::<crate::reply::Special>().is_some() || res.status() == status {
            return;
        }
        let was = std::mem::replace(res.status_mut(), status);
        res.extensions_mut().insert(HandlerStatus(was));
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
        shape: Shape,
    }
}

impl<F> IntoBody<F> {
    /// `inner`, its body shaped by `shape`.
    pub(super) fn new(inner: F, shape: Shape) -> Self {
        IntoBody { inner, shape }
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
        let res = ready!(this.inner.poll(cx))?;
        let shape = std::mem::take(this.shape);
        let mut res = res.map(Body::from);
        shape.restatus(&mut res);
        let sub = shape
            .sub
            .filter(|(f, prepared)| !prepared.is_empty() && f.applies(res.headers()))
            .map(|(f, prepared)| {
                f.edit_headers(res.headers_mut());
                f.state(prepared)
            });
        let mut res = res.map(|b| b.sub_filtered(sub));
        let level = shape
            .gzip
            .filter(|(g, asked)| g.apply(*asked, &mut res))
            .and_then(|(g, asked)| g.encoding(asked));
        Poll::Ready(Ok(res.map(|b| b.gzipped(level).paced(shape.pace))))
    }
}

#[cfg(test)]
mod tests {
    /// Every response moves through each layer's future at its body's
    /// size: the stack's stays small (RpxBody was 128 bytes).
    #[test]
    fn the_stacks_response_body_stays_small() {
        assert!(std::mem::size_of::<super::super::ResponseBody>() <= 152);
    }
}
