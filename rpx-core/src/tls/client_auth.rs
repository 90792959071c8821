//! Client certificates the nginx way: the handshake accepts any
//! certificate the client proves it owns; the chain is verified afterwards,
//! so that a missing or untrusted certificate gets an HTTP 400 (as nginx
//! answers) instead of a TLS alert the user cannot read.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use super::info::ClientVerify;
use super::pem::{load_certs, provider, TlsError};

/// `ssl_verify_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMode {
    /// `on`: requests without a verified certificate get 400.
    Required,
    /// `optional`: verified when sent; `$ssl_client_verify` tells.
    Optional,
    /// `optional_no_ca`: asked for, never required; not checked against the CA.
    OptionalNoCa,
}

/// Client-certificate settings of a TLS listener.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    mode: ClientAuthMode,
    /// The real verifier, run after the handshake.
    verifier: Arc<dyn ClientCertVerifier>,
}

impl ClientAuth {
    /// Trust the CAs in `ca_file` (`ssl_client_certificate`).
    ///
    /// # Errors
    /// The file cannot be loaded or holds no usable CA.
    pub fn from_ca_file(ca_file: &Path, mode: ClientAuthMode) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in load_certs(ca_file)? {
            roots.add(cert).map_err(|e| TlsError::Read {
                path: ca_file.to_owned(),
                message: format!("not a usable CA certificate: {e}"),
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(ClientAuth { mode, verifier })
    }

    /// The mode.
    pub fn mode(&self) -> ClientAuthMode {
        self.mode
    }

    /// The verifier the handshake uses: it asks for a certificate and checks
    /// possession of its key, nothing more.
    pub(crate) fn handshake_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(AcceptOffered {
            inner: self.verifier.clone(),
        })
    }

    /// Verifies the chain the client presented.
    pub fn verify(&self, chain: Option<&[CertificateDer<'_>]>) -> ClientVerify {
        let Some((end, intermediates)) = chain.and_then(|c| c.split_first()) else {
            return ClientVerify::None;
        };
        if self.mode == ClientAuthMode::OptionalNoCa {
            return ClientVerify::Success;
        }
        match self
            .verifier
            .verify_client_cert(end, intermediates, UnixTime::now())
        {
            Ok(_) => ClientVerify::Success,
            Err(e) => ClientVerify::Failed(e.to_string()),
        }
    }
}

#[derive(Debug)]
struct AcceptOffered {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for AcceptOffered {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
