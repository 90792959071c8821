//! `keepalive_timeout` for HTTP/2 connections, and the graceful stop.
//!
//! hyper's HTTP/2 server has no idle timeout: a client could keep a
//! connection open forever without a request. As nginx does, a connection
//! that starts no request for `keepalive_timeout` is closed, gracefully
//! (GOAWAY, streams still running finish). HTTP/1 connections have their
//! own timer ([`super::header_timer`]) and never touch this one after their
//! first request.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// What the connection's requests tell its idle timer. Written by the
/// service on each request, read by the connection's future.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    /// An HTTP/1 request was seen: the header timer has the connection.
    http1: AtomicBool,
    /// When the last HTTP/2 request started, in nanoseconds from `start`.
    last: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            http1: AtomicBool::new(false),
            last: AtomicU64::new(0),
        })
    }

    /// Called for every request, in the order hyper calls the service.
    pub(crate) fn request(&self, version: http::Version) {
        if version == http::Version::HTTP_2 {
            let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.last.store(nanos, Ordering::Relaxed);
        } else if !self.http1.load(Ordering::Relaxed) {
            self.http1.store(true, Ordering::Relaxed);
        }
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_nanos(self.last.load(Ordering::Relaxed))
    }
}

pin_project_lite::pin_project! {
    /// A connection served until it ends, the graceful stop is signalled,
    /// or it has been idle too long; the last two shut it down gracefully.
    pub(crate) struct Serve<C> {
        #[pin]
        conn: C,
        shutdown: fn(Pin<&mut C>),
        stop: Pin<Box<dyn Future<Output = ()> + Send>>,
        // Held until the connection ends: the stop waits for every receiver.
        held: watch::Receiver<()>,
        idle: Option<Idle>,
        shutting_down: bool,
    }
}

struct Idle {
    activity: Arc<Activity>,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl<C: Future> Serve<C> {
    /// `shutdown` starts `conn`'s graceful shutdown. `timeout` zero: no idle
    /// timer (keep-alive is off for HTTP/1 then, and an HTTP/2 connection
    /// lives as long as its client keeps it).
    pub(crate) fn new(
        conn: C,
        shutdown: fn(Pin<&mut C>),
        mut stop: watch::Receiver<()>,
        activity: Arc<Activity>,
        timeout: Duration,
    ) -> Self {
        let idle = (!timeout.is_zero()).then(|| Idle {
            sleep: Box::pin(tokio::time::sleep_until(activity.start + timeout)),
            activity,
            timeout,
        });
        let held = stop.clone();
        Serve {
            conn,
            shutdown,
            held,
            // A change or a dropped sender: either way, stop.
            stop: Box::pin(async move {
                let _ = stop.changed().await;
            }),
            idle,
            shutting_down: false,
        }
    }
}

impl Idle {
    /// Whether the connection has started no request for the timeout.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.activity.http1.load(Ordering::Relaxed) {
            return false;
        }
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            let deadline = self.activity.last() + self.timeout;
            if deadline <= Instant::now() {
                return true;
            }
            // A request came since the timer was armed: wait from it.
            self.sleep.as_mut().reset(deadline);
        }
    }
}

impl<C: Future> Future for Serve<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        if !*this.shutting_down {
            let stopped = this.stop.as_mut().poll(cx).is_ready();
            let idle = this.idle.as_mut().is_some_and(|i| i.poll_expired(cx));
            if stopped || idle {
                *this.shutting_down = true;
                (this.shutdown)(this.conn.as_mut());
            }
        }
        this.conn.poll(cx)
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

    fn serve(
        timeout: Duration,
    ) -> (
        Serve<Fake>,
        Arc<AtomicUsize>,
        Arc<Activity>,
        watch::Sender<()>,
    ) {
        let shut = Arc::new(AtomicUsize::new(0));
        let activity = Activity::new();
        let (tx, rx) = watch::channel(());
        let fake = Fake { shut: shut.clone() };
        let s = Serve::new(fake, shut_down, rx, activity.clone(), timeout);
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

    #[tokio::test(start_paused = true)]
    async fn the_stop_waits_for_the_connection_to_end() {
        // A connection still finishing a request after its shutdown began.
        let conn = std::future::pending::<()>();
        let (tx, rx) = watch::channel(());
        let s = Serve::new(conn, |_| {}, rx, Activity::new(), Duration::ZERO);
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
}
