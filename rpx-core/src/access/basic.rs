//! nginx's `auth_basic` (ngx_http_auth_basic_module): a client must send
//! `Authorization: Basic …` with a user and password of an htpasswd file.
//!
//! Hashing runs on tokio's blocking pool, a few at a time, so bcrypt's
//! cost never stalls the connections an executor thread serves; a
//! credential that verified is remembered (as Caddy does) until the file
//! changes, so a browser's later requests cost no hashing. The file is
//! looked at again at most once a second: a changed file is read anew
//! (nginx reads it on every request).

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use http::HeaderMap;
use tokio::sync::Semaphore;

use super::htpasswd::{verify, Htpasswd};
use crate::error::ProxyError;

/// How long a look at the file is trusted.
const RECHECK: Duration = Duration::from_secs(1);
/// Credentials remembered per file; the set starts over when full.
const REMEMBERED: usize = 1024;

/// `auth_basic realm` with `auth_basic_user_file`.
///
/// ```
/// use rpx_core::access::BasicAuth;
/// let auth = BasicAuth::new("Staff only", "/etc/rpx/htpasswd");
/// assert_eq!(auth.realm(), "Staff only");
/// ```
#[derive(Debug, Clone)]
pub struct BasicAuth {
    realm: Arc<str>,
    users: Arc<UserFile>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials, an unknown user or a wrong password: 401.
    Unauthorized,
    /// The file does not exist: 403, as nginx.
    Forbidden,
    /// The file cannot be read, or the user's hash is of a kind rpx does
    /// not verify: 500, as nginx.
    Internal,
}

impl BasicAuth {
    /// `realm` over the users of the htpasswd file at `path`.
    pub fn new(realm: &str, path: impl Into<PathBuf>) -> BasicAuth {
        BasicAuth::with_users(realm, Arc::new(UserFile::new(path)))
    }

    /// `realm` over `users`, which other realms may share.
    pub fn with_users(realm: &str, users: Arc<UserFile>) -> BasicAuth {
        BasicAuth {
            realm: realm.into(),
            users,
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Whether the request's credentials are a user's of the file.
    pub fn check(&self, headers: &HeaderMap) -> impl Future<Output = Result<(), Refusal>> + Send {
        let creds = Credentials::from_headers(headers);
        let users = self.users.clone();
        async move {
            let Some(creds) = creds else {
                tracing::debug!("no user/password was provided for basic authentication");
                return Err(Refusal::Unauthorized);
            };
            if users.remembers(&creds) {
                return Ok(());
            }
            let _permit = hashing().acquire().await;
            tokio::task::spawn_blocking(move || users.verify(&creds))
                .await
                .unwrap_or(Err(Refusal::Internal))
        }
    }

    /// The error a refusal answers with.
    pub fn error(&self, refusal: Refusal) -> ProxyError {
        match refusal {
            Refusal::Unauthorized => ProxyError::Unauthorized {
                realm: self.realm.clone(),
            },
            Refusal::Forbidden => ProxyError::Forbidden,
            Refusal::Internal => ProxyError::Internal("auth_basic_user_file unusable".into()),
        }
    }

    /// Whether `self` and `other` are the same directive.
    pub(crate) fn same(&self, other: &BasicAuth) -> bool {
        Arc::ptr_eq(&self.realm, &other.realm) && Arc::ptr_eq(&self.users, &other.users)
    }
}

/// The hashing allowed at once: one per core.
fn hashing() -> &'static Semaphore {
    static HASHING: OnceLock<Semaphore> = OnceLock::new();
    HASHING
        .get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())))
}

/// The decoded `user:password` of `Authorization: Basic …`.
pub(crate) struct Credentials {
    text: Box<[u8]>,
    colon: usize,
}

impl Credentials {
    /// nginx's parse: `Basic` in any case, spaces, base64 of text with a
    /// `:`; anything else is no credentials.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Credentials> {
        let value = headers.get(http::header::AUTHORIZATION)?.as_bytes();
        let scheme = value.get(..6)?;
        if !scheme.eq_ignore_ascii_case(b"basic ") {
            return None;
        }
        let encoded = value[6..].trim_ascii_start();
        let text = LENIENT.decode(encoded).ok()?;
        let colon = text.iter().position(|&b| b == b':')?;
        Some(Credentials {
            text: text.into(),
            colon,
        })
    }

    /// The user (`$remote_user`).
    pub(crate) fn user(&self) -> &[u8] {
        &self.text[..self.colon]
    }

    fn password(&self) -> &[u8] {
        &self.text[self.colon + 1..]
    }
}

/// nginx's base64 decoding: padding optional, stray low bits allowed.
const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// An htpasswd file, read when first needed and again when it changes.
#[derive(Debug)]
pub struct UserFile {
    path: PathBuf,
    state: Mutex<FileState>,
}

#[derive(Debug, Default)]
struct FileState {
    /// When the file was last looked at.
    checked: Option<Instant>,
    /// What it was then, to see a change.
    stamp: Option<Stamp>,
    users: Option<Result<Arc<Htpasswd>, Refusal>>,
    /// `user:password` texts that matched this version of the file.
    remembered: HashSet<Box<[u8]>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        }
    }
}

