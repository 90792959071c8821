//! Automatic HTTPS: certificates ordered from an ACME CA (Let's Encrypt),
//! kept in a state directory, renewed in the background, and served to
//! new handshakes as soon as they exist.
//!
//! An [`AcmeManager`] holds the issuers (accounts) and the certificates.
//! It hands out a [`CertSlot`] per certificate for the listeners'
//! [`CertResolver`](crate::tls::CertResolver)s, and the [`Challenges`] the
//! listeners answer with: http-01 ahead of routing ([`Http01Layer`]),
//! tls-alpn-01 in the resolver. [`AcmeManager::start`] spawns one task per
//! certificate that orders it when missing or due, retries failures with
//! back-off, and never replaces a valid certificate by nothing.

mod challenge;
mod client;
mod dns_hook;
mod issuer;
mod managed;
mod order;
mod schedule;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub use challenge::{Challenges, Http01, Http01Body, Http01Layer, ACME_TLS_ALPN, HTTP01_PREFIX};

use crate::config::{AcmeIssuerConfig, SourcePos};
use crate::tls::CertSlot;
use issuer::Issuer;
use managed::ManagedCert;

/// Why an ACME step failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA refused or could not be reached; the text is the CA's.
    #[error("ACME server: {0}")]
    Ca(String),
    /// The order could not be completed (a challenge failed, no usable
    /// challenge type…).
    #[error("{0}")]
    Order(String),
    /// The dns-01 hook failed.
    #[error("{0}")]
    Hook(String),
    /// Making a key or CSR failed.
    #[error("key: {0}")]
    Key(String),
    /// The state directory could not be used.
    #[error("{path}: {source}")]
    State {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The configuration cannot work.
    #[error("{0}")]
    Config(String),
}

impl AcmeError {
    fn ca(e: instant_acme::Error) -> Self {
        AcmeError::Ca(e.to_string())
    }
}

/// The private key type of a certificate (`key=` of `acme_certificate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyAlg {
    /// ECDSA P-256, the default.
    #[default]
    EcdsaP256,
    /// ECDSA P-384.
    EcdsaP384,
    /// RSA, 2048-bit modulus.
    Rsa2048,
    /// RSA, 3072-bit modulus.
    Rsa3072,
    /// RSA, 4096-bit modulus.
    Rsa4096,
}

const KEY_NAMES: &str = "ecdsa:256, ecdsa:384, rsa:2048, rsa:3072, rsa:4096";

