//! Virtual servers and their locations: matching tables, what each location
//! runs, and the layers around it.

use super::*;

/// What the router keeps per location id, in the table's depth-first order.
#[derive(Default)]
pub(super) struct PerLocation {
    services: Vec<Location>,
    programs: Vec<Option<Program>>,
    try_files: Vec<Option<TryFiles>>,
    access: Vec<Option<Guard>>,
    except: Vec<Option<LimitExcept>>,
    limits: Vec<Option<crate::limit::rate::RateLimits>>,
    conns: Vec<Option<crate::limit::conn::ConnLimits>>,
    /// A location's own `real_ip` settings (where they differ from its
    /// server's), applied in nginx's preaccess phase.
    realip: Vec<Option<RealIp>>,
    /// The server's `real_ip` settings.
    server_realip: RealIpKey,
    internal: Vec<bool>,
}

impl Compiler {
    pub(super) fn server(&mut self, server: &ServerConfig, http: &Settings) -> Server {
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
        let mut per = PerLocation {
            server_realip: realip_key(&settings),
            ..PerLocation::default()
        };
        let outer = self.scope.clone();
        self.scope.define_files(files_of(&settings, None));
        let server_program = self.program(&server.rewrites, &settings, &name, &server.pos);
        let fallback_action = match &server.ret {
            // A server-level `return` answers before locations are looked at.
            Some(ret) => {
                self.summary
                    .push(format!("  return {}", describe_return(ret)));
                self.return_action(ret, &name)
            }
            None => {
                self.locations(&server.locations, &settings, &name, &mut specs, &mut per);
                self.named_fallbacks(&server.locations, &settings);
                // No location matches: nginx serves the server's `root`.
                match &settings.root {
                    Some(root) => {
                        let index = settings
                            .index
                            .clone()
                            .unwrap_or_else(|| vec!["index.html".into()]);
                        Action::Files(FileService::new(&root.value, FilesMode::Root, index))
                    }
                    None => Action::NotFound,
                }
            }
        };
        let fallback = wrap(self, fallback_action, &settings, &name, &server.pos);
        let rewrites = Rewrites {
            server: server_program,
            locations: per.programs,
        };
        let metrics = if self.request_metrics {
            RequestMetricsLayer::new(if name.is_empty() { "_" } else { &name })
        } else {
            RequestMetricsLayer::off()
        };
        // A server-level `return` answers in the rewrite phase, before
        // limits and access.
        let (fallback_guard, fallback_limits, fallback_conns) = if server.ret.is_some() {
            (None, None, None)
        } else {
            (
                self.guard(&settings, &name),
                self.rate_limits(&settings, &name),
                self.conn_limits(&settings, &name),
            )
        };
        let router = match LocationTable::build(&specs) {
            Ok(table) => {
                self.auth_targets(&table, &per.services, &fallback);
                LocationRouter::from_parts(table, per.services, fallback)
                    .with_rewrites(rewrites)
                    .with_try_files(per.try_files)
                    .with_access(per.access, fallback_guard)
                    .with_limit_except(per.except)
                    .with_rate_limits(per.limits, fallback_limits)
                    .with_conn_limits(per.conns, fallback_conns)
                    .with_realip(per.realip)
                    .with_internal(per.internal)
                    .with_host_captures(host_regexes(server))
            }
            Err(e) => {
                // Regex errors were reported with their location above.
                if !matches!(e, crate::location::TableError::Regex { .. }) {
                    self.err(&server.pos, e);
                }
                let empty = LocationTable::build(&[]).expect("an empty table always builds");
                LocationRouter::from_parts(empty, Vec::new(), fallback)
            }
        };
        let realip = self.realip(&settings);
        let server_header = match settings.server_tokens {
            Some(false) => &super::super::compiled::SERVER_NAME_ONLY,
            _ => &super::super::compiled::SERVER_TOKENS,
        };
        self.scope = outer;
        Server {
            server_header,
            metrics,
            realip,
            router,
        }
    }

