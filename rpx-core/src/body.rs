//! The one response body type of the stack.
//!
//! An enum rather than a boxed trait object: every response of rpx is one of
//! these few shapes, so no allocation is needed to unify them.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tower_http::services::fs::ServeFileSystemResponseBody;

use crate::error::BoxError;
use crate::proxy::UpstreamBody;

pin_project_lite::pin_project! {
    /// Response body of every rpx service: a fixed buffer, a streamed upstream
    /// body, or a static file.
    pub struct RpxBody {
        #[pin]
        kind: Kind,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind {
        Full { data: Option<Bytes> },
        // The guard keeps the group's server counted active (least_conn,
        // max_conns) for as long as its response streams.
        Upstream { #[pin] body: UpstreamBody, guard: Option<crate::upstream::Picked> },
        File { #[pin] body: ServeFileSystemResponseBody },
        // Boxed: only responses with an access log pay for it, and every
        // response moves through the layers' futures at this enum's size.
        Logged { logged: Pin<Box<Logged>> },
    }
}

pin_project_lite::pin_project! {
    /// A body whose access log line is written when it ends.
    #[project = LoggedProj]
    struct Logged {
        #[pin]
        body: RpxBody,
        pending: crate::accesslog::Pending,
    }
}

impl RpxBody {
    /// An empty body.
    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// A body of one buffer.
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        RpxBody {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    pub(crate) fn upstream(body: UpstreamBody, guard: Option<crate::upstream::Picked>) -> Self {
        RpxBody {
            kind: Kind::Upstream { body, guard },
        }
    }

    pub(crate) fn logged(body: RpxBody, pending: crate::accesslog::Pending) -> Self {
        RpxBody {
            kind: Kind::Logged {
                logged: Box::pin(Logged { body, pending }),
            },
        }
    }

    pub(crate) fn file(body: ServeFileSystemResponseBody) -> Self {
        RpxBody {
            kind: Kind::File { body },
        }
    }
}

impl Default for RpxBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl From<String> for RpxBody {
    fn from(s: String) -> Self {
        Self::full(s)
    }
}

impl From<&'static str> for RpxBody {
    fn from(s: &'static str) -> Self {
        Self::full(Bytes::from_static(s.as_bytes()))
    }
}

impl From<Bytes> for RpxBody {
    fn from(b: Bytes) -> Self {
        Self::full(b)
    }
}

impl std::fmt::Debug for RpxBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Full { .. } => "full",
            Kind::Upstream { .. } => "upstream",
            Kind::File { .. } => "file",
            Kind::Logged { .. } => "logged",
        };
        f.debug_struct("RpxBody").field("kind", &kind).finish()
    }
}

impl Body for RpxBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Upstream { body, .. } => body.poll_frame(cx),
            KindProj::File { body } => body.poll_frame(cx).map_err(Into::into),
            KindProj::Logged { logged } => {
                let LoggedProj { body, pending } = logged.as_mut().project();
                let res = body.poll_frame(cx);
                match &res {
                    Poll::Ready(Some(Ok(frame))) => {
                        pending.body_bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
                    }
                    Poll::Ready(None) | Poll::Ready(Some(Err(_))) => pending.finish(),
                    Poll::Pending => {}
                }
                res
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            Kind::Upstream { body, .. } => body.is_end_stream(),
            Kind::File { body } => body.is_end_stream(),
            Kind::Logged { logged } => logged.body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Upstream { body, .. } => body.size_hint(),
            Kind::File { body } => body.size_hint(),
            Kind::Logged { logged } => logged.body.size_hint(),
        }
    }
}
