//! What the access log's `$upstream_*` variables report: every upstream
//! try of a request, kept in a slot the log puts on the request and the
//! proxy fills. Tries of one proxying are listed with `, ` between them;
//! an internal redirect (`error_page`) that proxies again starts a group
//! after ` : `, as nginx writes them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One upstream try.
#[derive(Debug, Clone)]
pub struct UpstreamTry {
    /// `host:port`, or the group's name when no server could be picked.
    pub addr: Box<str>,
    /// Its status; for a try that got no answer, the one nginx reports
    /// (502, or 504 when it timed out).
    pub status: u16,
    /// Time to the connection: zero for a kept-alive one, none when it
    /// failed before an answer.
    pub connect: Option<Duration>,
    /// Time to the response head; none without one.
    pub header: Option<Duration>,
    /// Time until its response ended, or until it failed.
    pub response: Duration,
    /// Bytes of its response body.
    pub length: u64,
}

/// A try whose response still streams: its body's count and end.
#[derive(Debug)]
struct Live {
    done: UpstreamTry,
    started: Instant,
    body: Arc<BodyCount>,
}

/// What the body of the response being streamed has counted.
#[derive(Debug, Default)]
pub(crate) struct BodyCount {
    bytes: AtomicU64,
    /// Nanoseconds from the try's start to the body's end; 0: not ended.
    ended: AtomicU64,
    started: std::sync::OnceLock<Instant>,
}

impl BodyCount {
    /// Counts `n` body bytes.
    #[inline]
    pub(crate) fn add(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The body has ended.
    pub(crate) fn end(&self) {
        if let Some(s) = self.started.get() {
            let nanos = u64::try_from(s.elapsed().as_nanos())
                .unwrap_or(u64::MAX)
                .max(1);
            let _ = self
                .ended
                .compare_exchange(0, nanos, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

#[derive(Debug, Default)]
struct Groups {
    done: Vec<Vec<Entry>>,
}

#[derive(Debug)]
enum Entry {
    Done(UpstreamTry),
    Live(Live),
}

/// The slot of a request's upstream tries; cloned, it is the same slot
/// (an internal redirect's request shares its client's).
#[derive(Debug, Clone, Default)]
pub struct UpstreamLog(Arc<Mutex<Groups>>);

impl UpstreamLog {
    fn with<R>(&self, f: impl FnOnce(&mut Groups) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Starts the tries of another internal redirect.
    pub(crate) fn redirected(&self) {
        self.with(|g| {
            if g.done.last().is_some_and(|l| !l.is_empty()) {
                g.done.push(Vec::new());
            }
        });
    }

    fn push(&self, e: Entry) {
        self.with(|g| match g.done.last_mut() {
            Some(l) => l.push(e),
            None => g.done.push(vec![e]),
        });
    }

    /// A try that is over.
    pub(crate) fn tried(&self, t: UpstreamTry) {
        self.push(Entry::Done(t));
    }

    /// The try whose response is sent on: its time and length are taken
    /// from the returned count when the line is written.
    pub(crate) fn answered(&self, t: UpstreamTry, started: Instant) -> Arc<BodyCount> {
        let body = Arc::new(BodyCount::default());
        let _ = body.started.set(started);
        self.push(Entry::Live(Live {
            done: t,
            started,
            body: body.clone(),
        }));
        body
    }

    /// Every try so far, grouped by internal redirect; a response still
    /// streaming counts until now.
    pub(crate) fn tries(&self) -> Vec<Vec<UpstreamTry>> {
        self.with(|g| {
            g.done
                .iter()
                .filter(|l| !l.is_empty())
                .map(|l| l.iter().map(Entry::resolve).collect())
                .collect()
        })
    }
}

impl Entry {
    fn resolve(&self) -> UpstreamTry {
        match self {
            Entry::Done(t) => t.clone(),
            Entry::Live(l) => {
                let mut t = l.done.clone();
                t.length = l.body.bytes.load(Ordering::Relaxed);
                t.response = match l.body.ended.load(Ordering::Relaxed) {
                    0 => l.started.elapsed(),
                    n => Duration::from_nanos(n),
                };
                t
            }
        }
    }
}

/// Set by the connection pools on a response: how long its connection
/// took to open (absent: a kept-alive one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectTime(pub(crate) Duration);