    pub(super) fn locations(
        &mut self,
        locations: &[LocationConfig],
        parent: &Settings,
        server_name: &Arc<str>,
        specs: &mut Vec<LocationSpec>,
        out: &mut PerLocation,
    ) {
        for loc in locations {
            if loc.kind.is_regex() {
                // Checked here too so the error names this location.
                let caseless = loc.kind == MatchKind::RegexCaseless;
                if let Err(e) = crate::pattern::Pattern::new(&loc.pattern, caseless) {
                    self.err(&loc.pos, format!("invalid regex {:?}: {e}", loc.pattern));
                }
            }
            if loc.settings.server_tokens.is_some() {
                self.err(
                    &loc.pos,
                    "`server_tokens` in a location: rpx sets the Server header per server; set it in the server or http block",
                );
            }
            for name in connection_settings(&loc.settings) {
                self.err(
                    &loc.pos,
                    format!("`{name}` in a location: rpx applies it to the whole connection, from the listener's default server; set it in the server or http block"),
                );
            }
            let settings = loc.settings.inherit(parent);
            // The location's templates see its own files.
            let outer = self.scope.clone();
            self.scope.define_files(files_of(&settings, Some(loc)));
            let action = self.action(loc, &settings, server_name);
            self.summary.push(format!(
                "  location {} -> {}",
                loc.kind.display(&loc.pattern),
                describe(loc, &settings)
            ));
            let proxies = action.proxies();
            out.services
                .push(wrap(self, action, &settings, server_name, &loc.pos));
            let program = self.program(&loc.rewrites, &settings, server_name, &loc.pos);
            out.programs.push(program);
            let try_files = self.try_files(loc, &settings, server_name);
            out.try_files.push(try_files);
            // nginx's `return` answers in the rewrite phase, before access.
            let returns = matches!(loc.handler, Some(Handler::Return(_)));
            let (access, except, limits, conns) = if returns {
                (None, None, None, None)
            } else {
                (
                    self.guard(&settings, server_name),
                    self.limit_except(loc, &settings, server_name),
                    self.rate_limits(&settings, server_name),
                    self.conn_limits(&settings, server_name),
                )
            };
            out.limits.push(limits);
            out.conns.push(conns);
            let own_realip = realip_key(&settings) != out.server_realip;
            let realip = if own_realip && !returns {
                self.realip(&settings)
            } else {
                None
            };
            out.realip.push(realip);
            out.access.push(access);
            out.except.push(except);
            out.internal.push(loc.internal);
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
            self.scope = outer;
        }
    }

    pub(super) fn action(
        &mut self,
        loc: &LocationConfig,
        s: &Settings,
        server_name: &Arc<str>,
    ) -> Action {
        match &loc.handler {
            Some(Handler::Proxy(url)) => self.proxy(loc, url, s, server_name),
            Some(Handler::Return(ret)) => self.return_action(ret, server_name),
            Some(Handler::Metrics(_)) => Action::Metrics,
            Some(Handler::StubStatus(_)) => Action::StubStatus,
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
    pub(super) fn try_files(
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

    /// Every `try_files … @name` and `error_page … @name` names a
    /// server-level `location @name`.
    pub(super) fn named_fallbacks(&mut self, locations: &[LocationConfig], server: &Settings) {
        fn walk<'l>(locs: &'l [LocationConfig], out: &mut Vec<&'l LocationConfig>) {
            for l in locs {
                out.push(l);
                walk(&l.locations, out);
            }
        }
        let mut all = Vec::new();
        walk(locations, &mut all);
        let exists = |name: &str| {
            locations
                .iter()
                .any(|n| n.kind == MatchKind::Named && n.pattern == name)
        };
        for l in &all {
            let Some(t) = &l.try_files else { continue };
            let Some(name) = t.value.last().and_then(|f| f.strip_prefix('@')) else {
                continue;
            };
            if !name.is_empty() && !exists(name) {
                self.err(
                    &t.pos,
                    format!("try_files: there is no named location \"@{name}\" in this server"),
                );
            }
        }
        let levels = std::iter::once(server).chain(all.iter().map(|l| &l.settings));
        for page in levels.flat_map(|s| s.error_page.iter().flatten()) {
            let Some(name) = page.value.target.strip_prefix('@') else {
                continue;
            };
            if !exists(name) {
                self.err(
                    &page.pos,
                    format!("error_page: there is no named location \"@{name}\" in this server"),
                );
            }
        }
    }
}

/// Wraps an action in its location's `add_header` and body-limit layers.
pub(super) fn wrap(
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
        bandwidth: crate::limit::bandwidth::Bandwidth::new(
            s.limit_rate.unwrap_or(0),
            s.limit_rate_after.unwrap_or(0),
        ),
        gzip: cx.gzip(s, pos),
        sub: cx.sub_filter(s, server_name),
        pages: cx.error_pages(s, server_name, pos),
        action,
    }
}

impl Compiler {
    /// A level's `sub_filter`s, when it has any.
    fn sub_filter(
        &mut self,
        s: &Settings,
        server_name: &Arc<str>,
    ) -> Option<(crate::compress::sub_filter::SubFilter, Arc<str>)> {
        let pairs = s.sub_filter.as_ref().filter(|p| !p.is_empty())?;
        let list: Vec<(String, String)> = pairs.iter().map(|p| p.value.clone()).collect();
        let made = crate::compress::sub_filter::SubFilter::new(
            &list,
            s.sub_filter_once.unwrap_or(true),
            s.sub_filter_types.as_deref().unwrap_or_default(),
            s.sub_filter_last_modified.unwrap_or(false),
            &self.scope,
        );
        match made {
            Ok(f) => Some((f, server_name.clone())),
            Err(e) => {
                self.err(&pairs[0].pos, e);
                None
            }
        }
    }

