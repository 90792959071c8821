//! Facts about a request that several layers read and the routing phases
//! change: the path locations are matched on (`$uri`) and the URI as the
//! client sent it (`$request_uri`), kept in the request's extensions.

use http::uri::PathAndQuery;
use http::{Request, Uri};

/// The normalised path of a request whose path needed normalising (or was
/// rewritten), put in the extensions by location routing. Read it with
/// [`request_path`].
#[derive(Debug, Clone)]
pub struct NormalizedPath(pub String);

/// Marks a request whose path keeps `//` when it is normalised: its
/// listener's default server has `merge_slashes off`.
#[derive(Debug, Clone, Copy)]
pub struct KeepSlashes;

/// The request URI as the client sent it, kept in the request extensions
/// when a `rewrite` changes the URI (`$request_uri` stays the original).
#[derive(Debug, Clone)]
pub struct OriginalUri(pub PathAndQuery);

/// Set on a subrequest (`auth_request`): the client's request it is made
/// for, whose URI and method `$request_uri` and `$request_method` are, as
/// nginx's variables of the main request.
#[derive(Debug, Clone)]
pub struct MainRequest {
    /// Path and query as the client sent them.
    pub uri: PathAndQuery,
    /// The client's method.
    pub method: http::Method,
}

/// The path locations were matched on: normalised when that changed it.
///
/// ```
/// let req = http::Request::get("/a/../b").body(()).unwrap();
/// assert_eq!(rpx_core::request::request_path(&req), "/a/../b"); // not routed yet
/// ```
pub fn request_path<B>(req: &Request<B>) -> &str {
    match req.extensions().get::<NormalizedPath>() {
        Some(p) => &p.0,
        None => req.uri().path(),
    }
}

/// Replaces the request's path and query, keeping the original for
/// `$request_uri` and for the proxy (which then sends the new URI as is).
/// False when `target` is not a path (and query).
pub(crate) fn set_uri<B>(req: &mut Request<B>, target: &str) -> bool {
    let Ok(pq) = PathAndQuery::try_from(target) else {
        return false;
    };
    if !pq.path().starts_with('/') {
        return false;
    }
    let mut parts = req.uri().clone().into_parts();
    if req.extensions().get::<OriginalUri>().is_none() {
        let original = parts
            .path_and_query
            .clone()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        req.extensions_mut().insert(OriginalUri(original));
    }
    let path = pq.path().to_owned();
    parts.path_and_query = Some(pq);
    let Ok(uri) = Uri::from_parts(parts) else {
        return false;
    };
    *req.uri_mut() = uri;
    req.extensions_mut().insert(NormalizedPath(path));
    true
}
