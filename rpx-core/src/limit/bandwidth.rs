//! nginx's `limit_rate` / `limit_rate_after`: a response body's bytes per
//! second, after its first `after` bytes, paced as nginx's write filter
//! paces them: by the time `t` seconds have passed, at most
//! `rate × (⌊t⌋ + 1)` limited bytes are out, and each write of `n`
//! limited bytes is followed by a pause of `n / rate` seconds.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::Frame;
use tokio::time::{Instant, Sleep};

/// `limit_rate rate` with `limit_rate_after after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bandwidth {
    /// Bytes per second; never 0 (no limit is no `Bandwidth`).
    rate: u64,
    after: u64,
}

/// `$limit_rate` of a request whose response is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitRate(pub u64);

impl Bandwidth {
    /// `rate` bytes a second after the first `after`; `None` for a rate of
    /// 0, nginx's "no limit".
    pub fn new(rate: u64, after: u64) -> Option<Bandwidth> {
        (rate > 0).then_some(Bandwidth { rate, after })
    }

    /// The rate, in bytes a second.
    pub fn rate(&self) -> u64 {
        self.rate
    }
}

/// The pacing of one response body.
#[derive(Debug)]
pub(crate) struct Pacer {
    limit: Bandwidth,
    /// Body bytes out so far.
    sent: u64,
    start: Instant,
    /// What a pause waits for.
    pause: Option<Pin<Box<Sleep>>>,
    /// The rest of a frame that was over what could go out.
    held: Option<Bytes>,
}

impl Pacer {
    pub(crate) fn new(limit: Bandwidth) -> Pacer {
        Pacer {
            limit,
            sent: 0,
            start: Instant::now(),
            pause: None,
            held: None,
        }
    }

    /// The next frame of `inner`, paced. The end of the body is never
    /// held back: the next frame is read before a pause is waited out.
    pub(crate) fn poll_frame<E>(
        &mut self,
        cx: &mut Context<'_>,
        mut inner: impl FnMut(&mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, E>>>,
    ) -> Poll<Option<Result<Frame<Bytes>, E>>> {
        loop {
            if self.held.is_none() {
                match ready!(inner(cx)) {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(d) => self.held = Some(d),
                        // Trailers are not paced.
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    },
                    other => return Poll::Ready(other),
                }
            }
            if let Some(p) = &mut self.pause {
                ready!(p.as_mut().poll(cx));
                self.pause = None;
            }
            let Some(mut data) = self.held.take() else {
                continue;
            };
            let Bandwidth { rate, after } = self.limit;
            let free = after.saturating_sub(self.sent);
            let limited_sent = self.sent.saturating_sub(after);
            let seconds = self.start.elapsed().as_secs();
            let allowed = rate
                .saturating_mul(seconds + 1)
                .saturating_sub(limited_sent);
            if free == 0 && allowed == 0 {
                // nginx: wait until the next whole second allows more.
                let next = Duration::from_secs(seconds + 1).saturating_sub(self.start.elapsed());
                self.pause = Some(Box::pin(tokio::time::sleep(
                    next + Duration::from_millis(1),
                )));
                self.held = Some(data);
                continue;
            }
            let len = data.len() as u64;
            let n = len.min(free.saturating_add(allowed));
            if n < len {
                self.held = Some(data.split_off(usize::try_from(n).unwrap_or(usize::MAX)));
            }
            self.sent += n;
            let limited = n.saturating_sub(free);
            if limited > 0 {
                let ms = limited.saturating_mul(1000) / rate;
                self.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(ms))));
            }
            if data.has_remaining() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    pin_project_lite::pin_project! {
        struct Paced<B> { #[pin] inner: B, pacer: Pacer }
    }

    impl<B: http_body::Body<Data = Bytes>> http_body::Body for Paced<B> {
        type Data = Bytes;
        type Error = B::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
            let this = self.project();
            let mut inner = this.inner;
            this.pacer
                .poll_frame(cx, |cx| inner.as_mut().poll_frame(cx))
        }
    }

    /// With tokio's clock paused, time passes only by the pauses: 300 KB
    /// at 100 KB/s after the first 100 KB take two seconds.
    #[tokio::test(start_paused = true)]
    async fn bytes_go_out_at_the_rate() {
        let body = http_body_util::Full::new(Bytes::from(vec![0u8; 300_000]));
        let limit = Bandwidth::new(100_000, 100_000).unwrap();
        let start = Instant::now();
        let paced = Paced {
            inner: body,
            pacer: Pacer::new(limit),
        };
        let got = paced.collect().await.unwrap().to_bytes();
        assert_eq!(got.len(), 300_000);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_millis(1100),
            "{took:?}"
        );
    }

    #[test]
    fn zero_is_no_limit() {
        assert!(Bandwidth::new(0, 5).is_none());
    }
}
