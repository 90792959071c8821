//! The rustls server configuration of a TLS listener.

use std::sync::Arc;

use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::ServerConfig;

use super::client_auth::ClientAuth;
use super::pem::{provider, TlsError};
use super::resolver::CertResolver;

/// Which TLS versions a listener offers (`ssl_protocols`). rustls offers
/// TLS 1.2 and 1.3 only; older ones are never available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsVersions {
    /// TLS 1.2.
    pub tls12: bool,
    /// TLS 1.3.
    pub tls13: bool,
}

impl Default for TlsVersions {
    /// Both.
    fn default() -> Self {
        TlsVersions {
            tls12: true,
            tls13: true,
        }
    }
}

/// A server config: certificates from `resolver`, ALPN `h2` then
/// `http/1.1`, session tickets and a session cache for resumption.
///
/// # Errors
/// No version enabled, or rustls rejects the combination.
pub fn server_config(
    resolver: Arc<CertResolver>,
    versions: TlsVersions,
    client_auth: Option<&ClientAuth>,
    http2: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut list: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if versions.tls13 {
        list.push(&rustls::version::TLS13);
    }
    if versions.tls12 {
        list.push(&rustls::version::TLS12);
    }
    if list.is_empty() {
        return Err(TlsError::Config("no TLS version left to offer".into()));
    }
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&list)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_auth {
        Some(auth) => builder.with_client_cert_verifier(auth.handshake_verifier()),
        None => builder.with_client_cert_verifier(WebPkiClientVerifier::no_client_auth()),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    config.session_storage = ServerSessionMemoryCache::new(16 * 1024);
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}
