//! PEM files to rustls types, with errors that name the file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS file or setting problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file cannot be read or is not PEM.
    #[error("{}: cannot load: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// No certificate in a certificate file.
    #[error("{}: no certificate found", .0.display())]
    NoCertificate(PathBuf),
    /// The key cannot be used.
    #[error("{}: unusable private key: {message}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The key is not the certificate's.
    #[error("{}: the private key does not match the certificate in {}", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A rustls configuration error.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider rpx uses (ring), built once.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Every certificate in a PEM file (a chain, or a CA bundle).
///
/// # Errors
/// Unreadable file, bad PEM, or no certificate.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_err = |e: rustls_pki_types::pem::Error| TlsError::Read {
        path: path.to_owned(),
        message: pem_message(e),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// A certificate chain and its key (PKCS#1, PKCS#8 or SEC1; RSA or ECDSA),
/// checked to belong together.
///
/// # Errors
/// Unreadable files, no certificate, unusable key, or a key of another certificate.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = load_certs(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Read {
        path: key.to_owned(),
        message: pem_message(e),
    })?;
    CertifiedKey::from_der(chain, key_der, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
        },
        other => TlsError::Key {
            path: key.to_owned(),
            message: other.to_string(),
        },
    })
}

/// When a certificate expires, if it parses.
pub fn cert_not_after(cert: &CertificateDer<'_>) -> Option<SystemTime> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let secs = parsed.validity().not_after.timestamp();
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

fn pem_message(e: rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM item found".into(),
        other => format!("{other:?}"),
    }
}
