//! Location matching with nginx semantics, as a routing service.
//!
//! [`LocationTable`] is the compiled matcher; [`LocationRouter`] normalises
//! the path, asks the table, runs the rewrite and [`TryFiles`] steps (which
//! may search again) and dispatches to the service of the location.

mod normalize;
mod table;
mod try_files;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, MapOk, Ready, TryFutureExt};
use http::{Request, Response, StatusCode};
use tower::Service;

pub use normalize::{escape_path, normalize, normalize_with, PathError};
pub use table::{LocationMatch, LocationSpec, LocationTable, MatchKind, TableError};
pub use try_files::{TryFiles, TryFilesError};

use crate::access::{client_addr, Gate, Guard, LimitExcept, Pending};
use crate::call::{call_ready, CallFuture};
use crate::error::ProxyError;
use crate::limit::conn::{ConnDecision, ConnLimits, ConnStatus};
use crate::limit::rate::{RateDecision, RateLimits};
use crate::realip::{RealIp, RealipPeer};
use crate::reply::{add_slash, error_page, Reply, ReplyBody};
use crate::request::{request_path, set_uri, KeepSlashes, NormalizedPath, OriginalUri};
use crate::rewrite::{Outcome, Program, MAX_URI_CHANGES};
use try_files::Tried;

/// Routes requests to one service per location, nginx's way.
///
/// ```
/// use http_body_util::Full;
/// use rpx_core::{error::ProxyError, location::LocationRouter};
/// use tower::{service_fn, ServiceExt};
///
/// // Any service whose errors take the router's own (a `ProxyError`).
/// fn answer(text: &'static str) -> impl tower::Service<http::Request<()>, Response = http::Response<Full<bytes::Bytes>>, Error = ProxyError, Future = impl Send> + Clone {
///     service_fn(move |_req| async move { Ok(http::Response::new(Full::from(text))) })
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
    /// `merge_slashes`.
    merge_slashes: bool,
    /// `allow` / `deny` per location id, and for requests no location matches.
    access: Option<Arc<RouterAccess>>,
    /// `internal` per location id.
    internal: Option<Arc<[bool]>>,
    /// The server's `server_name ~regex`es with groups: the one that
    /// matches the host gives the request's first captures.
    host_captures: Option<Arc<[crate::pattern::Pattern]>>,
}

/// The checks of nginx's preaccess and access phases a router makes.
#[derive(Debug, Default, Clone)]
struct RouterAccess {
    locations: Vec<Option<Guard>>,
    /// `limit_except` per location id.
    except: Vec<Option<LimitExcept>>,
    fallback: Option<Guard>,
    /// `limit_req` per location id.
    limits: Vec<Option<RateLimits>>,
    fallback_limits: Option<RateLimits>,
    /// `limit_conn` per location id.
    conns: Vec<Option<ConnLimits>>,
    fallback_conns: Option<ConnLimits>,
    /// A location's own `real_ip` settings, per location id.
    realip: Vec<Option<RealIp>>,
}

impl RouterAccess {
    /// nginx's preaccess phase: `limit_req`, then `limit_conn`, each once
    /// per request; a refusal's status, or nothing. A delay and the counts
    /// a request holds are left on it as [`Pending`].
    fn preaccess<B>(
        rate: Option<&RateLimits>,
        conn: Option<&ConnLimits>,
        req: &mut Request<B>,
    ) -> Option<StatusCode> {
        if let Some(code) = Self::limit(rate, req) {
            return Some(code);
        }
        let conn = conn?;
        if req.extensions().get::<ConnStatus>().is_some() {
            return None;
        }
        let decision = conn.decide(req)?;
        req.extensions_mut().insert(decision.status());
        match decision {
            ConnDecision::Passed(slots) => {
                Pending::hold(req, slots);
                None
            }
            ConnDecision::Rejected(code) => Some(code),
            ConnDecision::RejectedDryRun => None,
        }
    }

