//! nginx's `return code [text | URL]`.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, StatusCode};

use crate::conn::conn_info;
use crate::reply::{error_page, redirect, reply, text, Reply};
use crate::request::request_path;
use crate::vars::{Template, TemplateError, VarCtx};

/// Why a `return` did not compile.
#[derive(Debug, thiserror::Error)]
pub enum ReturnError {
    /// Not a status code nginx accepts (000–999).
    #[error("invalid return code {0}")]
    Code(u16),
    /// A redirect code without a URL.
    #[error("return {0} needs a URL")]
    MissingUrl(u16),
    /// The text's variables.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// Answers every request itself.
///
/// ```
/// use rpx_core::action::ReturnService;
/// let r = ReturnService::new(301, Some("https://$host$request_uri")).unwrap();
/// let req = http::Request::get("/a?b").header("host", "example.com").body(()).unwrap();
/// let res = r.respond(&req);
/// assert_eq!(res.status(), 301);
/// assert_eq!(res.headers()["location"], "https://example.com/a?b");
/// ```
#[derive(Debug, Clone)]
pub struct ReturnService {
    code: StatusCode,
    text: Option<Arc<Template>>,
    server_name: Arc<str>,
}

fn is_redirect(code: u16) -> bool {
    matches!(code, 301 | 302 | 303 | 307 | 308)
}

impl ReturnService {
    /// `return code text`: for 301, 302, 303, 307 and 308 the text is the
    /// `Location`; otherwise it is the body.
    ///
    /// # Errors
    /// A code outside 100–599, a redirect without URL, an unknown variable.
    pub fn new(code: u16, text: Option<&str>) -> Result<Self, ReturnError> {
        Self::new_in(code, text, &crate::vars::Scope::default())
    }

    /// [`ReturnService::new`] with the config's own variables.
    ///
    /// # Errors
    /// As [`ReturnService::new`].
    pub fn new_in(
        code: u16,
        text: Option<&str>,
        scope: &crate::vars::Scope,
    ) -> Result<Self, ReturnError> {
        let status = StatusCode::from_u16(code).map_err(|_| ReturnError::Code(code))?;
        if is_redirect(code) && text.is_none() {
            return Err(ReturnError::MissingUrl(code));
        }
        Ok(ReturnService {
            code: status,
            text: text
                .map(|t| Template::parse_in(t, scope))
                .transpose()?
                .map(Arc::new),
            server_name: "".into(),
        })
    }

    /// `return URL`: a 302 to `URL`.
    ///
    /// # Errors
    /// An unknown variable.
    pub fn redirect_to(url: &str) -> Result<Self, ReturnError> {
        Self::new(302, Some(url))
    }

    /// What `$server_name` renders as. Default empty.
    pub fn server_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.server_name = name.into();
        self
    }

    /// The response for `req`.
    pub fn respond<B>(&self, req: &Request<B>) -> Reply {
        let rendered = self.text.as_ref().map(|t| {
            let conn = conn_info(req);
            t.render_to_string(&VarCtx::new(
                req,
                &conn,
                request_path(req),
                &self.server_name,
            ))
        });
        let code = self.code.as_u16();
        match rendered {
            Some(url) if is_redirect(code) => redirect(req, self.code, &url),
            Some(body) => text(self.code, body),
            None if code >= 400 => error_page(self.code),
            None => reply(self.code, bytes::Bytes::new()),
        }
    }
}

impl<B> tower::Service<Request<B>> for ReturnService {
    type Response = Reply;
    type Error = Infallible;
    type Future = Ready<Result<Reply, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.respond(&req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let req = Request::get("/p?q=1")
            .header("host", "h.test")
            .body(())
            .unwrap();
        let r = ReturnService::new(200, Some("ok $uri"))
            .unwrap()
            .respond(&req);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
        let r = ReturnService::new(302, Some("/new$is_args$args"))
            .unwrap()
            .respond(&req);
        assert_eq!(r.headers()["location"], "http://h.test/new?q=1");
        let r = ReturnService::new(404, None).unwrap().respond(&req);
        assert_eq!(r.status(), 404);
        let r = ReturnService::new(204, None).unwrap().respond(&req);
        assert_eq!(r.status(), 204);
        assert!(ReturnService::new(301, None).is_err());
        assert!(ReturnService::new(1000, None).is_err());
        assert!(ReturnService::new(200, Some("$bogus")).is_err());
    }
}
