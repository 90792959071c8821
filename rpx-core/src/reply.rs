//! Responses rpx makes itself: nginx's error pages, redirects and text
//! answers. They all have one body type, [`ReplyBody`], a single buffer,
//! so every layer that answers on its own (routing's redirects, `return`,
//! the rescue layer's error pages) needs nothing of the body its inner
//! services stream.

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};

use crate::conn::conn_info;
use crate::request::request_path;
use crate::vars::request_host;

/// Marks the answers rpx makes itself for a status (nginx's "special
/// responses": its error pages, redirects, `return code` without text),
/// which `error_page` may replace; a `return 404 "text"` or an upstream's
/// response is not one.
#[derive(Debug, Clone, Copy)]
pub struct Special;

/// The body of the responses rpx makes itself: one buffer.
pub type ReplyBody = http_body_util::Full<Bytes>;

/// A response rpx makes itself.
pub type Reply = Response<ReplyBody>;

/// A response of `status` with `body`, no headers.
pub fn reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut res = Response::new(ReplyBody::new(body.into()));
    *res.status_mut() = status;
    res
}

/// A `text/plain` answer (`return 200 "ok"`).
pub fn text(status: StatusCode, text: impl Into<Bytes>) -> Reply {
    let mut res = reply(status, text);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// An nginx-looking error page for `status`.
///
/// ```
/// let page = rpx_core::reply::error_page(http::StatusCode::NOT_FOUND);
/// assert_eq!(page.status(), 404);
/// assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
/// ```
pub fn error_page(status: StatusCode) -> Reply {
    error_page_titled(status, status.canonical_reason().unwrap_or(""))
}

/// An error page with a title of its own, as nginx's
/// "400 No required SSL certificate was sent".
pub fn error_page_titled(status: StatusCode, reason: &str) -> Reply {
    let body = format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>rpx</center>\r\n</body>\r\n</html>\r\n",
        code = status.as_u16()
    );
    let mut res = reply(status, body);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res.extensions_mut().insert(Special);
    res
}

/// `301` to the same URL with a `/` added to the path (nginx's answer to
/// `/app` for a proxying `location /app/`).
pub fn add_slash<B>(req: &Request<B>) -> Reply {
    let mut target = String::from(crate::location::escape_path(request_path(req)));
    target.push('/');
    if let Some(q) = req.uri().query() {
        target.push('?');
        target.push_str(q);
    }
    redirect(req, StatusCode::MOVED_PERMANENTLY, &target)
}

/// A redirect response; a target starting with `/` is made absolute with the
/// request's scheme, host and (non-default) port, as nginx's `absolute_redirect`.
pub fn redirect<B>(req: &Request<B>, status: StatusCode, target: &str) -> Reply {
    let location = if target.starts_with('/') {
        absolute_url(req, target)
    } else {
        target.to_owned()
    };
    let mut res = error_page(status);
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// `scheme://host[:port]` + `path`, from the request and its connection.
pub fn absolute_url<B>(req: &Request<B>, path: &str) -> String {
    let conn = conn_info(req);
    let host = request_host(req.uri(), req.headers())
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| conn.local.ip().to_string());
    let port = conn.server_port();
    if port == conn.scheme.default_port() || port == 0 {
        format!("{}://{host}{path}", conn.scheme.as_str())
    } else {
        format!("{}://{host}:{port}{path}", conn.scheme.as_str())
    }
}
