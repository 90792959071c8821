//! # rpx-core
//!
//! The building blocks of the rpx reverse proxy as `tower` layers and
//! services, with nginx's semantics:
//!
//! | module | what it does |
//! |---|---|
//! | [`conn`] | connection facts (peer, local address, scheme) in request extensions |
//! | [`host`] | `server_name` routing: exact, `*.wild`, `wild.*`, `~regex`, default server |
//! | [`location`] | `location` matching: `=`, `^~`, longest prefix, `~`/`~*` in order, nesting |
//! | [`headers`] | `proxy_set_header`, `add_header`, hop-by-hop stripping, `proxy_redirect` |
//! | [`vars`] | nginx variables compiled into segments |
//! | [`metrics`] | Prometheus metrics: handles made at compile time, atomics per request |
//! | [`proxy`] | streaming proxying, upgrades, pooled upstream connections, per-phase timeouts |
//! | [`upstream`] | upstream groups: balancing, passive and active health, retries, DNS |
//! | [`rewrite`] | `rewrite`, `if`, `return`, `break` before and after location matching |
//! | [`accesslog`] | access logs: `combined`, `log_format`, a writer thread per file |
//! | [`action`] | `return` and static files |
//! | [`limit`] | `client_max_body_size` |
//! | [`error`] | typed request errors and the one layer turning them into responses |
//! | [`config`] | the config model, the TOML front-end, nginx units |
//! | [`stack`] | compiling a config into a snapshot; the [`Rpx`] service with hot swap |
//! | [`server`] | the accept loop (HTTP/1.1, HTTP/2, upgrades, graceful stop) |
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

pub mod accesslog;
pub mod acme;
pub mod action;
mod call;
mod clock;
pub mod config;
pub mod conn;
pub mod error;
pub mod headers;
pub mod host;
mod lazy_sleep;
pub mod limit;
pub mod location;
pub mod metrics;
pub mod proxy;
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
