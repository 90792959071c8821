//! The rustls server configuration of a TLS listener.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{ServerConfig, SupportedCipherSuite};

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

/// How a TLS listener negotiates: versions, suites, ALPN, resumption.
#[derive(Debug, Clone)]
pub struct ServerTlsOptions {
    /// The versions offered (`ssl_protocols`). Default TLS 1.2 and 1.3.
    pub versions: TlsVersions,
    /// The TLS 1.2 suites, most preferred first (`ssl_ciphers`, see
    /// [`CipherList`](super::CipherList)); `None` keeps rustls' defaults.
    /// TLS 1.3 suites are never restricted, as in nginx. Default `None`.
    pub tls12_suites: Option<Vec<SupportedCipherSuite>>,
    /// The server's suite order wins over the client's
    /// (`ssl_prefer_server_ciphers`). Default off, as nginx.
    pub prefer_server_ciphers: bool,
    /// Offer `h2` by ALPN before `http/1.1`. Default off, as nginx without
    /// `http2`.
    pub http2: bool,
    /// Stateless session tickets (`ssl_session_tickets`). Default on.
    pub session_tickets: bool,
    /// Sessions kept in the server-side cache for resumption by session ID
    /// (TLS 1.2) or stateful ticket (TLS 1.3); 0 disables it
    /// (`ssl_session_cache off`). Default [`DEFAULT_SESSION_CACHE`].
    pub session_cache: usize,
}

/// Sessions the server-side cache holds by default.
pub const DEFAULT_SESSION_CACHE: usize = 16 * 1024;

impl Default for ServerTlsOptions {
    fn default() -> Self {
        ServerTlsOptions {
            versions: TlsVersions::default(),
            tls12_suites: None,
            prefer_server_ciphers: false,
            http2: false,
            session_tickets: true,
            session_cache: DEFAULT_SESSION_CACHE,
        }
    }
}

/// A server config: certificates from `resolver`, and everything else
/// from `options`.
///
/// # Errors
/// No version enabled, TLS 1.2 enabled with no TLS 1.2 suite left, or
/// rustls rejects the combination.
pub fn server_config(
    resolver: Arc<CertResolver>,
    options: &ServerTlsOptions,
    client_auth: Option<&ClientAuth>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let versions = options.versions;
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
    let provider = match &options.tls12_suites {
        None => provider(),
        Some(tls12) => {
            // rustls only checks that some version has a suite; a TLS 1.2
            // that could never be negotiated would fail every 1.2 client.
            if versions.tls12 && tls12.is_empty() {
                return Err(TlsError::Config(
                    "the cipher list leaves no TLS 1.2 suite while TLSv1.2 is enabled".into(),
                ));
            }
            let base = provider();
            let tls13 = base
                .cipher_suites
                .iter()
                .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)));
            Arc::new(CryptoProvider {
                cipher_suites: tls13.chain(tls12).copied().collect(),
                ..(*base).clone()
            })
        }
    };
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&list)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_auth {
        Some(auth) => builder.with_client_cert_verifier(auth.handshake_verifier()),
        None => builder.with_client_cert_verifier(WebPkiClientVerifier::no_client_auth()),
    };
    let acme = resolver.answers_tls_alpn01();
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = if options.http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    if acme {
        // Last: rustls picks the first of ours the client offers, so only
        // a validation client, which offers nothing else, gets it.
        config
            .alpn_protocols
            .push(crate::acme::ACME_TLS_ALPN.to_vec());
    }
    config.ignore_client_order = options.prefer_server_ciphers;
    config.session_storage = if options.session_cache == 0 {
        Arc::new(NoServerSessionStorage {})
    } else {
        ServerSessionMemoryCache::new(options.session_cache)
    };
    if options.session_tickets {
        config.ticketer =
            rustls::crypto::ring::Ticketer::new().map_err(|e| TlsError::Config(e.to_string()))?;
    } else if options.session_cache == 0 {
        // Without a ticketer TLS 1.3 tickets are cache keys; with no cache
        // either, they could never resume, so none are sent.
        config.send_tls13_tickets = 0;
    }
    Ok(Arc::new(config))
}
