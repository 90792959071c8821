//! ACME settings in the config model: issuers (`acme_issuer` / `[acme]`)
//! and the per-server choice of an automatic certificate.

use std::path::PathBuf;

use super::{SourcePos, Spanned};

/// How the CA checks that we control a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AcmeChallenge {
    /// `http-01`: a token under `/.well-known/acme-challenge/` on port 80.
    #[default]
    Http01,
    /// `tls-alpn-01`: a special certificate on port 443 (RFC 8737).
    TlsAlpn01,
    /// `dns-01`: a TXT record, set by a hook command; needed for wildcards.
    Dns01,
}

impl AcmeChallenge {
    /// Parses nginx's and rpx's names: `http-01`/`http`, `tls-alpn-01`/`tls-alpn`, `dns-01`/`dns`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "http-01" | "http" => Some(AcmeChallenge::Http01),
            "tls-alpn-01" | "tls-alpn" => Some(AcmeChallenge::TlsAlpn01),
            "dns-01" | "dns" => Some(AcmeChallenge::Dns01),
            _ => None,
        }
    }

    /// The RFC 8555 name.
    pub fn as_str(self) -> &'static str {
        match self {
            AcmeChallenge::Http01 => "http-01",
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
            AcmeChallenge::Dns01 => "dns-01",
        }
    }
}

/// Where an issuer keeps its account and certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcmeState {
    /// A directory (created if missing; files 0600).
    Dir(PathBuf),
    /// `state_path off`: kept in memory; every start orders anew.
    Memory,
}

/// One ACME certificate authority account (`acme_issuer name { … }`).
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeIssuerConfig {
    /// Where the block starts.
    pub pos: SourcePos,
    /// The issuer's name, referred to by `acme_certificate`.
    pub name: String,
    /// The directory URL (`uri`).
    pub directory: Spanned<String>,
    /// Contact URLs (`mailto:` added to bare addresses).
    pub contact: Vec<String>,
    /// `state_path`; `None` picks the default directory.
    pub state: Option<AcmeState>,
    /// `accept_terms_of_service`.
    pub accept_terms_of_service: bool,
    /// `account_key`: `ecdsa:256` or a PEM file (PKCS#8, P-256).
    pub account_key: Option<Spanned<String>>,
    /// `challenge`.
    pub challenge: AcmeChallenge,
    /// `dns_hook`: the command called with `present|cleanup <domain> <txt>`.
    pub dns_hook: Option<Spanned<String>>,
    /// `ssl_trusted_certificate`: CAs for the ACME server's own TLS.
    pub ssl_trusted_certificate: Option<Spanned<String>>,
    /// `ssl_verify`: check the ACME server's certificate. Default on.
    pub ssl_verify: bool,
    /// `external_account_key kid file|data:key` (base64url MAC key).
    pub external_account_key: Option<(String, Spanned<String>)>,
}

impl AcmeIssuerConfig {
    /// An issuer for `directory`, everything else default.
    pub fn new(name: impl Into<String>, directory: impl Into<String>) -> Self {
        AcmeIssuerConfig {
            pos: SourcePos::code(),
            name: name.into(),
            directory: Spanned::code(directory.into()),
            contact: Vec::new(),
            state: None,
            accept_terms_of_service: false,
            account_key: None,
            challenge: AcmeChallenge::default(),
            dns_hook: None,
            ssl_trusted_certificate: None,
            ssl_verify: true,
            external_account_key: None,
        }
    }
}

/// `acme_certificate issuer [identifiers…] [key=alg:size]` of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeCertificateConfig {
    /// Where it was written.
    pub pos: SourcePos,
    /// The issuer's name.
    pub issuer: String,
    /// Names on the certificate; empty: the server's `server_name`s.
    pub identifiers: Vec<String>,
    /// `key=` (TOML `acme_key`): `ecdsa:256` (default), `ecdsa:384`,
    /// `rsa:2048`, `rsa:3072`, `rsa:4096`; `ecdsa` alone is P-256, `rsa`
    /// alone 2048 bits. Checked when the config is compiled
    /// ([`crate::acme::KeyAlg::parse`]): anything else is an error there.
    pub key: Option<Spanned<String>>,
}

impl AcmeCertificateConfig {
    /// A certificate from `issuer` for the server's names.
    pub fn new(issuer: impl Into<String>) -> Self {
        AcmeCertificateConfig {
            pos: SourcePos::code(),
            issuer: issuer.into(),
            identifiers: Vec::new(),
            key: None,
        }
    }
}

/// Let's Encrypt's production directory.
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, high limits).
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// A directory URL from rpx's shortcuts (`letsencrypt`, `letsencrypt-staging`) or a URL.
pub fn directory_url(s: &str) -> &str {
    match s {
        "letsencrypt" => LETSENCRYPT,
        "letsencrypt-staging" => LETSENCRYPT_STAGING,
        other => other,
    }
}
