//! Answers to the CA's challenges while an order is open: http-01 tokens
//! (served ahead of routing by [`Http01Layer`]) and tls-alpn-01
//! certificates (served by the certificate resolver, RFC 8737).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{ready, Either, Ready};
use http::{header, Request, Response, StatusCode};
use rustls::sign::CertifiedKey;
use tower::{Layer, Service};

use crate::reply::{reply, Reply, ReplyBody};

/// The path prefix of http-01 challenges.
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// The ALPN protocol of tls-alpn-01 validation handshakes.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Challenge answers shared by the ACME manager (which puts them) and the
/// listeners (which serve them). Locks are held for a map access only; the
/// maps are empty except while an order is being validated.
#[derive(Debug, Default)]
pub struct Challenges {
    /// http-01: token → key authorization.
    http: Mutex<HashMap<String, Arc<str>>>,
    /// tls-alpn-01: lowercase name → the validation certificate.
    alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl Challenges {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key authorization for an http-01 `token`, if one is open.
    pub fn http01(&self, token: &str) -> Option<Arc<str>> {
        lock(&self.http).get(token).cloned()
    }

    /// The tls-alpn-01 certificate for `name`, if one is open.
    pub fn tls_alpn01(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        lock(&self.alpn).get(&name.to_ascii_lowercase()).cloned()
    }

    pub(crate) fn put_http01(&self, token: &str, key_authorization: &str) {
        lock(&self.http).insert(token.to_owned(), key_authorization.into());
    }

    pub(crate) fn remove_http01(&self, token: &str) {
        lock(&self.http).remove(token);
    }

    pub(crate) fn put_tls_alpn01(&self, name: &str, key: Arc<CertifiedKey>) {
        lock(&self.alpn).insert(name.to_ascii_lowercase(), key);
    }

    pub(crate) fn remove_tls_alpn01(&self, name: &str) {
        lock(&self.alpn).remove(&name.to_ascii_lowercase());
    }

    /// The response to an http-01 request for `path`, when it is one.
    pub fn http01_response(&self, path: &str) -> Option<Reply> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        let answer = self.http01(token)?;
        let mut res = reply(StatusCode::OK, Bytes::copy_from_slice(answer.as_bytes()));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/octet-stream"),
        );
        Some(res)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The certificate a tls-alpn-01 validation handshake gets for `name`:
/// self-signed, the one name, and the critical `acmeIdentifier` extension
/// carrying the SHA-256 of the key authorization (RFC 8737 §3).
pub(crate) fn tls_alpn01_certificate(
    name: &str,
    digest: &[u8],
) -> Result<Arc<CertifiedKey>, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = crate::tls::provider()
        .key_provider
        .load_private_key(der)
        .map_err(|_| rcgen::Error::CouldNotParseKeyPair)?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// Answers http-01 challenges ahead of the inner service; every other
/// request (and a challenge path with an unknown token) passes on, so a
/// webroot location under `/.well-known/acme-challenge/` still works.
///
/// ```
/// use std::sync::Arc;
/// use rpx_core::acme::{Challenges, Http01Layer};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let challenges = Arc::new(Challenges::new());
/// let app = tower::service_fn(|_req: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// });
/// let svc = ServiceBuilder::new().layer(Http01Layer::new(challenges)).service(app);
/// let res = svc.oneshot(http::Request::get("/.well-known/acme-challenge/x").body(()).unwrap()).await.unwrap();
/// assert_eq!(res.status(), 200); // unknown token: the app answered
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Http01Layer {
    challenges: Arc<Challenges>,
}

impl Http01Layer {
    /// A layer serving `challenges`.
    pub fn new(challenges: Arc<Challenges>) -> Self {
        Http01Layer { challenges }
    }
}

impl<S> Layer<S> for Http01Layer {
    type Service = Http01<S>;

    fn layer(&self, inner: S) -> Http01<S> {
        Http01 {
            challenges: self.challenges.clone(),
            inner,
        }
    }
}

/// The service of [`Http01Layer`].
#[derive(Debug, Clone)]
pub struct Http01<S> {
    challenges: Arc<Challenges>,
    inner: S,
}

/// The body of what [`Http01`] answers: the inner service's, or a key
/// authorization.
pub type Http01Body<B> = http_body_util::Either<B, ReplyBody>;

impl<S, B, ResB> Service<Request<B>> for Http01<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<Http01Body<ResB>>;
    type Error = S::Error;
    type Future = Either<
        Ready<Result<Response<Http01Body<ResB>>, S::Error>>,
        futures_util::future::MapOk<S::Future, fn(Response<ResB>) -> Response<Http01Body<ResB>>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        use futures_util::TryFutureExt;
        match self.challenges.http01_response(req.uri().path()) {
            Some(res) => Either::Left(ready(Ok(res.map(Http01Body::Right)))),
            None => Either::Right(
                self.inner
                    .call(req)
                    .map_ok((|res: Response<ResB>| res.map(Http01Body::Left)) as fn(_) -> _),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http01_answers_only_open_tokens() {
        let c = Challenges::new();
        assert!(c
            .http01_response("/.well-known/acme-challenge/t1")
            .is_none());
        c.put_http01("t1", "t1.thumb");
        let res = c.http01_response("/.well-known/acme-challenge/t1").unwrap();
        assert_eq!(res.status(), 200);
        assert!(c
            .http01_response("/.well-known/acme-challenge/t2")
            .is_none());
        assert!(c.http01_response("/t1").is_none());
        c.remove_http01("t1");
        assert!(c
            .http01_response("/.well-known/acme-challenge/t1")
            .is_none());
    }

    #[test]
    fn tls_alpn01_certificate_carries_the_digest() {
        let digest = [7u8; 32];
        let key = tls_alpn01_certificate("a.example", &digest).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(key.cert[0].as_ref()).unwrap();
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        // DER OCTET STRING of 32 bytes.
        assert_eq!(&ext.value[..2], &[0x04, 0x20]);
        assert_eq!(&ext.value[2..], &digest);
    }
}
