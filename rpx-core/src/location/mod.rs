//! Location matching with nginx semantics, as a routing service.
//!
//! [`LocationTable`] is the compiled matcher; [`LocationRouter`] normalises
//! the path, asks the table, runs the rewrite and [`TryFiles`] steps (which
//! may search again) and dispatches to the service of the location.

mod normalize;
mod table;
mod try_files;

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use http::{header, HeaderValue, Request, Response, StatusCode};
use tower::Service;

pub use normalize::{normalize, PathError};
pub use table::{LocationMatch, LocationSpec, LocationTable, MatchKind, TableError};
pub use try_files::{TryFiles, TryFilesError};

use crate::body::RpxBody;
use crate::call::{call_ready, CallFuture, CallRef};
use crate::conn::conn_info;
use crate::error::error_page;
use crate::rewrite::{set_uri, Outcome, Program, MAX_URI_CHANGES};
use crate::vars::request_host;
use try_files::Tried;

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
    // One reference for the whole router: cloning it per request is one
    // atomic increment.
    parts: Arc<Parts<S>>,
}

#[derive(Debug, Clone)]
struct Parts<S> {
    table: Arc<LocationTable>,
    services: Arc<[S]>,
    fallback: S,
    rewrites: Option<Arc<Rewrites>>,
    /// `try_files` per location id.
    try_files: Option<Arc<[Option<TryFiles>]>>,
}

impl<S> Clone for LocationRouter<S> {
    fn clone(&self) -> Self {
        LocationRouter {
            parts: self.parts.clone(),
        }
    }
}

/// Marks a request that `try_files … =code` answers: the location's
/// service responds with `code` (through its own `add_header`s).
#[derive(Debug, Clone, Copy)]
pub struct TryFilesStatus(pub StatusCode);

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
            parts: Arc::new(Parts {
                table: Arc::new(table),
                services: services.into(),
                fallback,
                rewrites: None,
                try_files: None,
            }),
        }
    }

    /// The parts, to finish building the router.
    fn parts_mut(&mut self) -> &mut Parts<S>
    where
        S: Clone,
    {
        Arc::make_mut(&mut self.parts)
    }

    /// Runs `rewrites` around location matching; `rewrite … last` searches
    /// the locations again, up to [`MAX_URI_CHANGES`] times.
    pub fn with_rewrites(mut self, rewrites: Rewrites) -> Self
    where
        S: Clone,
    {
        let empty = rewrites.server.is_none() && rewrites.locations.iter().all(Option::is_none);
        self.parts_mut().rewrites = (!empty).then(|| Arc::new(rewrites));
        self
    }

    /// Runs `try_files` (one per location id) once a location is chosen
    /// and its rewrites ran: see [`TryFiles`]. A URI fallback searches the
    /// locations again, and counts against [`MAX_URI_CHANGES`] as a
    /// `rewrite … last` does.
    pub fn with_try_files(mut self, try_files: Vec<Option<TryFiles>>) -> Self
    where
        S: Clone,
    {
        let empty = try_files.iter().all(Option::is_none);
        self.parts_mut().try_files = (!empty).then(|| try_files.into());
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
    type Future = Either<Ready<Result<Response<RpxBody>, S::Error>>, CallFuture<S, Request<B>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // Readiness is checked on the chosen service by `call_ready`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match self.parts.route(&mut req) {
            Ok(service) => Either::Right(call_ready(service.clone(), req)),
            Err(res) => Either::Left(ready(Ok(*res))),
        }
    }
}

impl<S, B> CallRef<Request<B>> for LocationRouter<S>
where
    S: CallRef<Request<B>, Response = Response<RpxBody>>,
{
    type Response = Response<RpxBody>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<RpxBody>, S::Error>>, S::Future>;

    fn call_ref(&self, mut req: Request<B>) -> Self::Future {
        match self.parts.route(&mut req) {
            Ok(service) => Either::Right(service.call_ref(req)),
            Err(res) => Either::Left(ready(Ok(*res))),
        }
    }
}

