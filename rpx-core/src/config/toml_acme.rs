//! `[acme]` in TOML: as short as Caddy's.
//!
//! ```toml
//! [acme]
//! email = "admin@example.com"
//! # directory = "letsencrypt"   # or "letsencrypt-staging", or a directory URL
//! # state = "/var/lib/rpx/acme" # "off": memory only
//!
//! [[server]]
//! listen = ["0.0.0.0:443 ssl"]
//! server_name = ["app.example.com"]
//! acme = true                    # this server's certificate is automatic
//! ```
//!
//! More issuers: `[acme.issuer.NAME]` tables (the same keys), chosen with
//! `acme = "NAME"` in the servers.

use serde::Deserialize;
use toml::Spanned;

use super::acme::{directory_url, AcmeChallenge, AcmeIssuerConfig, AcmeState};
use super::error::ConfigError;
use super::model::SourcePos;

/// The issuer name of a single `[acme]` table without `name`.
pub(crate) const DEFAULT_ISSUER: &str = "acme";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAcme {
    #[serde(default)]
    name: Option<String>,
    /// More issuers, by name (only in the top-level `[acme]`).
    #[serde(default)]
    issuer: std::collections::BTreeMap<String, Spanned<RawAcme>>,
    #[serde(default)]
    email: Option<Spanned<OneOrMany>>,
    #[serde(default)]
    directory: Option<Spanned<String>>,
    #[serde(default)]
    state: Option<Spanned<String>>,
    #[serde(default)]
    challenge: Option<Spanned<String>>,
    #[serde(default)]
    dns_hook: Option<Spanned<String>>,
    #[serde(default)]
    ca_certificate: Option<Spanned<String>>,
    #[serde(default)]
    verify: Option<bool>,
    #[serde(default)]
    accept_terms: Option<bool>,
    #[serde(default)]
    account_key: Option<Spanned<String>>,
    #[serde(default)]
    external_account_key: Option<Spanned<RawEab>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEab {
    kid: String,
    /// The base64url MAC key itself, or `key_file` naming a file with it.
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    key_file: Option<String>,
}

/// A server's `acme = true | "issuer"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawServerAcme {
    On(bool),
    Issuer(String),
}

/// Reads the issuers; `at` turns a span start into a position.
pub(super) fn read_acme(
    raw: Spanned<RawAcme>,
    at: &dyn Fn(usize) -> SourcePos,
    errors: &mut Vec<ConfigError>,
) -> Vec<AcmeIssuerConfig> {
    let pos = at(raw.span().start);
    let mut raw = raw.into_inner();
    let more = std::mem::take(&mut raw.issuer);
    let name = raw.name.take().unwrap_or_else(|| DEFAULT_ISSUER.to_owned());
    let mut out = vec![issuer(name, raw, pos, at, errors)];
    for (name, raw) in more {
        let pos = at(raw.span().start);
        let raw = raw.into_inner();
        if !raw.issuer.is_empty() || raw.name.is_some() {
            errors.push(ConfigError::new(
                pos.clone(),
                format!("[acme.issuer.{name}] takes no `name` nor nested issuers"),
            ));
        }
        out.push(issuer(name, raw, pos, at, errors));
    }
    out
}

fn issuer(
    name: String,
    raw: RawAcme,
    pos: SourcePos,
    at: &dyn Fn(usize) -> SourcePos,
    errors: &mut Vec<ConfigError>,
) -> AcmeIssuerConfig {
    {
        let directory = raw.directory.map_or_else(
            || super::Spanned::new(super::acme::LETSENCRYPT.to_owned(), pos.clone()),
            |d| super::Spanned::new(directory_url(d.get_ref()).to_owned(), at(d.span().start)),
        );
        let mut issuer = AcmeIssuerConfig::new(name, "");
        issuer.pos = pos.clone();
        issuer.directory = directory;
        issuer.contact = match raw.email.map(Spanned::into_inner) {
            None => Vec::new(),
            Some(OneOrMany::One(e)) => vec![contact_url(&e)],
            Some(OneOrMany::Many(list)) => list.iter().map(|e| contact_url(e)).collect(),
        };
        issuer.state = raw.state.map(|s| match s.get_ref().as_str() {
            "off" => AcmeState::Memory,
            dir => AcmeState::Dir(dir.into()),
        });
        if let Some(c) = raw.challenge {
            match AcmeChallenge::parse(c.get_ref()) {
                Some(kind) => issuer.challenge = kind,
                None => errors.push(
                    ConfigError::new(
                        at(c.span().start),
                        format!("unknown challenge {:?}", c.get_ref()),
                    )
                    .hint("use \"http-01\", \"tls-alpn-01\" or \"dns-01\""),
                ),
            }
        }
        let spanned =
            |s: Spanned<String>| super::Spanned::new(s.get_ref().clone(), at(s.span().start));
        issuer.dns_hook = raw.dns_hook.map(spanned);
        issuer.ssl_trusted_certificate = raw.ca_certificate.map(spanned);
        issuer.account_key = raw.account_key.map(spanned);
        issuer.ssl_verify = raw.verify.unwrap_or(true);
        // Caddy's convention: configuring automatic HTTPS is agreeing to
        // the CA's terms; `accept_terms = false` says otherwise.
        issuer.accept_terms_of_service = raw.accept_terms.unwrap_or(true);
        if let Some(e) = raw.external_account_key {
            let p = at(e.span().start);
            let e = e.into_inner();
            let value = match (e.key, e.key_file) {
                (Some(k), None) => Some(format!("data:{k}")),
                (None, Some(f)) => Some(f),
                _ => {
                    errors.push(ConfigError::new(
                        p.clone(),
                        "external_account_key needs `key` or `key_file` (one of them)",
                    ));
                    None
                }
            };
            issuer.external_account_key = value.map(|v| (e.kid, super::Spanned::new(v, p)));
        }
        if issuer.challenge == AcmeChallenge::Dns01 && issuer.dns_hook.is_none() {
            errors.push(
                ConfigError::new(pos.clone(), "challenge \"dns-01\" needs a dns_hook")
                    .hint("dns_hook = \"/path/to/script\", called with present|cleanup <domain> <txt-value>"),
            );
        }
        issuer
    }
}

