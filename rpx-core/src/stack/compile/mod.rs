//! Compiles a [`Config`] into a [`Snapshot`], collecting every error.
//! One file per concern: [`listen`] (addresses, TLS, ACME), [`server`]
//! (servers and locations), [`upstream`] (groups, `proxy_pass`),
//! [`rewrite`] (`map`, rewrite programs), [`log`] (access logs).

mod access;
mod limits;
mod listen;
mod log;
mod rewrite;
mod server;
mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::compiled::{Action, Location, Server};
use super::Snapshot;
use crate::access::{AccessList, BasicAuth, Guard, LimitExcept, UserFile};
use crate::accesslog::{AccessLogLayer, Escape, LogFile, LogFormat, LogTarget, COMBINED};
use crate::acme::{AcmeManager, AcmeOptions, KeyAlg};
use crate::action::{FileService, FilesMode, ReturnService};
use crate::config::Config;
use crate::config::ErrorLogLevel;
use crate::config::{
    AuthBasic, AuthRequestConfig, Condition as IfCondition, ConfigError, ConfigErrors, Handler,
    HeaderBuffers, LocationConfig, MapKey, ProxyHttpVersion, RedirectConfig, ReturnConfig,
    RewriteFlag, RewriteStep, ServerConfig, Settings, SourcePos, Spanned, Upgrades,
};
use crate::headers::{AddHeader, AddHeadersLayer, ProxyRedirect, RedirectRule};
use crate::host::{HostRouter, HostTable};
use crate::limit::{BodyLimitLayer, DEFAULT_MAX_BODY};
use crate::location::Rewrites;
use crate::location::{LocationRouter, LocationSpec, LocationTable, MatchKind, TryFiles};
use crate::metrics::RequestMetricsLayer;
use crate::proxy::{ProxyService, Timeouts, UpstreamGroup, UpstreamVersion};
use crate::realip::RealIp;
use crate::rewrite::{
    Condition as RwCondition, FileTest as RwFileTest, Flag, Program, RewriteError, Rule, Step,
};
use crate::server::TlsListener;
use crate::server::{HeadLimits, ListenerSpec};
use crate::tls::{
    CertResolver, CipherList, ClientAuth, ClientAuthMode, ServerTlsOptions, TlsVersions,
    UpstreamTls, DEFAULT_SESSION_CACHE,
};
use crate::vars::{Captures, Template, Var};
use crate::vars::{MapKeySpec, MapVar, Scope};

/// Largest upstream `weight`: weights are relative, and a bound keeps a
/// config from costing memory in proportion to a number.
const MAX_WEIGHT: u32 = 1000;

/// Where a server without `listen` listens, as nginx.
const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 80);

/// Compiles `config`; every problem is reported, not just the first.
///
/// # Errors
/// Bad regexes, header rules, proxy targets, duplicate locations…, each
/// with the position it was written at.
pub fn compile(config: &Config) -> Result<Snapshot, ConfigErrors> {
    compile_with(config, &CompileOptions::default())
}

/// What [`compile_with`] takes besides the config.
#[derive(Debug, Default)]
pub struct CompileOptions<'a> {
    /// The snapshot being replaced (a reload): ACME accounts, certificates
    /// and their renewal tasks, and the health of upstream servers carry
    /// over from it where unchanged.
    pub previous: Option<&'a Snapshot>,
    /// Waits and directories of automatic certificates.
    pub acme: AcmeOptions,
}

