//! # rpx-core
//!
//! The building blocks of the rpx reverse proxy as `tower` layers and
//! services, with nginx's semantics. Every layer is generic over request
//! and response bodies, as tower-http's are: an axum `Router` or any
//! streaming service sits behind [`location::LocationRouter`], and
//! tower-http's layers compose into the same `ServiceBuilder`.
//!
//! The modules, lowest first: each uses only modules above it (the
//! exceptions left are `tls` ↔ `acme`, for the tls-alpn-01 challenge
//! certificates, and `config` ↔ `acme`, for the ACME settings' types).
//!
//! | module | what it does |
//! |---|---|
//! | [`request`] | request facts: the path locations match on (`$uri`), the original URI |
//! | [`reply`] | responses rpx makes itself: error pages, redirects, text; one body type |
//! | [`error`] | typed request errors and [`error::Rescue`], the one layer turning them into responses |
//! | [`conn`] | connection facts (peer, local address, scheme, PROXY protocol addresses) in request extensions; the PROXY protocol parser |
//! | [`pattern`] | nginx's (PCRE) regexes: the `regex` crate, else bounded backtracking per pattern |
//! | [`vars`] | nginx variables compiled into segments; `map`, `geo`, `split_clients`, regex captures |
//! | [`error_page`] | `error_page`: which answers are replaced by another page, and by which |
//! | [`headers`] | `proxy_set_header`, `add_header`, hop-by-hop stripping, `proxy_redirect` |
//! | [`action`] | what a location answers itself: `return`, static files |
//! | [`compress`] | `gzip`: nginx's decision, bodies compressed as they stream; `sub_filter` |
//! | [`access`] | nginx's access phase: `allow` / `deny`, `auth_basic` (htpasswd, hashed off the executor), `auth_request` (a subrequest to a gatekeeper), `satisfy`; 403 or 401 for the refused |
//! | [`realip`] | `set_real_ip_from`, `real_ip_header`: the client's address from a trusted proxy's header or PROXY protocol header |
//! | [`rewrite`] | `rewrite`, `if`, `return`, `break` before and after location matching |
//! | [`location`] | `location` matching: `=`, `^~`, longest prefix, `~`/`~*` in order, nesting |
//! | [`host`] | `server_name` routing: exact, `*.wild`, `wild.*`, `~regex`, default server |
//! | [`accesslog`] | access logs: `combined`, `log_format`, a writer thread per file |
//! | [`metrics`] | Prometheus metrics: handles made at compile time, atomics per request |
//! | [`upstream`] | upstream groups: balancing, passive and active health, retries, DNS |
//! | [`proxy`] | streaming proxying, upgrades, pooled upstream connections, per-phase timeouts |
//! | [`limit`] | `client_max_body_size`; `limit_req` ([`limit::rate`]), `limit_conn` ([`limit::conn`]) and `limit_rate` ([`limit::bandwidth`]) |
//! | [`tls`] | rustls: certificates by SNI, client certificates, upstream TLS |
//! | [`server`] | the accept loop (PROXY protocol header, HTTP/1.1, HTTP/2, upgrades, graceful stop), the edge check every request head passes ([`server::HeadLimits`]), any response body |
//! | [`acme`] | automatic certificates |
//! | [`config`] | the config model, the TOML and nginx front-ends, units |
//! | [`stack`] | compiling a config into a snapshot (the layer order is written in its `compiled` module); `check_file`; the [`Rpx`] service with hot swap |
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let rpx = rpx_core::Rpx::from_toml(r#"
//!     [[server]]
//!     listen = "127.0.0.1:8080"
//!     server_name = "app.example.com"
//!
//!     [[server.location]]
//!     path = "/"
//!     proxy_pass = "http://127.0.0.1:3000"
//!     proxy_set_header = { Host = "$host", "X-Forwarded-For" = "$proxy_add_x_forwarded_for" }
//! "#)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! rpx_core::server::serve(listener, rpx, std::future::pending()).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(unreachable_pub)]

pub mod access;
pub mod accesslog;
pub mod acme;
pub mod action;
mod call;
mod clock;
pub mod compress;
pub mod config;
pub mod conn;
pub mod error;
pub mod error_page;
pub mod headers;
pub mod host;
mod lazy_sleep;
pub mod limit;
pub mod location;
pub mod metrics;
pub mod pattern;
pub mod proxy;
pub mod realip;
pub mod reply;
pub mod request;
pub mod rewrite;
pub mod server;
pub mod stack;
pub mod tls;
pub mod upstream;
pub mod vars;

pub use error::ProxyError;
pub use stack::{Rpx, Snapshot};
