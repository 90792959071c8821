//! `add_header name value [always]` and `expires` as a layer: nginx's
//! headers filter, which sets `expires` first and adds the headers after.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use tower::{Layer, Service};

use super::expires::{Expires, ExpiresRule};
use super::{HeaderError, HeaderValueTemplate};
use crate::conn::conn_info;
use crate::request::request_path;
use crate::vars::VarCtx;

/// One `add_header`.
#[derive(Debug, Clone)]
pub struct AddHeader {
    name: HeaderName,
    value: HeaderValueTemplate,
    always: bool,
}

impl AddHeader {
    /// Added only to 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308 responses, as nginx.
    ///
    /// # Errors
    /// A bad name, value or variable.
    pub fn new(name: &str, value: &str) -> Result<Self, HeaderError> {
        Self::new_in(name, value, false, &crate::vars::Scope::default())
    }

    /// A rule with the config's own variables; `always` as [`AddHeader::always`].
    ///
    /// # Errors
    /// A bad name, value or variable.
    pub fn new_in(
        name: &str,
        value: &str,
        always: bool,
        scope: &crate::vars::Scope,
    ) -> Result<Self, HeaderError> {
        Ok(AddHeader {
            name: HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HeaderError::Name(name.into()))?,
            value: HeaderValueTemplate::parse_in(value, scope)?,
            always,
        })
    }

    /// Added to every response (`add_header … always`).
    ///
    /// # Errors
    /// A bad name, value or variable.
    pub fn always(name: &str, value: &str) -> Result<Self, HeaderError> {
        Ok(AddHeader {
            always: true,
            ..Self::new(name, value)?
        })
    }
}

/// nginx adds non-`always` headers only to these statuses.
fn status_allows(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

/// Adds response headers, nginx's `add_header`.
///
/// ```
/// use http_body_util::Empty;
/// use rpx_core::headers::{AddHeader, AddHeadersLayer};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let layer = AddHeadersLayer::new(vec![
///     AddHeader::new("x-frame-options", "DENY").unwrap(),
///     AddHeader::always("strict-transport-security", "max-age=63072000").unwrap(),
/// ]);
/// let svc = ServiceBuilder::new().layer(layer).service(service_fn(|_r: http::Request<()>| async {
///     let mut res = http::Response::new(Empty::<bytes::Bytes>::new());
///     *res.status_mut() = http::StatusCode::NOT_FOUND;
///     Ok::<_, std::convert::Infallible>(res)
/// }));
/// let res = svc.oneshot(http::Request::new(())).await.unwrap();
/// assert!(res.headers().get("x-frame-options").is_none()); // not on a 404
/// assert!(res.headers().get("strict-transport-security").is_some());
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct AddHeadersLayer {
    // One reference: the layer is cloned with its location per request.
    shared: Arc<Rules>,
}

#[derive(Debug, Clone)]
struct Rules {
    rules: Vec<AddHeader>,
    server_name: Box<str>,
    expires: Option<ExpiresRule>,
}

impl AddHeadersLayer {
    /// A layer adding `rules` in order.
    pub fn new(rules: Vec<AddHeader>) -> Self {
        AddHeadersLayer {
            shared: Arc::new(Rules {
                rules,
                server_name: "".into(),
                expires: None,
            }),
        }
    }

    /// Sets `Expires` and `Cache-Control` as nginx's `expires` does,
    /// before the headers are added. `expires off` is no rule.
    pub fn expires(self, rule: ExpiresRule) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        shared.expires = (rule.as_constant() != Some(&Expires::Off)).then_some(rule);
        AddHeadersLayer {
            shared: Arc::new(shared),
        }
    }

    /// Sets what `$server_name` renders as in values. Default is empty.
    pub fn server_name(self, name: impl Into<Arc<str>>) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        shared.server_name = name.into().as_ref().into();
        AddHeadersLayer {
            shared: Arc::new(shared),
        }
    }
}