/// [`compile`] with options.
///
/// # Errors
/// As [`compile`].
pub fn compile_with(config: &Config, opts: &CompileOptions<'_>) -> Result<Snapshot, ConfigErrors> {
    let mut cx = Compiler {
        errors: Vec::new(),
        warnings: Vec::new(),
        groups: HashMap::new(),
        summary: Vec::new(),
        scope: Scope::new(),
        log_formats: HashMap::new(),
        bad_log_paths: std::collections::HashSet::new(),
        acme: None,
        request_metrics: crate::metrics::requests_recorded(serves_metrics(config)),
        pools: crate::proxy::UpstreamPools::new(),
        resolvers: Vec::new(),
        user_files: HashMap::new(),
        rate_zones: HashMap::new(),
        conn_zones: HashMap::new(),
        auth_targets: Vec::new(),
    };
    cx.acme = cx.acme_manager(config, opts);
    // Variables first: a group's `hash` key may use them, a map's values
    // may use what `set` sets.
    cx.set_vars(config);
    cx.geo_and_split(config);
    cx.maps(config);
    cx.log_formats(config);
    cx.rate_zones(config, opts.previous);
    cx.conn_zones(config, opts.previous);
    cx.groups(config, opts.previous);
    let mut servers = Vec::with_capacity(config.servers.len());
    for server in &config.servers {
        servers.push(cx.server(server, &config.settings));
    }
    let listeners = cx.listeners(config);
    if config.servers.is_empty() {
        cx.errors.push(
            ConfigError::new(SourcePos::default(), "the config has no servers")
                .hint("add a [[server]] with a listen address"),
        );
    }
    if !cx.errors.is_empty() {
        return Err(ConfigErrors(cx.errors));
    }
    let (tables, specs): (Vec<_>, Vec<_>) = listeners.into_iter().unzip();
    let mut groups: Vec<_> = cx.groups.into_values().collect();
    groups.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(Snapshot {
        router: HostRouter::per_listener(tables, servers),
        listeners: specs,
        summary: cx.summary,
        groups,
        warnings: cx.warnings,
        shutdown_timeout: config.shutdown_timeout,
        acme: cx.acme,
        error_log: config.error_log.clone(),
        rate_zones: cx.rate_zones,
        conn_zones: cx.conn_zones,
    })
}

/// A server on one listener: (server id, its names, `default_server`).
type Member<'c> = (usize, &'c [crate::config::Spanned<String>], bool);

struct Compiler {
    errors: Vec<ConfigError>,
    /// Things that work differently from what the config asks; the config
    /// still runs.
    warnings: Vec<ConfigError>,
    groups: HashMap<String, Arc<UpstreamGroup>>,
    summary: Vec<String>,
    /// The config's own variables (`map`).
    scope: Scope,
    /// `log_format`s by name, `combined` included.
    /// `log_format`s by name; `None`: one whose error was reported, not
    /// reported again where an `access_log` names it.
    log_formats: HashMap<String, Option<Arc<LogFormat>>>,
    /// Access-log paths that failed to open, reported once.
    bad_log_paths: std::collections::HashSet<String>,
    /// Automatic certificates, when the config has ACME issuers.
    acme: Option<Arc<AcmeManager>>,
    /// Servers record per-request metrics.
    request_metrics: bool,
    /// Every proxy's connection pools: one per upstream and settings.
    pools: crate::proxy::UpstreamPools,
    /// `resolver`s, one per distinct setting: the levels that inherit one
    /// share its cache.
    resolvers: Vec<crate::upstream::Resolver>,
    /// `auth_basic_user_file`s by path.
    user_files: HashMap<String, Arc<UserFile>>,
    /// `limit_req_zone`s by name.
    rate_zones: HashMap<String, Arc<crate::limit::rate::RateZone>>,
    /// `limit_conn_zone`s by name, with the key as written.
    conn_zones: HashMap<String, (String, Arc<crate::limit::conn::ConnZone>)>,
    /// The server being compiled's `auth_request`s, pointed at their
    /// locations once those exist.
    auth_targets: Vec<(crate::access::AuthRequest, SourcePos)>,
}

/// Whether a location of `config` serves the metrics.
fn serves_metrics(config: &Config) -> bool {
    fn any(locations: &[LocationConfig]) -> bool {
        locations
            .iter()
            .any(|l| matches!(l.handler, Some(Handler::Metrics(_))) || any(&l.locations))
    }
    config.servers.iter().any(|s| any(&s.locations))
}

impl Compiler {
    fn err(&mut self, pos: &SourcePos, msg: impl std::fmt::Display) {
        self.errors
            .push(ConfigError::new(pos.clone(), msg.to_string()));
    }

    /// A warning, once: settings inherited by several servers or listeners
    /// are compiled once per use, but said once.
    fn warn(&mut self, pos: &SourcePos, msg: impl std::fmt::Display) {
        let w = ConfigError::new(pos.clone(), msg.to_string());
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }
}
