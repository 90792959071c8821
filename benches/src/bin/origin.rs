//! The origin server of the load comparison (`load.sh`): a minimal
//! HTTP/1.1 server on one thread, so that it costs as little as possible
//! next to the proxy under test.
//!
//! - `GET /small`: 12-byte body `hello world\n`.
//! - `GET /big`: 1 MiB body, sent with `sendfile(2)` from a memfd, so the
//!   origin does not copy it from user space on every request.
//! - `GET /json`: a 100 KiB (102,400 bytes) JSON document,
//!   `application/json`, also sent from a memfd: an array of 290 user
//!   records with the same keys and varied values (ids, UUIDs, names,
//!   e-mail addresses, cities, dates, coordinates, tags, friend lists), made
//!   once at start by a fixed-seed generator, so every run serves the same
//!   bytes and a compressor does the work it does on an API's answer (gzip
//!   -6 makes it about a quarter of its size), not on one repeated byte.
//! - anything else: 404.
//!
//! It is written on `httparse` rather than hyper because on a 2-core machine
//! the origin shares its core with wrk: whatever it spends is taken from the
//! client, not from the proxy, and on the 1 MiB load hyper's copy of the body
//! into the socket made that core the bottleneck (the proxy's core was idle
//! a quarter of the time). Both proxies see the same bytes either way:
//! `content-type`, `content-length` and `date`, keep-alive unless the request
//! says `Connection: close` or is HTTP/1.0. The origin never compresses and
//! ignores `Accept-Encoding`: compressing is the proxy's work under test.
//!
//! Usage: `origin [ADDR]` (default `127.0.0.1:0`). Prints
//! `origin: listening on ADDR` on stdout once it accepts connections.

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use bytes::{Buf, BytesMut};
use rustix::fs::{memfd_create, sendfile, MemfdFlags};
use rustix::net::{send, SendFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::LocalSet;

/// The small body: 12 bytes.
const SMALL: &[u8] = b"hello world\n";
/// The big body's size: 1 MiB.
const BIG_LEN: usize = 1 << 20;
/// The JSON document's size: 100 KiB.
const JSON_LEN: usize = 100 << 10;
/// Request heads larger than this are refused (431) and the connection closed.
const MAX_HEAD: usize = 16 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:0")
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err(format!("origin: {addr} is not a loopback address").into());
    }
    let bodies = Rc::new(Bodies {
        big: memfd("rpx-origin-big", &vec![b'x'; BIG_LEN])?,
        json: memfd("rpx-origin-json", &json_body())?,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    LocalSet::new().block_on(&runtime, serve(addr, bodies))
}

/// The bodies sent with `sendfile`, each in a memfd.
struct Bodies {
    big: OwnedFd,
    json: OwnedFd,
}

/// A memfd holding `body`: `sendfile` hands its pages to the socket.
fn memfd(name: &str, body: &[u8]) -> io::Result<OwnedFd> {
    let fd = memfd_create(name, MemfdFlags::CLOEXEC)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(body)?;
    Ok(file.into())
}

/// splitmix64: a small generator with a fixed seed, so the document is the
/// same on every run and every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

/// The `/json` document: `[` records `]`, one record a line, exactly
/// `JSON_LEN` bytes (spaces before the `]` make up the last few).
fn json_body() -> Vec<u8> {
    const FIRST: &[&str] = &[
        "Olivia", "Liam", "Emma", "Noah", "Sofia", "Lucas", "Mia", "Mateo", "Hannah", "Elias",
        "Chloe", "Jonas", "Amelia", "Leon", "Yuki", "Aarav", "Fatima", "Omar", "Ingrid", "Pablo",
        "Zoe", "Felix", "Nora", "Hugo", "Lena", "Ravi", "Ana", "Kenji", "Clara", "Tomasz",
    ];
    const LAST: &[&str] = &[
        "Smith", "Garcia", "Muller", "Rossi", "Dubois", "Tanaka", "Kowalski", "Nguyen", "Silva",
        "Jensen", "Okafor", "Novak", "Schmidt", "Moreau", "Fischer", "Patel", "Kim", "Larsen",
        "Costa", "Weber", "Haddad", "Ivanova", "Lopez", "Sato", "Bianchi", "Berg", "Khan",
    ];
    const CITIES: &[(&str, &str)] = &[
        ("Berlin", "DE"),
        ("Lyon", "FR"),
        ("Madrid", "ES"),
        ("Osaka", "JP"),
        ("Krakow", "PL"),
        ("Porto", "PT"),
        ("Austin", "US"),
        ("Toronto", "CA"),
        ("Lagos", "NG"),
        ("Pune", "IN"),
        ("Aarhus", "DK"),
        ("Turin", "IT"),
        ("Seoul", "KR"),
        ("Brno", "CZ"),
        ("Leeds", "GB"),
        ("Curitiba", "BR"),
    ];
    const DOMAINS: &[&str] = &[
        "example.com",
        "example.org",
        "mail.example.net",
        "corp.example",
    ];
    const TAGS: &[&str] = &[
        "admin",
        "beta",
        "billing",
        "early-adopter",
        "enterprise",
        "mobile",
        "newsletter",
        "ops",
        "partner",
        "premium",
        "support",
        "trial",
        "verified",
        "vip",
    ];
    const ROLES: &[&str] = &["viewer", "editor", "owner", "billing", "guest"];
    let mut rng = Rng(0x005e_ed0f_6a1b_2c3d);
    let mut doc = String::with_capacity(JSON_LEN);
    let mut record = String::with_capacity(512);
    doc.push_str("[\n");
    for id in 1.. {
        record.clear();
        let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
        let (city, country) = CITIES[rng.below(CITIES.len() as u64) as usize];
        let guid = (rng.next(), rng.next());
        // std's fmt::Write into a String does not fail.
        let _ = write_record(
            &mut record,
            id,
            &[
                ("guid", &format_guid(guid)),
                ("name", &format!("{first} {last}")),
                (
                    "email",
                    &format!(
                        "{}.{}{}@{}",
                        first.to_ascii_lowercase(),
                        last.to_ascii_lowercase(),
                        rng.below(100),
                        rng.pick(DOMAINS)
                    ),
                ),
                ("city", city),
                ("country", country),
                ("role", rng.pick(ROLES)),
            ],
            &mut rng,
            TAGS,
        );
        // The record, its separator and the closing "\n]\n" must fit.
        if doc.len() + record.len() + 2 + 3 > JSON_LEN {
            break;
        }
        if id > 1 {
            doc.push_str(",\n");
        }
        doc.push_str(&record);
    }
    doc.push('\n');
    while doc.len() < JSON_LEN - 2 {
        doc.push(' ');
    }
    doc.push_str("]\n");
    debug_assert_eq!(doc.len(), JSON_LEN);
    doc.into_bytes()
}

/// A UUID (version 4 layout) from 128 random bits.
fn format_guid((a, b): (u64, u64)) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// One record: `id`, the string fields given, then numbers, a date, a
/// boolean, coordinates, tags and friends, all from `rng`.
fn write_record(
    out: &mut String,
    id: u64,
    strings: &[(&str, &str)],
    rng: &mut Rng,
    tags: &[&str],
) -> std::fmt::Result {
    use std::fmt::Write as _;
    write!(out, "{{\"id\":{id}")?;
    for (key, value) in strings {
        write!(out, ",\"{key}\":\"{value}\"")?;
    }
    let cents = rng.below(1_000_000);
    write!(
        out,
        ",\"age\":{},\"balance\":{}.{:02},\"active\":{},\"registered\":\"20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}Z\"",
        18 + rng.below(60),
        cents / 100,
        cents % 100,
        rng.below(4) != 0,
        15 + rng.below(11),
        1 + rng.below(12),
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
        rng.below(60),
    )?;
    let (lat, lon) = (rng.below(180_000_000), rng.below(360_000_000));
    write!(
        out,
        ",\"latitude\":{:.6},\"longitude\":{:.6},\"tags\":[",
        lat as f64 / 1e6 - 90.0,
        lon as f64 / 1e6 - 180.0
    )?;
    // 1 to 4 different tags, 5 apart in the list from a random first one.
    let first = rng.below(tags.len() as u64) as usize;
    for i in 0..1 + rng.below(4) as usize {
        let sep = if i == 0 { "" } else { "," };
        write!(out, "{sep}\"{}\"", tags[(first + i * 5) % tags.len()])?;
    }
    out.push_str("],\"friends\":[");
    for i in 0..rng.below(6) {
        let sep = if i == 0 { "" } else { "," };
        write!(out, "{sep}{}", 1 + rng.below(5000))?;
    }
    write!(out, "],\"score\":{}}}", rng.below(1000))
}

async fn serve(addr: SocketAddr, bodies: Rc<Bodies>) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr).await?;
    let mut out = io::stdout();
    writeln!(out, "origin: listening on {}", listener.local_addr()?)?;
    out.flush()?;
    let date = Rc::new(RefCell::new(DateCache::default()));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (bodies, date) = (bodies.clone(), date.clone());
        // A client closing its keep-alive connection is not an error worth
        // reporting here.
        tokio::task::spawn_local(async move {
            let _ = connection(stream, &bodies, &date).await;
        });
    }
}

