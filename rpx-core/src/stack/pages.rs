//! `error_page` in the compiled stack: an answer a location's pages
//! replace is dropped unlogged, and the page is served instead, as
//! nginx's internal redirect does: the page's URI (or named location) is
//! routed again from the server's rewrites, with the client's head (the
//! method made GET, the body left behind), and answers with the status
//! the page says. Only locations with pages come here; the others keep
//! the stack's unboxed path.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

use super::body::{from_reply, Body, HandlerStatus};
use super::compiled::{guarded, plan, Guarded, How, Location};
use crate::access::Pending as Checks;
use crate::accesslog::{LoggedBody, Pending as LogLine};
use crate::conn::conn_info;
use crate::error::{log_error, BoxError, ProxyError};
use crate::error_page::{ErrorPages, PageStatus, PageTarget};
use crate::location::LocationRouter;
use crate::reply::{error_page, Special};
use crate::request::{request_path, set_uri};
use crate::rewrite::MAX_URI_CHANGES;
use crate::vars::VarCtx;

type Served = Result<Response<LoggedBody<Body>>, ProxyError>;

/// How far a request has been through pages.
#[derive(Debug, Clone, Copy)]
pub(super) struct Paging {
    /// Whether its answer may be replaced (off after a page of a level
    /// without `recursive_error_pages`).
    may_page: bool,
    /// Internal redirects so far; nginx stops at ten.
    redirects: usize,
}

/// A client's request, before any page.
pub(super) const FIRST: Paging = Paging {
    may_page: true,
    redirects: 0,
};

/// A routing answer for `req` (`return`, an error before any location)
/// that `by`'s pages replace.
pub(super) fn answered<B>(
    router: LocationRouter<Location>,
    by: Location,
    req: &Request<B>,
    answer: Result<crate::reply::Reply, ProxyError>,
) -> Guarded {
    replace(
        router,
        by,
        Head::of(req),
        None,
        answer.map(from_reply),
        FIRST,
    )
}

/// Whether `l`'s pages replace routing's `reply`.
pub(super) fn replaces_answer(l: &Location, reply: &crate::reply::Reply) -> bool {
    let own = reply.extensions().get::<Special>().is_some();
    own && l
        .pages
        .as_ref()
        .is_some_and(|p| p.find(reply.status()).is_some())
}

/// Whether `l`'s pages replace `e`'s answer.
pub(super) fn replaces_error(l: &Location, e: &ProxyError) -> bool {
    l.pages
        .as_ref()
        .is_some_and(|p| p.find(e.status()).is_some())
}

/// Serves `req` at `l`, giving its handler's answer `status`; an answer
/// its pages replace (if `paging` still may) becomes the page.
pub(super) fn serve<B>(
    router: LocationRouter<Location>,
    l: Location,
    req: Request<B>,
    how: How,
    status: Option<StatusCode>,
    paging: Paging,
) -> Guarded
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let may_page = paging.may_page && l.pages.is_some();
    if !may_page {
        return Box::pin(l.respond_logged(req, how, status));
    }
    let mut req = req;
    // The log's slot for `$upstream_*` first: the page's request shares it.
    let line = l.log.capture(&mut req);
    let head = Head::of(&req);
    let answer = l.respond(req, how, status);
    Box::pin(async move {
        let answer = answer.await;
        replace(router, l, head, line, answer, paging).await
    })
}

/// `answer` of `l` for `head`, or its page.
fn replace(
    router: LocationRouter<Location>,
    l: Location,
    head: Head,
    line: Option<Box<LogLine>>,
    answer: Result<Response<Body>, ProxyError>,
    paging: Paging,
) -> Guarded {
    Box::pin(async move { replace_now(&router, &l, &head, line, answer, paging).await })
}