impl<S> Parts<S> {
    /// The service of the location `req` goes to (noted in its extensions),
    /// or the answer when it goes to none: a malformed path, a rewrite's
    /// or `try_files`'s own answer.
    fn route<B>(&self, req: &mut Request<B>) -> Result<&S, Box<Response<RpxBody>>> {
        let parts = self;
        let (found, owned) = match normalize(req.uri().path()) {
            Ok(path) => {
                let found = parts.table.find(&path);
                let owned = match path {
                    std::borrow::Cow::Owned(p) => Some(p),
                    std::borrow::Cow::Borrowed(_) => None,
                };
                (found, owned)
            }
            Err(_) => return Err(Box::new(error_page(StatusCode::BAD_REQUEST))),
        };
        if let Some(p) = owned {
            req.extensions_mut().insert(NormalizedPath(p));
        }
        let found = if parts.rewrites.is_none() && parts.try_files.is_none() {
            found
        } else {
            let phases = Phases {
                table: &parts.table,
                rewrites: parts.rewrites.as_deref(),
                try_files: parts.try_files.as_deref().unwrap_or_default(),
            };
            phases.run(found, req)?
        };
        Ok(match found {
            LocationMatch::Location(id) => &parts.services[id],
            // The location's own stack answers, so its `add_header`s apply
            // to the redirect as nginx's do.
            LocationMatch::AddSlash(id) => {
                req.extensions_mut().insert(AddSlash);
                &parts.services[id]
            }
            LocationMatch::None => &parts.fallback,
        })
    }
}

/// What runs between finding a location and calling its service.
struct Phases<'r> {
    table: &'r LocationTable,
    rewrites: Option<&'r Rewrites>,
    try_files: &'r [Option<TryFiles>],
}

impl Phases<'_> {
    /// The server's program, then the chosen location's, then its
    /// `try_files`, as nginx's phases: `rewrite … last` searches the
    /// locations again; a `try_files` URI fallback is an internal redirect
    /// (the server's program runs again too, as nginx restarts at the
    /// server rewrite phase); `@name` goes to the named location's
    /// rewrites. Each counts against [`MAX_URI_CHANGES`]. `Err` is a
    /// response to send at once.
    fn run<B>(
        &self,
        mut found: LocationMatch,
        req: &mut Request<B>,
    ) -> Result<LocationMatch, Box<Response<RpxBody>>> {
        let server = self.rewrites.and_then(|r| r.server.as_ref());
        let mut server_phase = true;
        let mut search = false;
        for _ in 0..=MAX_URI_CHANGES {
            if std::mem::take(&mut server_phase) {
                if let Some(p) = server {
                    match p.run(req) {
                        Outcome::Respond(r) => return Err(r),
                        Outcome::Last | Outcome::Continue => search = true,
                    }
                }
            }
            if std::mem::take(&mut search) {
                found = self.table.find(request_path(req));
            }
            let LocationMatch::Location(id) = found else {
                return Ok(found);
            };
            if let Some(p) = self.rewrites.and_then(|r| r.locations.get(id)?.as_ref()) {
                match p.run(req) {
                    Outcome::Respond(r) => return Err(r),
                    Outcome::Last => {
                        search = true;
                        continue;
                    }
                    Outcome::Continue => {}
                }
            }
            let Some(Some(tf)) = self.try_files.get(id) else {
                return Ok(found);
            };
            match tf.resolve(req) {
                Tried::Found(uri) => {
                    set_path(req, &uri)?;
                    return Ok(found);
                }
                Tried::Dir(uri) => {
                    set_path(req, &uri)?;
                    if !uri.ends_with('/') {
                        req.extensions_mut().insert(AddSlash);
                    }
                    return Ok(found);
                }
                Tried::Code(code) => {
                    req.extensions_mut().insert(TryFilesStatus(code));
                    return Ok(found);
                }
                Tried::Named(name) => match self.table.named(name) {
                    Some(named) => found = LocationMatch::Location(named),
                    None => {
                        // The compiler checks names; a router built by
                        // hand may still miss one (nginx answers 500 too).
                        tracing::error!(name, "could not find named location");
                        return Err(Box::new(error_page(StatusCode::INTERNAL_SERVER_ERROR)));
                    }
                },
                Tried::Redirect(target) => {
                    if !set_uri(req, &target) {
                        return Err(Box::new(error_page(StatusCode::INTERNAL_SERVER_ERROR)));
                    }
                    server_phase = true;
                    search = true;
                }
            }
        }
        tracing::warn!(uri = %req.uri(), "rewrite or internal redirection cycle");
        Err(Box::new(error_page(StatusCode::INTERNAL_SERVER_ERROR)))
    }
}

/// Sets the URI path to `path` when it differs, keeping the query.
fn set_path<B>(req: &mut Request<B>, path: &str) -> Result<(), Box<Response<RpxBody>>> {
    if path == request_path(req) {
        return Ok(());
    }
    let target = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    if set_uri(req, &target) {
        Ok(())
    } else {
        Err(Box::new(error_page(StatusCode::INTERNAL_SERVER_ERROR)))
    }
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