/// `admin@example.com` → `mailto:admin@example.com`; URLs stay.
pub(crate) fn contact_url(s: &str) -> String {
    if s.contains(':') {
        s.to_owned()
    } else {
        format!("mailto:{s}")
    }
}

/// `[acme]` (the first issuer) with `[acme.issuer.NAME]` for the others, for `rpx convert`.
pub(super) fn acme_value(issuers: &[AcmeIssuerConfig]) -> Option<toml::Value> {
    use toml::Value;
    let mut tables = issuers.iter().enumerate().map(|(n, i)| {
        let mut t = toml::Table::new();
        if n == 0 && i.name != DEFAULT_ISSUER {
            t.insert("name".into(), Value::String(i.name.clone()));
        }
        t.insert("directory".into(), Value::String(i.directory.value.clone()));
        let emails: Vec<Value> = i
            .contact
            .iter()
            .map(|c| Value::String(c.strip_prefix("mailto:").unwrap_or(c).to_owned()))
            .collect();
        if !emails.is_empty() {
            t.insert("email".into(), Value::Array(emails));
        }
        match &i.state {
            Some(AcmeState::Memory) => {
                t.insert("state".into(), Value::String("off".into()));
            }
            Some(AcmeState::Dir(d)) => {
                t.insert("state".into(), Value::String(d.display().to_string()));
            }
            None => {}
        }
        if i.challenge != AcmeChallenge::Http01 {
            t.insert(
                "challenge".into(),
                Value::String(i.challenge.as_str().into()),
            );
        }
        for (key, v) in [
            ("dns_hook", &i.dns_hook),
            ("ca_certificate", &i.ssl_trusted_certificate),
            ("account_key", &i.account_key),
        ] {
            if let Some(v) = v {
                t.insert(key.into(), Value::String(v.value.clone()));
            }
        }
        if !i.ssl_verify {
            t.insert("verify".into(), Value::Boolean(false));
        }
        // nginx's default is not to agree; TOML's is to agree.
        t.insert(
            "accept_terms".into(),
            Value::Boolean(i.accept_terms_of_service),
        );
        if let Some((kid, key)) = &i.external_account_key {
            let mut e = toml::Table::new();
            e.insert("kid".into(), Value::String(kid.clone()));
            match key.value.strip_prefix("data:") {
                Some(inline) => e.insert("key".into(), Value::String(inline.into())),
                None => e.insert("key_file".into(), Value::String(key.value.clone())),
            };
            t.insert("external_account_key".into(), Value::Table(e));
        }
        (i.name.clone(), t)
    });
    let (_, mut first) = tables.next()?;
    let more: toml::Table = tables.map(|(name, t)| (name, Value::Table(t))).collect();
    if !more.is_empty() {
        first.insert("issuer".into(), Value::Table(more));
    }
    Some(Value::Table(first))
}

/// A server's `acme`, `acme_identifiers`, `acme_key`.
pub(super) fn server_acme(
    cert: &super::acme::AcmeCertificateConfig,
    first_issuer: Option<&str>,
    t: &mut toml::Table,
) {
    use toml::Value;
    let choice = if first_issuer == Some(cert.issuer.as_str()) {
        Value::Boolean(true)
    } else {
        Value::String(cert.issuer.clone())
    };
    t.insert("acme".into(), choice);
    if !cert.identifiers.is_empty() {
        let ids = cert
            .identifiers
            .iter()
            .cloned()
            .map(Value::String)
            .collect();
        t.insert("acme_identifiers".into(), Value::Array(ids));
    }
    if let Some(k) = &cert.key {
        t.insert("acme_key".into(), Value::String(k.value.clone()));
    }
    // nginx's `ssl_certificate $acme_certificate` says nothing in TOML.
    for key in ["ssl_certificate", "ssl_certificate_key"] {
        if t.get(key)
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("$acme_"))
        {
            t.remove(key);
        }
    }
}
