//! Compiles a [`Config`] into a [`Snapshot`], collecting every error.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::compiled::{Action, Location, Server};
use super::Snapshot;
use crate::accesslog::{AccessLogLayer, Escape, LogFile, LogFormat, LogTarget, COMBINED};
use crate::acme::{AcmeManager, AcmeOptions, KeyAlg};
use crate::action::{FileService, FilesMode, ReturnService};
use crate::config::Config;
use crate::config::{
    Condition as IfCondition, ConfigError, ConfigErrors, Handler, LocationConfig, MapKey,
    ProxyHttpVersion, RedirectConfig, ReturnConfig, RewriteFlag, RewriteStep, ServerConfig,
    Settings, SourcePos,
};
use crate::headers::{AddHeader, AddHeadersLayer, ProxyRedirect, RedirectRule};
use crate::host::{HostRouter, HostTable};
use crate::limit::{BodyLimitLayer, DEFAULT_MAX_BODY};
use crate::location::Rewrites;
use crate::location::{LocationRouter, LocationSpec, LocationTable, MatchKind, TryFiles};
use crate::metrics::RequestMetricsLayer;
use crate::proxy::{ProxyService, Timeouts, UpstreamGroup, UpstreamVersion};
use crate::rewrite::{Condition as RwCondition, Flag, Program, RewriteError, Rule, Step};
use crate::server::ListenerSpec;
use crate::server::TlsListener;
use crate::tls::{
    CertResolver, CipherList, ClientAuth, ClientAuthMode, ServerTlsOptions, TlsVersions,
    UpstreamTls, DEFAULT_SESSION_CACHE,
};
use crate::vars::Template;
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
        acme: None,
        request_metrics: crate::metrics::requests_recorded(serves_metrics(config)),
        pools: crate::proxy::UpstreamPools::new(),
    };
    cx.acme = cx.acme_manager(config, opts);
    // Maps first: a group's `hash` key may use them.
    cx.maps(config);
    cx.log_formats(config);
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
    log_formats: HashMap<String, Arc<LogFormat>>,
    /// Automatic certificates, when the config has ACME issuers.
    acme: Option<Arc<AcmeManager>>,
    /// Servers record per-request metrics.
    request_metrics: bool,
    /// Every proxy's connection pools: one per upstream and settings.
    pools: crate::proxy::UpstreamPools,
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
    fn log_formats(&mut self, config: &Config) {
        if let Ok(f) = LogFormat::parse(COMBINED, Escape::Default) {
            self.log_formats.insert("combined".into(), Arc::new(f));
        }
        for f in &config.log_formats {
            let escape = match f.escape.as_str() {
                "default" => Escape::Default,
                "json" => Escape::Json,
                "none" => Escape::None,
                other => {
                    self.err(
                        &f.pos,
                        format!("invalid escape {other:?}: use default, json or none"),
                    );
                    continue;
                }
            };
            match LogFormat::parse(&f.format, escape) {
                Ok(parsed) => {
                    if self
                        .log_formats
                        .insert(f.name.clone(), Arc::new(parsed))
                        .is_some()
                    {
                        self.err(&f.pos, format!("duplicate log_format \"{}\"", f.name));
                    }
                }
                Err(e) => self.err(&f.pos, format!("log_format {}: {e}", f.name)),
            }
        }
    }

    /// A level's access logs; files are opened (once per path) here.
    fn access_log(&mut self, s: &Settings, server_name: &Arc<str>) -> AccessLogLayer {
        let mut targets = Vec::new();
        for a in s.access_log.iter().flatten() {
            let name = a.format.as_deref().unwrap_or("combined");
            let Some(format) = self.log_formats.get(name).cloned() else {
                self.err(&a.pos, format!("unknown log format \"{name}\""));
                continue;
            };
            match LogFile::open(std::path::Path::new(&a.path)) {
                Ok(file) => targets.push(LogTarget { file, format }),
                Err(e) => self.err(&a.pos, e),
            }
        }
        AccessLogLayer::new(targets, server_name.clone())
    }

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

    fn groups(&mut self, config: &Config, previous: Option<&Snapshot>) {
        for u in &config.upstreams {
            for s in &u.servers {
                if !(1..=MAX_WEIGHT).contains(&s.weight) {
                    self.errors.push(
                        ConfigError::new(
                            s.pos.clone(),
                            format!("weight={} is out of range", s.weight),
                        )
                        .hint(format!("weights are relative: use 1 to {MAX_WEIGHT}")),
                    );
                }
            }
            let prev = previous.and_then(|p| p.groups.iter().find(|g| g.name() == u.name));
            if let Some(g) = self.group(u, prev) {
                let servers: Vec<String> = u
                    .servers
                    .iter()
                    .map(|s| format!("{} weight={}", s.addr, s.weight))
                    .collect();
                self.summary
                    .push(format!("upstream {}: {}", u.name, servers.join(", ")));
                if self.groups.insert(u.name.clone(), Arc::new(g)).is_some() {
                    self.err(&u.pos, format!("duplicate upstream \"{}\"", u.name));
                }
            }
        }
    }

    /// One group: its servers, method and connection settings.
    fn group(
        &mut self,
        u: &crate::config::UpstreamConfig,
        previous: Option<&Arc<UpstreamGroup>>,
    ) -> Option<UpstreamGroup> {
        use crate::config::BalanceConfig;
        use crate::upstream::{KeepAlive, Method, ServerSpec};
        let method = match u.balance.as_ref().map(|b| (&b.value, &b.pos)) {
            None => Method::RoundRobin,
            Some((BalanceConfig::LeastConn, _)) => Method::LeastConn,
            Some((BalanceConfig::IpHash, _)) => Method::IpHash,
            Some((BalanceConfig::Random { two: false }, _)) => Method::Random,
            Some((BalanceConfig::Random { two: true }, _)) => Method::RandomTwo,
            Some((BalanceConfig::Hash { key, consistent }, pos)) => {
                match Template::parse_in(key, &self.scope) {
                    Ok(t) if *consistent => Method::Consistent(t),
                    Ok(t) => Method::Hash(t),
                    Err(e) => {
                        self.err(pos, format!("hash: {e}"));
                        return None;
                    }
                }
            }
        };
        let defaults = KeepAlive::default();
        let mut b = UpstreamGroup::builder(u.name.clone())
            .method(method)
            .keepalive(KeepAlive {
                idle_per_server: u.keepalive.map_or(defaults.idle_per_server, |n| n as usize),
                timeout: u.keepalive_timeout.unwrap_or(defaults.timeout),
                requests: u.keepalive_requests.unwrap_or(defaults.requests),
                time: u.keepalive_time.unwrap_or(defaults.time),
            });
        if let Some(h) = &u.health_check {
            let h = &h.value;
            b = b.health_check(crate::upstream::HealthCheck {
                interval: h.interval,
                path: h.path.clone(),
                status: h.status.0..=h.status.1,
                rise: h.rise,
                fall: h.fall,
                timeout: h.timeout,
                port: h.port,
            });
        }
        if let Some(d) = u.resolve_interval {
            b = b.resolve_interval(d.max(Duration::from_millis(10)));
        }
        if let Some(prev) = previous {
            b = b.previous(prev.clone());
        }
        for s in &u.servers {
            if u.resolve_strict {
                let host = s.addr.rsplit_once(':').map_or(s.addr.as_str(), |h| h.0);
                if let Err(e) = crate::upstream::dns::resolve_blocking(host) {
                    self.err(
                        &s.pos,
                        format!("upstream server {host:?} does not resolve: {e} (resolve_strict)"),
                    );
                }
            }
            b = b.server(ServerSpec {
                addr: s.addr.clone(),
                weight: s.weight.clamp(1, MAX_WEIGHT),
                max_fails: s.max_fails,
                fail_timeout: s.fail_timeout,
                backup: s.backup,
                down: s.down,
                max_conns: s.max_conns,
            });
        }
        match b.build() {
            Ok(g) => Some(g),
            Err(e) => {
                let pos = match &e {
                    crate::upstream::GroupError::Server(a) => u
                        .servers
                        .iter()
                        .find(|s| &s.addr == a)
                        .map_or(&u.pos, |s| &s.pos),
                    _ => &u.pos,
                };
                let pos = pos.clone();
                self.err(&pos, e);
                None
            }
        }
    }

    /// `map`s in config order: a map's values may use the maps before it.
    fn maps(&mut self, config: &Config) {
        for m in &config.maps {
            let t = |src: &str, scope: &Scope| Template::parse_in(src, scope);
            let built = (|| -> Result<MapVar, String> {
                let source = t(&m.source, &self.scope).map_err(|e| e.to_string())?;
                let default = t(m.default.as_deref().unwrap_or(""), &self.scope)
                    .map_err(|e| e.to_string())?;
                let mut entries = Vec::new();
                for e in &m.entries {
                    let key = match &e.key {
                        MapKey::Exact(k) => MapKeySpec::Exact(k.clone()),
                        MapKey::Regex { pattern, caseless } => MapKeySpec::Regex {
                            pattern: pattern.clone(),
                            caseless: *caseless,
                        },
                    };
                    let value =
                        t(&e.value, &self.scope).map_err(|err| format!("{}: {err}", e.pos))?;
                    entries.push((key, value));
                }
                MapVar::new(source, default, entries).map_err(|e| format!("invalid regex: {e}"))
            })();
            match built {
                Ok(map) => self.scope.define_map(&m.name, map),
                Err(e) => self.err(&m.pos, format!("map ${}: {e}", m.name)),
            }
        }
    }

    /// A rewrite program from the model's steps; `None` when there are none.
    fn program(
        &mut self,
        steps: &[RewriteStep],
        settings: &Settings,
        server_name: &Arc<str>,
        pos: &SourcePos,
    ) -> Option<Program> {
        if steps.is_empty() {
            return None;
        }
        let steps = self.steps(steps, server_name);
        let headers = add_headers(self, settings, server_name, pos);
        Some(Program::new(steps, server_name.clone()).with_headers(headers))
    }

    fn steps(&mut self, steps: &[RewriteStep], server_name: &Arc<str>) -> Vec<Step> {
        let mut out = Vec::new();
        for step in steps {
            match step {
                RewriteStep::Break => out.push(Step::Break),
                RewriteStep::Return(r) => {
                    if let Action::Return(svc) = self.return_action(r, server_name) {
                        out.push(Step::Return(svc));
                    }
                }
                RewriteStep::Rewrite(r) => {
                    let flag = match r.flag {
                        RewriteFlag::None => Flag::Continue,
                        RewriteFlag::Last => Flag::Last,
                        RewriteFlag::Break => Flag::Break,
                        RewriteFlag::Redirect => Flag::Redirect(http::StatusCode::FOUND),
                        RewriteFlag::Permanent => {
                            Flag::Redirect(http::StatusCode::MOVED_PERMANENTLY)
                        }
                    };
                    match Rule::new(&r.regex, &r.replacement, flag, &self.scope) {
                        Ok(rule) => out.push(Step::Rewrite(rule)),
                        Err(e) => self.err(&r.pos, format!("rewrite: {e}")),
                    }
                }
                RewriteStep::If(i) => {
                    let cond = match &i.cond {
                        IfCondition::NonEmpty(v) => Template::parse_in(v, &self.scope)
                            .map(RwCondition::NonEmpty)
                            .map_err(RewriteError::from),
                        IfCondition::Equals {
                            left,
                            right,
                            negate,
                        } => Template::parse_in(left, &self.scope)
                            .map(|t| RwCondition::Equals(t, right.clone(), *negate))
                            .map_err(RewriteError::from),
                        IfCondition::Matches {
                            left,
                            regex,
                            caseless,
                            negate,
                        } => RwCondition::matches(left, regex, *caseless, *negate, &self.scope),
                    };
                    let inner = self.steps(&i.steps, server_name);
                    match cond {
                        Ok(c) => out.push(Step::If(c, inner.into())),
                        Err(e) => self.err(&i.pos, format!("if: {e}")),
                    }
                }
            }
        }
        out
    }

    /// One host table per distinct listen address, in first-seen order.
    fn listeners(&mut self, config: &Config) -> Vec<((SocketAddr, HostTable), ListenerSpec)> {
        let mut order: Vec<SocketAddr> = Vec::new();
        let mut members: HashMap<SocketAddr, Vec<Member<'_>>> = HashMap::new();
        let mut specs: HashMap<SocketAddr, ListenerSpec> = HashMap::new();
        let mut ssl_of: HashMap<SocketAddr, bool> = HashMap::new();
        for (id, server) in config.servers.iter().enumerate() {
            let settings = server.settings.inherit(&config.settings);
            let listens: Vec<(SocketAddr, bool, &SourcePos)> = if server.listen.is_empty() {
                vec![(DEFAULT_LISTEN, false, &server.pos)]
            } else {
                server
                    .listen
                    .iter()
                    .map(|l| (l.addr, l.default_server, &l.pos))
                    .collect()
            };
            for (addr, default, pos) in listens {
                let ssl = server.listen.iter().any(|l| l.ssl && l.addr == addr);
                match ssl_of.get(&addr) {
                    Some(&other) if other != ssl => {
                        self.err(pos, format!("{addr} is used both with and without `ssl`"))
                    }
                    _ => {
                        ssl_of.insert(addr, ssl);
                    }
                }
                let list = members.entry(addr).or_default();
                if list.is_empty() {
                    order.push(addr);
                }
                if default && list.iter().any(|m| m.2) {
                    self.err(pos, format!("a duplicate default server for {addr}"));
                }
                list.push((id, &server.names, default));
                specs.entry(addr).or_insert_with(|| ListenerSpec {
                    addr,
                    header_timeout: settings
                        .client_header_timeout
                        .unwrap_or(Duration::from_secs(60)),
                    keepalive_timeout: settings
                        .keepalive_timeout
                        .unwrap_or(Duration::from_secs(75)),
                    keepalive_requests: settings.keepalive_requests.unwrap_or(1000),
                    keepalive_time: settings.keepalive_time.unwrap_or(Duration::from_secs(3600)),
                    tls: None,
                });
            }
        }
        let mut out = Vec::new();
        for addr in order {
            let entries: Vec<(usize, Vec<String>, bool)> = members[&addr]
                .iter()
                .map(|(id, names, d)| (*id, names.iter().map(|n| n.value.clone()).collect(), *d))
                .collect();
            let borrowed: Vec<(usize, &[String], bool)> = entries
                .iter()
                .map(|(id, n, d)| (*id, n.as_slice(), *d))
                .collect();
            let mut spec = specs[&addr].clone();
            if ssl_of.get(&addr).copied().unwrap_or(false) {
                spec.tls = self.tls_listener(config, addr, &members[&addr]);
            }
            match HostTable::build_with_ids(&borrowed) {
                Ok(table) => out.push(((addr, table), spec)),
                Err(e) => {
                    let pos = config.servers[entries[0].0].pos.clone();
                    self.err(&pos, e);
                }
            }
        }
        out
    }

    /// Certificates, versions and client-certificate checking of one TLS
    /// listener, from the servers on it (the default server's settings
    /// decide versions, suites, sessions and client certificates, as in
    /// nginx, where SNI only switches the certificate).
    fn tls_listener(
        &mut self,
        config: &Config,
        addr: SocketAddr,
        members: &[Member<'_>],
    ) -> Option<TlsListener> {
        let resolver = std::sync::Arc::new(CertResolver::new());
        let default_id = members.iter().find(|m| m.2).unwrap_or(&members[0]).0;
        for (id, names, default) in members {
            let server = &config.servers[*id];
            let s = server.settings.inherit(&config.settings);
            let is_default = *default || *id == default_id;
            if let Some(acme) = &server.acme {
                self.acme_certificate(server, acme, &s, &resolver, is_default);
                continue;
            }
            let (Some(cert), Some(key)) = (&s.ssl_certificate, &s.ssl_certificate_key) else {
                let pos = server
                    .listen
                    .iter()
                    .find(|l| l.ssl)
                    .map_or(&server.pos, |l| &l.pos);
                self.errors.push(
                    ConfigError::new(pos.clone(), "an ssl listener needs ssl_certificate and ssl_certificate_key")
                        .hint("point them at PEM files, e.g. certbot's live/<name>/fullchain.pem and privkey.pem"),
                );
                continue;
            };
            if cert.value.starts_with("$acme_") {
                self.errors.push(
                    ConfigError::new(
                        cert.pos.clone(),
                        format!("{} needs acme_certificate in the server", cert.value),
                    )
                    .hint("add acme_certificate ISSUER; naming an acme_issuer block"),
                );
                continue;
            }
            let names: Vec<&str> = names.iter().map(|n| n.value.as_str()).collect();
            if let Err(e) = resolver.add_files(
                &names,
                std::path::Path::new(&cert.value),
                std::path::Path::new(&key.value),
                is_default,
            ) {
                let pos = if matches!(e, crate::tls::TlsError::Mismatch { .. }) {
                    &key.pos
                } else {
                    &cert.pos
                };
                self.err(pos, e);
            } else if let Some(expiry) = {
                self.expiry(cert);
                crate::tls::load_certs(std::path::Path::new(&cert.value))
                    .ok()
                    .and_then(|c| c.first().and_then(crate::tls::cert_not_after))
            } {
                let expires = expiry
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                for n in &names {
                    metrics::gauge!("rpx_certificate_expiry_timestamp_seconds", "name" => n.to_string())
                        .set(expires);
                }
                self.summary.push(format!(
                    "certificate {} for {} expires {}",
                    cert.value,
                    names.join(" "),
                    crate::accesslog::time_iso8601(expiry)
                ));
            }
        }
        let s = config.servers[default_id]
            .settings
            .inherit(&config.settings);
        let versions = match &s.ssl_protocols {
            None => TlsVersions::default(),
            Some(p) => {
                let v = TlsVersions {
                    tls12: p.value.iter().any(|x| x == "TLSv1.2"),
                    tls13: p.value.iter().any(|x| x == "TLSv1.3"),
                };
                let old: Vec<&str> = p
                    .value
                    .iter()
                    .map(String::as_str)
                    .filter(|x| !matches!(*x, "TLSv1.2" | "TLSv1.3"))
                    .collect();
                if !old.is_empty() {
                    self.warn(
                        &p.pos,
                        format!(
                            "{} not offered: rpx speaks TLSv1.2 and TLSv1.3 only",
                            old.join(", ")
                        ),
                    );
                }
                if !v.tls12 && !v.tls13 {
                    self.err(
                        &p.pos,
                        "ssl_protocols lists no version rpx offers (TLSv1.2, TLSv1.3)",
                    );
                }
                v
            }
        };
        let client_auth = match (&s.ssl_verify_client, &s.ssl_client_certificate) {
            (None, _) => None,
            (Some(v), ca) => {
                let mode = match v.value.as_str() {
                    "off" => None,
                    "on" => Some(ClientAuthMode::Required),
                    "optional" => Some(ClientAuthMode::Optional),
                    "optional_no_ca" => Some(ClientAuthMode::OptionalNoCa),
                    other => {
                        self.err(&v.pos, format!("invalid ssl_verify_client {other:?}: use on, optional, optional_no_ca or off"));
                        None
                    }
                };
                match (mode, ca) {
                    (None, _) => None,
                    (Some(_), None) => {
                        self.err(&v.pos, "ssl_verify_client needs ssl_client_certificate");
                        None
                    }
                    (Some(mode), Some(ca)) => {
                        match ClientAuth::from_ca_file(std::path::Path::new(&ca.value), mode) {
                            Ok(a) => Some(a),
                            Err(e) => {
                                self.err(&ca.pos, e);
                                None
                            }
                        }
                    }
                }
            }
        };
        if resolver.is_empty() {
            return None;
        }
        let options = ServerTlsOptions {
            versions,
            tls12_suites: self.ciphers(&s, versions),
            prefer_server_ciphers: s.ssl_prefer_server_ciphers.unwrap_or(false),
            http2: self.http2(config, addr, members),
            session_tickets: s.ssl_session_tickets.unwrap_or(true),
            session_cache: s.ssl_session_cache.unwrap_or(DEFAULT_SESSION_CACHE),
        };
        match crate::tls::server_config(resolver.clone(), &options, client_auth.as_ref()) {
            Ok(config) => Some(TlsListener {
                config,
                resolver,
                client_auth,
                reload_interval: Duration::from_secs(10),
            }),
            Err(e) => {
                self.err(&config.servers[default_id].pos, e);
                None
            }
        }
    }

    /// The TLS 1.2 suites `ssl_ciphers` keeps; `None` for rustls' defaults
    /// (also after an error, which is reported here).
    fn ciphers(
        &mut self,
        s: &Settings,
        versions: TlsVersions,
    ) -> Option<Vec<rustls::SupportedCipherSuite>> {
        let spec = s.ssl_ciphers.as_ref()?;
        let list = CipherList::parse(&spec.value);
        if !list.unmatched.is_empty() {
            self.warn(
                &spec.pos,
                format!(
                    "ssl_ciphers: no rustls equivalent for {}; ignored (rustls has ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2; TLS 1.3 suites are not chosen by ssl_ciphers)",
                    list.unmatched.join(", ")
                ),
            );
        }
        if list.tls12.is_empty() && versions.tls12 {
            self.errors.push(
                ConfigError::new(
                    spec.pos.clone(),
                    "ssl_ciphers leaves no TLS 1.2 suite rustls has, and TLSv1.2 is enabled",
                )
                .hint("add ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256, or offer TLSv1.3 only"),
            );
            return None;
        }
        Some(list.tls12)
    }

    /// Whether a TLS listener offers `h2`: `listen … http2` on the address
    /// (for every server on it, as nginx), or `http2 on` in a server on it.
    /// rustls chooses ALPN per listener, not per SNI name, so `http2 on` in
    /// one server offers HTTP/2 to all of them; that is said.
    fn http2(&mut self, config: &Config, addr: SocketAddr, members: &[Member<'_>]) -> bool {
        let by_listen = members.iter().any(|(id, _, _)| {
            config.servers[*id]
                .listen
                .iter()
                .any(|l| l.addr == addr && l.http2)
        });
        if by_listen {
            return true;
        }
        let on: Vec<bool> = members
            .iter()
            .map(|(id, _, _)| {
                let server = &config.servers[*id];
                server.settings.inherit(&config.settings).http2 == Some(true)
            })
            .collect();
        if !on.contains(&true) {
            return false;
        }
        for ((id, _, _), _) in members.iter().zip(&on).filter(|(_, on)| !**on) {
            let pos = config.servers[*id].pos.clone();
            self.warn(
                &pos,
                format!("HTTP/2 is offered to this server too: another server on {addr} has `http2 on`, and rpx negotiates HTTP/2 per listener"),
            );
        }
        true
    }

    /// The ACME manager of the config: issuers carried over from the
    /// previous snapshot where unchanged.
    fn acme_manager(
        &mut self,
        config: &Config,
        opts: &CompileOptions<'_>,
    ) -> Option<Arc<AcmeManager>> {
        if config.acme_issuers.is_empty() {
            for s in &config.servers {
                if let Some(a) = &s.acme {
                    self.errors.push(
                        ConfigError::new(
                            a.pos.clone(),
                            format!("no acme_issuer named \"{}\"", a.issuer),
                        )
                        .hint("define it: acme_issuer NAME { uri …; contact …; } (TOML: [acme])"),
                    );
                }
            }
            return None;
        }
        let previous = opts.previous.and_then(|p| p.acme.as_deref());
        match AcmeManager::new(&config.acme_issuers, opts.acme.clone(), previous) {
            Ok(m) => Some(Arc::new(m)),
            Err(errors) => {
                for (pos, e) in errors {
                    self.err(&pos, e);
                }
                None
            }
        }
    }

    /// A server whose certificate comes from ACME: its slot goes into the
    /// listener's resolver, which also answers tls-alpn-01 validations.
    fn acme_certificate(
        &mut self,
        server: &ServerConfig,
        acme: &crate::config::AcmeCertificateConfig,
        s: &Settings,
        resolver: &CertResolver,
        default: bool,
    ) {
        let Some(manager) = self.acme.clone() else {
            return;
        };
        if let Some(cert) = s
            .ssl_certificate
            .as_ref()
            .filter(|c| !c.value.starts_with('$'))
        {
            self.warn(
                &cert.pos,
                format!("ssl_certificate {} is not used: the server's certificate comes from acme_certificate", cert.value),
            );
        }
        let names: Vec<String> = if acme.identifiers.is_empty() {
            server
                .names
                .iter()
                .map(|n| n.value.trim_start_matches('.').to_owned())
                .filter(|n| !n.is_empty() && n != "_" && !n.starts_with('~'))
                .collect()
        } else {
            acme.identifiers.clone()
        };
        let key = match acme.key.as_ref().map(|k| (KeyAlg::parse(&k.value), &k.pos)) {
            None => KeyAlg::default(),
            Some((Ok(k), _)) => k,
            Some((Err(e), pos)) => {
                self.err(pos, e);
                return;
            }
        };
        match manager.certificate(&acme.issuer, &names, key) {
            Ok(slot) => {
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                resolver.add_slot(&refs, &slot, default);
                resolver.answer_tls_alpn01(manager.challenges().clone());
                let state = match slot.load() {
                    Some(k) => k
                        .end_entity_cert()
                        .ok()
                        .and_then(crate::tls::cert_not_after)
                        .map_or_else(String::new, |t| {
                            format!("stored, expires {}", crate::accesslog::time_iso8601(t))
                        }),
                    None => "to be ordered".to_owned(),
                };
                self.summary.push(format!(
                    "certificate (acme {}) for {}: {state}",
                    acme.issuer,
                    names.join(" ")
                ));
            }
            Err(e) => self.err(&acme.pos, e),
        }
    }

    /// An expired certificate is served anyway, as nginx does (a renewal
    /// may be on its way and the reloader picks it up), but said.
    fn expiry(&mut self, cert: &crate::config::Spanned<String>) {
        let path = std::path::Path::new(&cert.value);
        let Some(expiry) = crate::tls::load_certs(path)
            .ok()
            .and_then(|c| c.first().and_then(crate::tls::cert_not_after))
        else {
            return;
        };
        if let Ok(ago) = std::time::SystemTime::now().duration_since(expiry) {
            let days = ago.as_secs() / 86_400;
            self.warn(
                &cert.pos,
                format!(
                    "the certificate in {} has expired ({}); it is served anyway and clients will refuse it",
                    cert.value,
                    match days {
                        0 => "today".to_owned(),
                        1 => "1 day ago".to_owned(),
                        n => format!("{n} days ago"),
                    }
                ),
            );
        }
    }

    fn server(&mut self, server: &ServerConfig, http: &Settings) -> Server {
        let settings = server.settings.inherit(http);
        let name: Arc<str> = server
            .names
            .first()
            .map(|n| n.value.as_str())
            .unwrap_or("")
            .into();
        let listens: Vec<String> = server.listen.iter().map(|l| l.addr.to_string()).collect();
        self.summary.push(format!(
            "server {} on {}",
            if name.is_empty() { "\"\"" } else { &name },
            if listens.is_empty() {
                DEFAULT_LISTEN.to_string()
            } else {
                listens.join(", ")
            }
        ));
        let mut specs = Vec::new();
        let mut services = Vec::new();
        let mut programs = Vec::new();
        let mut try_files = Vec::new();
        let server_program = self.program(&server.rewrites, &settings, &name, &server.pos);
        let fallback_action = match &server.ret {
            // A server-level `return` answers before locations are looked at.
            Some(ret) => {
                self.summary
                    .push(format!("  return {}", describe_return(ret)));
                self.return_action(ret, &name)
            }
            None => {
                self.locations(
                    &server.locations,
                    &settings,
                    &name,
                    &mut specs,
                    &mut (&mut services, &mut programs, &mut try_files),
                );
                self.named_fallbacks(&server.locations);
                Action::NotFound
            }
        };
        let fallback = wrap(self, fallback_action, &settings, &name, &server.pos);
        let rewrites = Rewrites {
            server: server_program,
            locations: programs,
        };
        let metrics = if self.request_metrics {
            RequestMetricsLayer::new(if name.is_empty() { "_" } else { &name })
        } else {
            RequestMetricsLayer::off()
        };
        let router = match LocationTable::build(&specs) {
            Ok(table) => LocationRouter::from_parts(table, services, fallback)
                .with_rewrites(rewrites)
                .with_try_files(try_files),
            Err(e) => {
                // Regex errors were reported with their location above.
                if !matches!(e, crate::location::TableError::Regex { .. }) {
                    self.err(&server.pos, e);
                }
                let empty = LocationTable::build(&[]).expect("an empty table always builds");
                LocationRouter::from_parts(empty, Vec::new(), fallback)
            }
        };
        Server { metrics, router }
    }

    fn locations(
        &mut self,
        locations: &[LocationConfig],
        parent: &Settings,
        server_name: &Arc<str>,
        specs: &mut Vec<LocationSpec>,
        out: &mut (
            &mut Vec<Location>,
            &mut Vec<Option<Program>>,
            &mut Vec<Option<TryFiles>>,
        ),
    ) {
        for loc in locations {
            if loc.kind.is_regex() {
                // Checked here too so the error names this location.
                if let Err(e) = regex::RegexBuilder::new(&loc.pattern)
                    .case_insensitive(loc.kind == MatchKind::RegexCaseless)
                    .build()
                {
                    self.err(&loc.pos, format!("invalid regex {:?}: {e}", loc.pattern));
                }
            }
            let settings = loc.settings.inherit(parent);
            let action = self.action(loc, &settings, server_name);
            self.summary.push(format!(
                "  location {} -> {}",
                loc.kind.display(&loc.pattern),
                describe(loc, &settings)
            ));
            let proxies = action.proxies();
            out.0
                .push(wrap(self, action, &settings, server_name, &loc.pos));
            let program = self.program(&loc.rewrites, &settings, server_name, &loc.pos);
            out.1.push(program);
            let try_files = self.try_files(loc, &settings, server_name);
            out.2.push(try_files);
            let mut spec = LocationSpec::new(loc.kind, loc.pattern.clone());
            spec.auto_redirect = proxies
                && loc.pattern.ends_with('/')
                && matches!(loc.kind, MatchKind::Prefix | MatchKind::PrefixNoRegex);
            // Nested ones are compiled right after their parent: the table
            // numbers locations depth-first in the same order.
            let mut nested = Vec::new();
            self.locations(&loc.locations, &settings, server_name, &mut nested, out);
            spec.nested = nested;
            specs.push(spec);
        }
    }

    fn action(&mut self, loc: &LocationConfig, s: &Settings, server_name: &Arc<str>) -> Action {
        match &loc.handler {
            Some(Handler::Proxy(url)) => self.proxy(loc, url, s, server_name),
            Some(Handler::Return(ret)) => self.return_action(ret, server_name),
            Some(Handler::Metrics(_)) => Action::Metrics,
            None => {
                let index = s.index.clone().unwrap_or_else(|| vec!["index.html".into()]);
                if let Some(alias) = &s.alias {
                    Action::Files(FileService::new(
                        &alias.value,
                        FilesMode::Alias {
                            prefix: loc.pattern.clone(),
                        },
                        index,
                    ))
                } else if let Some(root) = &s.root {
                    Action::Files(FileService::new(&root.value, FilesMode::Root, index))
                } else {
                    Action::NotFound
                }
            }
        }
    }

    /// A location's `try_files`, run by the router before its handler.
    fn try_files(
        &mut self,
        loc: &LocationConfig,
        s: &Settings,
        server_name: &Arc<str>,
    ) -> Option<TryFiles> {
        let t = loc.try_files.as_ref()?;
        let (dir, mode) = match (&s.alias, &s.root) {
            (Some(a), _) => (
                &a.value,
                FilesMode::Alias {
                    prefix: loc.pattern.clone(),
                },
            ),
            (None, Some(r)) => (&r.value, FilesMode::Root),
            (None, None) => {
                self.err(&t.pos, "try_files needs `root` or `alias`");
                return None;
            }
        };
        match TryFiles::new(&t.value, dir, mode, server_name.clone(), &self.scope) {
            Ok(tf) => Some(tf),
            Err(e) => {
                self.err(&t.pos, e);
                None
            }
        }
    }

    /// Every `try_files … @name` names a server-level `location @name`.
    fn named_fallbacks(&mut self, locations: &[LocationConfig]) {
        fn walk<'l>(locs: &'l [LocationConfig], out: &mut Vec<&'l LocationConfig>) {
            for l in locs {
                out.push(l);
                walk(&l.locations, out);
            }
        }
        let mut all = Vec::new();
        walk(locations, &mut all);
        for l in &all {
            let Some(t) = &l.try_files else { continue };
            let Some(name) = t.value.last().and_then(|f| f.strip_prefix('@')) else {
                continue;
            };
            let exists = locations
                .iter()
                .any(|n| n.kind == MatchKind::Named && n.pattern == name);
            if !name.is_empty() && !exists {
                self.err(
                    &t.pos,
                    format!("try_files: there is no named location \"@{name}\" in this server"),
                );
            }
        }
    }

    fn proxy(
        &mut self,
        loc: &LocationConfig,
        url: &crate::config::Spanned<String>,
        s: &Settings,
        server_name: &Arc<str>,
    ) -> Action {
        if loc.kind == MatchKind::Named
            && url
                .value
                .split_once("://")
                .is_some_and(|(_, rest)| rest.contains('/'))
        {
            // nginx's rule: a named location has no path to replace.
            self.err(
                &url.pos,
                format!(
                    "proxy_pass cannot have a URI part in a named location: {:?}",
                    url.value
                ),
            );
            return Action::NotFound;
        }
        let defaults = Timeouts::default();
        let mut b = ProxyService::builder(url.value.clone())
            .pools(&self.pools)
            .location(loc.kind, loc.pattern.clone())
            .groups(self.groups.clone())
            .server_name(server_name.clone())
            .variables(self.scope.clone())
            .timeouts(Timeouts {
                connect: s.proxy_connect_timeout.or(defaults.connect),
                read: s.proxy_read_timeout.or(defaults.read),
                send: s.proxy_send_timeout.or(defaults.send),
                client_body: s.client_body_timeout.or(defaults.client_body),
            });
        b = b.retry(self.retry_policy(s));
        if let Some(v) = &s.proxy_http_version {
            b = b.http_version(match v.value {
                ProxyHttpVersion::Http2 => UpstreamVersion::Http2,
                ProxyHttpVersion::Http11 => UpstreamVersion::Http1,
                ProxyHttpVersion::Http10 => {
                    self.warn(
                        &v.pos,
                        "\"proxy_http_version 1.0\": rpx speaks HTTP/1.1 with keep-alive to upstreams (or 2)",
                    );
                    UpstreamVersion::Http1
                }
            });
        }
        for h in s.proxy_set_header.iter().flatten() {
            b = b.set_header(h.name.clone(), h.value.clone());
        }
        for h in s.proxy_hide_header.iter().flatten() {
            b = b.hide_header(h.value.clone());
        }
        for h in s.proxy_pass_header.iter().flatten() {
            b = b.pass_header(h.value.clone());
        }
        b = b.tls(UpstreamTls {
            verify: s.proxy_ssl_verify.unwrap_or(true),
            trusted: s
                .proxy_ssl_trusted_certificate
                .as_ref()
                .map(|f| f.value.clone().into()),
            name: s.proxy_ssl_name.clone(),
            server_name: s.proxy_ssl_server_name.unwrap_or(true),
            client_cert: match (&s.proxy_ssl_certificate, &s.proxy_ssl_certificate_key) {
                (Some(c), Some(k)) => Some((c.value.clone().into(), k.value.clone().into())),
                (Some(c), None) => {
                    self.err(
                        &c.pos,
                        "proxy_ssl_certificate needs proxy_ssl_certificate_key",
                    );
                    None
                }
                _ => None,
            },
            session_reuse: s.proxy_ssl_session_reuse.unwrap_or(true),
        });
        if let Some(r) = &s.proxy_redirect {
            let redirect = match &r.value {
                RedirectConfig::Default => ProxyRedirect::Default,
                RedirectConfig::Off => ProxyRedirect::Off,
                RedirectConfig::Rules(rules) => {
                    let mut out = Vec::new();
                    for (from, to) in rules {
                        match Template::parse_in(to, &self.scope) {
                            Ok(to) => out.push(RedirectRule {
                                from: from.clone(),
                                to,
                            }),
                            Err(e) => self.err(&r.pos, format!("proxy_redirect: {e}")),
                        }
                    }
                    ProxyRedirect::Rules(out)
                }
            };
            b = b.redirect(redirect);
        }
        // Only an access log reads the upstream's facts off the response.
        b = b.upstream_timing(s.access_log.iter().flatten().next().is_some());
        match b.build() {
            Ok(p) => Action::Proxy(p),
            Err(e) => {
                // Header errors belong to the header rule; the URL to proxy_pass.
                let pos = match &e {
                    crate::proxy::ProxyBuildError::Header(_) => s
                        .proxy_set_header
                        .as_ref()
                        .and_then(|v| v.first())
                        .map_or(&url.pos, |h| &h.pos),
                    crate::proxy::ProxyBuildError::Target(_) => &url.pos,
                    crate::proxy::ProxyBuildError::Tls(_) => s
                        .proxy_ssl_trusted_certificate
                        .as_ref()
                        .or(s.proxy_ssl_certificate.as_ref())
                        .map_or(&url.pos, |f| &f.pos),
                };
                let pos = pos.clone();
                self.err(&pos, e);
                Action::NotFound
            }
        }
    }

    /// `proxy_next_upstream*` of a location.
    fn retry_policy(&mut self, s: &Settings) -> crate::upstream::RetryPolicy {
        use crate::upstream::{NextUpstream, RetryPolicy};
        let next = match &s.proxy_next_upstream {
            None => NextUpstream::default(),
            Some(n) => NextUpstream::parse(&n.value).unwrap_or_else(|e| {
                self.err(&n.pos, e);
                NextUpstream::default()
            }),
        };
        RetryPolicy {
            next,
            tries: s.proxy_next_upstream_tries.unwrap_or(0),
            timeout: s.proxy_next_upstream_timeout.filter(|t| !t.is_zero()),
        }
    }

    fn return_action(&mut self, ret: &ReturnConfig, server_name: &Arc<str>) -> Action {
        match ReturnService::new_in(ret.code, ret.text.as_deref(), &self.scope) {
            Ok(r) => Action::Return(r.server_name(server_name.clone())),
            Err(e) => {
                self.err(&ret.pos, e);
                Action::NotFound
            }
        }
    }
}

