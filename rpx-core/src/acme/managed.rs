//! One automatic certificate: its slot in the resolvers, its files in the
//! issuer's store, and the task that orders and renews it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use instant_acme::CertificateIdentifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::challenge::Challenges;
use super::issuer::Issuer;
use super::order::{issue, OrderSpec};
use super::schedule::{backoff, in_window, renewal_time, unit_random};
use super::store::cert_file_stem;
use super::{AcmeError, AcmeOptions, CertificateStatus, KeyAlg};
use crate::tls::CertSlot;

/// How often the CA's renewal information is asked once a certificate is
/// past half its lifetime (RFC 9773 suggests a few times a day).
const ARI_EVERY: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Default)]
struct State {
    /// Validity of the certificate in the slot.
    valid: Option<(SystemTime, SystemTime)>,
    /// The leaf, for ARI's certificate identifier.
    leaf: Option<CertificateDer<'static>>,
    /// Where in the jitter range this certificate renews, `[0, 1)`.
    jitter: f64,
    /// When the CA's ARI window says to renew, once asked.
    ari_at: Option<SystemTime>,
    /// When ARI is asked next.
    ari_next: Option<SystemTime>,
    failures: u32,
    last_error: Option<String>,
}

pub(crate) struct ManagedCert {
    issuer: Arc<Issuer>,
    names: Vec<String>,
    key: KeyAlg,
    stem: String,
    slot: CertSlot,
    challenges: Arc<Challenges>,
    events: Arc<tokio::sync::watch::Sender<u64>>,
    options: AcmeOptions,
    started: AtomicBool,
    state: Mutex<State>,
    /// Wakes the task so it sees that the certificate is gone.
    stop: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for ManagedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedCert")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Drop for ManagedCert {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

impl ManagedCert {
    /// A certificate for `names`; a valid one in the store is served at once.
    pub(crate) fn new(
        issuer: Arc<Issuer>,
        names: Vec<String>,
        key: KeyAlg,
        challenges: Arc<Challenges>,
        events: Arc<tokio::sync::watch::Sender<u64>>,
        options: AcmeOptions,
    ) -> Self {
        let cert = ManagedCert {
            stem: cert_file_stem(&names),
            issuer,
            names,
            key,
            slot: CertSlot::new(),
            challenges,
            events,
            options,
            started: AtomicBool::new(false),
            state: Mutex::new(State {
                jitter: unit_random(),
                ..State::default()
            }),
            stop: Arc::new(tokio::sync::Notify::new()),
        };
        match cert.load_stored() {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(names = ?cert.names, "no stored certificate; one will be ordered")
            }
            Err(e) => {
                tracing::warn!(names = ?cert.names, error = %e, "stored certificate not used; a new one will be ordered")
            }
        }
        cert
    }

    pub(crate) fn issuer(&self) -> &Arc<Issuer> {
        &self.issuer
    }

    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    pub(crate) fn key(&self) -> KeyAlg {
        self.key
    }

    pub(crate) fn slot(&self) -> &CertSlot {
        &self.slot
    }

