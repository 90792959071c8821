//! TLS to upstreams (`proxy_pass https://…`).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::pem::{load_certified_key, load_certs, provider, TlsError};

/// How a location talks TLS to its upstream (nginx's `proxy_ssl_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// `proxy_ssl_verify`: check the upstream's certificate.
    pub verify: bool,
    /// `proxy_ssl_trusted_certificate`: CAs to trust instead of the system's.
    pub trusted: Option<PathBuf>,
    /// `proxy_ssl_name`: the name to verify (and send as SNI); default the
    /// host of `proxy_pass`.
    pub name: Option<String>,
    /// `proxy_ssl_server_name`: send SNI. nginx's default is off.
    pub server_name: bool,
    /// `proxy_ssl_certificate` + `proxy_ssl_certificate_key`: a client certificate.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `proxy_ssl_session_reuse`. Default on.
    pub session_reuse: bool,
}

impl Default for UpstreamTls {
    /// Verification on with the system's CAs, SNI on, resumption on: what
    /// a TOML config gets unless it says otherwise.
    fn default() -> Self {
        UpstreamTls {
            verify: true,
            trusted: None,
            name: None,
            server_name: true,
            client_cert: None,
            session_reuse: true,
        }
    }
}

/// The rustls client config for `tls`; ALPN `http/1.1`.
///
/// # Errors
/// A CA or client certificate file that cannot be loaded.
pub fn client_config(tls: &UpstreamTls) -> Result<Arc<ClientConfig>, TlsError> {
    config_with_alpn(tls, &[b"http/1.1"])
}

/// [`client_config`] offering HTTP/2 first: ALPN `h2`, `http/1.1`. The
/// server's pick decides the protocol of each connection.
///
/// # Errors
/// A CA or client certificate file that cannot be loaded.
pub fn client_config_h2(tls: &UpstreamTls) -> Result<Arc<ClientConfig>, TlsError> {
    config_with_alpn(tls, &[b"h2", b"http/1.1"])
}

fn config_with_alpn(tls: &UpstreamTls, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if tls.verify {
        builder.with_root_certificates(roots(tls)?)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate))
    };
    let mut config = match &tls.client_cert {
        Some((cert, key)) => {
            let ck = load_certified_key(cert, key)?;
            builder
                .with_client_auth_cert(ck.cert.clone(), reload_key(key)?)
                .map_err(|e| TlsError::Config(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.enable_sni = tls.server_name;
    config.resumption = if tls.session_reuse {
        Resumption::default()
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(config))
}

fn reload_key(
    key: &std::path::Path,
) -> Result<rustls::pki_types::PrivateKeyDer<'static>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Read {
        path: key.to_owned(),
        message: format!("{e:?}"),
    })
}

fn roots(tls: &UpstreamTls) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match &tls.trusted {
        Some(path) => {
            for cert in load_certs(path)? {
                roots.add(cert).map_err(|e| TlsError::Read {
                    path: path.clone(),
                    message: format!("not a usable CA certificate: {e}"),
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(roots)
}

/// Accepts any server certificate (`proxy_ssl_verify off`, and load
/// generators on loopback); handshake signatures are still checked, so the
/// peer must own the key of the certificate it shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAnyCertificate;

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
