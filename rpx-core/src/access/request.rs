//! nginx's `auth_request` / `auth_request_set`
//! (ngx_http_auth_request_module): before a request is served, a
//! subrequest asks another location (an SSO gatekeeper: Authelia,
//! Authentik, oauth2-proxy…) whether to let it in.
//!
//! The subrequest is a `GET` of the configured URI with the request's
//! headers and no body; `$request_uri` there is still the client's. A 2xx
//! lets the request in, a 401 or 403 is the answer (a 401 with the
//! gatekeeper's `WWW-Authenticate`), anything else a 500, as nginx. Then
//! `auth_request_set` stores values, typically the gatekeeper's
//! `$upstream_http_remote_user`, for the request's own
//! `proxy_set_header`s.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Empty;

use crate::error::ProxyError;
use crate::realip::RealipPeer;
use crate::request::{MainRequest, OriginalUri};
use crate::vars::{SetVars, Template, VarCtx};

/// What answers an authorization subrequest: a location's service. The
/// response's body is not read.
pub type Subrequest = Arc<
    dyn Fn(
            Request<Empty<Bytes>>,
        ) -> Pin<Box<dyn Future<Output = Result<Response<()>, ProxyError>> + Send>>
        + Send
        + Sync,
>;

/// `auth_request uri` with its `auth_request_set`s.
#[derive(Clone)]
pub struct AuthRequest {
    uri: http::Uri,
    target: Arc<OnceLock<Subrequest>>,
    sets: Arc<[(Arc<str>, Template)]>,
    server_name: Arc<str>,
}

impl std::fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRequest")
            .field("uri", &self.uri)
            .field("sets", &self.sets.len())
            .finish()
    }
}

impl AuthRequest {
    /// A subrequest of `uri` (a path, maybe with a query) to `target`;
    /// the target may be given later ([`AuthRequest::target`]), once the
    /// location that answers it is built.
    pub fn new(uri: http::Uri, server_name: Arc<str>) -> AuthRequest {
        AuthRequest {
            uri,
            target: Arc::default(),
            sets: Arc::new([]),
            server_name,
        }
    }

    /// `auth_request_set $name value`, in order; `value` may use the
    /// subrequest's `$upstream_http_*`.
    pub fn with_sets(mut self, sets: Vec<(Arc<str>, Template)>) -> AuthRequest {
        self.sets = sets.into();
        self
    }

    /// Where the target is filled in (once).
    pub fn target(&self) -> &Arc<OnceLock<Subrequest>> {
        &self.target
    }

    /// The subrequest's path.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// Asks the target about `req`: `Ok` lets it in. The values of
    /// `auth_request_set` come back either way (nginx sets them before it
    /// answers, for the error page's sake).
    pub fn check<B>(
        &self,
        req: &Request<B>,
    ) -> impl Future<Output = (Result<(), ProxyError>, Option<SetVars>)> + Send + 'static {
        let sub = self.subrequest(req);
        // The request's head, only for `auth_request_set`'s variables.
        let head = (!self.sets.is_empty()).then(|| head_of(req));
        let target = self.target.get().cloned();
        let sets = self.sets.clone();
        let server_name = self.server_name.clone();
        async move {
            let Some(target) = target else {
                return (
                    Err(ProxyError::Internal("auth_request target missing".into())),
                    None,
                );
            };
            let res = match target(sub).await {
                Ok(res) => res,
                Err(e) => {
                    tracing::error!("auth request failed: {e}");
                    return (Err(ProxyError::Internal(e.into())), None);
                }
            };
            let vars = head.map(|head| {
                let conn = crate::conn::conn_info(&head);
                let path = crate::request::request_path(&head);
                let mut ctx = VarCtx::new(&head, &conn, path, &server_name);
                ctx.upstream = Some(res.headers());
                let mut vars = head
                    .extensions()
                    .get::<SetVars>()
                    .cloned()
                    .unwrap_or_default();
                for (name, value) in sets.iter() {
                    let v = value.render_to_string(&ctx);
                    vars.set(name, v);
                }
                vars
            });
            (verdict(&res), vars)
        }
    }

    /// The `GET` nginx sends: the request's headers, no body, this URI;
    /// what the connection knows goes along, and `$request_uri` stays the
    /// client's.
    fn subrequest<B>(&self, req: &Request<B>) -> Request<Empty<Bytes>> {
        let mut sub = Request::new(Empty::new());
        *sub.uri_mut() = self.uri.clone();
        *sub.version_mut() = req.version();
        *sub.headers_mut() = req.headers().clone();
        copy_connection(req, &mut sub);
        let main = match req.extensions().get::<MainRequest>() {
            Some(m) => m.clone(),
            None => MainRequest {
                uri: req
                    .extensions()
                    .get::<OriginalUri>()
                    .map(|o| o.0.clone())
                    .or_else(|| req.uri().path_and_query().cloned())
                    .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
                method: req.method().clone(),
            },
        };
        sub.extensions_mut().insert(main);
        sub
    }
}

/// nginx's reading of the gatekeeper's answer.
fn verdict(res: &Response<()>) -> Result<(), ProxyError> {
    let status = res.status();
    if status.is_success() {
        return Ok(());
    }
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(ProxyError::AuthRequest {
            status,
            challenges: res
                .headers()
                .get_all(http::header::WWW_AUTHENTICATE)
                .iter()
                .filter(|_| status == StatusCode::UNAUTHORIZED)
                .cloned()
                .collect::<Vec<HeaderValue>>(),
        }),
        other => {
            tracing::error!("auth request unexpected status: {}", other.as_u16());
            Err(ProxyError::Internal(
                format!("auth request unexpected status: {}", other.as_u16()).into(),
            ))
        }
    }
}

/// The request's head, for `auth_request_set`'s variables.
fn head_of<B>(req: &Request<B>) -> Request<()> {
    let mut head = Request::new(());
    *head.method_mut() = req.method().clone();
    *head.uri_mut() = req.uri().clone();
    *head.version_mut() = req.version();
    *head.headers_mut() = req.headers().clone();
    copy_connection(req, &mut head);
    copy_routing(req, &mut head);
    head
}

/// What the connection and the routing so far know, for variables.
fn copy_connection<B, C>(from: &Request<B>, to: &mut Request<C>) {
    let ext = from.extensions();
    if let Some(c) = ext.get::<crate::conn::ConnInfo>() {
        to.extensions_mut().insert(*c);
    }
    if let Some(t) = ext.get::<Arc<crate::tls::TlsInfo>>() {
        to.extensions_mut().insert(t.clone());
    }
    if let Some(p) = ext.get::<RealipPeer>() {
        to.extensions_mut().insert(*p);
    }
}

/// What routing so far changed or set, for variables.
fn copy_routing<B, C>(from: &Request<B>, to: &mut Request<C>) {
    let ext = from.extensions();
    if let Some(o) = ext.get::<OriginalUri>() {
        to.extensions_mut().insert(o.clone());
    }
    if let Some(p) = ext.get::<crate::request::NormalizedPath>() {
        to.extensions_mut().insert(p.clone());
    }
    if let Some(v) = ext.get::<SetVars>() {
        to.extensions_mut().insert(v.clone());
    }
}
