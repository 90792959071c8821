//! Certificate selection by SNI: exact name, then wildcard, then the
//! default for clients without SNI. Certificates can be added while
//! serving, and file-backed ones are reloaded when their files change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use arc_swap::{ArcSwap, ArcSwapOption};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::pem::{load_certified_key, TlsError};
use crate::acme::{Challenges, ACME_TLS_ALPN};

/// One certificate, possibly shared by several names; empty while an
/// automatic (ACME) certificate has not been issued yet.
#[derive(Debug, Default)]
struct Entry {
    key: ArcSwapOption<CertifiedKey>,
    files: Option<(PathBuf, PathBuf)>,
    /// Modification times the loaded files had; a change triggers a reload.
    seen: Mutex<Option<(SystemTime, SystemTime)>>,
}

#[derive(Debug, Default, Clone)]
struct Table {
    exact: HashMap<String, Arc<Entry>>,
    /// `*.example.com` stored as `.example.com`.
    wildcard: HashMap<String, Arc<Entry>>,
    default: Option<Arc<Entry>>,
    by_files: HashMap<(PathBuf, PathBuf), Arc<Entry>>,
}

/// Picks the certificate for a handshake.
///
/// ```
/// use rpx_core::tls::CertResolver;
/// let resolver = CertResolver::new();
/// assert!(resolver.resolve_name(Some("example.com")).is_none());
/// // resolver.add(&["example.com", "*.example.com"], certified_key, true);
/// ```
#[derive(Debug, Default)]
pub struct CertResolver {
    table: ArcSwap<Table>,
    /// tls-alpn-01 answers, when ACME certificates are served here.
    acme: OnceLock<Arc<Challenges>>,
}

/// A certificate that can be filled or replaced while serving: what an
/// ACME manager hands to resolvers. Names served from an empty slot fail
/// their handshakes instead of falling back to another certificate.
///
/// ```
/// use rpx_core::tls::{CertResolver, CertSlot};
/// let slot = CertSlot::new();
/// let resolver = CertResolver::new();
/// resolver.add_slot(&["app.example.com"], &slot, true);
/// assert!(resolver.resolve_name(Some("app.example.com")).is_none()); // not issued yet
/// // slot.store(certified_key) makes new handshakes use it.
/// ```
#[derive(Debug, Clone, Default)]
pub struct CertSlot(Arc<Entry>);

impl CertSlot {
    /// An empty slot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `key` to new handshakes from now on.
    pub fn store(&self, key: Arc<CertifiedKey>) {
        self.0.key.store(Some(key));
    }

    /// The certificate, once there is one.
    pub fn load(&self) -> Option<Arc<CertifiedKey>> {
        self.0.key.load_full()
    }
}

impl CertResolver {
    /// An empty resolver.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `key` for `names` (exact or `*.wildcard`) from now on; with
    /// `default`, also for clients that send no or an unknown SNI. The first
    /// certificate added is the default until one is marked.
    pub fn add(&self, names: &[&str], key: Arc<CertifiedKey>, default: bool) {
        let entry = Arc::new(Entry {
            key: ArcSwapOption::new(Some(key)),
            files: None,
            seen: Mutex::new(None),
        });
        self.insert(names, entry, default);
    }

    /// Serves whatever `slot` holds for `names`; see [`CertSlot`].
    pub fn add_slot(&self, names: &[&str], slot: &CertSlot, default: bool) {
        self.insert(names, slot.0.clone(), default);
    }

    /// Answers tls-alpn-01 validation handshakes (ALPN `acme-tls/1`) with
    /// the certificates `challenges` holds; the first call wins.
    pub fn answer_tls_alpn01(&self, challenges: Arc<Challenges>) {
        let _ = self.acme.set(challenges);
    }

    /// Whether tls-alpn-01 validations are answered here.
    pub fn answers_tls_alpn01(&self) -> bool {
        self.acme.get().is_some()
    }

    /// Loads `cert` and `key` and serves them for `names`; the files are
    /// watched by [`CertResolver::reload_changed`]. The same pair of files
    /// used by several servers is loaded once.
    ///
    /// # Errors
    /// The files cannot be loaded.
    pub fn add_files(
        &self,
        names: &[&str],
        cert: &Path,
        key: &Path,
        default: bool,
    ) -> Result<(), TlsError> {
        let files = (cert.to_owned(), key.to_owned());
        if let Some(entry) = self.table.load().by_files.get(&files).cloned() {
            self.insert(names, entry, default);
            return Ok(());
        }
        let certified = load_certified_key(cert, key)?;
        let entry = Arc::new(Entry {
            key: ArcSwapOption::from_pointee(certified),
            seen: Mutex::new(mtimes(cert, key)),
            files: Some(files),
        });
        self.insert(names, entry, default);
        Ok(())
    }

    fn insert(&self, names: &[&str], entry: Arc<Entry>, default: bool) {
        self.table.rcu(|t| {
            let mut t = Table::clone(t);
            for name in names {
                let name = name.to_ascii_lowercase();
                if let Some(suffix) = name.strip_prefix('*') {
                    t.wildcard
                        .entry(suffix.to_owned())
                        .or_insert_with(|| entry.clone());
                } else if !name.starts_with('~') && name != "_" && !name.is_empty() {
                    t.exact.entry(name).or_insert_with(|| entry.clone());
                }
            }
            if default || t.default.is_none() {
                t.default = Some(entry.clone());
            }
            if let Some(files) = &entry.files {
                t.by_files.insert(files.clone(), entry.clone());
            }
            t
        });
    }

    /// The certificate for an SNI name (`None`: no SNI).
    pub fn resolve_name(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let t = self.table.load();
        let entry = sni
            .and_then(|name| {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                t.exact.get(&name).or_else(|| {
                    name.match_indices('.')
                        .find_map(|(i, _)| t.wildcard.get(&name[i..]))
                })
            })
            .or(t.default.as_ref())?;
        entry.key.load_full()
    }

    /// Reloads every file-backed certificate whose files changed since they
    /// were loaded. A file that fails to load keeps the old certificate; the
    /// result lists what was tried.
    pub fn reload_changed(&self) -> Vec<(PathBuf, Result<(), TlsError>)> {
        let t = self.table.load();
        let mut out = Vec::new();
        for entry in t.by_files.values() {
            let Some((cert, key)) = &entry.files else {
                continue;
            };
            let now = mtimes(cert, key);
            let mut seen = entry.seen.lock().unwrap_or_else(|p| p.into_inner());
            if now.is_none() || now == *seen {
                continue;
            }
            // Remember the attempt either way: a half-written renewal is
            // retried when the other file changes too.
            *seen = now;
            drop(seen);
            let result = load_certified_key(cert, key).map(|k| entry.key.store(Some(Arc::new(k))));
            match &result {
                Ok(()) => tracing::info!(cert = %cert.display(), "certificate reloaded"),
                Err(e) => {
                    tracing::warn!(cert = %cert.display(), error = %e, "keeping the previous certificate")
                }
            }
            out.push((cert.clone(), result));
        }
        out
    }

    /// True when no certificate was added.
    pub fn is_empty(&self) -> bool {
        self.table.load().default.is_none()
    }
}

fn mtimes(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    // `metadata` follows symlinks: certbot's live/ links point at new
    // archive/ files on renewal, and their times differ.
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(cert)?, m(key)?))
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(challenges) = self.acme.get() {
            if hello
                .alpn()
                .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
            {
                return challenges.tls_alpn01(hello.server_name()?);
            }
        }
        self.resolve_name(hello.server_name())
    }
}
