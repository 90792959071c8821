//! The compiled stack's servers and locations: concrete types that hold
//! each layer's settings and call them by reference.
//!
//! The public layers (`AccessLog`, `AddHeaders`, `BodyLimit`,
//! `RequestMetrics`, `LocationRouter`) are plain `tower::Service`s and
//! need `&mut self`; a stack that used them as services would clone the
//! chosen server and location per request (an atomic increment and
//! decrement per `Arc` in them). These types call the same layers' code
//! (`start`, `route`) through `&self` instead, in this order, outside in:
//!
//! 0. `RealIp` — the client's address from a trusted proxy's header, before
//!    anything reads it (access lists, logs, `$remote_addr`).
//! 1. `RequestMetrics` — counts every request of the server, routed or not.
//! 2. `LocationRouter::route` — path normalisation, the rewrite,
//!    preaccess (`limit_req`), access (`allow`/`deny`) and `try_files`
//!    phases, location matching; its answers (`return`, redirects) and
//!    errors skip the location's layers, as nginx's server-level `return`
//!    does. What it leaves to wait for (`limit_req`'s delay, then an
//!    `auth_basic` password, which may hash off the executor) is done
//!    next, before anything is served; a refusal is the location's answer.
//! 3. `AccessLog` — per location; sees the location's answer and errors.
//!    With `error_page`s (`pages`), the answer is looked at before it is
//!    logged: one the pages replace is not, the page's location logs the
//!    request instead (nginx writes one line, where the request ended).
//! 4. `AddHeaders` — per location; also on its redirects and `=code` pages.
//! 5. `BodyLimit` — only around the handler, which reads the body.
//! 6. the handler: proxy, `return`, files, metrics.
//!
//! Errors go up as `ProxyError`s to the `Rescue` around the whole stack.

use bytes::Bytes;
use futures_util::future::{ready, Either, Ready};
use http::{Method, Request, Response, StatusCode};

use std::sync::Arc;

use super::body::{from_reply, Body, IntoBody, Shape};
use super::pages;
use crate::access::Pending;
use crate::accesslog::{AccessLogFuture, AccessLogLayer, LoggedBody};
use crate::action::{FileService, FilesFuture, ReturnService};
use crate::compress::sub_filter::SubFilter;
use crate::compress::Gzip;
use crate::error::{BoxError, ProxyError};
use crate::error_page::ErrorPages;
use crate::headers::{AddHeadersFuture, AddHeadersLayer};
use crate::limit::bandwidth::{Bandwidth, LimitRate};
use crate::limit::{limited, BodyLimitLayer};
use crate::location::{LocationRouter, Routed};
use crate::metrics::{RequestMetricsFuture, RequestMetricsLayer};
use crate::proxy::{ProxyFuture, ProxyService};
use crate::realip::RealIp;
use crate::reply::{add_slash, error_page};

/// What a location runs once its layers have passed the request.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// `proxy_pass`.
    Proxy(ProxyService),
    /// `return`.
    Return(ReturnService),
    /// `root` / `alias`.
    Files(FileService),
    /// rpx's Prometheus metrics.
    Metrics,
    /// nginx's `stub_status` page.
    StubStatus,
    /// Nothing to serve: 404.
    NotFound,
}

/// An answer made at once.
type Answer<B> = Ready<Result<Response<B>, ProxyError>>;
type ActionFuture = Either<Answer<Body>, Either<IntoBody<ProxyFuture>, IntoBody<FilesFuture>>>;
/// A location's answer before it is logged.
pub(super) type Responding =
    AddHeadersFuture<Either<Answer<Body>, Either<Answer<Body>, ActionFuture>>>;
/// The future of one location's request.
pub(crate) type LocationFuture = AccessLogFuture<Responding>;
/// A request whose password is checked, or whose answer may be replaced
/// by an `error_page`, before it is served.
pub(super) type Guarded = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<LoggedBody<Body>>, ProxyError>> + Send>,
>;
/// The future of one server's request.
pub(crate) type ServerFuture =
    RequestMetricsFuture<Either<Answer<LoggedBody<Body>>, Either<LocationFuture, Guarded>>>;

impl Action {
    #[inline]
    fn call<B>(&self, req: Request<B>, shape: Shape) -> ActionFuture
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let answer = |reply| {
            let mut res = from_reply(reply);
            shape.restatus(&mut res);
            Either::Left(ready(Ok(res)))
        };
        match self {
            Action::Proxy(p) => Either::Right(Either::Left(IntoBody::new(p.forward(req), shape))),
            Action::Return(r) => answer(r.respond(&req)),
            Action::Files(f) => Either::Right(Either::Right(IntoBody::new(f.serve(req), shape))),
            Action::Metrics => answer(crate::metrics::response()),
            // nginx's handler answers GET and HEAD only.
            Action::StubStatus if !matches!(*req.method(), Method::GET | Method::HEAD) => {
                Either::Left(ready(Err(ProxyError::MethodNotAllowed)))
            }
            Action::StubStatus => answer(crate::metrics::stub_status::response()),
            Action::NotFound => Either::Left(ready(Err(ProxyError::NoRoute))),
        }
    }

    pub(crate) fn proxies(&self) -> bool {
        matches!(self, Action::Proxy(_))
    }
}

