//! One CA account: its HTTPS client, its state store, and the account
//! itself, registered on first use and kept in `account.json` after.

use std::path::Path;

use instant_acme::{Account, AccountCredentials, ExternalAccountKey, Key, NewAccount};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

use super::client::AcmeHttp;
use super::dns_hook::DnsHook;
use super::store::Store;
use super::{AcmeError, AcmeOptions};
use crate::config::{AcmeIssuerConfig, AcmeState};

const ACCOUNT_FILE: &str = "account.json";

/// What `account.json` holds: the credentials and the directory they are for.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

pub(crate) struct Issuer {
    config: AcmeIssuerConfig,
    store: Store,
    http: AcmeHttp,
    dns_hook: Option<DnsHook>,
    account: tokio::sync::Mutex<Option<Account>>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("name", &self.config.name)
            .field("directory", &self.config.directory.value)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    pub(crate) fn new(config: &AcmeIssuerConfig, options: &AcmeOptions) -> Result<Self, AcmeError> {
        let http = AcmeHttp::new(
            config
                .ssl_trusted_certificate
                .as_ref()
                .map(|t| t.value.as_str()),
            config.ssl_verify,
        )
        .map_err(|e| AcmeError::Config(e.to_string()))?;
        let store = match &config.state {
            Some(AcmeState::Memory) => Store::memory(),
            Some(AcmeState::Dir(dir)) => Store::dir(dir),
            None => Store::dir(&options.default_state_dir.join(&config.name)),
        };
        if let Some(key) = &config.account_key {
            if !is_generated_key(&key.value) {
                load_account_key(Path::new(&key.value))?;
            }
        }
        Ok(Issuer {
            config: config.clone(),
            store,
            http,
            dns_hook: config.dns_hook.as_ref().map(|h| DnsHook {
                command: h.value.clone().into(),
            }),
            account: tokio::sync::Mutex::new(None),
        })
    }

    pub(crate) fn config(&self) -> &AcmeIssuerConfig {
        &self.config
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn dns_hook(&self) -> Option<&DnsHook> {
        self.dns_hook.as_ref()
    }

    /// The account: from memory, from `account.json`, or registered now.
    pub(crate) async fn account(&self) -> Result<Account, AcmeError> {
        let mut cached = self.account.lock().await;
        if let Some(a) = &*cached {
            return Ok(a.clone());
        }
        let directory = self.config.directory.value.clone();
        let stored = self
            .store
            .read(ACCOUNT_FILE)
            .map_err(|e| self.state_error(ACCOUNT_FILE, e))?
            .and_then(|data| serde_json::from_slice::<StoredAccount>(&data).ok())
            .filter(|s| s.directory == directory);
        let builder = || Account::builder_with_http(Box::new(self.http.clone()));
        let account = match stored {
            Some(s) => builder()
                .from_credentials(s.credentials)
                .await
                .map_err(AcmeError::ca)?,
            None => {
                let (account, credentials) = self.register(builder, directory.clone()).await?;
                let data = serde_json::to_vec_pretty(&StoredAccount {
                    directory,
                    credentials,
                })
                .map_err(|e| AcmeError::Config(e.to_string()))?;
                self.store
                    .write(ACCOUNT_FILE, &data)
                    .map_err(|e| self.state_error(ACCOUNT_FILE, e))?;
                tracing::info!(issuer = %self.config.name, id = %account.id(), "ACME account registered");
                account
            }
        };
        *cached = Some(account.clone());
        Ok(account)
    }

    /// A new account, or with `account_key` the CA's account of that key.
    async fn register(
        &self,
        builder: impl Fn() -> instant_acme::AccountBuilder,
        directory: String,
    ) -> Result<(Account, AccountCredentials), AcmeError> {
        let contact: Vec<String> = self.config.contact.clone();
        let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
        if let Some(key) = self
            .config
            .account_key
            .as_ref()
            .filter(|k| !is_generated_key(&k.value))
        {
            let signer = || -> Result<(Key, PrivateKeyDer<'static>), AcmeError> {
                let pkcs8 = load_account_key(Path::new(&key.value))?;
                let signer =
                    Key::from_pkcs8_der(PrivatePkcs8KeyDer::from(pkcs8.secret_pkcs8_der()))
                        .map_err(|e| AcmeError::Key(format!("{}: {e}", key.value)))?;
                Ok((signer, PrivateKeyDer::Pkcs8(pkcs8)))
            };
            // The key's account when the CA has one (certbot's or an
            // earlier rpx's): nothing is agreed or bound again.
            match builder().from_key(signer()?, directory.clone()).await {
                Ok(found) => return Ok(found),
                Err(instant_acme::Error::Api(p))
                    if p.r#type.as_deref()
                        == Some("urn:ietf:params:acme:error:accountDoesNotExist") => {}
                Err(e) => return Err(AcmeError::ca(e)),
            }
            // instant-acme registers a given key without a binding and
            // always agrees to the terms: only do that when the config
            // agrees and needs no binding.
            if self.config.external_account_key.is_some() {
                return Err(AcmeError::Config(format!(
                    "account_key {}: the CA has no account for this key, and rpx cannot register \
                     a given key with external_account_key; register it once with your CA's tool, \
                     or drop account_key to let rpx make one",
                    key.value
                )));
            }
            if !self.config.accept_terms_of_service {
                return Err(AcmeError::Config(format!(
                    "account_key {}: the CA has no account for this key; registering one needs \
                     accept_terms_of_service",
                    key.value
                )));
            }
            let (account, credentials) = builder()
                .create_from_key(signer()?, directory)
                .await
                .map_err(AcmeError::ca)?;
            if !contact.is_empty() {
                account
                    .update_contacts(&contact)
                    .await
                    .map_err(AcmeError::ca)?;
            }
            return Ok((account, credentials));
        }
        let eab = match &self.config.external_account_key {
            Some((kid, key)) => Some(external_key(kid, &key.value)?),
            None => None,
        };
        builder()
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: self.config.accept_terms_of_service,
                    only_return_existing: false,
                },
                directory,
                eab.as_ref(),
            )
            .await
            .map_err(AcmeError::ca)
    }

    fn state_error(&self, name: &str, source: std::io::Error) -> AcmeError {
        AcmeError::State {
            path: self.store.path(name).unwrap_or_else(|| name.into()),
            source,
        }
    }
}

