//! The time, read at most once per poll of a connection's task.
//!
//! A proxied request asks for the time five times: the upstream pool's
//! checkout and check-in, the upstream head deadline, the `Date` header and
//! the next keep-alive deadline. A read is a vDSO call, about 25 ns on a
//! virtual machine. nginx reads the clock once per turn of its event loop;
//! rpx reads it once per [`Tick`] (one poll of a connection) and serves the
//! later asks of that poll from the first read. Outside a tick every
//! [`now`] reads the clock.
//!
//! A tick lasts one poll, which tokio's cooperative budget keeps short, so
//! the time is never older than the work of that poll. Deadlines made from
//! it can only come due a few microseconds early.
//!
//! It is tokio's clock, so tests with paused time control it.

use std::cell::Cell;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
enum Cached {
    /// No tick on this thread: every ask reads the clock.
    Off,
    /// In a tick, not read yet.
    Unread,
    /// In a tick, read at this time.
    At(Instant),
}

thread_local! {
    static NOW: Cell<Cached> = const { Cell::new(Cached::Off) };
}

/// The time of the current tick, read on its first ask; outside a tick,
/// the time now.
pub(crate) fn now() -> Instant {
    NOW.with(|c| match c.get() {
        Cached::At(t) => t,
        Cached::Off => Instant::now(),
        Cached::Unread => {
            let t = Instant::now();
            c.set(Cached::At(t));
            t
        }
    })
}

/// One poll of a connection: [`now`] reads the clock once while it lives.
/// Dropping it puts back the state it found, so ticks nest.
#[derive(Debug)]
pub(crate) struct Tick(Cached);

impl Tick {
    pub(crate) fn start() -> Self {
        Tick(NOW.with(|c| c.replace(Cached::Unread)))
    }
}

impl Drop for Tick {
    fn drop(&mut self) {
        NOW.with(|c| c.set(self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_tick_reads_once_and_outside_one_every_ask_reads() {
        let before = now();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(now() - before, Duration::from_secs(1), "no tick: fresh");
        {
            let _tick = Tick::start();
            let first = now();
            tokio::time::advance(Duration::from_secs(1)).await;
            assert_eq!(now(), first, "in a tick: the first read");
            {
                let _inner = Tick::start();
                assert_eq!(now() - first, Duration::from_secs(1), "a new tick reads");
            }
            assert_eq!(now(), first, "the outer tick is back");
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            now() - before,
            Duration::from_secs(3),
            "after the tick: fresh"
        );
    }
}