/// What a parsed request asks for.
struct Ask {
    /// The answer: status line and body.
    answer: Answer,
    /// No body is sent (HEAD).
    head_only: bool,
    /// The connection closes after this answer.
    close: bool,
    /// Request body bytes to read past (Content-Length).
    body_len: u64,
}

#[derive(Clone, Copy)]
enum Answer {
    Small,
    Big,
    Json,
    NotFound,
    /// The request cannot be served; the connection is closed after it.
    Refuse(&'static str),
}

async fn connection(
    mut stream: TcpStream,
    bodies: &Bodies,
    date: &RefCell<DateCache>,
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(4096);
    let mut head = Vec::with_capacity(256);
    let mut skip: u64 = 0;
    loop {
        let skipped = skip.min(buf.len() as u64);
        buf.advance(skipped as usize);
        skip -= skipped;
        if skip == 0 {
            if let Some((used, ask)) = parse(&buf) {
                buf.advance(used);
                skip = ask.body_len;
                respond(&mut stream, &mut head, &ask, bodies, date).await?;
                if ask.close {
                    return stream.shutdown().await;
                }
                continue;
            }
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

/// Parses one request head from the front of `buf`: `None` while it is
/// incomplete.
fn parse(buf: &[u8]) -> Option<(usize, Ask)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let refuse = |why| {
        let ask = Ask {
            answer: Answer::Refuse(why),
            head_only: false,
            close: true,
            body_len: 0,
        };
        Some((buf.len(), ask))
    };
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return None,
        Ok(httparse::Status::Partial) => return refuse("431 Request Header Fields Too Large"),
        Err(_) => return refuse("400 Bad Request"),
    };
    let mut close = req.version != Some(1);
    let mut body_len = 0;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            close |= h.value.eq_ignore_ascii_case(b"close");
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.parse().ok())
            {
                Some(n) => body_len = n,
                None => return refuse("400 Bad Request"),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return refuse("501 Not Implemented");
        }
    }
    let answer = match req.path {
        Some("/small") => Answer::Small,
        Some("/big") => Answer::Big,
        Some("/json") => Answer::Json,
        _ => Answer::NotFound,
    };
    let head_only = req.method == Some("HEAD");
    Some((
        used,
        Ask {
            answer,
            head_only,
            close,
            body_len,
        },
    ))
}

