//! `listen … proxy_protocol`: the PROXY protocol header read off an
//! accepted TCP connection before anything else (TLS, HTTP). Bytes are
//! peeked and only the header's are taken, as nginx does before a TLS
//! handshake, so the stream goes on to TLS or HTTP untouched and no
//! wrapper has to replay bytes read too far.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::conn::proxy_protocol::{parse, Parsed, ProxyHeader, ProxyHeaderError, MAX_HEADER};

/// What most headers fit in (version 2 with IPv6 addresses and a few
/// TLVs); the buffer grows to [`MAX_HEADER`] for longer ones.
const FIRST_READ: usize = 256;

/// Why a connection on a `proxy_protocol` listener is closed before TLS or
/// HTTP (without an answer, as nginx).
#[derive(Debug, thiserror::Error)]
pub enum ReadHeaderError {
    /// The bytes are no valid header.
    #[error(transparent)]
    Invalid(#[from] ProxyHeaderError),
    /// No whole header in time.
    #[error("no PROXY protocol header within {0:?}")]
    TimedOut(Duration),
    /// The client closed the connection first.
    #[error("the connection closed before its PROXY protocol header ended")]
    Closed,
    /// Reading failed.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] io::Error),
}

/// Reads the PROXY protocol header `stream` starts with, within `timeout`,
/// and leaves every byte after it unread.
///
/// # Errors
/// An invalid header, a timeout, or the connection closing or failing
/// first.
pub async fn read_header(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<ProxyHeader, ReadHeaderError> {
    tokio::time::timeout(timeout, read(stream))
        .await
        .map_err(|_| ReadHeaderError::TimedOut(timeout))?
}

/// Bytes that can be looked at before they are taken: a socket, or bytes
/// in memory for the fuzz target.
pub(super) trait Peek {
    /// Copies what has arrived and is not taken yet, up to `buf`'s length;
    /// 0 at the end.
    fn peek(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
    /// Takes `buf.len()` bytes of those peeked.
    fn take(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<()>> + Send;
}

impl Peek for TcpStream {
    async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TcpStream::peek(self, buf).await
    }

    async fn take(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.read_exact(buf).await.map(drop)
    }
}

/// The header at the start of `stream`, its bytes taken and no others.
pub(super) async fn read(stream: &mut impl Peek) -> Result<ProxyHeader, ReadHeaderError> {
    let mut buf = vec![0u8; FIRST_READ];
    let mut taken = 0;
    loop {
        if taken == buf.len() {
            // `parse` settles every buffer of MAX_HEADER bytes.
            if buf.len() >= MAX_HEADER {
                return Err(ProxyHeaderError::V2TooLong(MAX_HEADER + 1).into());
            }
            buf.resize(MAX_HEADER, 0);
        }
        let n = stream.peek(&mut buf[taken..]).await?;
        if n == 0 {
            return Err(ReadHeaderError::Closed);
        }
        let seen = taken + n;
        match parse(&buf[..seen])? {
            Parsed::Complete(header) => {
                // Peeked, so already here: only the header's bytes are taken.
                stream
                    .take(&mut buf[taken..header.len.clamp(taken, seen)])
                    .await?;
                return Ok(header);
            }
            Parsed::Incomplete => {
                // All of it is header: take it, so the next peek waits for more.
                stream.take(&mut buf[taken..seen]).await?;
                taken = seen;
            }
        }
    }
}
