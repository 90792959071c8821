//! TLS termination as a [`tower::Layer`] over a connection service: the
//! handshake (bounded in time), then the inner service gets the decrypted
//! stream with what the session says (SNI, version, cipher, the client's
//! certificate and nginx's verdict on it).
//!
//! A connection service is a `Service<IO>` that serves one accepted
//! connection; rpx's own serves HTTP on it (`crate::server`), an embedder's
//! may do anything with the [`TlsConn`] it gets.

use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tower::{Layer, Service};

use super::{ClientAuth, ClientAuthMode, ClientVerify, TlsInfo};

/// Wraps a connection service with TLS termination.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use rpx_core::tls::{CertResolver, TlsAcceptorLayer, TlsConn};
/// use tower::{Layer, ServiceExt};
///
/// let resolver = Arc::new(CertResolver::new());
/// let config = rpx_core::tls::server_config(resolver, &Default::default(), None).unwrap();
/// // The connection service: here it only reads the SNI name.
/// let conn_service = tower::service_fn(|conn: TlsConn<tokio::net::TcpStream>| async move {
///     println!("SNI: {:?}", conn.info().server_name);
///     Ok::<_, std::convert::Infallible>(())
/// });
/// let tls = TlsAcceptorLayer::new(config, Duration::from_secs(10)).layer(conn_service);
///
/// // One call per accepted connection.
/// async fn accept_loop<S>(listener: tokio::net::TcpListener, tls: S) -> std::io::Result<()>
/// where
///     S: tower::Service<tokio::net::TcpStream> + Clone + Send + 'static,
///     S::Future: Send,
///     S::Response: Send,
///     S::Error: Send,
/// {
///     loop {
///         let (stream, _) = listener.accept().await?;
///         tokio::spawn(tls.clone().oneshot(stream));
///     }
/// }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await.unwrap();
/// accept_loop(listener, tls).await.unwrap();
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct TlsAcceptorLayer {
    config: Arc<rustls::ServerConfig>,
    client_auth: Option<ClientAuth>,
    timeout: Duration,
}

impl TlsAcceptorLayer {
    /// Handshakes with `config`, each bounded by `handshake_timeout`.
    pub fn new(config: Arc<rustls::ServerConfig>, handshake_timeout: Duration) -> Self {
        TlsAcceptorLayer {
            config,
            client_auth: None,
            timeout: handshake_timeout,
        }
    }

    /// Checks client certificates as `ssl_verify_client` says; the verdict
    /// is in [`TlsConn::info`] and [`TlsConn::rejection`].
    pub fn client_auth(mut self, auth: Option<ClientAuth>) -> Self {
        self.client_auth = auth;
        self
    }
}

impl<C> Layer<C> for TlsAcceptorLayer {
    type Service = TlsAcceptorService<C>;

    fn layer(&self, inner: C) -> TlsAcceptorService<C> {
        TlsAcceptorService {
            layer: self.clone(),
            inner,
        }
    }
}

/// See [`TlsAcceptorLayer`]. A failed or timed-out handshake is counted
/// (`rpx_tls_handshakes_total{kind="failed"}`), logged at debug level and
/// ends the connection without calling the inner service.
#[derive(Debug, Clone)]
pub struct TlsAcceptorService<C> {
    layer: TlsAcceptorLayer,
    inner: C,
}

impl<C, IO> Service<IO> for TlsAcceptorService<C>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    C: Service<TlsConn<IO>, Response = ()> + Clone + Send + 'static,
    C::Future: Send,
{
    type Response = ();
    type Error = C::Error;
    // Boxed once per connection, not per request.
    type Future = Pin<Box<dyn Future<Output = Result<(), C::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        // The inner service is readied when the handshake is done.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, io: IO) -> Self::Future {
        let layer = self.layer.clone();
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let Some(conn) = layer.accept(io).await else {
                return Ok(());
            };
            std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
            inner.call(conn).await
        })
    }
}

