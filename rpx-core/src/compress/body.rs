//! A body gzipped as it streams: what each frame brings is compressed and
//! flushed at once (a sync flush), so a client reading an event stream
//! gets each event as the upstream wrote it.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use async_compression::tokio::write::GzipEncoder;
use async_compression::Level;
use bytes::Bytes;
use http_body::Frame;
use tokio::io::AsyncWrite;

/// The encoder of one response.
pub(crate) struct GzipBody {
    encoder: GzipEncoder<Vec<u8>>,
    /// Trailers that came after the data, sent once the gzip stream ends.
    trailers: Option<Frame<Bytes>>,
    done: bool,
}

impl std::fmt::Debug for GzipBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzipBody")
            .field("done", &self.done)
            .finish()
    }
}

impl GzipBody {
    pub(crate) fn new(level: u32) -> GzipBody {
        let level = Level::Precise(i32::try_from(level).unwrap_or(1));
        GzipBody {
            encoder: GzipEncoder::with_quality(Vec::new(), level),
            trailers: None,
            done: false,
        }
    }

    /// The next frame of `inner`, compressed.
    pub(crate) fn poll_frame<E: From<std::io::Error>>(
        &mut self,
        cx: &mut Context<'_>,
        mut inner: impl FnMut(&mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, E>>>,
    ) -> Poll<Option<Result<Frame<Bytes>, E>>> {
        loop {
            if self.done {
                return Poll::Ready(self.trailers.take().map(Ok));
            }
            let frame = match ready!(inner(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => return self.finish(cx),
            };
            let data = match frame.into_data() {
                Ok(d) => d,
                Err(trailers) => {
                    self.trailers = Some(trailers);
                    return self.finish(cx);
                }
            };
            // Writes into a `Vec` never wait.
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = ready!(Pin::new(&mut self.encoder).poll_write(cx, rest))?;
                rest = &rest[n..];
            }
            ready!(Pin::new(&mut self.encoder).poll_flush(cx))?;
            let out = std::mem::take(self.encoder.get_mut());
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
            }
        }
    }

    /// Ends the gzip stream: its last bytes.
    fn finish<E: From<std::io::Error>>(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, E>>> {
        ready!(Pin::new(&mut self.encoder).poll_shutdown(cx))?;
        self.done = true;
        let out = std::mem::take(self.encoder.get_mut());
        if out.is_empty() {
            return Poll::Ready(self.trailers.take().map(Ok));
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }
}