/// `account_key ecdsa:256` asks for a generated key, as by default.
fn is_generated_key(v: &str) -> bool {
    v.eq_ignore_ascii_case("ecdsa:256") || v.eq_ignore_ascii_case("ecdsa")
}

/// An account key file: PKCS#8 PEM, ECDSA P-256 (what ACME clients use).
fn load_account_key(path: &Path) -> Result<PrivatePkcs8KeyDer<'static>, AcmeError> {
    let key = PrivatePkcs8KeyDer::from_pem_file(path).map_err(|e| {
        AcmeError::Config(format!(
            "account_key {}: {e} (a PKCS#8 PEM ECDSA P-256 key is needed)",
            path.display()
        ))
    })?;
    Key::from_pkcs8_der(PrivatePkcs8KeyDer::from(key.secret_pkcs8_der())).map_err(|_| {
        AcmeError::Config(format!(
            "account_key {}: not an ECDSA P-256 key",
            path.display()
        ))
    })?;
    Ok(key)
}

/// `external_account_key kid file|data:key`: the MAC key is base64url.
fn external_key(kid: &str, value: &str) -> Result<ExternalAccountKey, AcmeError> {
    let text = match value.strip_prefix("data:") {
        Some(inline) => inline.to_owned(),
        None => std::fs::read_to_string(value)
            .map_err(|e| AcmeError::Config(format!("external_account_key {value}: {e}")))?,
    };
    let key = base64url_decode(text.trim()).ok_or_else(|| {
        AcmeError::Config("external_account_key: the key is not base64url".into())
    })?;
    Ok(ExternalAccountKey::new(kid.to_owned(), &key))
}

fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64url() {
        assert_eq!(super::base64url_decode("TWFu").unwrap(), b"Man");
        assert_eq!(super::base64url_decode("TWE").unwrap(), b"Ma");
        assert_eq!(super::base64url_decode("_-8").unwrap(), vec![0xff, 0xef]);
        assert!(super::base64url_decode("a b").is_none());
    }
}