impl KeyAlg {
    /// Parses `ecdsa:256`, `ecdsa:384`, `rsa:2048`, `rsa:3072`, `rsa:4096`
    /// (`ecdsa` alone is P-256, `rsa` alone 2048 bits), in any case.
    ///
    /// # Errors
    /// Other algorithms and sizes (P-521: *ring* has no P-521 signing),
    /// with a message listing the accepted ones.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "ecdsa" | "ecdsa:256" => Ok(KeyAlg::EcdsaP256),
            "ecdsa:384" => Ok(KeyAlg::EcdsaP384),
            "rsa" | "rsa:2048" => Ok(KeyAlg::Rsa2048),
            "rsa:3072" => Ok(KeyAlg::Rsa3072),
            "rsa:4096" => Ok(KeyAlg::Rsa4096),
            _ => Err(format!("key={s} is not available: use one of {KEY_NAMES}")),
        }
    }

    /// The name `parse` takes.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::EcdsaP256 => "ecdsa:256",
            KeyAlg::EcdsaP384 => "ecdsa:384",
            KeyAlg::Rsa2048 => "rsa:2048",
            KeyAlg::Rsa3072 => "rsa:3072",
            KeyAlg::Rsa4096 => "rsa:4096",
        }
    }

    /// The RSA modulus size in bits; `None` for ECDSA.
    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyAlg::EcdsaP256 | KeyAlg::EcdsaP384 => None,
            KeyAlg::Rsa2048 => Some(2048),
            KeyAlg::Rsa3072 => Some(3072),
            KeyAlg::Rsa4096 => Some(4096),
        }
    }

    /// rcgen's signature algorithm for a key of this type.
    fn signature(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyAlg::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlg::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
        }
    }

    /// True when `pki` (a certificate's public key) is a key of this type
    /// and size.
    fn matches(self, pki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> bool {
        use x509_parser::public_key::PublicKey;
        match (self, pki.parsed()) {
            (KeyAlg::EcdsaP256, Ok(PublicKey::EC(point))) => point.key_size() == 256,
            (KeyAlg::EcdsaP384, Ok(PublicKey::EC(point))) => point.key_size() == 384,
            (KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096, Ok(PublicKey::RSA(rsa))) => {
                Some(rsa.key_size()) == self.rsa_bits()
            }
            _ => false,
        }
    }

    /// A new private key. RSA keys take a while (tens of milliseconds to
    /// seconds): call it off the async threads (`spawn_blocking`).
    fn generate(self) -> Result<rcgen::KeyPair, AcmeError> {
        let err = |e: String| AcmeError::Key(e);
        let Some(bits) = self.rsa_bits() else {
            return rcgen::KeyPair::generate_for(self.signature()).map_err(|e| err(e.to_string()));
        };
        // *ring* signs with RSA keys but cannot make them, so the `rsa`
        // crate only generates the key and hands it over as PKCS#8; all
        // signing is ring's (CSR here, handshakes in rustls). Its
        // RUSTSEC-2023-0071 (Marvin: timing of RSA decryption) therefore
        // does not apply: we never decrypt or sign with `rsa`.
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
            .map_err(|e| err(e.to_string()))?;
        let der = key.to_pkcs8_der().map_err(|e| err(e.to_string()))?;
        let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, self.signature())
            .map_err(|e| err(e.to_string()))
    }
}

/// Settings that are not in config files: defaults fit production; tests
/// and embedders may shorten the waits.
#[derive(Debug, Clone)]
pub struct AcmeOptions {
    /// The state directory of issuers without `state_path`: `<dir>/<issuer>`.
    /// Default `$STATE_DIRECTORY/acme` (systemd's `StateDirectory=`), else
    /// `/var/lib/rpx/acme`.
    pub default_state_dir: PathBuf,
    /// First wait after a failed order; doubled per failure. Default 60 s.
    pub retry_min: Duration,
    /// Longest wait between two attempts. Default 6 h.
    pub retry_max: Duration,
}

impl Default for AcmeOptions {
    fn default() -> Self {
        let base = std::env::var_os("STATE_DIRECTORY")
            .map(|d| {
                // systemd may list several, separated by colons.
                let first = d
                    .to_string_lossy()
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .to_owned();
                PathBuf::from(first)
            })
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("/var/lib/rpx"));
        AcmeOptions {
            default_state_dir: base.join("acme"),
            retry_min: Duration::from_secs(60),
            retry_max: Duration::from_secs(6 * 3600),
        }
    }
}

/// What a certificate looks like now, for summaries and status pages.
#[derive(Debug, Clone)]
pub struct CertificateStatus {
    /// The issuer's name.
    pub issuer: String,
    /// The names on the certificate.
    pub names: Vec<String>,
    /// When the current certificate expires; `None` until one is issued.
    pub not_after: Option<SystemTime>,
    /// The last failure, until an order succeeds.
    pub last_error: Option<String>,
}

