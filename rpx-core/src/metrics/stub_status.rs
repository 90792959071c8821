//! nginx's `stub_status`: the process's client connections and requests,
//! counted as `ngx_http_stub_status_module` counts them, and its page.
//!
//! ```text
//! Active connections: 291
//! server accepts handled requests
//!  16630948 16630948 31070465
//! Reading: 6 Writing: 179 Waiting: 106
//! ```
//!
//! | field | what it counts (and where nginx counts it) |
//! |---|---|
//! | `accepts` | connections accepted (`ngx_event_accept`) |
//! | `handled` | accepted and not dropped for want of a connection slot; rpx has no `worker_connections`, so it equals `accepts` |
//! | `requests` | requests: every request head that reached the service (HTTP/2: every stream), and every HTTP/1 head a connection closed in the middle of (refused, timed out, abandoned); nginx counts a request at its first byte (`ngx_http_create_request`) |
//! | `Active` | open client connections, from accept until the socket closes; an upgraded (WebSocket) one until its tunnel closes |
//! | `Reading` | HTTP/1 connections whose next request head has begun to arrive (`ngx_http_create_request` → `ngx_http_process_request`) |
//! | `Writing` | HTTP/1 connections whose request is being answered (its body read, its response written, or it was upgraded), plus every open HTTP/2 stream (nginx counts each stream as a request of its own) |
//! | `Waiting` | idle connections: before the first byte, between HTTP/1 requests, HTTP/2 with no stream open (`ngx_reusable_connection`) |
//!
//! A TLS connection is waiting until its first byte, in none of the three
//! during its handshake (nginx's `ngx_http_ssl_handshake` takes it off the
//! reusable list before `ngx_ssl_handshake`, its handler puts it back
//! after), then waiting for its first request. So, as in nginx, reading,
//! writing and waiting need not add up to active.
//!
//! The counters are process-wide atomics, each on its own cache line (as
//! nginx's shared-memory ones are); a state change costs a couple of
//! relaxed atomic operations and allocates nothing. The server
//! (`crate::server`) keeps them: each connection's state is held by its
//! socket, and each request's by its response, so they are put right when
//! either goes, however it goes (closed, timed out, cancelled, a panic, a
//! graceful stop).

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use http::{header, HeaderValue, StatusCode, Version};

use crate::reply::{reply, Reply};

/// One counter on a cache line of its own: they are bumped from every
/// core, and sharing a line would make each bump contend with the others.
#[repr(align(128))]
struct Line<T>(T);

static ACCEPTS: Line<AtomicU64> = Line(AtomicU64::new(0));
static HANDLED: Line<AtomicU64> = Line(AtomicU64::new(0));
static REQUESTS: Line<AtomicU64> = Line(AtomicU64::new(0));
// Gauges are signed: updates from different threads may land in any
// order, so one may dip below zero for a moment; a snapshot reads 0 then.
static ACTIVE: Line<AtomicI64> = Line(AtomicI64::new(0));
static GAUGES: [Line<AtomicI64>; 3] = [
    Line(AtomicI64::new(0)),
    Line(AtomicI64::new(0)),
    Line(AtomicI64::new(0)),
];

/// Which of reading, writing, waiting a state counts in (an index of
/// [`GAUGES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gauge {
    Reading = 0,
    Writing = 1,
    Waiting = 2,
}

impl Gauge {
    fn add(self, n: i64) {
        GAUGES[self as usize].0.fetch_add(n, Relaxed);
    }

    fn get(self) -> u64 {
        non_negative(&GAUGES[self as usize].0)
    }
}

fn non_negative(gauge: &AtomicI64) -> u64 {
    u64::try_from(gauge.load(Relaxed)).unwrap_or(0)
}

/// The counts at one moment (each read on its own, as nginx reads them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Open client connections, idle ones included (`$connections_active`).
    pub active: u64,
    /// Connections accepted.
    pub accepts: u64,
    /// Connections accepted and served (rpx drops none: equal to `accepts`).
    pub handled: u64,
    /// Client requests; each HTTP/2 stream is one.
    pub requests: u64,
    /// Connections reading a request head (`$connections_reading`).
    pub reading: u64,
    /// Requests being answered: HTTP/1 connections and HTTP/2 streams
    /// (`$connections_writing`).
    pub writing: u64,
    /// Idle connections: waiting for a request (`$connections_waiting`).
    pub waiting: u64,
}

