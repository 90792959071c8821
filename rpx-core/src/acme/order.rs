//! One issuance: an order for a set of names, a challenge answered per
//! authorization, a CSR with a fresh key, the chain. Challenge answers are
//! withdrawn afterwards whatever happened.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    OrderStatus, RetryPolicy,
};

use super::challenge::{tls_alpn01_certificate, Challenges};
use super::dns_hook::DnsHook;
use super::{AcmeError, KeyAlg};
use crate::config::AcmeChallenge;

/// How long the CA may take to validate, and then to sign.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(120));

/// A new certificate: PEM chain and PEM key.
pub(crate) struct Issued {
    pub(crate) chain_pem: String,
    pub(crate) key_pem: String,
}

/// What an order needs besides the account.
pub(crate) struct OrderSpec<'a> {
    pub(crate) names: &'a [String],
    pub(crate) key: KeyAlg,
    pub(crate) challenge: AcmeChallenge,
    pub(crate) challenges: &'a Arc<Challenges>,
    pub(crate) dns_hook: Option<&'a DnsHook>,
    /// The certificate this one replaces (ARI), when the CA supports it.
    pub(crate) replaces: Option<CertificateIdentifier<'static>>,
}

/// An answer to withdraw once the order is over.
enum Opened {
    Http(String),
    Alpn(String),
    Dns { domain: String, value: String },
}

/// Orders a certificate for `spec.names`.
pub(crate) async fn issue(account: &Account, spec: &OrderSpec<'_>) -> Result<Issued, AcmeError> {
    let mut opened = Vec::new();
    let result = run(account, spec, &mut opened).await;
    for o in opened {
        match o {
            Opened::Http(token) => spec.challenges.remove_http01(&token),
            Opened::Alpn(name) => spec.challenges.remove_tls_alpn01(&name),
            Opened::Dns { domain, value } => {
                if let Some(hook) = spec.dns_hook {
                    if let Err(e) = hook.run("cleanup", &domain, &value).await {
                        tracing::warn!(domain = %domain, error = %e, "dns_hook cleanup failed");
                    }
                }
            }
        }
    }
    result
}

async fn run(
    account: &Account,
    spec: &OrderSpec<'_>,
    opened: &mut Vec<Opened>,
) -> Result<Issued, AcmeError> {
    let identifiers: Vec<Identifier> = spec
        .names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Identifier::Ip(ip),
            Err(_) => Identifier::Dns(n.clone()),
        })
        .collect();
    let mut new_order = NewOrder::new(&identifiers);
    if let Some(r) = spec.replaces.clone() {
        new_order = new_order.replaces(r);
    }
    let mut order = account.new_order(&new_order).await.map_err(AcmeError::ca)?;
    let kind = match spec.challenge {
        AcmeChallenge::Http01 => ChallengeType::Http01,
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        AcmeChallenge::Dns01 => ChallengeType::Dns01,
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(AcmeError::ca)?;
        match authz.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(AcmeError::Order(format!(
                    "authorization for {} is {other:?}",
                    authz.identifier()
                )))
            }
        }
        let name = authz.identifier().to_string();
        let domain = name.trim_start_matches("*.").to_owned();
        let mut challenge = authz.challenge(kind.clone()).ok_or_else(|| {
            AcmeError::Order(format!(
                "the CA offers no {} challenge for {name}{}",
                spec.challenge.as_str(),
                if name.starts_with("*.") {
                    " (wildcards need `challenge dns` with a dns_hook)"
                } else {
                    ""
                }
            ))
        })?;
        let key_auth = challenge.key_authorization();
        match spec.challenge {
            AcmeChallenge::Http01 => {
                spec.challenges
                    .put_http01(&challenge.token, key_auth.as_str());
                opened.push(Opened::Http(challenge.token.clone()));
            }
            AcmeChallenge::TlsAlpn01 => {
                let cert = tls_alpn01_certificate(&domain, key_auth.digest().as_ref())
                    .map_err(|e| AcmeError::Key(e.to_string()))?;
                spec.challenges.put_tls_alpn01(&domain, cert);
                opened.push(Opened::Alpn(domain.clone()));
            }
            AcmeChallenge::Dns01 => {
                let hook = spec.dns_hook.ok_or_else(|| {
                    AcmeError::Order("challenge dns needs a dns_hook command".into())
                })?;
                let value = key_auth.dns_value();
                opened.push(Opened::Dns {
                    domain: domain.clone(),
                    value: value.clone(),
                });
                hook.run("present", &domain, &value).await?;
            }
        }
        challenge.set_ready().await.map_err(AcmeError::ca)?;
    }

    let status = order.poll_ready(&POLL).await.map_err(AcmeError::ca)?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Order(validation_errors(&mut order).await));
    }

    let alg = spec.key;
    let key = tokio::task::spawn_blocking(move || alg.generate())
        .await
        .map_err(|e| AcmeError::Key(e.to_string()))??;
    let mut params = rcgen::CertificateParams::new(spec.names.to_vec())
        .map_err(|e| AcmeError::Key(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| AcmeError::Key(e.to_string()))?;
    order.finalize_csr(csr.der()).await.map_err(AcmeError::ca)?;
    let chain_pem = order.poll_certificate(&POLL).await.map_err(AcmeError::ca)?;
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
    })
}

/// Why the CA refused: each failed challenge's problem, as the CA said it.
async fn validation_errors(order: &mut instant_acme::Order) -> String {
    let mut out = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let state = match authz.refresh().await {
            Ok(s) => s,
            Err(e) => {
                out.push(e.to_string());
                continue;
            }
        };
        for c in &state.challenges {
            if let Some(problem) = &c.error {
                out.push(format!("{}: {problem}", state.identifier()));
            }
        }
    }
    if out.is_empty() {
        "the order became invalid".into()
    } else {
        format!("validation failed: {}", out.join("; "))
    }
}
