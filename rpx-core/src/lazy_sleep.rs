//! One tokio sleep kept for a connection's life, for deadlines that move
//! with every request (a head timeout, a keep-alive wait).
//!
//! A new sleep per request costs a heap allocation, a timer-wheel insertion
//! and a removal. This one is armed at the earliest deadline it was polled
//! for: a later deadline leaves it alone, and when it fires before the
//! deadline being waited for, it is armed again at that one. nginx treats
//! its timers the same lazy way.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::time::{Instant, Sleep};

/// See the module. Made on the first poll.
#[derive(Debug, Default)]
pub(crate) struct LazySleep {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl LazySleep {
    /// Ready once `deadline` has passed; otherwise the task is woken then
    /// (or earlier, and polls again).
    pub(crate) fn poll_until(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
        }
        loop {
            ready!(sleep.as_mut().poll(cx));
            if sleep.deadline() >= deadline {
                return Poll::Ready(());
            }
            // It fired for an earlier deadline: this one is later.
            sleep.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_waits_past_the_armed_one_and_an_earlier_one_rearms() {
        let mut sleep = LazySleep::default();
        let start = Instant::now();
        let first = start + Duration::from_secs(2);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(sleep.poll_until(first, &mut cx).is_pending());
        // Armed at +2 s; a deadline at +5 s must not end at +2 s.
        poll_fn(|cx| sleep.poll_until(start + Duration::from_secs(5), cx)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        // Armed at +5 s (passed); an earlier wait than a fresh +10 s.
        let now = Instant::now();
        poll_fn(|cx| sleep.poll_until(now + Duration::from_secs(1), cx)).await;
        assert_eq!(now.elapsed(), Duration::from_secs(1));
    }
}