/// The counts now.
pub fn snapshot() -> Snapshot {
    Snapshot {
        active: connections_active(),
        accepts: ACCEPTS.0.load(Relaxed),
        handled: HANDLED.0.load(Relaxed),
        requests: REQUESTS.0.load(Relaxed),
        reading: connections_reading(),
        writing: connections_writing(),
        waiting: connections_waiting(),
    }
}

/// `$connections_active`: open client connections.
pub fn connections_active() -> u64 {
    non_negative(&ACTIVE.0)
}

/// `$connections_reading`: connections reading a request head.
pub fn connections_reading() -> u64 {
    Gauge::Reading.get()
}

/// `$connections_writing`: requests being answered (HTTP/1 connections,
/// HTTP/2 streams).
pub fn connections_writing() -> u64 {
    Gauge::Writing.get()
}

/// `$connections_waiting`: idle connections.
pub fn connections_waiting() -> u64 {
    Gauge::Waiting.get()
}

impl Snapshot {
    /// nginx's page, byte for byte (the trailing spaces are nginx's).
    ///
    /// ```
    /// let page = rpx_core::metrics::stub_status::Snapshot {
    ///     active: 291,
    ///     accepts: 16630948,
    ///     handled: 16630948,
    ///     requests: 31070465,
    ///     reading: 6,
    ///     writing: 179,
    ///     waiting: 106,
    /// }
    /// .render();
    /// assert_eq!(
    ///     page,
    ///     "Active connections: 291 \nserver accepts handled requests\n 16630948 16630948 31070465 \nReading: 6 Writing: 179 Waiting: 106 \n"
    /// );
    /// ```
    pub fn render(&self) -> String {
        // The fixed text and seven numbers of up to 20 digits.
        let mut page = String::with_capacity(96 + 7 * 20);
        fmt::write(&mut page, format_args!("{self}")).expect("writing to a String");
        page
    }
}

impl fmt::Display for Snapshot {
    /// The page [`Snapshot::render`] makes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Active connections: {} \nserver accepts handled requests\n {} {} {} \nReading: {} Writing: {} Waiting: {} \n",
            self.active,
            self.accepts,
            self.handled,
            self.requests,
            self.reading,
            self.writing,
            self.waiting
        )
    }
}

/// The answer of a `stub_status` location: the page now, `200`,
/// `Content-Type: text/plain` (as nginx sends it).
pub fn response() -> Reply {
    let mut res = reply(StatusCode::OK, snapshot().render());
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    res
}

// A connection's state, in one atomic so that its changes from the
// connection's task and its HTTP/2 streams' are seen in one order. The low
// bits are the state; an HTTP/2 connection's open streams are above them.
const TAG: u32 = 0b111;
const STREAM: u32 = 1 << 3;
/// Idle: no byte of a request head yet.
const WAITING: u32 = 0;
/// An HTTP/1 request head has begun to arrive.
const READING: u32 = 1;
/// An HTTP/1 request is being answered (or was upgraded).
const WRITING: u32 = 2;
/// A TLS handshake is under way.
const HANDSHAKE: u32 = 3;
/// The socket has closed: nothing counts any more.
const CLOSED: u32 = 4;
/// HTTP/2, with its open streams (`>> 3`): waiting when there are none.
const HTTP2: u32 = 5;

/// What a connection in `state` counts in.
fn gauge(state: u32) -> Option<Gauge> {
    match state & TAG {
        WAITING => Some(Gauge::Waiting),
        READING => Some(Gauge::Reading),
        WRITING => Some(Gauge::Writing),
        HTTP2 if state < STREAM => Some(Gauge::Waiting),
        _ => None,
    }
}

/// One client connection's place in the counts, shared by what serves it:
/// its socket ([`Accepted`]), its readers and its requests ([`Exchange`]).
/// Every change is a move from one state to another; a connection that
/// has closed moves no more.
#[derive(Debug)]
pub(crate) struct Connection {
    state: AtomicU32,
}

impl Connection {
    /// A connection outside the counts (for tests of what holds one).
    #[cfg(test)]
    pub(crate) fn detached() -> Arc<Connection> {
        Arc::new(Connection {
            state: AtomicU32::new(CLOSED),
        })
    }

