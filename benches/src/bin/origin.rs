//! The origin server of the load comparison (`load.sh`): a minimal
//! HTTP/1.1 server on one thread, so that it costs as little as possible
//! next to the proxy under test.
//!
//! - `GET /small`: 12-byte body `hello world\n`.
//! - `GET /big`: 1 MiB body, sent with `sendfile(2)` from a memfd, so the
//!   origin does not copy it from user space on every request.
//! - anything else: 404.
//!
//! It is written on `httparse` rather than hyper because on a 2-core machine
//! the origin shares its core with wrk: whatever it spends is taken from the
//! client, not from the proxy, and on the 1 MiB load hyper's copy of the body
//! into the socket made that core the bottleneck (the proxy's core was idle
//! a quarter of the time). Both proxies see the same bytes either way:
//! `content-type`, `content-length` and `date`, keep-alive unless the request
//! says `Connection: close` or is HTTP/1.0.
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
    let big = Rc::new(big_body()?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    LocalSet::new().block_on(&runtime, serve(addr, big))
}

/// A memfd holding the big body: `sendfile` hands its pages to the socket.
fn big_body() -> io::Result<OwnedFd> {
    let fd = memfd_create("rpx-origin-big", MemfdFlags::CLOEXEC)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(&vec![b'x'; BIG_LEN])?;
    Ok(file.into())
}

async fn serve(addr: SocketAddr, big: Rc<OwnedFd>) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr).await?;
    let mut out = io::stdout();
    writeln!(out, "origin: listening on {}", listener.local_addr()?)?;
    out.flush()?;
    let date = Rc::new(RefCell::new(DateCache::default()));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (big, date) = (big.clone(), date.clone());
        // A client closing its keep-alive connection is not an error worth
        // reporting here.
        tokio::task::spawn_local(async move {
            let _ = connection(stream, &big, &date).await;
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
    NotFound,
    /// The request cannot be served; the connection is closed after it.
    Refuse(&'static str),
}

async fn connection(
    mut stream: TcpStream,
    big: &OwnedFd,
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
                respond(&mut stream, &mut head, &ask, big, date).await?;
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
    big: &OwnedFd,
    date: &RefCell<DateCache>,
) -> io::Result<()> {
    // `None`: the big body, sent from the memfd.
    let (status, body): (&str, Option<&[u8]>) = match ask.answer {
        Answer::Small => ("200 OK", Some(SMALL)),
        Answer::Big => ("200 OK", None),
        Answer::NotFound => ("404 Not Found", Some(b"not found\n")),
        Answer::Refuse(status) => (status, Some(b"")),
    };
    head.clear();
    write!(
        head,
        "HTTP/1.1 {status}\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\ndate: {}\r\n{}\r\n",
        body.map_or(BIG_LEN, <[u8]>::len),
        date.borrow_mut().now(),
        if ask.close { "connection: close\r\n" } else { "" },
    )?;
    match body {
        _ if ask.head_only => return stream.write_all(head).await,
        Some(body) => {
            head.extend_from_slice(body);
            return stream.write_all(head).await;
        }
        None => {}
    }
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
    while offset < BIG_LEN as u64 {
        let left = BIG_LEN - offset as usize;
        let n = write_ready(stream, || {
            Ok(sendfile(&*stream, big, Some(&mut offset), left)?)
        })
        .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
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
