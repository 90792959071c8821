//! The origin server of the load comparison (`load.sh`): a minimal hyper
//! HTTP/1.1 server on one thread, so that it costs as little as possible
//! next to the proxy under test.
//!
//! - `GET /small`: 12-byte body `hello world\n`.
//! - `GET /big`: 1 MiB body (the same `Bytes` every time, no copy).
//! - anything else: 404.
//!
//! Usage: `origin [ADDR]` (default `127.0.0.1:0`). Prints
//! `origin: listening on ADDR` on stdout once it accepts connections.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The small body: 12 bytes.
const SMALL: &[u8] = b"hello world\n";
/// The big body's size: 1 MiB.
const BIG_LEN: usize = 1 << 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:0")
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err(format!("origin: {addr} is not a loopback address").into());
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr))
}

async fn serve(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr).await?;
    let mut out = std::io::stdout();
    writeln!(out, "origin: listening on {}", listener.local_addr()?)?;
    out.flush()?;
    let big = Bytes::from(vec![b'x'; BIG_LEN]);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let big = big.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let big = big.clone();
                async move { Ok::<_, Infallible>(answer(req.uri().path(), big)) }
            });
            // A client closing its keep-alive connection is not an error
            // worth reporting here.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn answer(path: &str, big: Bytes) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/small" => (StatusCode::OK, Bytes::from_static(SMALL)),
        "/big" => (StatusCode::OK, big),
        _ => (StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n")),
    };
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    res
}