    pub(crate) fn status(&self) -> CertificateStatus {
        let st = self.lock();
        CertificateStatus {
            issuer: self.issuer.config().name.clone(),
            names: self.names.clone(),
            not_after: st.valid.map(|v| v.1),
            last_error: st.last_error.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn files(&self) -> (String, String) {
        (format!("{}.crt", self.stem), format!("{}.key", self.stem))
    }

    /// Serves the stored certificate if it is for these names, has this
    /// key type, and has not expired. `Ok(false)`: nothing stored.
    fn load_stored(&self) -> Result<bool, AcmeError> {
        let (crt, key) = self.files();
        let store = self.issuer.store();
        let read = |name: &str| {
            store.read(name).map_err(|source| AcmeError::State {
                path: store.path(name).unwrap_or_else(|| name.into()),
                source,
            })
        };
        let (Some(chain), Some(key_pem)) = (read(&crt)?, read(&key)?) else {
            return Ok(false);
        };
        self.install(&chain, &key_pem)?;
        Ok(true)
    }

    /// Checks a PEM chain and key and puts them in the slot.
    fn install(&self, chain_pem: &[u8], key_pem: &[u8]) -> Result<(), AcmeError> {
        let bad =
            |what: String| AcmeError::Order(format!("certificate for {:?}: {what}", self.names));
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?;
        let leaf = chain
            .first()
            .ok_or_else(|| bad("empty chain".into()))?
            .clone();
        let (_, parsed) =
            x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| bad(e.to_string()))?;
        let mut sans: Vec<String> = parsed
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|g| match g {
                        x509_parser::extensions::GeneralName::DNSName(n) => {
                            Some(n.to_ascii_lowercase())
                        }
                        x509_parser::extensions::GeneralName::IPAddress(b) => ip_text(b),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        sans.sort();
        let mut wanted = self.names.clone();
        wanted.sort();
        if sans != wanted {
            return Err(bad(format!("it is for {sans:?}")));
        }
        let not_before = unix(parsed.validity().not_before.timestamp());
        let not_after = unix(parsed.validity().not_after.timestamp());
        if not_after <= SystemTime::now() {
            return Err(bad("it has expired".into()));
        }
        let key_der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad(e.to_string()))?;
        if !self.key.matches(parsed.public_key()) {
            return Err(bad(format!("its key is not {}", self.key.name())));
        }
        let signing = crate::tls::provider()
            .key_provider
            .load_private_key(key_der)
            .map_err(|e| bad(e.to_string()))?;
        let certified = CertifiedKey::new(chain, signing);
        certified.keys_match().map_err(|e| bad(e.to_string()))?;
        self.slot.store(Arc::new(certified));
        let secs = not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        for n in &self.names {
            metrics::gauge!("rpx_certificate_expiry_timestamp_seconds", "name" => n.clone())
                .set(secs);
        }
        let mut st = self.lock();
        st.valid = Some((not_before, not_after));
        st.leaf = Some(leaf);
        st.ari_at = None;
        st.ari_next = None;
        Ok(())
    }

    /// Starts the task once.
    pub(crate) fn start(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(self);
        let stop = self.stop.clone();
        tokio::spawn(maintain(weak, stop));
    }

    /// What the task does next: wait this long, then `renew` or ask ARI.
    fn next_step(&self, now: SystemTime) -> (Duration, Step) {
        let st = self.lock();
        let retry = (st.failures > 0).then(|| {
            backoff(
                st.failures,
                self.options.retry_min,
                self.options.retry_max,
                unit_random(),
            )
        });
        let Some((not_before, not_after)) = st.valid else {
            return (retry.unwrap_or(Duration::ZERO), Step::Order);
        };
        let mut due = renewal_time(not_before, not_after, st.jitter);
        if let Some(at) = st.ari_at {
            due = due.min(at);
        }
        if let Some(retry) = retry {
            return (retry, Step::Order);
        }
        let half = not_before + not_after.duration_since(not_before).unwrap_or_default() / 2;
        let ari = st.ari_next.unwrap_or(half);
        if ari < due {
            return (ari.duration_since(now).unwrap_or_default(), Step::AskAri);
        }
        (due.duration_since(now).unwrap_or_default(), Step::Order)
    }

    /// Asks the CA's renewal information (RFC 9773), when it offers it.
    async fn ask_ari(&self) {
        let leaf = self.lock().leaf.clone();
        let mut next = SystemTime::now() + ARI_EVERY;
        let mut at = None;
        if let Some(leaf) = leaf {
            if let Ok(id) = CertificateIdentifier::try_from(&leaf) {
                if let Ok(account) = self.issuer.account().await {
                    match account.renewal_info(&id).await {
                        Ok((info, retry_after)) => {
                            let w = info.suggested_window;
                            let start = unix(w.start.unix_timestamp());
                            let end = unix(w.end.unix_timestamp());
                            at = Some(in_window(start, end, unit_random()));
                            next = SystemTime::now()
                                + retry_after.clamp(Duration::from_secs(60), ARI_EVERY);
                        }
                        Err(instant_acme::Error::Unsupported(_)) => next += ARI_EVERY * 1000,
                        Err(e) => {
                            tracing::debug!(error = %e, "ACME renewal information not available")
                        }
                    }
                }
            }
        }
        let mut st = self.lock();
        st.ari_at = at.or(st.ari_at);
        st.ari_next = Some(next);
    }

    /// Orders a new certificate and serves it; on failure the old one (if
    /// any) stays.
    async fn renew(&self) {
        let names = self.names.join(", ");
        let replaces = self
            .lock()
            .leaf
            .as_ref()
            .and_then(|l| CertificateIdentifier::try_from(l).ok())
            .map(CertificateIdentifier::into_owned);
        tracing::info!(issuer = %self.issuer.config().name, names = %names, "ordering a certificate");
        let result = self.order(replaces).await;
        let issuer = self.issuer.config().name.clone();
        match result {
            Ok(()) => {
                metrics::counter!("rpx_acme_orders_total", "issuer" => issuer, "result" => "issued")
                    .increment(1);
                let mut st = self.lock();
                st.failures = 0;
                st.last_error = None;
                tracing::info!(names = %names, not_after = ?st.valid.map(|v| v.1), "certificate issued");
            }
            Err(e) => {
                metrics::counter!("rpx_acme_orders_total", "issuer" => issuer, "result" => "failed")
                    .increment(1);
                let mut st = self.lock();
                st.failures += 1;
                st.last_error = Some(e.to_string());
                let serving = if st.valid.is_some() {
                    "the current certificate stays"
                } else {
                    "its names have no certificate yet"
                };
                tracing::warn!(names = %names, error = %e, attempt = st.failures, "certificate order failed; {serving}");
            }
        }
        self.events.send_modify(|n| *n += 1);
    }

    async fn order(
        &self,
        replaces: Option<CertificateIdentifier<'static>>,
    ) -> Result<(), AcmeError> {
        let account = self.issuer.account().await?;
        let spec = OrderSpec {
            names: &self.names,
            key: self.key,
            challenge: self.issuer.config().challenge,
            challenges: &self.challenges,
            dns_hook: self.issuer.dns_hook(),
            replaces,
        };
        let issued = match issue(&account, &spec).await {
            // A CA without ARI refuses `replaces`; order plainly then.
            Err(AcmeError::Ca(e))
                if spec.replaces.is_some() && e.contains("renewal information") =>
            {
                issue(
                    &account,
                    &OrderSpec {
                        replaces: None,
                        ..spec
                    },
                )
                .await?
            }
            other => other?,
        };
        self.install(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes())?;
        let (crt, key) = self.files();
        let store = self.issuer.store();
        for (name, data) in [(&key, &issued.key_pem), (&crt, &issued.chain_pem)] {
            store
                .write(name, data.as_bytes())
                .map_err(|source| AcmeError::State {
                    path: store.path(name).unwrap_or_else(|| name.into()),
                    source,
                })?;
        }
        Ok(())
    }
}

enum Step {
    Order,
    AskAri,
}

async fn maintain(weak: Weak<ManagedCert>, stop: Arc<tokio::sync::Notify>) {
    loop {
        let Some(cert) = weak.upgrade() else { return };
        let (wait, step) = cert.next_step(SystemTime::now());
        drop(cert);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.notified() => return,
        }
        let Some(cert) = weak.upgrade() else { return };
        match step {
            Step::Order => cert.renew().await,
            Step::AskAri => cert.ask_ari().await,
        }
    }
}

fn unix(secs: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

fn ip_text(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?).to_string()),
        _ => None,
    }
}