impl TlsAcceptorLayer {
    /// The handshake and the session's facts; None when the connection
    /// ends here (failed, timed out, or a tls-alpn-01 validation).
    async fn accept<IO>(&self, io: IO) -> Option<TlsConn<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = TlsAcceptor::from(self.config.clone());
        let stream = match tokio::time::timeout(self.timeout, acceptor.accept(io)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                metrics::counter!("rpx_tls_handshakes_total", "kind" => "failed").increment(1);
                tracing::debug!(error = %e, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                metrics::counter!("rpx_tls_handshakes_total", "kind" => "failed").increment(1);
                tracing::debug!("TLS handshake timed out");
                return None;
            }
        };
        let (_, session) = stream.get_ref();
        let kind = match session.handshake_kind() {
            Some(rustls::HandshakeKind::Resumed) => "resumed",
            _ => "full",
        };
        metrics::counter!("rpx_tls_handshakes_total", "kind" => kind).increment(1);
        if session.alpn_protocol() == Some(crate::acme::ACME_TLS_ALPN) {
            // A tls-alpn-01 validation: the handshake was the answer (RFC 8737 §3).
            return None;
        }
        let verify = match &self.client_auth {
            Some(auth) => auth.verify(session.peer_certificates()),
            None => ClientVerify::None,
        };
        // nginx answers every request with a 400 (not a TLS alert) when a
        // required certificate is missing or does not verify.
        let rejection = match (&self.client_auth, &verify) {
            (Some(a), ClientVerify::None) if a.mode() == ClientAuthMode::Required => {
                Some("No required SSL certificate was sent")
            }
            (Some(a), ClientVerify::Failed(_)) if a.mode() != ClientAuthMode::OptionalNoCa => {
                Some("The SSL certificate error")
            }
            _ => None,
        };
        let info = Arc::new(tls_info(session, verify));
        Some(TlsConn {
            stream,
            info,
            rejection,
        })
    }
}

/// A terminated TLS connection: the decrypted stream and its facts.
#[derive(Debug)]
pub struct TlsConn<IO> {
    stream: TlsStream<IO>,
    info: Arc<TlsInfo>,
    rejection: Option<&'static str>,
}

impl<IO> TlsConn<IO> {
    /// What the session says, for `$ssl_*` variables.
    pub fn info(&self) -> &Arc<TlsInfo> {
        &self.info
    }

    /// Why every request on it gets nginx's 400 (a required client
    /// certificate is missing or does not verify), if it does.
    pub fn rejection(&self) -> Option<&'static str> {
        self.rejection
    }

    /// The TLS stream (and through it the transport and rustls' session).
    pub fn get_ref(&self) -> &TlsStream<IO> {
        &self.stream
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsConn<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsConn<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

fn tls_info(session: &rustls::ServerConnection, client_verify: ClientVerify) -> TlsInfo {
    let protocol = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "",
    };
    let cipher = session
        .negotiated_cipher_suite()
        .and_then(|c| c.suite().as_str())
        .unwrap_or("");
    let client = session.peer_certificates().and_then(|c| c.first());
    TlsInfo {
        server_name: session.server_name().map(Into::into),
        protocol,
        cipher,
        client_verify,
        client_subject: client.and_then(|c| {
            let (_, parsed) = x509_parser::parse_x509_certificate(c.as_ref()).ok()?;
            Some(parsed.subject().to_string())
        }),
        client_cert_escaped: client.map(|c| escape_pem(c.as_ref())),
    }
}

/// The certificate as PEM, percent-escaped like nginx's
/// `$ssl_client_escaped_cert` (fit for a header value).
fn escape_pem(der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let mut text = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).unwrap_or(""));
        text.push('\n');
    }
    text.push_str("-----END CERTIFICATE-----\n");
    let mut out = String::with_capacity(text.len() * 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64() {
        assert_eq!(super::base64_encode(b"Man"), "TWFu");
        assert_eq!(super::base64_encode(b"Ma"), "TWE=");
        assert_eq!(super::base64_encode(b"M"), "TQ==");
    }
}