/// One location, compiled.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    pub(crate) log: AccessLogLayer,
    pub(crate) headers: AddHeadersLayer,
    pub(crate) limit: BodyLimitLayer,
    /// `limit_rate` / `limit_rate_after`.
    pub(crate) bandwidth: Option<Bandwidth>,
    /// `gzip`.
    pub(crate) gzip: Option<Arc<Gzip>>,
    /// `sub_filter`, and the server name its values' `$server_name` is.
    pub(crate) sub: Option<(SubFilter, Arc<str>)>,
    /// `error_page`, with `proxy_intercept_errors` and
    /// `recursive_error_pages`.
    pub(crate) pages: Option<Arc<ErrorPages>>,
    pub(crate) action: Action,
}

impl Location {
    /// An `auth_request` subrequest: the handler alone, as nginx (no
    /// access log, `log_subrequest off`; no `add_header`, the answer is
    /// not the client's). Its body is not read.
    pub(crate) fn subrequest(
        &self,
        req: Request<http_body_util::Empty<Bytes>>,
    ) -> impl std::future::Future<Output = Result<Response<()>, ProxyError>> + Send + 'static {
        let answer = limited(self.limit.limit(), req, |req| {
            self.action.call(req, Shape::default())
        });
        async move { answer.await.map(|res| res.map(|_| ())) }
    }
}

/// What routing decided: a location to answer, and how; or what it
/// answered itself (a program's reply, with the location whose program it
/// was; or an error).
pub(super) type Plan<'r> = Result<
    (&'r Location, How),
    Result<(Option<&'r Location>, Box<crate::reply::Reply>), ProxyError>,
>;

/// [`Plan`] of what the router said.
pub(super) fn plan(routed: Result<Routed<'_, Location>, ProxyError>) -> Plan<'_> {
    match routed {
        Ok(Routed::Serve(l)) => Ok((l, How::Serve)),
        Ok(Routed::AddSlash(l)) => Ok((l, How::AddSlash)),
        Ok(Routed::Status(l, code)) => Ok((l, How::Status(code))),
        Ok(Routed::Answer(by, reply)) => Err(Ok((by, reply))),
        Err(e) => Err(Err(e)),
    }
}

/// How routing asked a location to answer.
pub(super) enum How {
    Serve,
    AddSlash,
    Status(StatusCode),
    /// A refused password: the error's page, as the location's answer.
    Refuse(ProxyError),
}

impl Location {
    #[inline]
    pub(super) fn call<B>(&self, req: Request<B>, how: How) -> LocationFuture
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.respond_logged(req, how, None)
    }

    /// [`Location::respond`], logged.
    #[inline]
    pub(super) fn respond_logged<B>(
        &self,
        req: Request<B>,
        how: How,
        status: Option<StatusCode>,
    ) -> LocationFuture
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.log.start(req, |req| self.respond(req, how, status))
    }

    /// The location's answer, not logged yet; `status`: the one an
    /// `error_page` sends the page with, given to what the handler
    /// answers before `add_header` and `gzip` look at it, as nginx.
    #[inline]
    pub(super) fn respond<B>(
        &self,
        mut req: Request<B>,
        how: How,
        status: Option<StatusCode>,
    ) -> Responding
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if let Some(b) = self.bandwidth {
            req.extensions_mut().insert(LimitRate(b.rate()));
        }
        self.headers.start(req, |req| match how {
            How::Serve => Either::Right(limited(self.limit.limit(), req, |req| {
                let sub = self.sub.as_ref().map(|(f, server_name)| {
                    let conn = crate::conn::conn_info(&req);
                    let path = crate::request::request_path(&req);
                    let ctx = crate::vars::VarCtx::new(&req, &conn, path, server_name);
                    (f.clone(), f.prepare(&ctx))
                });
                let shape = Shape {
                    sub,
                    gzip: self.gzip.as_ref().map(|g| (g.clone(), g.ask(&req))),
                    pace: self.bandwidth,
                    status,
                };
                self.action.call(req, shape)
            })),
            How::AddSlash => Either::Left(ready(Ok(from_reply(add_slash(&req))))),
            // As any missing file: through the rescue layer.
            How::Status(StatusCode::NOT_FOUND) => Either::Left(ready(Err(ProxyError::NoRoute))),
            How::Status(code) => Either::Left(ready(Ok(from_reply(error_page(code))))),
            How::Refuse(e) => Either::Left(ready(Ok(from_reply(e.to_response())))),
        })
    }
}