/// Wraps an action in its location's `add_header` and body-limit layers.
fn wrap(
    cx: &mut Compiler,
    action: Action,
    s: &Settings,
    server_name: &Arc<str>,
    pos: &SourcePos,
) -> Location {
    Location {
        log: cx.access_log(s, server_name),
        headers: add_headers(cx, s, server_name, pos),
        limit: BodyLimitLayer::new(s.client_max_body_size.unwrap_or(DEFAULT_MAX_BODY)),
        action,
    }
}

/// A level's `add_header` rules.
fn add_headers(
    cx: &mut Compiler,
    s: &Settings,
    server_name: &Arc<str>,
    pos: &SourcePos,
) -> AddHeadersLayer {
    let mut rules = Vec::new();
    for h in s.add_header.iter().flatten() {
        match AddHeader::new_in(&h.name, &h.value, h.always, &cx.scope) {
            Ok(r) => rules.push(r),
            Err(e) => cx.err(
                if h.pos.line > 0 { &h.pos } else { pos },
                format!("add_header: {e}"),
            ),
        }
    }
    AddHeadersLayer::new(rules).server_name(server_name.clone())
}

fn describe(loc: &LocationConfig, s: &Settings) -> String {
    match &loc.handler {
        Some(Handler::Proxy(url)) => format!("proxy_pass {}", url.value),
        Some(Handler::Return(r)) => format!("return {}", describe_return(r)),
        Some(Handler::Metrics(_)) => "metrics".into(),
        None => match (&s.alias, &s.root) {
            (Some(a), _) => format!("alias {}", a.value),
            (None, Some(r)) => format!("root {}", r.value),
            (None, None) => "404".into(),
        },
    }
}

fn describe_return(r: &ReturnConfig) -> String {
    match r
        .text
        .as_deref()
        .map(|t| (t.lines().next().unwrap_or(""), t.contains('\n')))
    {
        Some((first, true)) => format!("{} {first} …", r.code),
        Some((first, false)) => format!("{} {first}", r.code),
        None => r.code.to_string(),
    }
}
