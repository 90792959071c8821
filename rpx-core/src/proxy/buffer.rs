//! nginx's `proxy_request_buffering on`, for the bodies that fit in
//! `client_body_buffer_size`: the body is read before any upstream is
//! contacted, so a body with bad framing, over `client_max_body_size` or
//! cut short gets its 400/413 and the upstream never sees the head. A body
//! read whole is sent from memory, to the next server too when the first
//! fails. A larger one is sent as it was read, then streamed.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::UpstreamReqBody;
use crate::error::{BoxError, ProxyError};

/// What reading the start of a body gave.
pub(super) enum Buffered {
    /// All of it.
    Whole(Whole),
    /// More than the buffer holds: the bytes read, then the rest.
    Partial(Prefixed),
}

/// Reads `body` until it ends or more than `max` bytes are in.
///
/// # Errors
/// The client's body failed: [`body_error`] names how.
pub(super) async fn read(mut body: UpstreamReqBody, max: usize) -> Result<Buffered, ProxyError> {
    let mut buf = BytesMut::new();
    loop {
        if buf.len() > max {
            return Ok(Buffered::Partial(Prefixed {
                prefix: Some(buf.freeze()),
                rest: body,
            }));
        }
        match body.frame().await {
            None => {
                return Ok(Buffered::Whole(Whole {
                    data: buf.freeze(),
                    trailers: None,
                }))
            }
            Some(Err(e)) => return Err(body_error(e)),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => buf.extend_from_slice(&data),
                Err(frame) => {
                    // Trailers end the body.
                    return Ok(Buffered::Whole(Whole {
                        data: buf.freeze(),
                        trailers: frame.into_trailers().ok(),
                    }));
                }
            },
        }
    }
}

/// What a client's body error means for its answer: over
/// `client_max_body_size` 413, stalled past `client_body_timeout` 408,
/// anything else (bad chunk framing, a short HTTP/2 body) 400.
pub(super) fn body_error(err: BoxError) -> ProxyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&*err);
    while let Some(e) = source {
        if let Some(t) = e.downcast_ref::<crate::limit::BodyTooLarge>() {
            return ProxyError::BodyTooLarge { limit: t.limit };
        }
        if e.is::<super::BodyStalled>() {
            return ProxyError::ClientTimeout;
        }
        source = e.source();
    }
    tracing::debug!(error = %err, "client sent an invalid body");
    ProxyError::BadRequest("client sent an invalid request body")
}

/// A body read whole, kept to be sent as often as attempts need it.
#[derive(Debug, Clone)]
pub(super) struct Whole {
    data: Bytes,
    trailers: Option<HeaderMap>,
}

impl Whole {
    /// A body sending it, for one attempt.
    pub(super) fn body(&self) -> UpstreamReqBody {
        UpstreamReqBody::new(self.clone())
    }
}

impl Body for Whole {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if !self.data.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut self.data)))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Exact: an HTTP/1.1 upstream gets `Content-Length`, as nginx sends
        // a buffered body (trailers need chunked framing, so none then).
        if self.trailers.is_some() {
            SizeHint::default()
        } else {
            SizeHint::with_exact(self.data.len() as u64)
        }
    }
}

/// The bytes read first, then the rest of the body as it comes.
pub(super) struct Prefixed {
    prefix: Option<Bytes>,
    rest: UpstreamReqBody,
}

impl Prefixed {
    pub(super) fn boxed(self) -> UpstreamReqBody {
        UpstreamReqBody::new(self)
    }
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self.rest.size_hint();
        let read = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let mut hint = SizeHint::new();
        // The upper bound first: a lower one above it would not be taken.
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + read);
        }
        hint.set_lower(rest.lower() + read);
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn chunks(parts: &[&'static str]) -> UpstreamReqBody {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        UpstreamReqBody::new(StreamBody::new(futures_util::stream::iter(frames)))
    }

    #[tokio::test]
    async fn a_small_body_is_read_whole_and_sent_again() {
        let Ok(Buffered::Whole(whole)) = read(chunks(&["ab", "c"]), 16).await else {
            panic!("not whole");
        };
        for _ in 0..2 {
            let body = whole.body();
            assert_eq!(body.size_hint().exact(), Some(3));
            assert_eq!(body.collect().await.unwrap().to_bytes(), "abc");
        }
    }

    #[tokio::test]
    async fn a_large_body_keeps_what_was_read_and_streams_the_rest() {
        let Ok(Buffered::Partial(p)) = read(chunks(&["abc", "def", "gh"]), 4).await else {
            panic!("not partial");
        };
        assert_eq!(p.size_hint().lower(), 6);
        assert_eq!(p.boxed().collect().await.unwrap().to_bytes(), "abcdefgh");
        let sized = UpstreamReqBody::new(
            http_body_util::Full::new(Bytes::from_static(b"xyz")).map_err(|e| match e {}),
        );
        let Ok(Buffered::Partial(p)) = read(sized, 0).await else {
            panic!("not partial");
        };
        assert_eq!(p.size_hint().exact(), Some(3));
    }

    #[tokio::test]
    async fn a_failing_body_is_an_answer_of_its_own() {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"a"))),
            Err(Box::new(crate::limit::BodyTooLarge { limit: 1 })),
        ];
        let body = UpstreamReqBody::new(StreamBody::new(futures_util::stream::iter(frames)));
        let err = read(body, 16).await.err().expect("an error");
        assert_eq!(err.status(), 413);
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![Err("bad chunk".into())];
        let body = UpstreamReqBody::new(StreamBody::new(futures_util::stream::iter(frames)));
        assert_eq!(read(body, 16).await.err().expect("an error").status(), 400);
    }
}