    /// `limit_req`: a refusal's status, or nothing; a delay is left on the
    /// request as [`Pending`].
    fn limit<B>(limits: Option<&RateLimits>, req: &mut Request<B>) -> Option<StatusCode> {
        let limits = limits?;
        if req.extensions().get::<RateDecision>().is_some() {
            return None;
        }
        let decision = limits.decide(req)?;
        req.extensions_mut().insert(decision);
        match decision {
            RateDecision::Rejected(code) => Some(code),
            RateDecision::Delayed(d) => {
                Pending::delay(req, d);
                None
            }
            _ => None,
        }
    }

    /// Location `id`'s preaccess and access phases: the status it answers
    /// with, if it refuses `req`.
    fn location_refuses<B>(&self, id: usize, req: &mut Request<B>) -> Option<StatusCode> {
        // nginx's realip runs again in the preaccess phase with the
        // location's settings, unless the server's already replaced the
        // address.
        if let Some(realip) = self.realip.get(id).and_then(Option::as_ref) {
            if req.extensions().get::<RealipPeer>().is_none() {
                realip.apply(req);
            }
        }
        let rate = self.limits.get(id).and_then(Option::as_ref);
        let conn = self.conns.get(id).and_then(Option::as_ref);
        if let Some(code) = Self::preaccess(rate, conn, req) {
            return Some(code);
        }
        self.location_denies(id, req)
            .then_some(StatusCode::FORBIDDEN)
    }

    /// The same for requests no location matches.
    fn fallback_refuses<B>(&self, req: &mut Request<B>) -> Option<StatusCode> {
        let (rate, conn) = (self.fallback_limits.as_ref(), self.fallback_conns.as_ref());
        if let Some(code) = Self::preaccess(rate, conn, req) {
            return Some(code);
        }
        Self::denies(self.fallback.as_ref(), req).then_some(StatusCode::FORBIDDEN)
    }

    /// Whether `guard` refuses the client of `req`: a 403 now, or a pass
    /// once its password is checked (left on the request as [`Pending`]).
    fn denies<B>(guard: Option<&Guard>, req: &mut Request<B>) -> bool {
        let Some(guard) = guard else {
            return false;
        };
        match guard.gate(client_addr(req)) {
            Gate::Pass => false,
            Gate::Deny => true,
            Gate::Check => {
                Pending::add(req, guard);
                false
            }
        }
    }

    /// Whether location `id` refuses `req`: its `limit_except` guard for
    /// the methods that holds, else its own.
    fn location_denies<B>(&self, id: usize, req: &mut Request<B>) -> bool {
        let except = self.except.get(id).and_then(Option::as_ref);
        let guard = except
            .and_then(|e| e.guard_for(req.method()))
            .or_else(|| self.locations.get(id)?.as_ref());
        Self::denies(guard, req)
    }
}

impl<S> Clone for LocationRouter<S> {
    fn clone(&self) -> Self {
        LocationRouter {
            parts: self.parts.clone(),
        }
    }
}