impl AddHeadersLayer {
    /// Adds the headers to a response made for `req` without a service
    /// (the rewrite module's `return`), as the layer would.
    pub fn apply_to<B, ResB>(&self, req: &Request<B>, res: &mut Response<ResB>) {
        let allowed = status_allows(res.status());
        let conn = conn_info(req);
        let ctx = VarCtx::new(req, &conn, request_path(req), &self.shared.server_name);
        if let Some(e) = &self.shared.expires {
            let status = res.status();
            e.prepare(&ctx)
                .apply(status, res.headers_mut(), std::time::SystemTime::now());
        }
        for rule in &self.shared.rules {
            if rule.always || allowed {
                if let Some(v) = rule.value.render(&ctx) {
                    res.headers_mut().append(rule.name.clone(), v);
                }
            }
        }
    }
}

impl<S> Layer<S> for AddHeadersLayer {
    type Service = AddHeaders<S>;
    fn layer(&self, inner: S) -> AddHeaders<S> {
        AddHeaders {
            inner,
            layer: self.clone(),
        }
    }
}

/// Service of [`AddHeadersLayer`].
#[derive(Debug, Clone)]
pub struct AddHeaders<S> {
    inner: S,
    layer: AddHeadersLayer,
}

impl<S, B, ResB> Service<Request<B>> for AddHeaders<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = AddHeadersFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = &mut self.inner;
        self.layer.start(req, |req| inner.call(req))
    }
}

impl AddHeadersLayer {
    /// Renders the request's values and calls `inner`: [`AddHeaders`]'s
    /// call, and the compiled stack's.
    #[inline]
    pub(crate) fn start<B, F>(
        &self,
        req: Request<B>,
        inner: impl FnOnce(Request<B>) -> F,
    ) -> AddHeadersFuture<F> {
        let shared = &self.shared;
        let rules = &shared.rules;
        // Values with variables are rendered now, while the request exists;
        // fixed ones are cloned from the compiled rule when the response comes.
        let dynamic = rules
            .iter()
            .any(|r| matches!(r.value, HeaderValueTemplate::Dynamic(_)));
        let (rendered, expires) = match (&shared.expires, dynamic) {
            (None, false) => (Vec::new(), None),
            (Some(e), false) if e.as_constant().is_some() => (Vec::new(), e.as_constant().cloned()),
            (expires, _) => {
                let conn = conn_info(&req);
                let ctx = VarCtx::new(&req, &conn, request_path(&req), &shared.server_name);
                let rendered = match dynamic {
                    true => rules.iter().map(|r| r.value.render(&ctx)).collect(),
                    false => Vec::new(),
                };
                (rendered, expires.as_ref().map(|e| e.prepare(&ctx)))
            }
        };
        AddHeadersFuture {
            inner: inner(req),
            // Nothing to hold on to (and no reference to take) without rules.
            rules: (!rules.is_empty() || expires.is_some()).then(|| shared.clone()),
            rendered,
            expires,
        }
    }
}

pin_project_lite::pin_project! {
    /// Future of [`AddHeaders`].
    #[must_use = "futures do nothing unless polled"]
    pub struct AddHeadersFuture<F> {
        #[pin]
        inner: F,
        rules: Option<Arc<Rules>>,
        rendered: Vec<Option<HeaderValue>>,
        expires: Option<Expires>,
    }
}

impl<F, ResB, E> Future for AddHeadersFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        let Some(shared) = this.rules.as_ref() else {
            return Poll::Ready(Ok(res));
        };
        if let Some(e) = this.expires.take() {
            let status = res.status();
            e.apply(status, res.headers_mut(), std::time::SystemTime::now());
        }
        let allowed = status_allows(res.status());
        for (i, rule) in shared.rules.iter().enumerate() {
            if !(rule.always || allowed) {
                continue;
            }
            let value = match &rule.value {
                HeaderValueTemplate::Const(v) => Some(v.clone()),
                HeaderValueTemplate::Remove => None,
                HeaderValueTemplate::Dynamic(_) => this.rendered.get_mut(i).and_then(Option::take),
            };
            if let Some(v) = value {
                res.headers_mut().append(rule.name.clone(), v);
            }
        }
        Poll::Ready(Ok(res))
    }
}
