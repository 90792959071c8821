//! A body compressed as it streams (gzip, brotli or zstd): what each
//! frame brings is compressed and flushed at once (a sync flush), so a
//! client reading an event stream gets each event as the upstream wrote it.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use async_compression::tokio::write::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use async_compression::Level;
use bytes::Bytes;
use http_body::Frame;
use tokio::io::AsyncWrite as _;

use super::Coding;

/// One of the codecs, writing into a buffer.
enum Encoder {
    Gzip(GzipEncoder<Vec<u8>>),
    // Boxed: brotli's state is 5 KiB, the others' a few hundred bytes.
    Br(Box<BrotliEncoder<Vec<u8>>>),
    Zstd(ZstdEncoder<Vec<u8>>),
}

macro_rules! each {
    ($e:expr, $enc:ident => $body:expr) => {
        match $e {
            Encoder::Gzip($enc) => $body,
            Encoder::Br($enc) => $body,
            Encoder::Zstd($enc) => $body,
        }
    };
}

impl Encoder {
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        each!(self, e => Pin::new(e).poll_write(cx, buf))
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each!(self, e => Pin::new(e).poll_flush(cx))
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each!(self, e => Pin::new(e).poll_shutdown(cx))
    }
    fn take(&mut self) -> Vec<u8> {
        each!(self, e => std::mem::take(e.get_mut()))
    }
}

/// The encoder of one response.
pub(crate) struct GzipBody {
    encoder: Encoder,
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
    /// An encoder of `coding` at `level` (`gzip_comp_level`'s 1 to 9;
    /// brotli's and zstd's scales start alike and go further).
    pub(crate) fn new(coding: Coding, level: u32) -> GzipBody {
        let level = Level::Precise(i32::try_from(level).unwrap_or(1));
        let out = Vec::new();
        GzipBody {
            encoder: match coding {
                Coding::Gzip => Encoder::Gzip(GzipEncoder::with_quality(out, level)),
                Coding::Br => Encoder::Br(Box::new(BrotliEncoder::with_quality(out, level))),
                Coding::Zstd => Encoder::Zstd(ZstdEncoder::with_quality(out, level)),
            },
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
                let n = ready!(self.encoder.poll_write(cx, rest))?;
                rest = &rest[n..];
            }
            ready!(self.encoder.poll_flush(cx))?;
            let out = self.encoder.take();
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
        ready!(self.encoder.poll_shutdown(cx))?;
        self.done = true;
        let out = self.encoder.take();
        if out.is_empty() {
            return Poll::Ready(self.trailers.take().map(Ok));
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }
}