/// What routing decided for a request: which service answers it, and how.
#[derive(Debug)]
pub enum Routed<'r, S> {
    /// The location's service (or the fallback) serves the request.
    Serve(&'r S),
    /// The location answers with a `301` to the path plus `/` (nginx's
    /// answer to `/app` for a proxying `location /app/`), as its own
    /// response so that its `add_header`s apply.
    AddSlash(&'r S),
    /// `try_files … =code` ended the search: the location answers `code`.
    Status(&'r S, StatusCode),
    /// A rewrite program answered (`return`, `rewrite … redirect`) before
    /// the location's service was called: the location's program (whose
    /// service is given), or the server's (`None`).
    Answer(Option<&'r S>, Box<Reply>),
}

/// The body of what [`LocationRouter`] answers: the chosen service's, or
/// the router's own (a redirect, a `return`).
pub type RouterBody<B> = http_body_util::Either<B, ReplyBody>;

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
                merge_slashes: true,
                access: None,
                internal: None,
                host_captures: None,
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

    /// Keeps the groups of the first of `names` (the server's
    /// `server_name ~regex`es, case-insensitive as server names match)
    /// that matches the request's host as its captures (`$1`, named
    /// groups), before the server's rewrites, as nginx does.
    pub fn with_host_captures(mut self, names: Vec<crate::pattern::Pattern>) -> Self
    where
        S: Clone,
    {
        let names: Vec<_> = names.into_iter().filter(|r| r.captures_len() > 1).collect();
        self.parts_mut().host_captures = (!names.is_empty()).then(|| names.into());
        self
    }

    /// Keeps `//` in paths when false (nginx's `merge_slashes off`); on by
    /// default, as nginx. A request marked
    /// [`KeepSlashes`] keeps them either way.
    pub fn with_merge_slashes(mut self, merge: bool) -> Self
    where
        S: Clone,
    {
        self.parts_mut().merge_slashes = merge;
        self
    }

    /// Checks each location's [`Guard`] (one per location id, and one for
    /// requests no location matches; an [`AccessList`](crate::access::AccessList)
    /// converts) where nginx's access phase is: after the location's
    /// rewrites, before its `try_files`; a denied client gets the
    /// location's 403 ([`Routed::Status`]). A password to check is left on
    /// the request as [`Pending`]: [`Service::call`] checks it before the
    /// location's service; a caller of [`LocationRouter::route`] must.
    /// Locations whose answer is a `return` should have none: nginx's
    /// `return` comes first.
    pub fn with_access(mut self, locations: Vec<Option<Guard>>, fallback: Option<Guard>) -> Self
    where
        S: Clone,
    {
        self.change_access(|a| {
            a.locations = locations;
            a.fallback = fallback;
        });
        self
    }

    /// `limit_except` per location id: requests with other methods are
    /// held to its guard, checked where [`LocationRouter::with_access`]'s are.
    pub fn with_limit_except(mut self, except: Vec<Option<LimitExcept>>) -> Self
    where
        S: Clone,
    {
        self.change_access(|a| a.except = except);
        self
    }

    /// `limit_req` (one set per location id, and one for requests no
    /// location matches), checked once per request before the access
    /// checks, as nginx's preaccess phase: a refusal is the location's
    /// answer with the set's status; a delay is left on the request as
    /// [`Pending`], as a password is.
    pub fn with_rate_limits(
        mut self,
        locations: Vec<Option<RateLimits>>,
        fallback: Option<RateLimits>,
    ) -> Self
    where
        S: Clone,
    {
        self.change_access(|a| {
            a.limits = locations;
            a.fallback_limits = fallback;
        });
        self
    }

    /// `limit_conn` (one set per location id, and one for requests no
    /// location matches), counted once per request after `limit_req`, as
    /// nginx's preaccess phase: a refusal is the location's answer with the
    /// set's status; the counts are left on the request as [`Pending`] for
    /// the stack to hold until the response is done. ([`Service::call`]
    /// holds them until the chosen service answers.)
    pub fn with_conn_limits(
        mut self,
        locations: Vec<Option<ConnLimits>>,
        fallback: Option<ConnLimits>,
    ) -> Self
    where
        S: Clone,
    {
        self.change_access(|a| {
            a.conns = locations;
            a.fallback_conns = fallback;
        });
        self
    }

    /// A location's own `real_ip` settings (one per location id), applied
    /// before its limits and access checks, as nginx's preaccess phase
    /// applies them, unless the server's already replaced the address.
    pub fn with_realip(mut self, realip: Vec<Option<RealIp>>) -> Self
    where
        S: Clone,
    {
        self.change_access(|a| a.realip = realip);
        self
    }

    fn change_access(&mut self, change: impl FnOnce(&mut RouterAccess))
    where
        S: Clone,
    {
        let mut access = self.parts.access.as_deref().cloned().unwrap_or_default();
        change(&mut access);
        let empty = access.fallback.is_none()
            && access.fallback_limits.is_none()
            && access.locations.iter().all(Option::is_none)
            && access.except.iter().all(Option::is_none)
            && access.limits.iter().all(Option::is_none)
            && access.fallback_conns.is_none()
            && access.conns.iter().all(Option::is_none)
            && access.realip.iter().all(Option::is_none);
        self.parts_mut().access = (!empty).then(|| Arc::new(access));
    }

    /// Marks `internal` locations (one flag per location id): a client's
    /// request that matches one gets its 404; one changed by a rewrite or
    /// sent on by `try_files` is served, as nginx.
    pub fn with_internal(mut self, internal: Vec<bool>) -> Self
    where
        S: Clone,
    {
        let any = internal.iter().any(|&i| i);
        self.parts_mut().internal = any.then(|| internal.into());
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

impl<S> LocationRouter<S> {
    /// Routes `req` (normalising its path, running the rewrite and
    /// `try_files` phases, which may change its URI) and says which service
    /// answers it and how. The compiled stack calls its locations through
    /// this, by reference; [`Service::call`] through it too.
    ///
    /// # Errors
    /// A path that does not normalise ([`ProxyError::BadPath`]), a rewrite
    /// cycle, an internal redirect rpx cannot follow.
    #[inline]
    pub fn route<B>(&self, req: &mut Request<B>) -> Result<Routed<'_, S>, ProxyError> {
        let parts = &*self.parts;
        if let Some(names) = &parts.host_captures {
            keep_host_captures(names, req);
        }
        // The extension is looked up only for a path that may hold `//`
        // (written, or escaped as `%2F`).
        let raw = req.uri().path();
        let may_merge = raw.contains("//") || raw.contains('%');
        let merge =
            parts.merge_slashes && (!may_merge || req.extensions().get::<KeepSlashes>().is_none());
        let path = normalize_with(raw, merge).map_err(|_| ProxyError::BadPath)?;
        let found = parts.table.find(&path);
        let captures = parts.table.captures(found, &path);
        if let std::borrow::Cow::Owned(p) = path {
            req.extensions_mut().insert(NormalizedPath(p));
        }
        if let Some((re, c)) = captures {
            c.keep(re, req);
        }
        let access = parts.access.as_deref();
        let internal = parts.internal.as_deref();
        let found = if parts.rewrites.is_none() && parts.try_files.is_none() {
            match found {
                LocationMatch::Location(id)
                    if is_internal(internal, id)
                        && req.extensions().get::<OriginalUri>().is_none() =>
                {
                    Found::Status(id, StatusCode::NOT_FOUND)
                }
                LocationMatch::Location(id) => {
                    match access.and_then(|a| a.location_refuses(id, req)) {
                        Some(code) => Found::Status(id, code),
                        None => Found::Match(found),
                    }
                }
                found => Found::Match(found),
            }
        } else {
            let phases = Phases {
                table: &parts.table,
                rewrites: parts.rewrites.as_deref(),
                try_files: parts.try_files.as_deref().unwrap_or_default(),
                access,
                internal,
            };
            phases.run(found, req)?
        };
        Ok(self.routed(found, req))
    }

    /// Routes `req` to `location @name` (an `error_page`'s internal
    /// redirect), URI kept: its rewrites, access checks and `try_files`
    /// run, the server's rewrites do not, as nginx.
    ///
    /// # Errors
    /// No location of that name ([`ProxyError::BadRedirect`]), and as
    /// [`LocationRouter::route`].
    pub fn route_named<B>(
        &self,
        name: &str,
        req: &mut Request<B>,
    ) -> Result<Routed<'_, S>, ProxyError> {
        let parts = &*self.parts;
        let Some(id) = parts.table.named(name) else {
            return Err(ProxyError::BadRedirect(format!(
                "no named location \"@{name}\""
            )));
        };
        let phases = Phases {
            table: &parts.table,
            rewrites: parts.rewrites.as_deref(),
            try_files: parts.try_files.as_deref().unwrap_or_default(),
            access: parts.access.as_deref(),
            internal: parts.internal.as_deref(),
        };
        let found = phases.run_from(LocationMatch::Location(id), req, true)?;
        Ok(self.routed(found, req))
    }

    /// The service for requests no location matches: the server's own
    /// level.
    pub fn fallback(&self) -> &S {
        &self.parts.fallback
    }

    fn routed<B>(&self, found: Found, req: &mut Request<B>) -> Routed<'_, S> {
        let parts = &*self.parts;
        let access = parts.access.as_deref();
        match found {
            Found::Match(LocationMatch::Location(id)) => Routed::Serve(&parts.services[id]),
            Found::Match(LocationMatch::AddSlash(id)) | Found::AddSlash(id) => {
                Routed::AddSlash(&parts.services[id])
            }
            Found::Match(LocationMatch::None) => {
                match access.and_then(|a| a.fallback_refuses(req)) {
                    Some(code) => Routed::Status(&parts.fallback, code),
                    None => Routed::Serve(&parts.fallback),
                }
            }
            Found::Status(id, code) => Routed::Status(&parts.services[id], code),
            Found::Answer(id, reply) => Routed::Answer(id.map(|id| &parts.services[id]), reply),
        }
    }
}

/// A response the router makes itself, as the chosen service's body type.
type Own<B, E> = Ready<Result<Response<RouterBody<B>>, E>>;
/// The chosen service's call, its body put on the left.
type Chosen<S, B, ResB> =
    MapOk<CallFuture<S, Request<B>>, fn(Response<ResB>) -> Response<RouterBody<ResB>>>;
/// A request whose password is checked first.
type Guarded<B, E> = Pin<Box<dyn Future<Output = Result<Response<RouterBody<B>>, E>> + Send>>;

impl<S, B, ResB> Service<Request<B>> for LocationRouter<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: From<ProxyError> + Send + 'static,
    B: Send + 'static,
    ResB: Send + 'static,
{
    type Response = Response<RouterBody<ResB>>;
    type Error = S::Error;
    type Future = Either<Own<ResB, S::Error>, Either<Chosen<S, B, ResB>, Guarded<ResB, S::Error>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // Readiness is checked on the chosen service by `call_ready`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let routed = self.route(&mut req);
        // What to answer, the chosen service's call aside.
        let own = |routed: Result<Routed<'_, S>, ProxyError>, req: &Request<B>| match routed {
            Ok(Routed::Serve(service)) => Ok(Err(service.clone())),
            Ok(Routed::AddSlash(_)) => Ok(Ok(add_slash(req))),
            Ok(Routed::Status(_, StatusCode::NOT_FOUND)) => Err(ProxyError::NoRoute),
            Ok(Routed::Status(_, code)) => Ok(Ok(error_page(code))),
            Ok(Routed::Answer(_, reply)) => Ok(Ok(*reply)),
            Err(e) => Err(e),
        };
        let pending = Pending::take(&mut req);
        let next = own(routed, &req);
        let Some(mut pending) = pending else {
            return match next {
                Ok(Err(service)) => Either::Right(Either::Left(
                    call_ready(service, req)
                        .map_ok(left as fn(Response<ResB>) -> Response<RouterBody<ResB>>),
                )),
                Ok(Ok(reply)) => Either::Left(ready(Ok(reply.map(RouterBody::Right)))),
                Err(e) => Either::Left(ready(Err(e.into()))),
            };
        };
        let slots = pending.take_slots();
        let check = pending.check(&req);
        Either::Right(Either::Right(Box::pin(async move {
            // `limit_conn` counts the request until its service answers.
            let _slots = slots;
            let (result, vars) = check.await;
            if let Some(vars) = vars {
                req.extensions_mut().insert(vars);
            }
            result?;
            match next {
                Ok(Err(service)) => call_ready(service, req).await.map(left),
                Ok(Ok(reply)) => Ok(reply.map(RouterBody::Right)),
                Err(e) => Err(e.into()),
            }
        })))
    }
}