/// Issuers and the certificates ordered from them.
///
/// ```no_run
/// use rpx_core::acme::{AcmeManager, AcmeOptions, KeyAlg};
/// use rpx_core::config::AcmeIssuerConfig;
/// use rpx_core::tls::CertResolver;
///
/// # async fn run() {
/// let mut issuer = AcmeIssuerConfig::new("le", rpx_core::config::acme::LETSENCRYPT);
/// issuer.contact.push("mailto:admin@example.com".into());
/// issuer.accept_terms_of_service = true;
/// let acme = AcmeManager::new(&[issuer], AcmeOptions::default(), None).unwrap();
/// let slot = acme.certificate("le", &["app.example.com".into()], KeyAlg::default()).unwrap();
///
/// let resolver = CertResolver::new();
/// resolver.add_slot(&["app.example.com"], &slot, true);
/// resolver.answer_tls_alpn01(acme.challenges().clone());
/// // Serve plain HTTP through `acme.http01_layer()`, TLS with `resolver`…
/// acme.start(); // orders in the background; `slot` fills when issued
/// # }
/// ```
#[derive(Debug)]
pub struct AcmeManager {
    issuers: HashMap<String, Arc<Issuer>>,
    /// The certificates asked for from this manager.
    certs: Mutex<Vec<Arc<ManagedCert>>>,
    /// The previous manager's, until [`AcmeManager::start`]: asking for
    /// one of them moves it to `certs`.
    carried: Mutex<Vec<Arc<ManagedCert>>>,
    challenges: Arc<Challenges>,
    /// Bumped after every order attempt, shared across reloads.
    events: Arc<tokio::sync::watch::Sender<u64>>,
    options: AcmeOptions,
}

