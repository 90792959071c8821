//! TLS termination in the accept loop: handshake (bounded by the header
//! timeout), connection facts for variables, and nginx's 400 for a
//! required client certificate that is missing or untrusted.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{ready, Either, Ready};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsAcceptor;
use tower::Service;

use super::{Conn, Plain};
use crate::body::RpxBody;
use crate::error::error_page_titled;
use crate::tls::{CertResolver, ClientAuth, ClientAuthMode, ClientVerify, TlsInfo};

/// TLS settings of one listener.
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// The rustls configuration (certificates, ALPN, versions).
    pub config: Arc<rustls::ServerConfig>,
    /// The certificates, reloaded from their files every `reload_interval`.
    pub resolver: Arc<CertResolver>,
    /// Client-certificate checking, if configured.
    pub client_auth: Option<ClientAuth>,
    /// How often certificate files are checked for changes. Default 10 s.
    pub reload_interval: Duration,
}

/// Checks the certificate files of whatever TLS settings the listener has
/// now, every `reload_interval`, and reloads the changed ones.
pub(super) fn spawn_reloader(cell: super::TlsCell) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let every = cell
                .load()
                .as_ref()
                .map_or(Duration::from_secs(10), |t| t.reload_interval);
            tokio::time::sleep(every).await;
            let Some(tls) = cell.load_full() else {
                continue;
            };
            let resolver = tls.resolver.clone();
            // File reads are blocking; keep them off the reactor.
            let _ = tokio::task::spawn_blocking(move || resolver.reload_changed()).await;
        }
    })
}

impl TlsListener {
    pub(super) async fn serve<S>(
        self: Arc<Self>,
        stream: Plain,
        timeout: Duration,
        conn: Conn,
        service: S,
    ) where
        S: Service<Request<Incoming>, Response = Response<RpxBody>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let acceptor = TlsAcceptor::from(self.config.clone());
        let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(Ok(s)) => {
                let kind = match s.get_ref().1.handshake_kind() {
                    Some(rustls::HandshakeKind::Resumed) => "resumed",
                    _ => "full",
                };
                metrics::counter!("rpx_tls_handshakes_total", "kind" => kind).increment(1);
                s
            }
            Ok(Err(e)) => {
                metrics::counter!("rpx_tls_handshakes_total", "kind" => "failed").increment(1);
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                return;
            }
        };
        let (_, session) = stream.get_ref();
        if session.alpn_protocol() == Some(crate::acme::ACME_TLS_ALPN) {
            // A tls-alpn-01 validation: the handshake was the answer (RFC 8737 §3).
            return;
        }
        let verify = match &self.client_auth {
            Some(auth) => auth.verify(session.peer_certificates()),
            None => ClientVerify::None,
        };
        let info = Arc::new(tls_info(session, verify));
        let reject = match (&self.client_auth, &info.client_verify) {
            (Some(a), ClientVerify::None) if a.mode() == ClientAuthMode::Required => {
                Some("No required SSL certificate was sent")
            }
            (Some(a), ClientVerify::Failed(_)) if a.mode() != ClientAuthMode::OptionalNoCa => {
                Some("The SSL certificate error")
            }
            _ => None,
        };
        let Conn {
            builder,
            watcher,
            layer,
        } = conn;
        let conn = Conn {
            builder,
            watcher,
            layer: layer.with_tls(info),
        };
        let service = match reject {
            None => Gate::Open(service),
            Some(reason) => Gate::Closed(reason),
        };
        conn.serve(TokioIo::new(stream), service).await;
    }
}

/// Passes requests on, or answers each with nginx's client-certificate 400.
#[derive(Clone)]
enum Gate<S> {
    Open(S),
    Closed(&'static str),
}

impl<S> Service<Request<Incoming>> for Gate<S>
where
    S: Service<Request<Incoming>, Response = Response<RpxBody>, Error = Infallible>,
{
    type Response = Response<RpxBody>;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<Response<RpxBody>, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self {
            Gate::Open(s) => s.poll_ready(cx),
            Gate::Closed(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        match self {
            Gate::Open(s) => Either::Left(s.call(req)),
            Gate::Closed(reason) => Either::Right(ready(Ok(error_page_titled(
                StatusCode::BAD_REQUEST,
                reason,
            )))),
        }
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
