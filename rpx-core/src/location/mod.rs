//! Location matching with nginx semantics, as a routing service.
//!
//! [`LocationTable`] is the compiled matcher; [`LocationRouter`] normalises
//! the path, asks the table and dispatches to the service of the location.

mod normalize;
mod table;

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use http::{header, HeaderValue, Request, Response, StatusCode};
use tower::util::Oneshot;
use tower::{Service, ServiceExt};

pub use normalize::{normalize, PathError};
pub use table::{LocationMatch, LocationSpec, LocationTable, MatchKind, TableError};

use crate::body::RpxBody;
use crate::conn::conn_info;
use crate::error::error_page;
use crate::rewrite::{Outcome, Program, MAX_URI_CHANGES};
use crate::vars::request_host;

/// The normalised path of a request whose path needed normalising, put in
/// the extensions by [`LocationRouter`]. Read it with [`request_path`].
#[derive(Debug, Clone)]
pub struct NormalizedPath(pub String);

/// The path locations were matched on: normalised when that changed it.
pub fn request_path<B>(req: &Request<B>) -> &str {
    match req.extensions().get::<NormalizedPath>() {
        Some(p) => &p.0,
        None => req.uri().path(),
    }
}

/// Routes requests to one service per location, nginx's way.
///
/// ```
/// use rpx_core::{body::RpxBody, location::LocationRouter};
/// use tower::{service_fn, ServiceExt};
///
/// fn answer(text: &'static str) -> impl tower::Service<http::Request<()>, Response = http::Response<RpxBody>, Error = std::convert::Infallible, Future = impl Send> + Clone {
///     service_fn(move |_req| async move { Ok(http::Response::new(RpxBody::from(text))) })
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let router = LocationRouter::builder()
///     .route("/api/", answer("api"))
///     .route("= /health", answer("ok"))
///     .route(r"~* \.png$", answer("image"))
///     .fallback(answer("app"))
///     .unwrap();
/// let res = router.oneshot(http::Request::get("/x/a.PNG").body(()).unwrap()).await.unwrap();
/// assert_eq!(http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes(), "image");
/// # });
/// ```
#[derive(Debug)]
pub struct LocationRouter<S> {
    table: Arc<LocationTable>,
    services: Arc<[S]>,
    fallback: S,
    rewrites: Option<Arc<Rewrites>>,
}

impl<S: Clone> Clone for LocationRouter<S> {
    fn clone(&self) -> Self {
        LocationRouter {
            table: self.table.clone(),
            services: self.services.clone(),
            fallback: self.fallback.clone(),
            rewrites: self.rewrites.clone(),
        }
    }
}

/// The rewrite programs of one server: its own (run before locations are
/// searched) and one per location id (run once the location is chosen).
#[derive(Debug, Default)]
pub struct Rewrites {
    /// The server level's program.
    pub server: Option<Program>,
    /// Per location id (depth-first config order, as the table).
    pub locations: Vec<Option<Program>>,
}

impl<S> LocationRouter<S> {
    /// A builder of routes in nginx `location` syntax.
    pub fn builder() -> LocationRouterBuilder<S> {
        LocationRouterBuilder { routes: Vec::new() }
    }

    /// A router from a compiled table and one service per table id.
    ///
    /// # Panics
    /// When `services.len()` differs from `table.len()`: a bug in the caller.
    pub fn from_parts(table: LocationTable, services: Vec<S>, fallback: S) -> Self {
        assert_eq!(table.len(), services.len(), "one service per location");
        LocationRouter {
            table: Arc::new(table),
            services: services.into(),
            fallback,
            rewrites: None,
        }
    }

    /// Runs `rewrites` around location matching; `rewrite … last` searches
    /// the locations again, up to [`MAX_URI_CHANGES`] times.
    pub fn with_rewrites(mut self, rewrites: Rewrites) -> Self {
        let empty = rewrites.server.is_none() && rewrites.locations.iter().all(Option::is_none);
        self.rewrites = (!empty).then(|| Arc::new(rewrites));
        self
    }
}

/// Builder of a [`LocationRouter`].
#[derive(Debug)]
pub struct LocationRouterBuilder<S> {
    routes: Vec<(LocationSpec, S)>,
}