impl UserFile {
    /// The file at `path`; nothing is read yet.
    pub fn new(path: impl Into<PathBuf>) -> UserFile {
        UserFile {
            path: path.into(),
            state: Mutex::default(),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `creds` matched the file as it still is.
    fn remembers(&self, creds: &Credentials) -> bool {
        let st = self.state();
        st.checked.is_some_and(|t| t.elapsed() < RECHECK) && st.remembered.contains(&creds.text)
    }

    /// Checks `creds` against the file (blocking: reads and hashes).
    fn verify(&self, creds: &Credentials) -> Result<(), Refusal> {
        let (users, stamp) = self.current()?;
        let user = creds.user();
        let Some(hash) = users.hash_of(user) else {
            tracing::warn!(
                "user {:?} was not found in {:?}",
                String::from_utf8_lossy(user),
                self.path
            );
            return Err(Refusal::Unauthorized);
        };
        match verify(creds.password(), hash) {
            Ok(true) => {
                let mut st = self.state();
                if st.stamp == stamp {
                    if st.remembered.len() >= REMEMBERED {
                        st.remembered.clear();
                    }
                    st.remembered.insert(creds.text.clone());
                }
                Ok(())
            }
            Ok(false) => {
                tracing::warn!(
                    "user {:?}: password mismatch",
                    String::from_utf8_lossy(user)
                );
                Err(Refusal::Unauthorized)
            }
            Err(e) => {
                tracing::error!(
                    "user {:?} in {:?}: {e}",
                    String::from_utf8_lossy(user),
                    self.path
                );
                Err(Refusal::Internal)
            }
        }
    }

    /// The users as the file is now, read again if it changed.
    fn current(&self) -> Result<(Arc<Htpasswd>, Option<Stamp>), Refusal> {
        let mut st = self.state();
        let fresh = st.checked.is_some_and(|t| t.elapsed() < RECHECK);
        if !fresh || st.users.is_none() {
            st.checked = Some(Instant::now());
            let stamp = std::fs::metadata(&self.path).map(|m| Stamp::of(&m));
            match stamp {
                Ok(stamp) if st.stamp == Some(stamp) && st.users.is_some() => {}
                Ok(stamp) => {
                    st.users = Some(self.read());
                    st.stamp = Some(stamp);
                    st.remembered.clear();
                }
                Err(e) => {
                    st.users = Some(Err(self.unreadable(&e)));
                    st.stamp = None;
                    st.remembered.clear();
                }
            }
        }
        let users = st.users.clone().unwrap_or(Err(Refusal::Internal))?;
        Ok((users, st.stamp))
    }

    fn read(&self) -> Result<Arc<Htpasswd>, Refusal> {
        let text = std::fs::read(&self.path).map_err(|e| self.unreadable(&e))?;
        let users = Htpasswd::parse(&text);
        for (user, kind) in users.unsupported() {
            tracing::warn!(
                "{:?}: user {:?} has a password hash rpx does not verify ({kind}); re-hash it with `htpasswd -B`",
                self.path,
                String::from_utf8_lossy(user)
            );
        }
        Ok(Arc::new(users))
    }

    fn unreadable(&self, e: &std::io::Error) -> Refusal {
        tracing::error!("auth_basic_user_file {:?} failed: {e}", self.path);
        if e.kind() == std::io::ErrorKind::NotFound {
            Refusal::Forbidden
        } else {
            Refusal::Internal
        }
    }
}

/// Layer asking for a password before the inner service; see
/// [`BasicAuthService`].
#[derive(Debug, Clone)]
pub struct BasicAuthLayer {
    auth: BasicAuth,
}

impl BasicAuthLayer {
    /// Checks `auth` before the inner service.
    pub fn new(auth: BasicAuth) -> Self {
        BasicAuthLayer { auth }
    }
}

impl<S> tower::Layer<S> for BasicAuthLayer {
    type Service = BasicAuthService<S>;
    fn layer(&self, inner: S) -> BasicAuthService<S> {
        BasicAuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// Calls the inner service for requests whose credentials match; others
/// get the [`ProxyError`] of their [`Refusal`] (a 401 with
/// `WWW-Authenticate` from the rescue layer).
///
/// ```
/// use rpx_core::access::{BasicAuth, BasicAuthLayer};
/// use rpx_core::error::ProxyError;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("rpx-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("htpasswd"), "alice:{PLAIN}wonderland\n").unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(BasicAuthLayer::new(BasicAuth::new("Tea party", dir.join("htpasswd"))))
///     .service(service_fn(|_r: http::Request<()>| async {
///         Ok::<_, ProxyError>(http::Response::new(()))
///     }));
/// // "alice:wonderland"
/// let req = http::Request::get("/")
///     .header("authorization", "Basic YWxpY2U6d29uZGVybGFuZA==")
///     .body(()).unwrap();
/// assert!(svc.clone().oneshot(req).await.is_ok());
/// let refused = svc.oneshot(http::Request::new(())).await.unwrap_err();
/// assert_eq!(refused.status(), 401);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct BasicAuthService<S> {
    inner: S,
    auth: BasicAuth,
}

impl<S, B> tower::Service<http::Request<B>> for BasicAuthService<S>
where
    S: tower::Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: From<ProxyError>,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The ready service goes with the request; a clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let check = self.auth.check(req.headers());
        let auth = self.auth.clone();
        Box::pin(async move {
            check.await.map_err(|r| auth.error(r))?;
            inner.call(req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn credentials_parse_as_nginx_parses_them() {
        let user = |a: &str| Credentials::from_headers(&headers(a)).map(|c| c.user().to_vec());
        // "alice:pw" and ":pw" and "alice" (no colon).
        assert_eq!(user("Basic YWxpY2U6cHc="), Some(b"alice".to_vec()));
        assert_eq!(user("bAsIc    YWxpY2U6cHc"), Some(b"alice".to_vec()));
        assert_eq!(user("Basic OnB3"), Some(Vec::new()));
        assert_eq!(user("Basic YWxpY2U="), None);
        assert_eq!(user("Bearer YWxpY2U6cHc="), None);
        assert_eq!(user("Basic "), None);
        assert_eq!(user("Basic !!!!"), None);
        assert!(Credentials::from_headers(&HeaderMap::new()).is_none());
    }
}