fn left<B>(res: Response<B>) -> Response<RouterBody<B>> {
    res.map(RouterBody::Left)
}

/// What the phases found.
enum Found {
    Match(LocationMatch),
    AddSlash(usize),
    Status(usize, StatusCode),
    /// A program answered: a location's (its id), or the server's.
    Answer(Option<usize>, Box<Reply>),
}

struct Phases<'r> {
    table: &'r LocationTable,
    rewrites: Option<&'r Rewrites>,
    try_files: &'r [Option<TryFiles>],
    access: Option<&'r RouterAccess>,
    internal: Option<&'r [bool]>,
}

impl Phases<'_> {
    /// The server's program, then the chosen location's, then its
    /// `try_files`, as nginx's phases: `rewrite … last` searches the
    /// locations again; a `try_files` URI fallback is an internal redirect
    /// (the server's program runs again too, as nginx restarts at the
    /// server rewrite phase); `@name` goes to the named location's
    /// rewrites. Each counts against [`MAX_URI_CHANGES`]. `Err` is a
    /// response to send at once.
    fn run<B>(&self, found: LocationMatch, req: &mut Request<B>) -> Result<Found, ProxyError> {
        self.run_from(found, req, false)
    }

    /// [`Phases::run`] from location `found`; `named`: a named location,
    /// entered without the server's program (nginx's
    /// `ngx_http_named_location`).
    fn run_from<B>(
        &self,
        mut found: LocationMatch,
        req: &mut Request<B>,
        mut named: bool,
    ) -> Result<Found, ProxyError> {
        let server = self.rewrites.and_then(|r| r.server.as_ref());
        let mut server_phase = !named;
        let mut search = false;
        for _ in 0..=MAX_URI_CHANGES {
            if std::mem::take(&mut server_phase) {
                if let Some(p) = server {
                    match p.run(req) {
                        Outcome::Respond(r) => return Ok(Found::Answer(None, r)),
                        Outcome::Fail(e) => return Err(e),
                        Outcome::Last | Outcome::Continue => search = true,
                    }
                }
            }
            if std::mem::take(&mut search) {
                found = self.table.find(request_path(req));
                if let Some((re, c)) = self.table.captures(found, request_path(req)) {
                    c.keep(re, req);
                }
            }
            let LocationMatch::Location(id) = found else {
                return Ok(Found::Match(found));
            };
            // A client's own request; a rewrite or `try_files` changes the
            // URI (and keeps the original), a named location is internal.
            if is_internal(self.internal, id)
                && !named
                && req.extensions().get::<OriginalUri>().is_none()
            {
                return Ok(Found::Status(id, StatusCode::NOT_FOUND));
            }
            if let Some(p) = self.rewrites.and_then(|r| r.locations.get(id)?.as_ref()) {
                match p.run(req) {
                    Outcome::Respond(r) => return Ok(Found::Answer(Some(id), r)),
                    Outcome::Fail(e) => return Err(e),
                    Outcome::Last => {
                        search = true;
                        continue;
                    }
                    Outcome::Continue => {}
                }
            }
            // nginx's preaccess and access phases: before `try_files`,
            // and again after each internal redirect.
            if let Some(code) = self.access.and_then(|a| a.location_refuses(id, req)) {
                return Ok(Found::Status(id, code));
            }
            let Some(Some(tf)) = self.try_files.get(id) else {
                return Ok(Found::Match(found));
            };
            match tf.resolve(req) {
                Tried::Found(uri) => {
                    set_path(req, &uri)?;
                    return Ok(Found::Match(found));
                }
                Tried::Dir(uri) => {
                    set_path(req, &uri)?;
                    if !uri.ends_with('/') {
                        return Ok(Found::AddSlash(id));
                    }
                    return Ok(Found::Match(found));
                }
                Tried::Code(code) => return Ok(Found::Status(id, code)),
                Tried::Named(name) => match self.table.named(name) {
                    Some(to) => {
                        named = true;
                        found = LocationMatch::Location(to);
                    }
                    // The compiler checks names; a router built by hand
                    // may still miss one (nginx answers 500 too).
                    None => {
                        let missing = format!("no named location {name:?}");
                        return Err(ProxyError::BadRedirect(missing));
                    }
                },
                Tried::Redirect(target) => {
                    if !set_uri(req, &target) {
                        return Err(ProxyError::BadRedirect(target));
                    }
                    server_phase = true;
                    search = true;
                }
            }
        }
        Err(ProxyError::RewriteCycle)
    }
}

/// The groups of the first of `names` matching the request's host.
fn keep_host_captures<B>(names: &[crate::pattern::Pattern], req: &mut Request<B>) {
    let Some(host) = crate::vars::request_host(req.uri(), req.headers()) else {
        return;
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if let Some((re, c)) = names
        .iter()
        .find_map(|re| Some((re, crate::vars::Captures::of(re, &host)?)))
    {
        c.keep(re, req);
    }
}

/// Whether location `id` is `internal`.
fn is_internal(internal: Option<&[bool]>, id: usize) -> bool {
    internal.and_then(|i| i.get(id)).copied().unwrap_or(false)
}

/// Sets the URI path to `path` when it differs, keeping the query.
fn set_path<B>(req: &mut Request<B>, path: &str) -> Result<(), ProxyError> {
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
        Err(ProxyError::BadRedirect(target))
    }
}