/// `server_tokens on`'s `Server` header.
pub(crate) static SERVER_TOKENS: http::HeaderValue =
    http::HeaderValue::from_static(concat!("rpx/", env!("CARGO_PKG_VERSION")));
/// `server_tokens off`'s.
pub(crate) static SERVER_NAME_ONLY: http::HeaderValue = http::HeaderValue::from_static("rpx");

/// One virtual server, compiled.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) metrics: RequestMetricsLayer,
    /// `Server: rpx/VERSION`, or `rpx` with `server_tokens off`.
    pub(crate) server_header: &'static http::HeaderValue,
    /// `set_real_ip_from`: the client's address from a trusted proxy,
    /// read before anything uses it.
    pub(crate) realip: Option<RealIp>,
    pub(crate) router: LocationRouter<Location>,
}

impl Server {
    #[inline]
    pub(crate) fn call<B>(&self, mut req: Request<B>) -> ServerFuture
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if let Some(r) = &self.realip {
            r.apply(&mut req);
        }
        self.metrics.start(|| {
            let router = &self.router;
            let routed = router.route(&mut req);
            if let Some(pending) = Pending::take(&mut req) {
                let paged = guarded(router, pending, routed, req, None, pages::FIRST);
                return Either::Right(Either::Right(paged));
            }
            let (l, how) = match plan(routed) {
                Ok(chosen) => chosen,
                Err(Ok((by, reply))) => {
                    let by = by.unwrap_or(router.fallback());
                    return match pages::replaces_answer(by, &reply) {
                        true => Either::Right(Either::Right(pages::answered(
                            router.clone(),
                            by.clone(),
                            &req,
                            Ok(*reply),
                        ))),
                        false => Either::Left(ready(Ok(unlogged(*reply)))),
                    };
                }
                Err(Err(e)) => {
                    let by = router.fallback();
                    return match pages::replaces_error(by, &e) {
                        true => Either::Right(Either::Right(pages::answered(
                            router.clone(),
                            by.clone(),
                            &req,
                            Err(e),
                        ))),
                        false => Either::Left(ready(Err(e))),
                    };
                }
            };
            if l.pages.is_some() {
                let paged = pages::serve(router.clone(), l.clone(), req, how, None, pages::FIRST);
                return Either::Right(Either::Right(paged));
            }
            Either::Right(Either::Left(l.call(req, how)))
        })
    }
}

fn unlogged(reply: crate::reply::Reply) -> Response<LoggedBody<Body>> {
    reply.map(|b| LoggedBody::unlogged(Body::from(b)))
}

/// Waits out `pending`'s delay and checks its passwords, then answers as
/// `routed` says; a refusal is the chosen location's answer (logged, with
/// its headers). `limit_conn`'s counts go with the response body. The
/// location is cloned: only requests of limited or protected locations
/// come here (and an `error_page`'s, which may be protected too).
pub(super) fn guarded<B>(
    router: &LocationRouter<Location>,
    mut pending: Pending,
    routed: Result<Routed<'_, Location>, ProxyError>,
    req: Request<B>,
    status: Option<StatusCode>,
    paging: pages::Paging,
) -> Guarded
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let slots = pending.take_slots();
    let check = pending.check(&req);
    let plan = match plan(routed) {
        Ok((l, how)) => Ok((l.clone(), how)),
        Err(Ok((_, reply))) => Err(Ok(*reply)),
        Err(Err(e)) => Err(Err(e)),
    };
    let router = matches!(&plan, Ok((l, _)) if l.pages.is_some()).then(|| router.clone());
    // A refusal for a page keeps the refusal's status; a page's answer gets the page's.
    let mut req = req;
    Box::pin(async move {
        let (result, vars) = check.await;
        if let Some(vars) = vars {
            req.extensions_mut().insert(vars);
        }
        let refused = result.err();
        let mut res = match (plan, refused) {
            (Ok((l, how)), refused) => {
                let how = refused.map_or(how, How::Refuse);
                match router {
                    Some(router) => pages::serve(router, l, req, how, status, paging).await,
                    None => l.respond_logged(req, how, status).await,
                }
            }
            (Err(_), Some(e)) => Ok(unlogged(e.to_response())),
            (Err(answer), None) => answer.map(unlogged),
        };
        if let (Ok(res), Some(slots)) = (&mut res, slots) {
            res.body_mut().get_mut().hold(slots);
        }
        res
    })
}
