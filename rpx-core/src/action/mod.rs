//! What a location does with a request: proxy it, answer it (`return`),
//! or serve a file (`root` / `alias`).

mod files;
mod ret;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{ready, Either, Ready};
use http::{Request, Response};
use http_body::Body;
use tower::Service;

pub use files::{FileService, FilesMode};
pub use ret::{ReturnError, ReturnService};

use crate::body::RpxBody;
use crate::call::CallRef;
use crate::error::{BoxError, ProxyError};
use crate::proxy::ProxyService;

/// The handler of one location.
#[derive(Debug, Clone)]
pub enum Action {
    /// `proxy_pass`.
    Proxy(ProxyService),
    /// `return`.
    Return(ReturnService),
    /// `root` / `alias`.
    Files(FileService),
    /// Prometheus metrics text.
    Metrics,
    /// Nothing configured: 404.
    NotFound,
}

type BoxedFuture = Pin<Box<dyn Future<Output = Result<Response<RpxBody>, ProxyError>> + Send>>;
/// An answer made at once, or a proxied or served one.
type ActionFuture = Either<Ready<Result<Response<RpxBody>, ProxyError>>, BoxedFuture>;

impl<B> Service<Request<B>> for Action
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<RpxBody>;
    type Error = ProxyError;
    type Future = ActionFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.call_ref(req)
    }
}

impl<B> CallRef<Request<B>> for Action
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<RpxBody>;
    type Error = ProxyError;
    type Future = ActionFuture;

    #[inline]
    fn call_ref(&self, req: Request<B>) -> Self::Future {
        if req
            .extensions()
            .get::<crate::location::AddSlash>()
            .is_some()
        {
            return Either::Left(ready(Ok(crate::location::add_slash(&req))));
        }
        if let Some(status) = req.extensions().get::<crate::location::TryFilesStatus>() {
            // `try_files … =404` goes through the rescue layer like any
            // missing file; other codes are answered here.
            return Either::Left(ready(match status.0 {
                http::StatusCode::NOT_FOUND => Err(ProxyError::NoRoute),
                code => Ok(crate::error::error_page(code)),
            }));
        }
        match self {
            Action::Proxy(p) => Either::Right(p.call_ref(req)),
            Action::Return(r) => Either::Left(ready(Ok(r.respond(&req)))),
            Action::Files(f) => Either::Right(Box::pin(f.clone().serve(req))),
            Action::Metrics => Either::Left(ready(Ok(crate::metrics::response()))),
            Action::NotFound => Either::Left(ready(Err(ProxyError::NoRoute))),
        }
    }
}
