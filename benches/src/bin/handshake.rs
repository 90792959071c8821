//! The full-handshake client of the load comparison (`load.sh`): opens a
//! new TLS connection for every request, with session resumption disabled,
//! so that every connection costs the server a full handshake.
//!
//! `wrk -H "Connection: close"` is no substitute: it reuses its OpenSSL
//! session on reconnect, so almost every handshake it makes is resumed.
//!
//! Each of `--connections` tasks loops until `--duration` is over: TCP
//! connect, TLS handshake (rustls with ring, no resumption, no ALPN as
//! wrk), one `GET PATH` with `Connection: close`, read the whole answer,
//! wait for the server to close. The server's certificate is not verified
//! (as wrk does not): the client saves the signature check, the server's
//! work is the same. The client runs on one thread (pin it with taskset).
//!
//! Usage: `handshake URL [--duration SECS] [--connections N] [--tls 1.2|1.3|any]`
//! with URL `https://127.0.0.1:PORT/PATH` (loopback only).
//!
//! Prints wrk-like lines, so that `load.sh` reads both the same way:
//! `N requests in S.SSs`, `Requests/sec: R`, `50%`/`99%` latency of a
//! whole connection (connect, handshake, request, close), then `resumed`,
//! `errors`, and what was negotiated. Exits non-zero when nothing succeeded.

#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::crypto::ring;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, HandshakeKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    addr: SocketAddr,
    path: String,
    duration: Duration,
    connections: usize,
    tls: String,
}

fn usage() -> Error {
    "usage: handshake https://127.0.0.1:PORT/PATH [--duration SECS] [--connections N] \
     [--tls 1.2|1.3|any]"
        .into()
}

fn parse_args() -> Result<Args, Error> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or_else(usage)?;
    let rest = url.strip_prefix("https://").ok_or_else(usage)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = authority.parse()?;
    if !addr.ip().is_loopback() {
        return Err(format!("handshake: {addr} is not a loopback address").into());
    }
    let mut parsed = Args {
        addr,
        path: path.to_string(),
        duration: Duration::from_secs(5),
        connections: 16,
        tls: "any".into(),
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(usage)?;
        match flag.as_str() {
            "--duration" => {
                let secs: f64 = value.trim_end_matches('s').parse()?;
                if !(secs > 0.0 && secs <= 3600.0) {
                    return Err("handshake: --duration must be in (0, 3600] seconds".into());
                }
                parsed.duration = Duration::from_secs_f64(secs);
            }
            "--connections" => parsed.connections = value.parse()?,
            "--tls" => parsed.tls = value,
            _ => return Err(usage()),
        }
    }
    if parsed.connections == 0 {
        return Err("handshake: --connections must be at least 1".into());
    }
    Ok(parsed)
}

fn client_config(tls: &str) -> Result<ClientConfig, Error> {
    let provider = Arc::new(ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match tls {
        "1.2" => &[&rustls::version::TLS12],
        "1.3" => &[&rustls::version::TLS13],
        "any" => &[&rustls::version::TLS13, &rustls::version::TLS12],
        _ => return Err(usage()),
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .dangerous()
        // Like wrk: a load generator on loopback checks no certificate.
        .with_custom_certificate_verifier(Arc::new(rpx_core::tls::AcceptAnyCertificate))
        .with_no_client_auth();
    // Every connection a full handshake: no session cache, no tickets.
    config.resumption = Resumption::disabled();
    Ok(config)
}

#[derive(Default)]
struct Tally {
    ok: u64,
    resumed: u64,
    errors: u64,
    first_error: Option<String>,
    /// Whole-connection times of the successful connections, in µs.
    micros: Vec<u32>,
    negotiated: Option<String>,
}

/// One connection: connect, full handshake, one request, read to the end.
/// Returns whether the handshake was resumed and what was negotiated.
async fn one(
    connector: &TlsConnector,
    addr: SocketAddr,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(bool, String), Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost")?;
    let mut tls = connector.connect(name, tcp).await?;
    let (resumed, negotiated) = {
        let (_, conn) = tls.get_ref();
        let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
        let or_none = |s: Option<String>| s.unwrap_or_else(|| "-".into());
        let negotiated = format!(
            "{} {} {}",
            or_none(conn.protocol_version().map(|v| format!("{v:?}"))),
            or_none(
                conn.negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()))
            ),
            or_none(
                conn.negotiated_key_exchange_group()
                    .map(|g| format!("{:?}", g.name()))
            ),
        );
        (resumed, negotiated)
    };
    tls.write_all(request).await?;
    tls.flush().await?;
    buf.clear();
    // Read until the server closes (Connection: close). A server that
    // closes without close_notify is fine once the answer is complete.
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match tls.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
    }
    if !complete_200(buf) {
        let head = String::from_utf8_lossy(&buf[..buf.len().min(80)]).into_owned();
        return Err(format!("incomplete or non-200 answer: {head:?}").into());
    }
    Ok((resumed, negotiated))
}