    /// A level's `error_page`s, when it has any.
    fn error_pages(
        &mut self,
        s: &Settings,
        server_name: &Arc<str>,
        pos: &SourcePos,
    ) -> Option<Arc<crate::error_page::ErrorPages>> {
        let list = s.error_page.as_ref().filter(|l| !l.is_empty())?;
        let specs: Vec<_> = list.iter().map(|p| p.value.clone()).collect();
        match crate::error_page::ErrorPages::new(&specs, &self.scope) {
            Ok(pages) => Some(Arc::new(
                pages
                    .intercept(s.proxy_intercept_errors.unwrap_or(false))
                    .recursive(s.recursive_error_pages.unwrap_or(false))
                    .server_name(server_name),
            )),
            Err(e) => {
                let at = list
                    .iter()
                    .map(|p| &p.pos)
                    .find(|p| p.line > 0)
                    .unwrap_or(pos);
                self.err(at, format!("error_page: {e}"));
                None
            }
        }
    }

    /// A level's `gzip` settings, when `gzip on`.
    fn gzip(&mut self, s: &Settings, pos: &SourcePos) -> Option<Arc<crate::compress::Gzip>> {
        // `encode` turns compression on, unless `gzip = false` turns it off.
        let on = match s.encode {
            Some(_) => s.gzip != Some(false),
            None => s.gzip == Some(true),
        };
        if !on {
            return None;
        }
        let types: Vec<&str> = s.gzip_types.iter().flatten().map(String::as_str).collect();
        let mut g = crate::compress::Gzip::new()
            .types(&types)
            .min_length(s.gzip_min_length.unwrap_or(20))
            .level(s.gzip_comp_level.unwrap_or(1))
            .vary(s.gzip_vary.unwrap_or(false))
            .http10(s.gzip_http10.unwrap_or(false))
            .codings(s.encode.as_deref().unwrap_or_default());
        if let Some(p) = &s.gzip_proxied {
            let words: Vec<&str> = p.value.iter().map(String::as_str).collect();
            match crate::compress::Proxied::parse(&words) {
                Ok(p) => g = g.proxied(p),
                Err(e) => self.err(&p.pos, format!("gzip_proxied: {e}")),
            }
        }
        if let Some(d) = &s.gzip_disable {
            let patterns: Vec<&str> = d.value.iter().map(String::as_str).collect();
            match g.clone().disable(&patterns) {
                Ok(with) => g = with,
                Err(e) => self.err(
                    if d.pos.line > 0 { &d.pos } else { pos },
                    format!("gzip_disable: {e}"),
                ),
            }
        }
        Some(Arc::new(g))
    }
}

/// A level's `add_header` rules.
pub(super) fn add_headers(
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
    let layer = AddHeadersLayer::new(rules).server_name(server_name.clone());
    let Some(e) = &s.expires else {
        return layer;
    };
    let words: Vec<&str> = e.value.iter().map(String::as_str).collect();
    match crate::headers::expires::ExpiresRule::new(&words, &cx.scope) {
        Ok(rule) => layer.expires(rule),
        Err(err) => {
            cx.err(&e.pos, format!("expires: {err}"));
            layer
        }
    }
}

pub(super) fn describe(loc: &LocationConfig, s: &Settings) -> String {
    match &loc.handler {
        Some(Handler::Proxy(url)) => format!("proxy_pass {}", url.value),
        Some(Handler::Return(r)) => format!("return {}", describe_return(r)),
        Some(Handler::Metrics(_)) => "metrics".into(),
        Some(Handler::StubStatus(_)) => "stub_status".into(),
        None => match (&s.alias, &s.root) {
            (Some(a), _) => format!("alias {}", a.value),
            (None, Some(r)) => format!("root {}", r.value),
            (None, None) => "404".into(),
        },
    }
}

pub(super) fn describe_return(r: &ReturnConfig) -> String {
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

/// The settings of `s` that belong to a connection, not a request: a
/// location cannot have its own.
fn connection_settings(s: &Settings) -> Vec<&'static str> {
    [
        ("client_header_timeout", s.client_header_timeout.is_some()),
        ("keepalive_timeout", s.keepalive_timeout.is_some()),
        ("keepalive_requests", s.keepalive_requests.is_some()),
        ("keepalive_time", s.keepalive_time.is_some()),
        ("send_timeout", s.send_timeout.is_some()),
        ("merge_slashes", s.merge_slashes.is_some()),
        ("underscores_in_headers", s.underscores_in_headers.is_some()),
        ("ignore_invalid_headers", s.ignore_invalid_headers.is_some()),
        (
            "client_header_buffer_size",
            s.client_header_buffer_size.is_some(),
        ),
        (
            "large_client_header_buffers",
            s.large_client_header_buffers.is_some(),
        ),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

/// `real_ip_header proxy_protocol`: the address of the connection's PROXY
/// protocol header.
pub(super) const REAL_IP_PROXY_PROTOCOL: &str = "proxy_protocol";

impl Compiler {
    /// A server's `set_real_ip_from`, `real_ip_header`, `real_ip_recursive`.
    fn realip(&mut self, s: &Settings) -> Option<RealIp> {
        let from = s.set_real_ip_from.as_ref().filter(|f| !f.is_empty())?;
        let mut trusted = AccessList::builder();
        for f in from {
            trusted = match trusted.allow(&f.value) {
                Ok(t) => t,
                Err(e) => {
                    self.err(&f.pos, e);
                    return None;
                }
            };
        }
        let header = match &s.real_ip_header {
            // nginx's keyword, not a header name.
            Some(h) if h.value == REAL_IP_PROXY_PROTOCOL => {
                return Some(RealIp::proxy_protocol(trusted.build()))
            }
            None => http::HeaderName::from_static("x-real-ip"),
            Some(h) => match http::HeaderName::from_bytes(h.value.as_bytes()) {
                Ok(name) => name,
                Err(_) => {
                    self.err(&h.pos, format!("invalid real_ip_header {:?}", h.value));
                    return None;
                }
            },
        };
        Some(RealIp::new(
            trusted.build(),
            header,
            s.real_ip_recursive.unwrap_or(false),
        ))
    }
}

/// What decides a level's `real_ip` settings, to tell a location's from
/// its server's.
type RealIpKey = (Vec<String>, Option<String>, Option<bool>);

fn realip_key(s: &Settings) -> RealIpKey {
    (
        s.set_real_ip_from
            .iter()
            .flatten()
            .map(|f| f.value.clone())
            .collect(),
        s.real_ip_header.as_ref().map(|h| h.value.clone()),
        s.real_ip_recursive,
    )
}

/// `$document_root` and `$request_filename` of a level: a location's
/// `alias` (replacing its prefix; a regex location's alias is the whole
/// file, as nginx), else the inherited `root`.
fn files_of(s: &Settings, loc: Option<&LocationConfig>) -> crate::vars::FileRoot {
    match (&s.alias, loc) {
        (Some(alias), Some(loc)) => crate::vars::FileRoot {
            dir: alias.value.as_str().into(),
            join: if loc.kind.is_regex() {
                crate::vars::FileJoin::AliasFile
            } else {
                crate::vars::FileJoin::Alias(loc.pattern.as_str().into())
            },
        },
        _ => crate::vars::FileRoot {
            dir: s.root.as_ref().map_or("", |r| r.value.as_str()).into(),
            join: crate::vars::FileJoin::Root,
        },
    }
}

/// The server's `server_name ~regex`es, as the host table matches them.
fn host_regexes(server: &ServerConfig) -> Vec<crate::pattern::Pattern> {
    server
        .names
        .iter()
        .filter_map(|n| n.value.strip_prefix('~'))
        .filter_map(|p| crate::pattern::Pattern::new(p, true).ok())
        .collect()
}