impl<S> LocationRouterBuilder<S> {
    /// Adds a location: `"/prefix/"`, `"= /exact"`, `"^~ /prefix/"`, `"~ regex"`, `"~* regex"`.
    pub fn route(mut self, location: &str, service: S) -> Self {
        let (kind, pattern) = MatchKind::split(location);
        self.routes
            .push((LocationSpec::new(kind, pattern), service));
        self
    }

    /// Finishes with the service for paths no location matches.
    ///
    /// # Errors
    /// Bad regexes and duplicate locations.
    pub fn fallback(self, fallback: S) -> Result<LocationRouter<S>, TableError> {
        let (specs, services): (Vec<_>, Vec<_>) = self.routes.into_iter().unzip();
        let table = LocationTable::build(&specs)?;
        Ok(LocationRouter::from_parts(table, services, fallback))
    }
}

impl<S, B> Service<Request<B>> for LocationRouter<S>
where
    S: Service<Request<B>, Response = Response<RpxBody>> + Clone,
{
    type Response = Response<RpxBody>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<RpxBody>, S::Error>>, Oneshot<S, Request<B>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // Readiness is checked on the chosen service by `oneshot`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let (found, owned) = match normalize(req.uri().path()) {
            Ok(path) => {
                let found = self.table.find(&path);
                let owned = match path {
                    std::borrow::Cow::Owned(p) => Some(p),
                    std::borrow::Cow::Borrowed(_) => None,
                };
                (found, owned)
            }
            Err(_) => return Either::Left(ready(Ok(error_page(StatusCode::BAD_REQUEST)))),
        };
        if let Some(p) = owned {
            req.extensions_mut().insert(NormalizedPath(p));
        }
        let found = match &self.rewrites {
            None => found,
            Some(rw) => match run_rewrites(rw, &self.table, found, &mut req) {
                Ok(found) => found,
                Err(res) => return Either::Left(ready(Ok(*res))),
            },
        };
        match found {
            LocationMatch::Location(id) => Either::Right(self.services[id].clone().oneshot(req)),
            // The location's own stack answers, so its `add_header`s apply
            // to the redirect as nginx's do.
            LocationMatch::AddSlash(id) => {
                req.extensions_mut().insert(AddSlash);
                Either::Right(self.services[id].clone().oneshot(req))
            }
            LocationMatch::None => Either::Right(self.fallback.clone().oneshot(req)),
        }
    }
}

/// The server's program, then the chosen location's, searching again on
/// `last`. `Err` is a response the rewrite module answered with.
fn run_rewrites<B>(
    rw: &Rewrites,
    table: &LocationTable,
    mut found: LocationMatch,
    req: &mut Request<B>,
) -> Result<LocationMatch, Box<Response<RpxBody>>> {
    let mut search_again = false;
    if let Some(p) = &rw.server {
        match p.run(req) {
            Outcome::Respond(r) => return Err(r),
            Outcome::Last | Outcome::Continue => search_again = true,
        }
    }
    for _ in 0..=MAX_URI_CHANGES {
        if search_again {
            found = table.find(request_path(req));
        }
        let LocationMatch::Location(id) = found else {
            return Ok(found);
        };
        let Some(Some(p)) = rw.locations.get(id) else {
            return Ok(found);
        };
        match p.run(req) {
            Outcome::Respond(r) => return Err(r),
            Outcome::Continue => return Ok(found),
            Outcome::Last => search_again = true,
        }
    }
    tracing::warn!(uri = %req.uri(), "rewrite or internal redirection cycle");
    Err(Box::new(error_page(StatusCode::INTERNAL_SERVER_ERROR)))
}

/// Marks a request the location answers with a `301` to its path plus `/`
/// (nginx's answer to `/app` for a proxying `location /app/`); see
/// [`add_slash`].
#[derive(Debug, Clone, Copy)]
pub struct AddSlash;

/// `301` to the same URL with a `/` added to the path.
pub fn add_slash<B>(req: &Request<B>) -> Response<RpxBody> {
    let mut target = String::from(request_path(req));
    target.push('/');
    if let Some(q) = req.uri().query() {
        target.push('?');
        target.push_str(q);
    }
    redirect(req, StatusCode::MOVED_PERMANENTLY, &target)
}

/// A redirect response; a target starting with `/` is made absolute with the
/// request's scheme, host and (non-default) port, as nginx's `absolute_redirect`.
pub fn redirect<B>(req: &Request<B>, status: StatusCode, target: &str) -> Response<RpxBody> {
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