    /// Moves the state by `to` (None: stays); the state it was in, when it moved.
    fn shift(&self, to: impl Fn(u32) -> Option<u32>) -> Option<u32> {
        let mut new = CLOSED;
        let old = self
            .state
            .fetch_update(Relaxed, Relaxed, |s| {
                new = to(s)?;
                Some(new)
            })
            .ok()?;
        let (from, into) = (gauge(old), gauge(new));
        if from != into {
            if let Some(g) = from {
                g.add(-1);
            }
            if let Some(g) = into {
                g.add(1);
            }
        }
        Some(old)
    }

    /// The first bytes of an HTTP/1 request head have come to an idle
    /// connection: it is reading.
    pub(crate) fn reading(&self) {
        // Called for every read of a head: most find it reading already.
        if self.state.load(Relaxed) == WAITING {
            self.shift(|s| (s == WAITING).then_some(READING));
        }
    }

    /// A request head is whole and goes to the service: one more request;
    /// an HTTP/1 connection is writing until its response has gone (an
    /// HTTP/2 stream counts as an [`Exchange`]).
    pub(crate) fn request(&self, version: Version) {
        REQUESTS.0.fetch_add(1, Relaxed);
        if version < Version::HTTP_2 {
            self.shift(|s| matches!(s, WAITING | READING).then_some(WRITING));
        }
    }

    /// An HTTP/1 response has gone: the connection waits for its next
    /// request.
    pub(crate) fn waiting(&self) {
        self.shift(|s| (s == WRITING).then_some(WAITING));
    }

    /// The connection speaks HTTP/2 (its preface came): waiting while it
    /// has no stream open.
    pub(crate) fn http2(&self) {
        self.shift(|s| matches!(s, WAITING | READING).then_some(HTTP2));
    }

    /// TLS: the client's first bytes start the handshake.
    fn handshaking(&self) {
        self.shift(|s| (s == WAITING).then_some(HANDSHAKE));
    }

    /// TLS: the handshake is done; the connection waits for a request.
    pub(crate) fn handshaken(&self) {
        self.shift(|s| (s == HANDSHAKE).then_some(WAITING));
    }

    fn stream_opened(&self) {
        self.shift(|s| match s & TAG {
            CLOSED => None,
            HTTP2 => s.checked_add(STREAM),
            _ => Some(HTTP2 | STREAM),
        });
    }

    fn stream_closed(&self) {
        self.shift(|s| (s & TAG == HTTP2).then(|| s.checked_sub(STREAM)).flatten());
    }

    /// The socket has closed.
    fn close(&self) {
        // A head the connection closed in the middle of (refused, timed
        // out, abandoned) was a request too, as nginx counts it.
        if self.shift(|s| (s != CLOSED).then_some(CLOSED)) == Some(READING) {
            REQUESTS.0.fetch_add(1, Relaxed);
        }
    }
}

/// An accepted connection, counted until this is dropped: held by the
/// socket, so an upgraded connection counts as long as its tunnel lives.
#[derive(Debug)]
pub(crate) struct Accepted {
    connection: Arc<Connection>,
    /// A TLS connection whose first byte has not come yet.
    hello: bool,
}

impl Accepted {
    /// Counts a connection just accepted (`accepts`, `handled`, active and
    /// waiting); `tls`: it starts with a TLS handshake.
    pub(crate) fn new(tls: bool) -> Accepted {
        ACCEPTS.0.fetch_add(1, Relaxed);
        HANDLED.0.fetch_add(1, Relaxed);
        ACTIVE.0.fetch_add(1, Relaxed);
        Gauge::Waiting.add(1);
        Accepted {
            connection: Arc::new(Connection {
                state: AtomicU32::new(WAITING),
            }),
            hello: tls,
        }
    }

    /// Its state, for what serves it.
    pub(crate) fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }

    /// Bytes came from the client: a TLS connection's first ones start its
    /// handshake. A field test, no atomic, after that.
    #[inline]
    pub(crate) fn received(&mut self) {
        if self.hello {
            self.hello = false;
            self.connection.handshaking();
        }
    }
}

impl Drop for Accepted {
    fn drop(&mut self) {
        self.connection.close();
        ACTIVE.0.fetch_add(-1, Relaxed);
    }
}