async fn respond(
    stream: &mut TcpStream,
    head: &mut Vec<u8>,
    ask: &Ask,
    bodies: &Bodies,
    date: &RefCell<DateCache>,
) -> io::Result<()> {
    const OCTETS: &str = "application/octet-stream";
    let (status, kind, body) = match ask.answer {
        Answer::Small => ("200 OK", OCTETS, Body::Bytes(SMALL)),
        Answer::Big => ("200 OK", OCTETS, Body::File(&bodies.big, BIG_LEN)),
        Answer::Json => (
            "200 OK",
            "application/json",
            Body::File(&bodies.json, JSON_LEN),
        ),
        Answer::NotFound => ("404 Not Found", OCTETS, Body::Bytes(b"not found\n")),
        Answer::Refuse(status) => (status, OCTETS, Body::Bytes(b"")),
    };
    let len = match body {
        Body::Bytes(b) => b.len(),
        Body::File(_, len) => len,
    };
    head.clear();
    write!(
        head,
        "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {len}\r\ndate: {}\r\n{}\r\n",
        date.borrow_mut().now(),
        if ask.close {
            "connection: close\r\n"
        } else {
            ""
        },
    )?;
    let file = match body {
        _ if ask.head_only => return stream.write_all(head).await,
        Body::Bytes(body) => {
            head.extend_from_slice(body);
            return stream.write_all(head).await;
        }
        Body::File(file, _) => file,
    };
    // The head goes out with MSG_MORE so that it shares the first segment
    // with the body that sendfile appends.
    let mut sent = 0;
    while sent < head.len() {
        sent += write_ready(stream, || {
            Ok(send(&*stream, &head[sent..], SendFlags::MORE)?)
        })
        .await?;
    }
    let mut offset = 0u64;
    while offset < len as u64 {
        let left = len - offset as usize;
        let n = write_ready(stream, || {
            Ok(sendfile(&*stream, file, Some(&mut offset), left)?)
        })
        .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// A response body: bytes sent with the head, or the first `len` bytes of a
/// memfd sent with `sendfile` after it.
#[derive(Clone, Copy)]
enum Body<'a> {
    Bytes(&'a [u8]),
    File(&'a OwnedFd, usize),
}

/// Runs a non-blocking write once the socket is writable, as often as it
/// would block.
async fn write_ready(
    stream: &TcpStream,
    mut write: impl FnMut() -> io::Result<usize>,
) -> io::Result<usize> {
    loop {
        stream.writable().await?;
        match stream.try_io(Interest::WRITABLE, &mut write) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            done => return done,
        }
    }
}

/// The `Date` header's value, formatted once a second.
#[derive(Default)]
struct DateCache {
    second: u64,
    text: String,
}

impl DateCache {
    fn now(&mut self) -> &str {
        let now = SystemTime::now();
        let second = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
        &self.text
    }
}
