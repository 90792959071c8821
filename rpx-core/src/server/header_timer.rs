//! hyper's timer for request heads, one per HTTP/1 connection: nginx's
//! `client_header_timeout` and `keepalive_timeout`.
//!
//! hyper asks its timer for a sleep every time it starts waiting for a
//! request head (now + the header timeout) and drops it once the head is
//! in. The first head of a connection has the header timeout from the
//! start. A later one waits idle first: the connection is closed when no
//! byte of it comes within the keep-alive timeout, and once bytes come the
//! head has the header timeout from then, as nginx does.
//!
//! The sleeps hyper gets are served by the connection's one
//! [`LazySleep`]: no timer-wheel insertion and removal per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::lazy_sleep::LazySleep;

/// Bytes a connection has received, kept by its stream for its timer.
#[derive(Debug, Default)]
pub(crate) struct Received(AtomicU64);

impl Received {
    /// Counts `n` more bytes. The connection's task is the only writer:
    /// a load and a store, no locked instruction.
    pub(crate) fn add(&self, n: usize) {
        let total = self.0.load(Ordering::Relaxed) + n as u64;
        self.0.store(total, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The timer handed to hyper's HTTP/1 connection builder, which must be
/// given `header` as its header read timeout.
#[derive(Debug, Clone)]
pub(crate) struct HeaderTimer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The connection's one sleep.
    armed: Mutex<LazySleep>,
    header: Duration,
    keepalive: Duration,
    received: Arc<Received>,
    /// Set once the first head's sleep is made.
    served: AtomicBool,
}

impl HeaderTimer {
    pub(crate) fn new(header: Duration, keepalive: Duration, received: Arc<Received>) -> Self {
        HeaderTimer {
            shared: Arc::new(Shared {
                armed: Mutex::new(LazySleep::default()),
                header,
                keepalive,
                received,
                served: AtomicBool::new(false),
            }),
        }
    }
}

impl hyper::rt::Timer for HeaderTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let shared = &self.shared;
        let deadline = tokio::time::Instant::from_std(deadline);
        // hyper asks for `now + header`: no clock read of our own.
        let sleep = if shared.served.load(Ordering::Relaxed) {
            HeaderSleep {
                deadline: deadline - shared.header + shared.keepalive,
                idle: Some(shared.received.get()),
                shared: shared.clone(),
            }
        } else {
            shared.served.store(true, Ordering::Relaxed);
            HeaderSleep {
                deadline,
                idle: None,
                shared: shared.clone(),
            }
        };
        Box::pin(sleep)
    }
}

/// One request head's deadline, served by the connection's armed sleep.
struct HeaderSleep {
    shared: Arc<Shared>,
    deadline: tokio::time::Instant,
    /// While no byte of the head has come: the count of bytes received
    /// when the wait began.
    idle: Option<u64>,
}

impl hyper::rt::Sleep for HeaderSleep {}

impl Future for HeaderSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        // hyper polls this after every read that left the head unfinished,
        // so bytes seen here came just now.
        if this
            .idle
            .is_some_and(|seen| this.shared.received.get() != seen)
        {
            this.idle = None;
            this.deadline = tokio::time::Instant::now() + this.shared.header;
        }
        this.shared
            .armed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .poll_until(this.deadline, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use hyper::rt::Timer;

    const HEADER: Duration = Duration::from_secs(2);
    const KEEPALIVE: Duration = Duration::from_secs(5);

    fn timer() -> (HeaderTimer, Arc<Received>) {
        let received = Arc::new(Received::default());
        (
            HeaderTimer::new(HEADER, KEEPALIVE, received.clone()),
            received,
        )
    }

    /// hyper's call: a sleep until now + the header timeout.
    fn head(timer: &HeaderTimer) -> Pin<Box<dyn hyper::rt::Sleep>> {
        timer.sleep_until(tokio::time::Instant::now().into_std() + HEADER)
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_head_has_the_header_timeout() {
        let (timer, _) = timer();
        let start = tokio::time::Instant::now();
        head(&timer).await;
        assert_eq!(start.elapsed(), HEADER);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_has_the_keepalive_timeout() {
        let (timer, _) = timer();
        let mut first = head(&timer);
        assert!(first.as_mut().now_or_never().is_none());
        drop(first);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = tokio::time::Instant::now();
        // Armed at +2 s for the first head: that must not end this wait.
        head(&timer).await;
        assert_eq!(start.elapsed(), KEEPALIVE);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_of_the_next_head_start_the_header_timeout() {
        let (timer, received) = timer();
        drop(head(&timer));
        let mut next = head(&timer);
        assert!(next.as_mut().now_or_never().is_none());
        tokio::time::sleep(Duration::from_secs(4)).await;
        // A first part of the head, then hyper polls the sleep again.
        received.add(10);
        let from = tokio::time::Instant::now();
        next.await;
        assert_eq!(
            from.elapsed(),
            HEADER,
            "the header timeout from the first byte"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_rearms() {
        let received = Arc::new(Received::default());
        let timer = HeaderTimer::new(Duration::from_secs(10), KEEPALIVE, received);
        let start = tokio::time::Instant::now();
        let mut first = timer.sleep_until(start.into_std() + Duration::from_secs(10));
        assert!(first.as_mut().now_or_never().is_none());
        drop(first);
        // The idle wait (5 s) ends before the armed 10 s.
        timer
            .sleep_until(start.into_std() + Duration::from_secs(10))
            .await;
        assert_eq!(start.elapsed(), KEEPALIVE);
    }
}