impl AcmeManager {
    /// A manager for `issuers`. Issuers and certificates that `previous`
    /// (the manager of the config before a reload) has with the same
    /// settings are carried over with their account, certificate and
    /// running task.
    ///
    /// # Errors
    /// Each issuer whose settings cannot work (an unreadable trusted CA
    /// file, a state directory that cannot be created…), with its position.
    pub fn new(
        issuers: &[AcmeIssuerConfig],
        options: AcmeOptions,
        previous: Option<&AcmeManager>,
    ) -> Result<Self, Vec<(SourcePos, AcmeError)>> {
        let mut errors = Vec::new();
        let mut map = HashMap::new();
        for cfg in issuers {
            let reused = previous
                .and_then(|p| p.issuers.get(&cfg.name))
                .filter(|i| i.config() == cfg)
                .cloned();
            let issuer = match reused {
                Some(i) => i,
                None => match Issuer::new(cfg, &options) {
                    Ok(i) => Arc::new(i),
                    Err(e) => {
                        errors.push((cfg.pos.clone(), e));
                        continue;
                    }
                },
            };
            if map.insert(cfg.name.clone(), issuer).is_some() {
                errors.push((
                    cfg.pos.clone(),
                    AcmeError::Config(format!("duplicate acme_issuer \"{}\"", cfg.name)),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let carried = previous.map(|p| lock(&p.certs).clone()).unwrap_or_default();
        Ok(AcmeManager {
            issuers: map,
            certs: Mutex::new(Vec::new()),
            carried: Mutex::new(carried),
            challenges: previous.map_or_else(Default::default, |p| p.challenges.clone()),
            events: previous.map_or_else(
                || Arc::new(tokio::sync::watch::channel(0).0),
                |p| p.events.clone(),
            ),
            options,
        })
    }

    /// The slot of the certificate for `names` from `issuer`: loaded from
    /// the state directory when a valid one is stored there, filled by
    /// [`AcmeManager::start`]'s task otherwise. Asking twice for the same
    /// certificate gives the same slot.
    ///
    /// # Errors
    /// An unknown issuer, no names, or a wildcard without dns-01.
    pub fn certificate(
        &self,
        issuer: &str,
        names: &[String],
        key: KeyAlg,
    ) -> Result<CertSlot, AcmeError> {
        let Some(issuer) = self.issuers.get(issuer) else {
            return Err(AcmeError::Config(format!(
                "no acme_issuer named \"{issuer}\""
            )));
        };
        if names.is_empty() {
            return Err(AcmeError::Config(
                "a certificate needs at least one name: give server_name or identifiers".into(),
            ));
        }
        let mut names: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        names.dedup();
        if let Some(bad) = names
            .iter()
            .find(|n| n.starts_with('~') || n.contains('*') && !n.starts_with("*."))
        {
            return Err(AcmeError::Config(format!(
                "\"{bad}\" cannot be on a certificate (regular expressions and `wild.*` names are not)"
            )));
        }
        if names.iter().any(|n| n.starts_with("*."))
            && issuer.config().challenge != crate::config::AcmeChallenge::Dns01
        {
            return Err(AcmeError::Config(
                "wildcard names need `challenge dns` and a dns_hook (CAs validate wildcards by DNS only)"
                    .into(),
            ));
        }
        let same = |c: &Arc<ManagedCert>| {
            Arc::ptr_eq(c.issuer(), issuer) && c.names() == names && c.key() == key
        };
        let mut certs = lock(&self.certs);
        if let Some(c) = certs.iter().find(|c| same(c)) {
            return Ok(c.slot().clone());
        }
        let mut carried = lock(&self.carried);
        let cert = match carried.iter().position(same) {
            Some(i) => carried.swap_remove(i),
            None => Arc::new(ManagedCert::new(
                issuer.clone(),
                names,
                key,
                self.challenges.clone(),
                self.events.clone(),
                self.options.clone(),
            )),
        };
        let slot = cert.slot().clone();
        certs.push(cert);
        Ok(slot)
    }

    /// The challenge answers to serve: give them to the TLS listeners'
    /// resolvers and put [`AcmeManager::http01_layer`] in front of the
    /// plain-HTTP service.
    pub fn challenges(&self) -> &Arc<Challenges> {
        &self.challenges
    }

    /// Answers http-01 challenges ahead of the wrapped service.
    pub fn http01_layer(&self) -> Http01Layer {
        Http01Layer::new(self.challenges.clone())
    }

    /// Starts the background task of every certificate asked for with
    /// [`AcmeManager::certificate`] (once each; carried-over ones keep
    /// theirs). Certificates carried over from a previous manager but not
    /// asked for again are dropped here. The tasks end when the manager
    /// holding their certificate is gone.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(&self) {
        lock(&self.carried).clear();
        for c in lock(&self.certs).iter() {
            c.start();
        }
    }

    /// Changes after every order attempt, issued or failed: wait on it,
    /// then read [`AcmeManager::status`].
    pub fn events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Every certificate's state.
    pub fn status(&self) -> Vec<CertificateStatus> {
        lock(&self.certs).iter().map(|c| c.status()).collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod key_tests {
    use super::KeyAlg;

    #[test]
    fn key_names() {
        for (name, alg) in [
            ("ecdsa", KeyAlg::EcdsaP256),
            ("ECDSA:256", KeyAlg::EcdsaP256),
            ("ecdsa:384", KeyAlg::EcdsaP384),
            ("rsa", KeyAlg::Rsa2048),
            ("RSA:2048", KeyAlg::Rsa2048),
            ("rsa:3072", KeyAlg::Rsa3072),
            ("rsa:4096", KeyAlg::Rsa4096),
        ] {
            assert_eq!(KeyAlg::parse(name), Ok(alg), "{name}");
            assert_eq!(KeyAlg::parse(alg.name()), Ok(alg));
        }
        for bad in ["ecdsa:521", "rsa:1024", "rsa:8192", "rsa:", "ed25519", ""] {
            assert_eq!(
                KeyAlg::parse(bad).unwrap_err(),
                format!("key={bad} is not available: use one of ecdsa:256, ecdsa:384, rsa:2048, rsa:3072, rsa:4096")
            );
        }
    }

    /// A generated key signs a CSR whose public key is of the asked type.
    #[test]
    fn generated_keys_are_what_was_asked() {
        for alg in [KeyAlg::EcdsaP256, KeyAlg::EcdsaP384, KeyAlg::Rsa2048] {
            let key = alg.generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["a.test".into()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
            assert!(alg.matches(parsed.public_key()), "{alg:?}");
            for other in [
                KeyAlg::EcdsaP256,
                KeyAlg::EcdsaP384,
                KeyAlg::Rsa2048,
                KeyAlg::Rsa3072,
                KeyAlg::Rsa4096,
            ] {
                assert_eq!(other.matches(parsed.public_key()), other == alg);
            }
            // rustls (ring) can serve with it.
            let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
            assert!(crate::tls::provider()
                .key_provider
                .load_private_key(der)
                .is_ok());
        }
    }
}
