//! A listener's TLS settings and the task that reloads its certificate
//! files; the handshake itself is [`crate::tls::TlsAcceptorLayer`].

use std::sync::Arc;
use std::time::Duration;

use crate::tls::{CertResolver, ClientAuth, TlsAcceptorLayer};

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
    /// The acceptor of these settings, over a connection service.
    pub fn acceptor(&self, handshake_timeout: Duration) -> TlsAcceptorLayer {
        TlsAcceptorLayer::new(self.config.clone(), handshake_timeout)
            .client_auth(self.client_auth.clone())
    }
}