/// Whether `buf` is a 200 answer with all of its `Content-Length` body
/// (or any body when there is no `Content-Length`).
fn complete_200(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_ok = lines
        .next()
        .is_some_and(|l| l.starts_with("HTTP/1.1 200") || l.starts_with("HTTP/1.0 200"));
    let length = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    status_ok && length.is_none_or(|n| buf.len() - (end + 4) >= n)
}

async fn worker(
    connector: TlsConnector,
    addr: SocketAddr,
    request: Arc<[u8]>,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut buf = Vec::with_capacity(1024);
    while Instant::now() < deadline {
        let start = Instant::now();
        match one(&connector, addr, &request, &mut buf).await {
            Ok((resumed, negotiated)) => {
                tally.ok += 1;
                tally.resumed += u64::from(resumed);
                let us = start.elapsed().as_micros();
                tally.micros.push(u32::try_from(us).unwrap_or(u32::MAX));
                tally.negotiated.get_or_insert(negotiated);
            }
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| e.to_string());
                // Do not spin on a refused connection.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    tally
}

async fn run(args: Args) -> Result<(), Error> {
    let connector = TlsConnector::from(Arc::new(client_config(&args.tls)?));
    let request: Arc<[u8]> = format!(
        "GET {} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: rpx-handshake\r\nConnection: close\r\n\r\n",
        args.path
    )
    .into_bytes()
    .into();
    let start = Instant::now();
    let deadline = start + args.duration;
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            tokio::spawn(worker(
                connector.clone(),
                args.addr,
                request.clone(),
                deadline,
            ))
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        let t = task.await?;
        total.ok += t.ok;
        total.resumed += t.resumed;
        total.errors += t.errors;
        total.micros.extend(t.micros);
        if total.first_error.is_none() {
            total.first_error = t.first_error;
        }
        if total.negotiated.is_none() {
            total.negotiated = t.negotiated;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    total.micros.sort_unstable();
    let pct = |p: f64| -> f64 {
        if total.micros.is_empty() {
            return 0.0;
        }
        let i = ((total.micros.len() - 1) as f64 * p).round() as usize;
        f64::from(total.micros[i]) / 1000.0
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "full TLS handshakes @ https://{}{}: {} connections, resumption off",
        args.addr, args.path, args.connections
    )?;
    writeln!(out, "  Latency Distribution (connect to close)")?;
    writeln!(out, "     50%   {:.2}ms", pct(0.50))?;
    writeln!(out, "     99%   {:.2}ms", pct(0.99))?;
    writeln!(out, "  {} requests in {elapsed:.2}s", total.ok)?;
    writeln!(out, "Requests/sec: {:.2}", total.ok as f64 / elapsed)?;
    writeln!(out, "resumed: {}", total.resumed)?;
    writeln!(out, "errors: {}", total.errors)?;
    if let Some(e) = &total.first_error {
        writeln!(out, "first error: {e}")?;
    }
    if let Some(n) = &total.negotiated {
        writeln!(out, "negotiated: {n}")?;
    }
    if total.ok == 0 {
        return Err("handshake: no connection succeeded".into());
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}
