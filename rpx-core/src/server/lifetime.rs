//! How long a client connection lives: `keepalive_requests`,
//! `keepalive_time`, `keepalive_timeout` for HTTP/2, and the graceful stop.
//!
//! - `keepalive_requests`: the connection's last request is answered with
//!   `Connection: close` (HTTP/1, by [`super::ConnService`]), or followed by
//!   a graceful shutdown (HTTP/2: GOAWAY, streams under way finish).
//! - `keepalive_time`: once it has passed, the next request is the last, as
//!   in nginx; an HTTP/2 connection is shut down gracefully at once.
//! - `keepalive_timeout` for HTTP/2: hyper's HTTP/2 server has no idle
//!   timeout, so a connection that starts no request for that long is shut
//!   down gracefully. HTTP/1 connections have their own timer
//!   ([`super::header_timer`]) and never touch this one after their first
//!   request.
//!
//! One timer per connection for each, armed once; a request only bumps
//! atomics.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// What the connection's requests tell its timers. Written by the service
/// on each request, read by the connection's future.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    /// `keepalive_requests`, at least 1.
    limit: u32,
    served: AtomicU32,
    /// `keepalive_time` has passed: the next request is the last.
    aged: AtomicBool,
    /// An HTTP/2 request was the last: shut the connection down gracefully.
    retire: AtomicBool,
    /// An HTTP/1 request was seen: the header timer has the connection.
    http1: AtomicBool,
    /// When the last HTTP/2 request started, in nanoseconds from `start`.
    last: AtomicU64,
}

impl Activity {
    /// `requests`: `keepalive_requests` (0 counts as 1).
    pub(crate) fn new(requests: u32) -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            limit: requests.max(1),
            served: AtomicU32::new(0),
            aged: AtomicBool::new(false),
            retire: AtomicBool::new(false),
            http1: AtomicBool::new(false),
            last: AtomicU64::new(0),
        })
    }

    /// Called for every request, in the order hyper calls the service.
    /// True when it is the connection's last: an HTTP/1 response must then
    /// say `Connection: close`; HTTP/2 is shut down by [`Serve`].
    pub(crate) fn request(&self, version: http::Version) -> bool {
        let served = self
            .served
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let last = served >= self.limit || self.aged.load(Ordering::Relaxed);
        if version == http::Version::HTTP_2 {
            let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.last.store(nanos, Ordering::Relaxed);
            if last {
                self.retire.store(true, Ordering::Relaxed);
            }
        } else if !self.http1.load(Ordering::Relaxed) {
            self.http1.store(true, Ordering::Relaxed);
        }
        last
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_nanos(self.last.load(Ordering::Relaxed))
    }
}

/// A connection's timers and limits, from the listener's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// `keepalive_timeout`; zero: no HTTP/2 idle timer.
    pub(crate) idle: Duration,
    /// `keepalive_time`.
    pub(crate) time: Duration,
}

pin_project_lite::pin_project! {
    /// A connection served until it ends. The graceful stop, an HTTP/2
    /// connection idle too long, past its `keepalive_time` or past its last
    /// request, shut it down gracefully.
    pub(crate) struct Serve<C> {
        #[pin]
        conn: C,
        shutdown: fn(Pin<&mut C>),
        // Polled when the waker is new, which registers it for the stop;
        // otherwise `held` says whether the stop came (see `poll`).
        stop: Pin<Box<dyn Future<Output = ()> + Send>>,
        stop_waker: Option<Waker>,
        // Held until the connection ends: the stop waits for every receiver.
        held: watch::Receiver<()>,
        activity: Arc<Activity>,
        idle: Option<Idle>,
        age: Age,
        shutting_down: bool,
    }
}

struct Idle {
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
}

/// The `keepalive_time` timer: polled once to register, then only read.
struct Age {
    sleep: Pin<Box<Sleep>>,
    registered: bool,
    passed: bool,
}

impl<C: Future> Serve<C> {
    /// `shutdown` starts `conn`'s graceful shutdown.
    pub(crate) fn new(
        conn: C,
        shutdown: fn(Pin<&mut C>),
        mut stop: watch::Receiver<()>,
        activity: Arc<Activity>,
        limits: Limits,
    ) -> Self {
        let idle = (!limits.idle.is_zero()).then(|| Idle {
            sleep: Box::pin(tokio::time::sleep_until(activity.start + limits.idle)),
            timeout: limits.idle,
        });
        let age = Age {
            sleep: Box::pin(tokio::time::sleep_until(activity.start + limits.time)),
            registered: false,
            passed: false,
        };
        let held = stop.clone();
        Serve {
            conn,
            shutdown,
            held,
            // A change or a dropped sender: either way, stop.
            stop: Box::pin(async move {
                let _ = stop.changed().await;
            }),
            stop_waker: None,
            activity,
            idle,
            age,
            shutting_down: false,
        }
    }
}

