//! The request body the server hands to the service.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

pin_project_lite::pin_project! {
    /// A client's request body: none (a request rpx's own HTTP/1 reader
    /// served, which takes only requests without a body), or hyper's
    /// streamed body (HTTP/2, and HTTP/1 requests with one).
    #[derive(Debug)]
    pub struct RequestBody {
        #[pin]
        kind: Kind,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind {
        Empty,
        Hyper { #[pin] body: Incoming },
    }
}

impl RequestBody {
    /// A request without a body.
    pub(crate) fn empty() -> Self {
        RequestBody { kind: Kind::Empty }
    }
}

impl From<Incoming> for RequestBody {
    fn from(body: Incoming) -> Self {
        RequestBody {
            kind: Kind::Hyper { body },
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.project().kind.project() {
            KindProj::Empty => Poll::Ready(None),
            KindProj::Hyper { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Hyper { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Hyper { body } => body.size_hint(),
        }
    }
}