/// A request being answered on hyper's paths, until this is dropped (its
/// response body ended or was abandoned, or its call was cancelled). An
/// HTTP/2 stream counts as writing, and its connection is not idle while
/// it is open; an HTTP/1 connection goes back to waiting, unless its
/// request was upgraded (`101`): then it writes until it closes.
#[derive(Debug)]
pub(crate) struct Exchange {
    connection: Arc<Connection>,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stream,
    Response,
    Upgraded,
}

impl Exchange {
    /// A request of `version` on `connection` begins (counted as a request
    /// by [`Connection::request`]).
    pub(crate) fn begin(connection: &Arc<Connection>, version: Version) -> Exchange {
        let kind = if version >= Version::HTTP_2 {
            Gauge::Writing.add(1);
            connection.stream_opened();
            Kind::Stream
        } else {
            Kind::Response
        };
        Exchange {
            connection: connection.clone(),
            kind,
        }
    }

    /// The answer switched protocols: the connection is a tunnel now,
    /// writing until it closes.
    pub(crate) fn upgraded(&mut self) {
        if self.kind == Kind::Response {
            self.kind = Kind::Upgraded;
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        match self.kind {
            Kind::Stream => {
                Gauge::Writing.add(-1);
                self.connection.stream_closed();
            }
            Kind::Response => self.connection.waiting(),
            Kind::Upgraded => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_nginx_s() {
        let s = Snapshot {
            active: 291,
            accepts: 16630948,
            handled: 16630948,
            requests: 31070465,
            reading: 6,
            writing: 179,
            waiting: 106,
        };
        assert_eq!(
            s.render(),
            "Active connections: 291 \n\
             server accepts handled requests\n \
             16630948 16630948 31070465 \n\
             Reading: 6 Writing: 179 Waiting: 106 \n"
        );
        assert_eq!(
            Snapshot::default().render(),
            "Active connections: 0 \nserver accepts handled requests\n 0 0 0 \nReading: 0 Writing: 0 Waiting: 0 \n"
        );
    }

    #[test]
    fn states_count_where_nginx_counts_them() {
        assert_eq!(gauge(WAITING), Some(Gauge::Waiting));
        assert_eq!(gauge(READING), Some(Gauge::Reading));
        assert_eq!(gauge(WRITING), Some(Gauge::Writing));
        assert_eq!(gauge(HANDSHAKE), None, "a TLS handshake is only active");
        assert_eq!(gauge(CLOSED), None);
        assert_eq!(gauge(HTTP2), Some(Gauge::Waiting), "HTTP/2, no stream");
        assert_eq!(gauge(HTTP2 | STREAM), None, "its streams count instead");
        assert_eq!(gauge(HTTP2 | (7 * STREAM)), None);
    }

    #[test]
    fn a_closed_connection_moves_no_more() {
        let c = Connection::detached();
        c.reading();
        c.request(Version::HTTP_11);
        c.http2();
        c.stream_opened();
        assert_eq!(c.state.load(Relaxed), CLOSED);
    }

    #[test]
    fn streams_are_counted_on_their_connection() {
        // The state only: other tests in this process move the globals.
        let c = Connection {
            state: AtomicU32::new(READING),
        };
        c.http2();
        assert_eq!(c.state.load(Relaxed), HTTP2);
        c.stream_opened();
        c.stream_opened();
        assert_eq!(c.state.load(Relaxed), HTTP2 | (2 * STREAM));
        c.stream_closed();
        c.stream_closed();
        c.stream_closed();
        assert_eq!(c.state.load(Relaxed), HTTP2, "no stream: idle again");
        c.close();
        assert_eq!(c.state.load(Relaxed), CLOSED);
    }

    #[test]
    fn http1_moves_reading_writing_waiting() {
        let c = Connection {
            state: AtomicU32::new(WAITING),
        };
        c.waiting();
        assert_eq!(
            c.state.load(Relaxed),
            WAITING,
            "only a response ends writing"
        );
        c.reading();
        assert_eq!(c.state.load(Relaxed), READING);
        c.request(Version::HTTP_11);
        assert_eq!(c.state.load(Relaxed), WRITING);
        c.reading();
        assert_eq!(
            c.state.load(Relaxed),
            WRITING,
            "a pipelined head waits its turn"
        );
        c.waiting();
        assert_eq!(c.state.load(Relaxed), WAITING);
        c.close();
    }
}
