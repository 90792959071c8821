//! `acme_issuer {}` and `acme_certificate`, as nginx's ngx_http_acme_module
//! writes them (plus rpx's `challenge dns` with `dns_hook`).

use super::super::directives::ACME;
use super::super::Directive;
use super::{at, words, Mapper};
use crate::config::acme::{AcmeCertificateConfig, AcmeChallenge, AcmeIssuerConfig, AcmeState};
use crate::config::model::Spanned;
use crate::config::toml_acme::contact_url;

impl Mapper {
    pub(super) fn acme_issuer(&mut self, d: &Directive) {
        let name = d.args[0].value.clone();
        let mut issuer = AcmeIssuerConfig::new(name, "");
        issuer.pos = at(&d.pos);
        let mut uri = None;
        for c in d.block.as_deref().unwrap_or_default() {
            if self.check(c, ACME).is_none() {
                continue;
            }
            let w = words(c);
            let value = || Spanned::new(w[0].to_owned(), at(&c.pos));
            match c.name.as_str() {
                "uri" => uri = Some(value()),
                "contact" => issuer.contact.push(contact_url(w[0])),
                "state_path" => {
                    issuer.state = Some(if w[0] == "off" {
                        AcmeState::Memory
                    } else {
                        AcmeState::Dir(w[0].into())
                    });
                }
                "accept_terms_of_service" => issuer.accept_terms_of_service = true,
                "account_key" => issuer.account_key = Some(value()),
                "challenge" => match AcmeChallenge::parse(w[0]) {
                    Some(kind) => issuer.challenge = kind,
                    None => self.err(
                        c,
                        format!(
                            "invalid challenge \"{}\": use http-01, tls-alpn-01 or dns-01",
                            w[0]
                        ),
                    ),
                },
                "dns_hook" => issuer.dns_hook = Some(value()),
                "ssl_trusted_certificate" => issuer.ssl_trusted_certificate = Some(value()),
                "ssl_verify" => {
                    if let Some(on) = self.flag(c) {
                        issuer.ssl_verify = on;
                    }
                }
                "external_account_key" => {
                    issuer.external_account_key =
                        Some((w[0].to_owned(), Spanned::new(w[1].to_owned(), at(&c.pos))));
                }
                _ => {}
            }
        }
        let Some(uri) = uri else {
            return self.err(d, "\"uri\" is mandatory in \"acme_issuer\"");
        };
        issuer.directory = uri;
        if issuer.challenge == AcmeChallenge::Dns01 && issuer.dns_hook.is_none() {
            return self.err(d, "\"challenge dns\" needs \"dns_hook /path/to/command\"");
        }
        if self
            .config
            .acme_issuers
            .iter()
            .any(|i| i.name == issuer.name)
        {
            return self.err(d, format!("duplicate acme_issuer \"{}\"", issuer.name));
        }
        self.config.acme_issuers.push(issuer);
    }

    /// `acme_certificate issuer [identifier…] [key=alg:size]`.
    pub(super) fn acme_certificate(&mut self, d: &Directive) -> AcmeCertificateConfig {
        let mut cert = AcmeCertificateConfig::new(d.args[0].value.clone());
        cert.pos = at(&d.pos);
        for a in &d.args[1..] {
            match a.value.strip_prefix("key=") {
                Some(k) => cert.key = Some(Spanned::new(k.to_owned(), at(&d.pos))),
                None => cert.identifiers.push(a.value.to_ascii_lowercase()),
            }
        }
        cert
    }
}