impl Idle {
    /// Whether the connection has started no HTTP/2 request for the timeout.
    fn poll_expired(&mut self, activity: &Activity, cx: &mut Context<'_>) -> bool {
        if activity.http1.load(Ordering::Relaxed) {
            return false;
        }
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            let deadline = activity.last() + self.timeout;
            if deadline <= Instant::now() {
                return true;
            }
            // A request came since the timer was armed: wait from it.
            self.sleep.as_mut().reset(deadline);
        }
    }
}

impl Age {
    /// Whether `keepalive_time` has passed; tells `activity` when it does.
    /// The task's waker never changes, so after the first poll the timer
    /// is only read (no re-registration on every wake-up).
    fn poll_passed(&mut self, activity: &Activity, cx: &mut Context<'_>) -> bool {
        if !self.passed {
            let elapsed = if self.registered {
                self.sleep.is_elapsed()
            } else {
                self.registered = true;
                self.sleep.as_mut().poll(cx).is_ready()
            };
            if elapsed {
                self.passed = true;
                activity.aged.store(true, Ordering::Relaxed);
            }
        }
        self.passed
    }
}

impl<C: Future> Future for Serve<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        if !*this.shutting_down {
            // A task's waker does not change, so the stop future is
            // polled once and its registration wakes the task; a poll per
            // wake-up would cost a lock and a waiter-list walk per request.
            let stopped = match this.stop_waker {
                Some(w) if w.will_wake(cx.waker()) => !matches!(this.held.has_changed(), Ok(false)),
                _ => {
                    *this.stop_waker = Some(cx.waker().clone());
                    this.stop.as_mut().poll(cx).is_ready()
                }
            };
            let activity = &**this.activity;
            let idle = this
                .idle
                .as_mut()
                .is_some_and(|i| i.poll_expired(activity, cx));
            // HTTP/1 connections end at their next request instead; an
            // HTTP/2 one that has started none is left to its idle timer.
            let aged = this.age.poll_passed(activity, cx)
                && !activity.http1.load(Ordering::Relaxed)
                && activity.served.load(Ordering::Relaxed) > 0;
            if stopped || idle || aged {
                *this.shutting_down = true;
                (this.shutdown)(this.conn.as_mut());
            }
        }
        let polled = this.conn.as_mut().poll(cx);
        // A request during that poll may have been an HTTP/2 connection's last.
        if polled.is_pending()
            && !*this.shutting_down
            && this.activity.retire.load(Ordering::Relaxed)
        {
            *this.shutting_down = true;
            (this.shutdown)(this.conn.as_mut());
            return this.conn.poll(cx);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A connection that records its shutdown and then ends.
    struct Fake {
        shut: Arc<AtomicUsize>,
    }

    impl Future for Fake {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            if self.shut.load(Ordering::SeqCst) > 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    fn shut_down(fake: Pin<&mut Fake>) {
        fake.shut.fetch_add(1, Ordering::SeqCst);
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn serve(
        timeout: Duration,
    ) -> (
        Serve<Fake>,
        Arc<AtomicUsize>,
        Arc<Activity>,
        watch::Sender<()>,
    ) {
        serve_with(1000, timeout, HOUR)
    }

    fn serve_with(
        requests: u32,
        idle: Duration,
        time: Duration,
    ) -> (
        Serve<Fake>,
        Arc<AtomicUsize>,
        Arc<Activity>,
        watch::Sender<()>,
    ) {
        let shut = Arc::new(AtomicUsize::new(0));
        let activity = Activity::new(requests);
        let (tx, rx) = watch::channel(());
        let fake = Fake { shut: shut.clone() };
        let s = Serve::new(fake, shut_down, rx, activity.clone(), Limits { idle, time });
        (s, shut, activity, tx)
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_connection_idle_for_the_timeout_is_shut_down() {
        let (s, shut, activity, _tx) = serve(Duration::from_secs(75));
        let start = Instant::now();
        let task = tokio::spawn(s);
        tokio::time::sleep(Duration::from_secs(50)).await;
        activity.request(http::Version::HTTP_2);
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert_eq!(
            shut.load(Ordering::SeqCst),
            0,
            "a request 50 s ago keeps it"
        );
        task.await.unwrap();
        assert_eq!(shut.load(Ordering::SeqCst), 1);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(125),
            "75 s after the last request"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_http1_connection_is_left_to_its_header_timer() {
        let (s, shut, activity, _tx) = serve(Duration::from_secs(75));
        activity.request(http::Version::HTTP_11);
        let task = tokio::spawn(s);
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(shut.load(Ordering::SeqCst), 0);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn the_stop_signal_shuts_down_and_a_zero_timeout_never_does() {
        let (s, shut, _activity, tx) = serve(Duration::ZERO);
        let task = tokio::spawn(s);
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(shut.load(Ordering::SeqCst), 0, "no idle timer");
        tx.send(()).unwrap();
        task.await.unwrap();
        assert_eq!(shut.load(Ordering::SeqCst), 1);
    }

    /// Counts its wake-ups.
    struct Counting(AtomicUsize);

    impl std::task::Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_stop_wakes_the_waker_of_the_latest_poll() {
        let (s, shut, _activity, tx) = serve(Duration::ZERO);
        let mut s = std::pin::pin!(s);
        let first = Waker::noop();
        assert!(s
            .as_mut()
            .poll(&mut Context::from_waker(first))
            .is_pending());
        // Polled again by another waker (a task moved, an embedder's
        // combinator): that one must hear the stop.
        let counting = Arc::new(Counting(AtomicUsize::new(0)));
        let second = Waker::from(counting.clone());
        assert!(s
            .as_mut()
            .poll(&mut Context::from_waker(&second))
            .is_pending());
        assert!(s
            .as_mut()
            .poll(&mut Context::from_waker(&second))
            .is_pending());
        tx.send(()).unwrap();
        assert_eq!(counting.0.load(Ordering::SeqCst), 1, "woken by the stop");
        assert!(s
            .as_mut()
            .poll(&mut Context::from_waker(&second))
            .is_ready());
        assert_eq!(shut.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_stop_waits_for_the_connection_to_end() {
        // A connection still finishing a request after its shutdown began.
        let conn = std::future::pending::<()>();
        let (tx, rx) = watch::channel(());
        let limits = Limits {
            idle: Duration::ZERO,
            time: HOUR,
        };
        let s = Serve::new(conn, |_| {}, rx, Activity::new(1000), limits);
        let task = tokio::spawn(s);
        tx.send(()).unwrap();
        let closed = tokio::time::timeout(Duration::from_secs(60), tx.closed()).await;
        assert!(
            closed.is_err(),
            "the stop ended with the connection running"
        );
        task.abort();
        let _ = task.await;
        tokio::time::timeout(Duration::from_secs(1), tx.closed())
            .await
            .expect("the stop ends with the connection");
    }

    #[test]
    fn the_request_that_reaches_keepalive_requests_is_the_last() {
        let activity = Activity::new(3);
        let seen: Vec<bool> = (0..3)
            .map(|_| activity.request(http::Version::HTTP_11))
            .collect();
        assert_eq!(seen, [false, false, true]);
        assert!(
            Activity::new(0).request(http::Version::HTTP_11),
            "0 counts as 1"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_connection_is_shut_down_after_its_last_request() {
        let (s, shut, activity, _tx) = serve_with(2, Duration::ZERO, HOUR);
        assert!(!activity.request(http::Version::HTTP_2));
        assert!(activity.request(http::Version::HTTP_2));
        tokio::time::timeout(Duration::from_secs(1), s)
            .await
            .expect("shut down at once");
        assert_eq!(shut.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn after_keepalive_time_the_next_http1_request_is_the_last() {
        let (s, shut, activity, _tx) = serve_with(1000, Duration::ZERO, HOUR);
        assert!(!activity.request(http::Version::HTTP_11));
        let task = tokio::spawn(s);
        tokio::time::sleep(HOUR + Duration::from_secs(1)).await;
        assert_eq!(
            shut.load(Ordering::SeqCst),
            0,
            "an idle HTTP/1 connection waits"
        );
        assert!(activity.request(http::Version::HTTP_11));
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_connection_is_shut_down_at_keepalive_time() {
        let (s, shut, activity, _tx) = serve_with(1000, Duration::ZERO, HOUR);
        let start = Instant::now();
        assert!(!activity.request(http::Version::HTTP_2));
        s.await;
        assert_eq!(shut.load(Ordering::SeqCst), 1);
        assert_eq!(start.elapsed(), HOUR);
    }
}