async fn replace_now(
    router: &LocationRouter<Location>,
    l: &Location,
    head: &Head,
    line: Option<Box<LogLine>>,
    answer: Result<Response<Body>, ProxyError>,
    paging: Paging,
) -> Served {
    let pages = l.pages.as_deref().filter(|_| paging.may_page);
    let Some((pages, page, code)) =
        pages.and_then(|p| replaced(p, l, &answer).map(|(pg, c)| (p, pg, c)))
    else {
        return LogLine::attach(line, answer);
    };
    // What the page keeps of the answer it replaces: a 401's challenge,
    // and the closing of a connection after a bad request, as nginx.
    let mut kept = HeaderMap::new();
    match &answer {
        Err(e) => {
            log_error(e);
            keep_challenges(&e.to_response(), &mut kept);
        }
        Ok(res) => keep_challenges(res, &mut kept),
    }
    if matches!(code.as_u16(), 400 | 413 | 414 | 500 | 501) {
        kept.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    drop(answer);
    let req = head.request();
    let conn = conn_info(&req);
    let target = page.render(&VarCtx::new(&req, &conn, request_path(&req), pages.name()));
    if let PageTarget::Url(_) = page.target {
        // A redirect, answered by this location: its headers, its log.
        let mut reply = error_page(page.redirect_status());
        match HeaderValue::try_from(target) {
            Ok(v) => reply.headers_mut().insert(header::LOCATION, v),
            Err(_) => return LogLine::attach(line, Err(bad_target(page))),
        };
        l.headers.apply_to(&req, &mut reply);
        let mut res = LogLine::attach(line, Ok(from_reply(reply)))?;
        res.headers_mut().extend(kept);
        return Ok(res);
    }
    if let Some(mut line) = line {
        line.discard();
    }
    if paging.redirects >= MAX_URI_CHANGES {
        return Err(ProxyError::RewriteCycle);
    }
    let status = match page.status {
        PageStatus::Original => Some(code),
        PageStatus::Page => None,
        PageStatus::Code(c) => Some(c),
    };
    let next = Paging {
        may_page: pages.recursive_pages(),
        redirects: paging.redirects + 1,
    };
    let mut res = follow(router, &page.target, &target, req, status, next).await?;
    res.headers_mut().extend(kept);
    Ok(res)
}

/// The page `pages` replace `answer` with, and the code it replaces:
/// rpx's own error answers and errors, and an upstream's with
/// `proxy_intercept_errors`.
fn replaced<'p>(
    pages: &'p ErrorPages,
    l: &Location,
    answer: &Result<Response<Body>, ProxyError>,
) -> Option<(&'p crate::error_page::Page, StatusCode)> {
    let code = match answer {
        Err(e) => e.status(),
        Ok(res) => {
            let ext = res.extensions();
            let code = ext.get::<HandlerStatus>().map_or(res.status(), |h| h.0);
            let own = ext.get::<Special>().is_some();
            let upstream = !own && l.action.proxies() && pages.intercepts();
            if !(own || upstream && code.as_u16() >= 300) {
                return None;
            }
            code
        }
    };
    pages.find(code).map(|page| (page, code))
}

/// The internal redirect to the page.
async fn follow(
    router: &LocationRouter<Location>,
    target: &PageTarget,
    rendered: &str,
    mut req: Request<()>,
    status: Option<StatusCode>,
    paging: Paging,
) -> Served {
    let routed = match target {
        PageTarget::Named(name) => router.route_named(name, &mut req),
        _ => {
            if req.method() != Method::HEAD {
                *req.method_mut() = Method::GET;
            }
            if !set_uri(&mut req, rendered) {
                return Err(ProxyError::BadRedirect(rendered.to_owned()));
            }
            router.route(&mut req)
        }
    };
    let mut req = req.map(|()| http_body_util::Empty::<Bytes>::new());
    if let Some(checks) = Checks::take(&mut req) {
        return guarded(router, checks, routed, req, status, paging).await;
    }
    let (l, how) = match plan(routed) {
        Ok(chosen) => chosen,
        Err(Ok((by, reply))) => {
            let by = by.unwrap_or(router.fallback());
            let mut answer = from_reply(*reply);
            if answer.extensions().get::<Special>().is_none() {
                if let Some(s) = status {
                    *answer.status_mut() = s;
                }
            }
            let head = Head::of(&req);
            return replace(router.clone(), by.clone(), head, None, Ok(answer), paging).await;
        }
        Err(Err(e)) => {
            let head = Head::of(&req);
            let by = router.fallback().clone();
            return replace(router.clone(), by, head, None, Err(e), paging).await;
        }
    };
    serve(router.clone(), l.clone(), req, how, status, paging).await
}

fn keep_challenges<B>(res: &Response<B>, kept: &mut HeaderMap) {
    if res.status() == StatusCode::UNAUTHORIZED {
        for v in res.headers().get_all(header::WWW_AUTHENTICATE) {
            kept.append(header::WWW_AUTHENTICATE, v.clone());
        }
    }
}

fn bad_target(page: &crate::error_page::Page) -> ProxyError {
    ProxyError::BadRedirect(format!("error_page target {:?}", page.target))
}

/// What an internal redirect keeps of the client's request: its head.
struct Head {
    parts: http::request::Parts,
}

impl Head {
    /// `req`'s head, without the framing of the body it leaves behind.
    fn of<B>(req: &Request<B>) -> Head {
        let mut head = Request::new(());
        *head.method_mut() = req.method().clone();
        *head.uri_mut() = req.uri().clone();
        *head.version_mut() = req.version();
        *head.headers_mut() = req.headers().clone();
        head.headers_mut().remove(header::CONTENT_LENGTH);
        head.headers_mut().remove(header::TRANSFER_ENCODING);
        *head.extensions_mut() = req.extensions().clone();
        Head {
            parts: head.into_parts().0,
        }
    }

    /// A request with this head and no body.
    fn request(&self) -> Request<()> {
        let p = &self.parts;
        let mut req = Request::new(());
        *req.method_mut() = p.method.clone();
        *req.uri_mut() = p.uri.clone();
        *req.version_mut() = p.version;
        *req.headers_mut() = p.headers.clone();
        *req.extensions_mut() = p.extensions.clone();
        req
    }
}
