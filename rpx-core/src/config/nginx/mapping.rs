//! Gives nginx directives their meaning: the directive tree becomes the
//! typed [`Config`], with every error and warning collected in file order.
//!
//! The directive table (`directives.rs`) checks context, arity and support;
//! this module maps the directives rpx implements.

use super::directives::{self, Ctx, Spec, Support, EVENTS, HTTP, LIF, LOC, MAIN, SIF, SRV, UPS};
use super::{Directive, Pos};
use crate::config::model::*;
use crate::config::{
    parse_duration, parse_listen, parse_return, parse_session_cache, parse_size, suggest,
    ConfigError, LoadOptions, Loaded,
};
use crate::location::MatchKind;

mod acme;

/// Maps a parsed (include-expanded) directive tree onto the model.
/// `prefix` is nginx's conf prefix, the main file's directory: relative
/// file names resolve against it.
pub(super) fn to_config(dirs: &[Directive], prefix: &std::path::Path, opts: LoadOptions) -> Loaded {
    let mut m = Mapper {
        lenient: opts.lenient,
        prefix: prefix.to_path_buf(),
        errors: Vec::new(),
        warnings: Vec::new(),
        config: Config::default(),
    };
    // A full nginx.conf has `http {}`/`events {}`; anything else is a
    // conf.d-style snippet of http-level directives.
    if dirs.iter().any(|d| d.name == "http" || d.name == "events") {
        m.main(dirs);
    } else {
        let mut settings = Settings::default();
        m.http(dirs, &mut settings);
        m.config.settings = settings;
    }
    m.upstream_tls_defaults();
    Loaded {
        config: m.config,
        warnings: m.warnings,
        errors: m.errors,
    }
}

/// `file:line` of a directive (nginx reports directive errors by line).
fn at(p: &Pos) -> SourcePos {
    SourcePos::new(p.file.display().to_string(), p.line, 0)
}

fn words(d: &Directive) -> Vec<&str> {
    d.args.iter().map(|a| a.value.as_str()).collect()
}

struct Mapper {
    lenient: bool,
    prefix: std::path::PathBuf,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
    config: Config,
}

impl Mapper {
    /// nginx does not verify upstream certificates, nor send SNI, unless
    /// told to: the same defaults here (TOML defaults to verifying), with a
    /// warning for every `https://` upstream left unverified that way.
    fn upstream_tls_defaults(&mut self) {
        fn walk(locs: &[LocationConfig], parent: &Settings, out: &mut Vec<SourcePos>) {
            for l in locs {
                let s = l.settings.inherit(parent);
                if let Some(Handler::Proxy(url)) = &l.handler {
                    if url.value.starts_with("https://") && s.proxy_ssl_verify.is_none() {
                        out.push(url.pos.clone());
                    }
                }
                walk(&l.locations, &s, out);
            }
        }
        let mut unverified = Vec::new();
        for server in &self.config.servers {
            let s = server.settings.inherit(&self.config.settings);
            walk(&server.locations, &s, &mut unverified);
        }
        for pos in unverified {
            self.warnings.push(
                ConfigError::new(pos, "proxy_ssl_verify is off (nginx's default): the upstream's certificate is not checked")
                    .hint("add `proxy_ssl_verify on;` and `proxy_ssl_trusted_certificate`"),
            );
        }
        let s = &mut self.config.settings;
        s.proxy_ssl_verify.get_or_insert(false);
        s.proxy_ssl_server_name.get_or_insert(false);
        // nginx tunnels an upgrade only where the config forwards `Upgrade`.
        s.websocket.get_or_insert(Upgrades::WhenForwarded);
        // nginx reads a request body before it contacts the upstream.
        s.proxy_request_buffering.get_or_insert(true);
    }

    /// `limit_req_zone key zone=name:size rate=rate [sync]`.
    fn limit_req_zone(&mut self, d: &Directive) {
        let w = words(d);
        let (mut zone, mut rate) = (None, None);
        for word in &w[1..] {
            if let Some(z) = word.strip_prefix("zone=") {
                let Some((name, size)) = z.split_once(':') else {
                    return self.err(d, format!("invalid zone size \"{word}\""));
                };
                let Some(size) = parse_size(size) else {
                    return self.err(d, format!("invalid zone size \"{word}\""));
                };
                zone = Some((name.to_owned(), size));
            } else if let Some(r) = word.strip_prefix("rate=") {
                rate = Some(r.to_owned());
            } else if *word == "sync" {
                return self.err(d, "\"sync\": rpx keeps a zone in its own memory, with no cluster to share it with (nginx Plus's zone_sync)");
            } else {
                return self.err(d, format!("invalid parameter \"{word}\""));
            }
        }
        let Some((name, size)) = zone else {
            return self.err(d, "\"limit_req_zone\" must have \"zone\" parameter");
        };
        if let Some(prev) = self.config.limit_req_zones.iter().find(|z| z.name == name) {
            let line = prev.pos.line;
            return self.err(
                d,
                format!("duplicate zone \"{name}\" (first at line {line})"),
            );
        }
        self.config.limit_req_zones.push(LimitReqZoneConfig {
            name,
            key: w[0].to_owned(),
            size,
            rate: rate.unwrap_or_else(|| "1r/s".to_owned()),
            pos: at(&d.pos),
        });
    }

    /// `limit_conn_zone key zone=name:size`.
    fn limit_conn_zone(&mut self, d: &Directive) {
        let w = words(d);
        let Some(zone) = w[1].strip_prefix("zone=") else {
            return self.err(d, format!("invalid parameter \"{}\"", w[1]));
        };
        let Some((name, size)) = zone
            .split_once(':')
            .and_then(|(n, s)| Some((n, parse_size(s)?)))
        else {
            return self.err(d, format!("invalid zone size \"{}\"", w[1]));
        };
        if let Some(prev) = self.config.limit_conn_zones.iter().find(|z| z.name == name) {
            let line = prev.pos.line;
            return self.err(
                d,
                format!("duplicate zone \"{name}\" (first at line {line})"),
            );
        }
        self.config.limit_conn_zones.push(LimitConnZoneConfig {
            name: name.to_owned(),
            key: w[0].to_owned(),
            size,
            pos: at(&d.pos),
        });
    }

    /// `limit_req_log_level` / `limit_conn_log_level`.
    fn limit_log_level(&mut self, d: &Directive) -> Option<crate::config::ErrorLogLevel> {
        let word = words(d)[0];
        let level = crate::config::ErrorLogLevel::parse_limit(word);
        if level.is_none() {
            self.err(d, format!("invalid value \"{word}\" in \"{}\" directive, it must be \"info\", \"notice\", \"warn\" or \"error\"", d.name));
        }
        level
    }

    /// `limit_req_status` / `limit_conn_status`: 400 to 599.
    fn refusal_status(&mut self, d: &Directive) -> Option<u16> {
        let code = words(d)[0]
            .parse::<u16>()
            .ok()
            .filter(|c| (400..=599).contains(c));
        if code.is_none() {
            self.err(d, "value must be between 400 and 599");
        }
        code
    }

    /// `limit_req zone=name [burst=N] [nodelay | delay=N]`.
    fn limit_req(&mut self, d: &Directive) -> Option<LimitReqConfig> {
        let (mut zone, mut burst, mut delay) = (None, 0, Some(0));
        for word in words(d) {
            let number = |v: &str| v.parse::<u64>().ok().filter(|&n| n > 0);
            if let Some(z) = word.strip_prefix("zone=") {
                zone = Some(z.to_owned());
            } else if let Some(b) = word.strip_prefix("burst=") {
                let Some(b) = number(b) else {
                    self.err(d, format!("invalid burst value \"{word}\""));
                    return None;
                };
                burst = b;
            } else if let Some(v) = word.strip_prefix("delay=") {
                let Some(v) = number(v) else {
                    self.err(d, format!("invalid delay value \"{word}\""));
                    return None;
                };
                delay = Some(v);
            } else if word == "nodelay" {
                delay = None;
            } else {
                self.err(d, format!("invalid parameter \"{word}\""));
                return None;
            }
        }
        let Some(zone) = zone else {
            self.err(d, "\"limit_req\" must have \"zone\" parameter");
            return None;
        };
        Some(LimitReqConfig {
            zone,
            burst,
            delay,
            pos: at(&d.pos),
        })
    }

    /// `limit_except METHOD… { allow/deny … }`.
    fn limit_except(&mut self, d: &Directive) -> Option<LimitExceptConfig> {
        const METHODS: &[&str] = &[
            "GET",
            "HEAD",
            "POST",
            "PUT",
            "DELETE",
            "MKCOL",
            "COPY",
            "MOVE",
            "OPTIONS",
            "PROPFIND",
            "PROPPATCH",
            "LOCK",
            "UNLOCK",
            "PATCH",
        ];
        let mut methods = Vec::new();
        for m in words(d) {
            if !METHODS.contains(&m) {
                self.err(d, format!("invalid method \"{m}\""));
                return None;
            }
            methods.push(m.to_owned());
        }
        let mut inner = Settings::default();
        for c in d.block.as_deref().unwrap_or_default() {
            if self.check(c, directives::LMT).is_none() {
                continue;
            }
            self.setting(c, &mut inner);
        }
        Some(LimitExceptConfig {
            methods,
            settings: inner,
            pos: at(&d.pos),
        })
    }

    fn err(&mut self, d: &Directive, msg: impl Into<String>) {
        self.errors.push(ConfigError::new(at(&d.pos), msg));
    }

    fn warn(&mut self, d: &Directive, msg: impl Into<String>) {
        self.warnings.push(ConfigError::new(at(&d.pos), msg));
    }

    /// Something rpx knows but does not do yet: an error, or with
    /// `--lenient` a warning (and the directive has no effect).
    fn unsupported(&mut self, d: &Directive, what: &str, subject: &str) {
        let msg = format!("{subject} is not yet supported ({what})");
        // Ignoring one of these would open what the config closes.
        let closes = what == directives::ACCESS;
        if closes {
            self.errors.push(ConfigError::new(at(&d.pos), msg).hint(
                "access control is never ignored, not even with `--lenient`: without it the config would let in whom it keeps out",
            ));
        } else if self.lenient {
            self.warn(d, format!("{msg}; ignored (--lenient)"));
        } else {
            self.errors.push(
                ConfigError::new(at(&d.pos), msg).hint("`--lenient` ignores it with a warning"),
            );
        }
    }

    /// Checks a directive against the table. Returns its spec when the
    /// caller maps it; everything else is fully handled here.
    fn check(&mut self, d: &Directive, ctx: Ctx) -> Option<&'static Spec> {
        let name = d.name.as_str();
        if name == "include" {
            // Only a tree parsed without a file (`parse_str`) still has these.
            self.err(d, "\"include\" is only expanded when loading a file");
            return None;
        }
        let Some(spec) = directives::lookup(name, ctx, d.block.is_some()) else {
            let mut e = ConfigError::new(at(&d.pos), format!("unknown directive \"{name}\""));
            if let Some(s) = suggest(name, directives::names()) {
                e = e.hint(format!("did you mean \"{s}\"?"));
            }
            self.errors.push(e);
            return None;
        };
        if spec.ctx & ctx == 0 {
            self.err(d, format!("\"{name}\" directive is not allowed here"));
            return None;
        }
        if spec.block && d.block.is_none() {
            self.err(d, format!("directive \"{name}\" has no opening \"{{\""));
            return None;
        }
        if !spec.block && d.block.is_some() {
            self.err(
                d,
                format!("directive \"{name}\" is not terminated by \";\""),
            );
            return None;
        }
        let n = d.args.len();
        if n < usize::from(spec.min) || (spec.max != u8::MAX && n > usize::from(spec.max)) {
            self.err(
                d,
                format!("invalid number of arguments in \"{name}\" directive"),
            );
            return None;
        }
        match spec.support {
            Support::Mapped => Some(spec),
            Support::Silent => None,
            Support::Fixed(says) => {
                if let Some(what) = says(&words(d)) {
                    let line = std::iter::once(name)
                        .chain(words(d))
                        .collect::<Vec<_>>()
                        .join(" ");
                    self.warn(d, format!("\"{line}\": {what}"));
                }
                None
            }
            Support::Ignored(why) => {
                self.warn(d, format!("\"{name}\" is ignored: {why}"));
                None
            }
            Support::Unsupported(what) => {
                self.unsupported(d, what, &format!("\"{name}\""));
                None
            }
            Support::DefaultOnly(default, what) => {
                if words(d) != [default] {
                    self.unsupported(d, what, &format!("\"{name}\""));
                }
                None
            }
        }
    }

    fn main(&mut self, dirs: &[Directive]) {
        let mut seen_http = false;
        for d in dirs {
            if self.check(d, MAIN).is_none() {
                continue;
            }
            let block = d.block.as_deref().unwrap_or_default();
            match d.name.as_str() {
                "events" => {
                    for e in block {
                        self.check(e, EVENTS);
                    }
                }
                "http" => {
                    if seen_http {
                        self.err(d, "\"http\" directive is duplicate");
                        continue;
                    }
                    seen_http = true;
                    let mut settings = Settings::default();
                    self.http(block, &mut settings);
                    self.config.settings = settings;
                }
                "worker_shutdown_timeout" => self.config.shutdown_timeout = self.time(d),
                "error_log" => self.error_log(d, true),
                _ => {}
            }
        }
    }

    fn http(&mut self, dirs: &[Directive], settings: &mut Settings) {
        for d in dirs {
            if self.check(d, HTTP).is_none() {
                continue;
            }
            match d.name.as_str() {
                "server" => {
                    if let Some(s) = self.server(d) {
                        self.config.servers.push(s);
                    }
                }
                "upstream" => {
                    let u = self.upstream(d);
                    self.config.upstreams.push(u);
                }
                "map" => {
                    if let Some(m) = self.map(d) {
                        self.config.maps.push(m);
                    }
                }
                "geo" => {
                    if let Some(g) = self.geo(d) {
                        self.config.geos.push(g);
                    }
                }
                "split_clients" => {
                    if let Some(s) = self.split_clients(d) {
                        self.config.split_clients.push(s);
                    }
                }
                "log_format" => self.log_format(d),
                "limit_req_zone" => self.limit_req_zone(d),
                "limit_conn_zone" => self.limit_conn_zone(d),
                "acme_issuer" => self.acme_issuer(d),
                "acme_shared_zone" => {}
                "error_log" => self.error_log(d, true),
                _ => self.setting(d, settings),
            }
        }
    }

    /// The inherited settings every level (`http`, `server`, `location`) has.
    fn setting(&mut self, d: &Directive, s: &mut Settings) {
        let w = words(d);
        let pos = at(&d.pos);
        let name = d.name.as_str();
        match name {
            "proxy_set_header" => {
                s.proxy_set_header
                    .get_or_insert_with(Vec::new)
                    .push(HeaderPair {
                        name: w[0].into(),
                        value: w[1].into(),
                        pos,
                    })
            }
            "proxy_cookie_domain" | "proxy_cookie_path" | "proxy_cookie_flags" => {
                let list = match d.name.as_str() {
                    "proxy_cookie_domain" => &mut s.proxy_cookie_domain,
                    "proxy_cookie_path" => &mut s.proxy_cookie_path,
                    _ => &mut s.proxy_cookie_flags,
                };
                let list = list.get_or_insert_with(Vec::new);
                if w == ["off"] {
                    list.clear();
                } else {
                    let words = w.iter().map(|x| (*x).to_owned()).collect();
                    list.push(Spanned::new(words, at(&d.pos)));
                }
            }
            "server_tokens" => match w[0] {
                // `build` names nginx's build; rpx has none to add.
                "on" | "build" => s.server_tokens = Some(true),
                "off" => s.server_tokens = Some(false),
                _ => self.err(
                    d,
                    format!("invalid value \"{}\": rpx takes on, off or build", w[0]),
                ),
            },
            "expires" => {
                let words = w.iter().map(|x| (*x).to_owned()).collect();
                s.expires = Some(Spanned::new(words, at(&d.pos)));
            }
            "add_header" => {
                let always = match w.get(2) {
                    None => false,
                    Some(&"always") => true,
                    Some(other) => {
                        return self.err(d, format!("invalid parameter \"{other}\""));
                    }
                };
                s.add_header
                    .get_or_insert_with(Vec::new)
                    .push(AddHeaderConfig {
                        name: w[0].into(),
                        value: w[1].into(),
                        always,
                        pos,
                    });
            }
            "proxy_hide_header" => s
                .proxy_hide_header
                .get_or_insert_with(Vec::new)
                .push(Spanned::new(w[0].into(), pos)),
            "proxy_pass_header" => s
                .proxy_pass_header
                .get_or_insert_with(Vec::new)
                .push(Spanned::new(w[0].into(), pos)),
            "proxy_redirect" => self.proxy_redirect(d, &w, s),
            "client_max_body_size" => match parse_size(w[0]) {
                Some(n) => s.client_max_body_size = Some(n),
                None => self.invalid_value(d),
            },
            "proxy_connect_timeout" => s.proxy_connect_timeout = self.time(d),
            "proxy_read_timeout" => s.proxy_read_timeout = self.time(d),
            "proxy_send_timeout" => s.proxy_send_timeout = self.time(d),
            "proxy_http_version" => match ProxyHttpVersion::parse(w[0]) {
                Some(v) => s.proxy_http_version = Some(Spanned::new(v, pos)),
                None => self.err(
                    d,
                    format!(
                        "invalid value \"{}\" in \"proxy_http_version\" directive, it must be \"1.0\", \"1.1\" or \"2\"",
                        w[0]
                    ),
                ),
            },
            "client_body_timeout" => s.client_body_timeout = self.time(d),
            "client_header_timeout" => s.client_header_timeout = self.time(d),
            "merge_slashes" => s.merge_slashes = self.flag(d),
            "set_real_ip_from" => {
                let rule = w[0];
                if crate::access::AccessList::builder().allow(rule).is_err() || rule == "all" {
                    self.err(d, format!("\"set_real_ip_from\": invalid parameter \"{rule}\": an address, a CIDR or \"unix:\""));
                } else {
                    s.set_real_ip_from
                        .get_or_insert_with(Vec::new)
                        .push(Spanned::new(rule.to_owned(), at(&d.pos)));
                }
            }
            "real_ip_header" => {
                // `proxy_protocol` is a keyword; the compiler reads it.
                if http::HeaderName::from_bytes(w[0].as_bytes()).is_err() {
                    self.invalid_value(d);
                } else {
                    s.real_ip_header = Some(Spanned::new(w[0].to_owned(), at(&d.pos)));
                }
            }
            "real_ip_recursive" => s.real_ip_recursive = self.flag(d),
            "allow" | "deny" => {
                let rule = w[0].to_owned();
                let verdict = if d.name == "allow" {
                    crate::access::Verdict::Allow
                } else {
                    crate::access::Verdict::Deny
                };
                match crate::access::AccessList::builder().rule(verdict, &rule) {
                    Ok(_) => {
                        if crate::access::has_host_bits(&rule) {
                            self.warn(d, format!("low address bits of {rule} are meaningless"));
                        }
                        s.access.get_or_insert_with(Vec::new).push(AccessRuleConfig {
                            verdict,
                            rule,
                            pos: at(&d.pos),
                        });
                    }
                    Err(e) => self.err(d, format!("\"{}\": {e}", d.name)),
                }
            }
            "auth_basic" | "auth_basic_user_file" | "satisfy"
                if match d.name.as_str() {
                    "auth_basic" => s.auth_basic.is_some(),
                    "satisfy" => s.satisfy.is_some(),
                    _ => s.auth_basic_user_file.is_some(),
                } =>
            {
                self.err(d, format!("\"{}\" directive is duplicate", d.name));
            }
            "auth_basic" | "auth_basic_user_file" if w[0].contains('$') => self.err(
                d,
                format!("\"{}\" with variables is not supported: rpx takes a fixed text", d.name),
            ),
            "auth_basic" => {
                let value = match w[0] {
                    "off" => AuthBasic::Off,
                    realm => AuthBasic::Realm(realm.to_owned()),
                };
                s.auth_basic = Some(Spanned::new(value, at(&d.pos)));
            }
            "auth_basic_user_file" => {
                // Relative to nginx's conf prefix, the main file's directory.
                let path = self.prefix.join(w[0]).display().to_string();
                s.auth_basic_user_file = Some(Spanned::new(path, at(&d.pos)));
            }
            "satisfy" => match w[0] {
                "all" => s.satisfy = Some(crate::access::Satisfy::All),
                "any" => s.satisfy = Some(crate::access::Satisfy::Any),
                _ => self.err(
                    d,
                    format!("invalid value \"{}\" in \"satisfy\" directive, it must be \"all\" or \"any\"", w[0]),
                ),
            },
            "auth_request" if s.auth_request.is_some() => {
                self.err(d, "\"auth_request\" directive is duplicate");
            }
            "auth_request" => {
                let value = match w[0] {
                    "off" => AuthRequestConfig::Off,
                    uri => AuthRequestConfig::Uri(uri.to_owned()),
                };
                s.auth_request = Some(Spanned::new(value, at(&d.pos)));
            }
            "auth_request_set" => match w[0].strip_prefix('$') {
                Some(name) if !name.is_empty() => {
                    s.auth_request_set.get_or_insert_with(Vec::new).push(AuthRequestSetConfig {
                        name: name.to_owned(),
                        value: w[1].to_owned(),
                        pos: at(&d.pos),
                    });
                }
                _ => self.err(d, format!("invalid variable name \"{}\"", w[0])),
            },
            "limit_req" => {
                if let Some(l) = self.limit_req(d) {
                    s.limit_req.get_or_insert_with(Vec::new).push(l);
                }
            }
            "limit_req_status" => s.limit_req_status = self.refusal_status(d),
            "limit_req_dry_run" => s.limit_req_dry_run = self.flag(d),
            "limit_req_log_level" => s.limit_req_log_level = self.limit_log_level(d),
            "limit_conn" => {
                let n = w[1].parse::<u32>().ok().filter(|&n| (1..=65535).contains(&n));
                match (w[0], n) {
                    (_, None) => self.err(d, format!("invalid number of connections \"{}\"", w[1])),
                    (zone, Some(max)) => s.limit_conn.get_or_insert_with(Vec::new).push(LimitConnConfig {
                        zone: zone.to_owned(),
                        max,
                        pos: at(&d.pos),
                    }),
                }
            }
            "gzip" => s.gzip = self.flag(d),
            "gzip_vary" => s.gzip_vary = self.flag(d),
            "sub_filter" => s
                .sub_filter
                .get_or_insert_with(Vec::new)
                .push(Spanned::new((w[0].into(), w[1].into()), at(&d.pos))),
            "sub_filter_once" => s.sub_filter_once = self.flag(d),
            "sub_filter_last_modified" => s.sub_filter_last_modified = self.flag(d),
            "sub_filter_types" => {
                let types = s.sub_filter_types.get_or_insert_with(Vec::new);
                types.extend(w.iter().map(|t| t.to_string()));
            }
            "gzip_types" => {
                let types = s.gzip_types.get_or_insert_with(Vec::new);
                types.extend(w.iter().map(|t| t.to_string()));
            }
            "gzip_min_length" => match parse_size(w[0]) {
                Some(n) => s.gzip_min_length = Some(n),
                None => self.invalid_value(d),
            },
            "gzip_comp_level" => match w[0].parse::<u32>() {
                Ok(n @ 1..=9) => s.gzip_comp_level = Some(n),
                _ => self.err(d, "value must be between 1 and 9"),
            },
            "gzip_proxied" => match crate::compress::Proxied::parse(&w) {
                Ok(_) => s.gzip_proxied = Some(Spanned::new(w.iter().map(|x| x.to_string()).collect(), at(&d.pos))),
                Err(e) => self.err(d, format!("{e} in \"gzip_proxied\" directive")),
            },
            "gzip_disable" => {
                if let Err(e) = crate::compress::Gzip::new().disable(&w) {
                    self.err(d, format!("\"gzip_disable\": {e}"));
                } else {
                    let list = s.gzip_disable.get_or_insert_with(|| Spanned::new(Vec::new(), at(&d.pos)));
                    list.value.extend(w.iter().map(|x| x.to_string()));
                }
            }
            "gzip_http_version" => match w[0] {
                "1.0" => s.gzip_http10 = Some(true),
                "1.1" => s.gzip_http10 = Some(false),
                other => self.err(d, format!("invalid value \"{other}\" in \"gzip_http_version\" directive, it must be \"1.0\" or \"1.1\"")),
            },
            "limit_rate" | "limit_rate_after" if w[0].contains('$') => self.err(
                d,
                format!("\"{}\" with variables is not supported: rpx takes a fixed size", d.name),
            ),
            "limit_rate" | "limit_rate_after" => match parse_size(w[0]) {
                Some(n) if d.name == "limit_rate" => s.limit_rate = Some(n),
                Some(n) => s.limit_rate_after = Some(n),
                None => self.invalid_value(d),
            },
            "limit_conn_status" => s.limit_conn_status = self.refusal_status(d),
            "limit_conn_dry_run" => s.limit_conn_dry_run = self.flag(d),
            "limit_conn_log_level" => s.limit_conn_log_level = self.limit_log_level(d),
            "send_timeout" => s.send_timeout = self.time(d),
            "resolver" => match crate::upstream::ResolverSpec::parse(&w) {
                Ok(r) => s.resolver = Some(Spanned::new(r, at(&d.pos))),
                Err(e) => self.err(d, e.to_string()),
            },
            "resolver_timeout" => s.resolver_timeout = self.time(d),
            "proxy_request_buffering" => s.proxy_request_buffering = self.flag(d),
            "proxy_pass_request_body" => s.proxy_pass_request_body = self.flag(d),
            "proxy_pass_request_headers" => s.proxy_pass_request_headers = self.flag(d),
            "proxy_intercept_errors" => s.proxy_intercept_errors = self.flag(d),
            "recursive_error_pages" => s.recursive_error_pages = self.flag(d),
            "error_page" => match crate::error_page::ErrorPageSpec::parse(&w) {
                Ok(page) => s
                    .error_page
                    .get_or_insert_with(Vec::new)
                    .push(Spanned::new(page, at(&d.pos))),
                Err(e) => self.err(d, e.to_string()),
            },
            "client_body_buffer_size" => match parse_size(w[0]).filter(|&n| n > 0) {
                Some(n) => s.client_body_buffer_size = Some(n),
                None => self.invalid_value(d),
            },
            "underscores_in_headers" => s.underscores_in_headers = self.flag(d),
            "ignore_invalid_headers" => s.ignore_invalid_headers = self.flag(d),
            "client_header_buffer_size" => match parse_size(w[0]).filter(|&n| n > 0) {
                Some(n) => s.client_header_buffer_size = Some(n),
                None => self.invalid_value(d),
            },
            "large_client_header_buffers" => match HeaderBuffers::parse(&w) {
                Some(b) => s.large_client_header_buffers = Some(b),
                None => self.err(
                    d,
                    "invalid value in \"large_client_header_buffers\" directive: a number and a size, as \"4 8k\"",
                ),
            },
            "keepalive_timeout" => {
                s.keepalive_timeout = self.time(d);
                if w.len() > 1 {
                    self.warn(
                        d,
                        "the second \"keepalive_timeout\" argument (Keep-Alive header) is ignored",
                    );
                }
            }
            "keepalive_requests" => match w[0].parse::<u32>() {
                Ok(n) => s.keepalive_requests = Some(n),
                Err(_) => self.invalid_value(d),
            },
            "keepalive_time" => s.keepalive_time = self.time(d),
            "ssl_certificate" => s.ssl_certificate = Some(Spanned::new(w[0].into(), pos)),
            "ssl_certificate_key" => s.ssl_certificate_key = Some(Spanned::new(w[0].into(), pos)),
            "ssl_client_certificate" => {
                s.ssl_client_certificate = Some(Spanned::new(w[0].into(), pos))
            }
            "ssl_verify_client" => s.ssl_verify_client = Some(Spanned::new(w[0].into(), pos)),
            "ssl_protocols" => {
                let known = ["SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];
                if let Some(bad) = w.iter().find(|p| !known.contains(p)) {
                    return self.err(d, format!("invalid value \"{bad}\" in \"ssl_protocols\""));
                }
                let old: Vec<&str> = w
                    .iter()
                    .copied()
                    .filter(|p| !matches!(*p, "TLSv1.2" | "TLSv1.3"))
                    .collect();
                if !old.is_empty() {
                    self.warn(
                        d,
                        format!(
                            "{} not offered: rpx speaks TLSv1.2 and TLSv1.3 only",
                            old.join(", ")
                        ),
                    );
                }
                if !w.iter().any(|p| *p == "TLSv1.2" || *p == "TLSv1.3") {
                    return self.err(d, "\"ssl_protocols\" lists only versions rpx does not offer (TLSv1.2, TLSv1.3)");
                }
                // Only what rpx offers reaches the model: the rest was said
                // above, and the compiler would say it again.
                s.ssl_protocols = Some(Spanned::new(
                    w.iter()
                        .filter(|p| matches!(**p, "TLSv1.2" | "TLSv1.3"))
                        .map(|x| (*x).to_owned())
                        .collect(),
                    pos,
                ));
            }
            "ssl_ciphers" => s.ssl_ciphers = Some(Spanned::new(w[0].into(), pos)),
            "ssl_prefer_server_ciphers" => s.ssl_prefer_server_ciphers = self.flag(d),
            "ssl_session_tickets" => s.ssl_session_tickets = self.flag(d),
            "ssl_session_cache" => match parse_session_cache(&w) {
                Ok(n) => s.ssl_session_cache = Some(n),
                Err(e) => self.err(d, e),
            },
            "http2" => s.http2 = self.flag(d),
            "proxy_ssl_verify" => s.proxy_ssl_verify = self.flag(d),
            "proxy_next_upstream" => match crate::upstream::NextUpstream::parse(&w) {
                Ok(_) => {
                    s.proxy_next_upstream = Some(Spanned::new(
                        w.iter().map(|x| (*x).to_owned()).collect(),
                        pos,
                    ))
                }
                Err(e) => self.err(d, e.to_string()),
            },
            "proxy_next_upstream_tries" => match w[0].parse::<u32>() {
                Ok(n) => s.proxy_next_upstream_tries = Some(n),
                Err(_) => self.invalid_value(d),
            },
            "proxy_next_upstream_timeout" => s.proxy_next_upstream_timeout = self.time(d),
            "proxy_ssl_server_name" => s.proxy_ssl_server_name = self.flag(d),
            "proxy_ssl_session_reuse" => s.proxy_ssl_session_reuse = self.flag(d),
            "proxy_ssl_name" => s.proxy_ssl_name = Some(w[0].into()),
            "proxy_ssl_trusted_certificate" => {
                s.proxy_ssl_trusted_certificate = Some(Spanned::new(w[0].into(), pos))
            }
            "proxy_ssl_certificate" => {
                s.proxy_ssl_certificate = Some(Spanned::new(w[0].into(), pos))
            }
            "proxy_ssl_certificate_key" => {
                s.proxy_ssl_certificate_key = Some(Spanned::new(w[0].into(), pos))
            }
            "root" => s.root = Some(Spanned::new(w[0].into(), pos)),
            "index" => s.index = Some(w.iter().map(|x| (*x).to_owned()).collect()),
            "access_log" => self.access_log(d, &w, s),
            "error_log" => self.error_log(d, false),
            _ => self.err(d, format!("\"{name}\" directive is not allowed here")),
        }
    }

    /// `error_log path [level]`: rpx has one log, set at the main or `http`
    /// level; a server's or location's own is ignored with a warning.
    fn error_log(&mut self, d: &Directive, top: bool) {
        if !top {
            self.warn(
                d,
                "rpx writes one error log (the main or http level's): this error_log is ignored",
            );
            return;
        }
        if self.config.error_log.is_some() {
            self.warn(
                d,
                "rpx writes one error log: the first error_log is used, this one is ignored",
            );
            return;
        }
        let w = words(d);
        match crate::config::ErrorLogConfig::parse(w[0], w.get(1).copied(), at(&d.pos)) {
            Ok((log, warning)) => {
                if let Some(msg) = warning {
                    self.warn(d, msg);
                }
                self.config.error_log = Some(log);
            }
            Err(e) => self.err(d, e),
        }
    }

    /// `log_format name [escape=default|json|none] string…`: the strings
    /// are joined, as nginx joins them.
    fn log_format(&mut self, d: &Directive) {
        let w = words(d);
        let (name, mut rest) = (w[0], &w[1..]);
        let mut escape = "default".to_owned();
        if let Some(e) = rest.first().and_then(|a| a.strip_prefix("escape=")) {
            escape = e.to_owned();
            rest = &rest[1..];
        }
        if name == "combined" {
            return self.err(d, "duplicate \"log_format\" name \"combined\"");
        }
        self.config.log_formats.push(LogFormatConfig {
            name: name.to_owned(),
            escape,
            format: rest.concat(),
            pos: at(&d.pos),
        });
    }

    /// `access_log path [format [buffer=… flush=… gzip if=…]] | off`.
    fn access_log(&mut self, d: &Directive, w: &[&str], s: &mut Settings) {
        if w[0] == "off" {
            s.access_log = Some(Vec::new());
            return;
        }
        if w[0].starts_with("syslog:") {
            return self.unsupported(d, "logging to syslog", "\"access_log syslog:\"");
        }
        if w.iter().skip(2).any(|p| p.starts_with("if=")) {
            return self.unsupported(d, "conditional logging", "\"access_log … if=\"");
        }
        if w.iter().skip(2).any(|p| p.starts_with("gzip")) {
            self.warn(
                d,
                "rpx writes access logs uncompressed; \"gzip\" is ignored",
            );
        }
        // A level's first `access_log` replaces the inherited ones; more on
        // the same level add to it.
        s.access_log
            .get_or_insert_with(Vec::new)
            .push(AccessLogConfig {
                path: w[0].to_owned(),
                format: w.get(1).map(|f| (*f).to_owned()),
                pos: at(&d.pos),
            });
    }

    /// `on` / `off`.
    fn flag(&mut self, d: &Directive) -> Option<bool> {
        match d.args.first().map(|a| a.value.as_str()) {
            Some("on") => Some(true),
            Some("off") => Some(false),
            _ => {
                self.err(
                    d,
                    format!(
                        "invalid value in \"{}\" directive, it must be \"on\" or \"off\"",
                        d.name
                    ),
                );
                None
            }
        }
    }

    fn invalid_value(&mut self, d: &Directive) {
        let v = d.args.first().map_or("", |a| a.value.as_str());
        self.err(d, format!("\"{}\" directive invalid value \"{v}\"", d.name));
    }

    fn time(&mut self, d: &Directive) -> Option<std::time::Duration> {
        let t = parse_duration(d.args.first().map_or("", |a| a.value.as_str()));
        if t.is_none() {
            self.invalid_value(d);
        }
        t
    }

    fn proxy_redirect(&mut self, d: &Directive, w: &[&str], s: &mut Settings) {
        let pos = at(&d.pos);
        let new = match w {
            ["off"] | ["false"] => RedirectConfig::Off,
            ["default"] => RedirectConfig::Default,
            [from, to] => {
                if let Some(Spanned {
                    value: RedirectConfig::Rules(rules),
                    ..
                }) = &mut s.proxy_redirect
                {
                    rules.push(((*from).into(), (*to).into()));
                    return;
                }
                RedirectConfig::Rules(vec![((*from).into(), (*to).into())])
            }
            _ => return self.invalid_value(d),
        };
        if s.proxy_redirect.is_some() {
            self.unsupported(
                d,
                "combining \"proxy_redirect default\" or \"off\" with other rules",
                "this \"proxy_redirect\"",
            );
            return;
        }
        s.proxy_redirect = Some(Spanned::new(new, pos));
    }

    fn server(&mut self, d: &Directive) -> Option<ServerConfig> {
        let mut server = ServerConfig {
            pos: at(&d.pos),
            ..ServerConfig::default()
        };
        let mut steps = Vec::new();
        for c in d.block.as_deref().unwrap_or_default() {
            if self.check(c, SRV).is_none() {
                continue;
            }
            match c.name.as_str() {
                "listen" => {
                    if let Some(l) = self.listen(c) {
                        server.listen.push(l);
                    }
                }
                "server_name" => server.names.extend(
                    c.args
                        .iter()
                        .filter(|a| !a.value.is_empty())
                        .map(|a| Spanned::new(a.value.clone(), at(&a.pos))),
                ),
                "location" => {
                    if let Some(l) = self.location(c) {
                        server.locations.push(l);
                    }
                }
                "return" | "rewrite" | "break" | "if" | "set" => {
                    if let Some(step) = self.step(c, SIF) {
                        steps.push(step);
                    }
                }
                "try_files" => {
                    self.unsupported(c, "try_files outside a location", "\"try_files\" here")
                }
                "acme_certificate" => server.acme = Some(self.acme_certificate(c)),
                _ => self.setting(c, &mut server.settings),
            }
        }
        let (rewrites, ret) = self.split_at_return(d, steps);
        server.rewrites = rewrites;
        server.ret = ret;
        Some(server)
    }

    fn listen(&mut self, d: &Directive) -> Option<Listen> {
        let mut kept = Vec::new();
        for w in words(d) {
            let key = w.split('=').next().unwrap_or(w);
            match key {
                // Socket tuning rpx leaves to the OS.
                "reuseport" | "deferred" | "bind" | "ipv6only" | "backlog" | "rcvbuf"
                | "sndbuf" | "fastopen" | "so_keepalive" | "accept_filter" | "setfib" => {}
                "quic" => {
                    self.unsupported(d, "HTTP/3", "\"listen … quic\"");
                    return None;
                }
                _ => kept.push(w),
            }
        }
        match parse_listen(&kept) {
            Ok(mut l) => {
                l.pos = at(&d.pos);
                Some(l)
            }
            Err(msg) => {
                self.err(d, msg);
                None
            }
        }
    }

    /// A block's rewrite steps, cut at the first top-level `return`: what
    /// follows it is never reached (nginx stops there), so it is dropped.
    fn split_at_return(
        &mut self,
        d: &Directive,
        mut steps: Vec<RewriteStep>,
    ) -> (Vec<RewriteStep>, Option<ReturnConfig>) {
        let Some(i) = steps
            .iter()
            .position(|s| matches!(s, RewriteStep::Return(_)))
        else {
            return (steps, None);
        };
        if steps.len() > i + 1 {
            self.warn(
                d,
                "\"rewrite\"/\"if\" after \"return\" in this block are never reached; ignored",
            );
        }
        steps.truncate(i + 1);
        match steps.pop() {
            Some(RewriteStep::Return(r)) => (steps, Some(r)),
            _ => (steps, None),
        }
    }

    fn location(&mut self, d: &Directive) -> Option<LocationConfig> {
        self.location_in(d, false)
    }

    /// A `location` block; `nested` when it sits inside another location.
    fn location_in(&mut self, d: &Directive, nested: bool) -> Option<LocationConfig> {
        let spec = words(d).join(" ");
        let (kind, pattern) = MatchKind::split(&spec);
        if kind == MatchKind::Named {
            if nested || d.args.len() != 1 || pattern.is_empty() {
                let msg = if nested {
                    format!("named location \"{spec}\" can be on the server level only")
                } else {
                    format!("invalid location \"{spec}\"")
                };
                self.err(d, msg);
                return None;
            }
        } else if pattern.is_empty() || (!kind.is_regex() && !pattern.starts_with('/')) {
            self.err(d, format!("invalid location \"{spec}\""));
            return None;
        }
        let mut loc = LocationConfig::new(&spec);
        loc.pos = at(&d.pos);
        let mut steps = Vec::new();
        let mut proxy: Option<(&Directive, Handler)> = None;
        for c in d.block.as_deref().unwrap_or_default() {
            if self.check(c, LOC).is_none() {
                continue;
            }
            match c.name.as_str() {
                "location" => {
                    if kind == MatchKind::Named {
                        self.err(
                            c,
                            format!(
                                "location \"{}\" cannot be inside the named location \"{spec}\"",
                                words(c).join(" ")
                            ),
                        );
                    } else if let Some(l) = self.location_in(c, true) {
                        loc.locations.push(l);
                    }
                }
                "proxy_pass" => {
                    if proxy.is_some() {
                        self.err(c, "\"proxy_pass\" directive is duplicate");
                        continue;
                    }
                    let url = Spanned::new(c.args[0].value.clone(), at(&c.pos));
                    proxy = Some((c, Handler::Proxy(url)));
                }
                "return" | "rewrite" | "break" | "if" | "set" => {
                    if let Some(step) = self.step(c, LIF) {
                        steps.push(step);
                    }
                }
                "alias" => {
                    loc.settings.alias = Some(Spanned::new(c.args[0].value.clone(), at(&c.pos)))
                }
                "rpx_metrics" => proxy = Some((c, Handler::Metrics(at(&c.pos)))),
                // `stub_status on;` is the form before nginx 1.7.5.
                "stub_status" => match words(c).as_slice() {
                    [] | ["on"] => proxy = Some((c, Handler::StubStatus(at(&c.pos)))),
                    _ => self.invalid_value(c),
                },
                "try_files" => {
                    let files: Vec<String> = words(c).iter().map(|w| (*w).to_owned()).collect();
                    loc.try_files = Some(Spanned::new(files, at(&c.pos)));
                }
                "internal" => loc.internal = true,
                "limit_except" => loc.limit_except = self.limit_except(c),
                _ => self.setting(c, &mut loc.settings),
            }
        }
        let (rewrites, ret) = self.split_at_return(d, steps);
        loc.rewrites = rewrites;
        loc.handler = match (ret, proxy) {
            (Some(r), Some((p, _))) => {
                self.warn(
                    p,
                    "\"proxy_pass\" is never used: this location always returns",
                );
                Some(Handler::Return(r))
            }
            (Some(r), None) => Some(Handler::Return(r)),
            (None, Some((_, h))) => Some(h),
            (None, None) => None,
        };
        Some(loc)
    }

    /// `return`, `rewrite`, `break` and `if` (in `ctx`, the `if` context of
    /// the enclosing level).
    fn step(&mut self, d: &Directive, if_ctx: Ctx) -> Option<RewriteStep> {
        let w = words(d);
        match d.name.as_str() {
            "return" => match parse_return(&w) {
                Ok((code, text)) => Some(RewriteStep::Return(ReturnConfig {
                    code,
                    text,
                    pos: at(&d.pos),
                })),
                Err(msg) => {
                    self.err(d, msg);
                    None
                }
            },
            "break" => Some(RewriteStep::Break),
            "set" => match crate::config::set_config(w[0], w[1].into(), at(&d.pos)) {
                Ok(s) => Some(RewriteStep::Set(s)),
                Err(msg) => {
                    self.err(d, msg);
                    None
                }
            },
            "rewrite" => {
                let flag = match w.get(2) {
                    None => RewriteFlag::None,
                    Some(&"last") => RewriteFlag::Last,
                    Some(&"break") => RewriteFlag::Break,
                    Some(&"redirect") => RewriteFlag::Redirect,
                    Some(&"permanent") => RewriteFlag::Permanent,
                    Some(other) => {
                        self.err(d, format!("invalid parameter \"{other}\""));
                        return None;
                    }
                };
                Some(RewriteStep::Rewrite(RewriteConfig {
                    regex: w[0].into(),
                    replacement: w[1].into(),
                    flag,
                    pos: at(&d.pos),
                }))
            }
            "if" => self.if_block(d, if_ctx),
            _ => None,
        }
    }

    fn if_block(&mut self, d: &Directive, ctx: Ctx) -> Option<RewriteStep> {
        let cond = match parse_condition(&words(d)) {
            Ok(c) => c,
            Err(CondError::Invalid) => {
                self.err(d, "invalid condition in \"if\"");
                return None;
            }
        };
        let mut steps = Vec::new();
        for c in d.block.as_deref().unwrap_or_default() {
            if self.check(c, ctx).is_none() {
                continue;
            }
            match c.name.as_str() {
                "return" | "rewrite" | "break" | "set" => {
                    if let Some(s) = self.step(c, ctx) {
                        steps.push(s);
                    }
                }
                other => self.unsupported(
                    c,
                    "directives other than return/rewrite/break/set inside \"if\"",
                    &format!("\"{other}\" inside \"if\""),
                ),
            }
        }
        Some(RewriteStep::If(IfConfig {
            cond,
            steps,
            pos: at(&d.pos),
        }))
    }

    fn upstream(&mut self, d: &Directive) -> UpstreamConfig {
        let mut up = UpstreamConfig::new(&d.args[0].value, &[]);
        up.pos = at(&d.pos);
        for c in d.block.as_deref().unwrap_or_default() {
            if self.check(c, UPS).is_none() {
                continue;
            }
            let w = words(c);
            match c.name.as_str() {
                "server" => {
                    if w[0].starts_with("unix:") {
                        self.unsupported(c, "unix socket upstreams", "\"server unix:…\"");
                        continue;
                    }
                    let addr = if w[0].contains(':') && !w[0].ends_with(']') {
                        w[0].to_owned()
                    } else {
                        format!("{}:80", w[0])
                    };
                    let mut line = vec![addr.as_str()];
                    for p in &w[1..] {
                        let name = p.split('=').next().unwrap_or(p);
                        match name {
                            // rpx re-resolves every name (resolve_interval).
                            "resolve" => {}
                            "slow_start" | "drain" | "route" | "service" => self.warn(
                                c,
                                format!("upstream server parameter \"{p}\" is not supported by rpx; ignored"),
                            ),
                            _ => line.push(p),
                        }
                    }
                    match crate::config::upstream::server_line(&line) {
                        Ok(server) => up.servers.push(UpstreamServerConfig {
                            pos: at(&c.pos),
                            ..server
                        }),
                        Err(msg) => self.err(c, msg),
                    }
                }
                "least_conn" | "ip_hash" | "hash" | "random" => {
                    if up.balance.is_some() {
                        self.err(c, "load balancing method redefined");
                        continue;
                    }
                    match crate::config::upstream::balance(&c.name, &w) {
                        Ok(b) => up.balance = Some(Spanned::new(b, at(&c.pos))),
                        Err(msg) => self.err(c, msg),
                    }
                }
                "health_check" => match crate::config::upstream::health_check(&w) {
                    Ok(h) => up.health_check = Some(Spanned::new(h, at(&c.pos))),
                    Err(msg) => self.err(c, msg),
                },
                "keepalive" | "keepalive_requests" => match w[0].parse::<u32>() {
                    Ok(n) if c.name == "keepalive" => up.keepalive = Some(n),
                    Ok(n) => up.keepalive_requests = Some(n),
                    Err(_) => self.invalid_value(c),
                },
                "keepalive_timeout" => up.keepalive_timeout = self.time(c),
                "keepalive_time" => up.keepalive_time = self.time(c),
                "resolve_interval" => up.resolve_interval = self.time(c),
                "resolve_strict" => up.resolve_strict = self.flag(c).unwrap_or(false),
                _ => {}
            }
        }
        up
    }

    /// The variable a block defines (`$name`), or its error.
    fn block_variable(&mut self, d: &Directive, word: &str) -> Option<String> {
        match word.strip_prefix('$').filter(|n| !n.is_empty()) {
            Some(name) => Some(name.to_owned()),
            None => {
                self.err(d, format!("invalid variable name \"{word}\""));
                None
            }
        }
    }

    fn geo(&mut self, d: &Directive) -> Option<GeoConfig> {
        let (source, var) = match d.args.as_slice() {
            [var] => (None, &var.value),
            [source, var] => (Some(source.value.clone()), &var.value),
            _ => return None,
        };
        let name = self.block_variable(d, var)?;
        let lines = d
            .block
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let mut line = vec![c.name.clone()];
                line.extend(words(c).iter().map(|w| (*w).to_owned()));
                Spanned::new(line, at(&c.pos))
            })
            .collect();
        Some(GeoConfig {
            source,
            name,
            lines,
            pos: at(&d.pos),
        })
    }

    fn split_clients(&mut self, d: &Directive) -> Option<SplitClientsConfig> {
        let name = self.block_variable(d, &d.args[1].value)?;
        let mut parts = Vec::new();
        for c in d.block.as_deref().unwrap_or_default() {
            match words(c).as_slice() {
                [value] if c.block.is_none() => parts.push((c.name.clone(), (*value).to_owned())),
                _ => self.err(c, "invalid number of the split_clients parameters"),
            }
        }
        Some(SplitClientsConfig {
            source: d.args[0].value.clone(),
            name,
            parts,
            pos: at(&d.pos),
        })
    }

    fn map(&mut self, d: &Directive) -> Option<MapConfig> {
        let Some(name) = d.args[1].value.strip_prefix('$').filter(|n| !n.is_empty()) else {
            self.err(d, format!("invalid variable name \"{}\"", d.args[1].value));
            return None;
        };
        let mut map = MapConfig {
            source: d.args[0].value.clone(),
            name: name.to_owned(),
            default: None,
            entries: Vec::new(),
            hostnames: false,
            pos: at(&d.pos),
        };
        for c in d.block.as_deref().unwrap_or_default() {
            let w = words(c);
            match (c.name.as_str(), w.as_slice()) {
                ("volatile", []) => {}
                ("hostnames", []) => map.hostnames = true,
                ("include", _) => self.err(c, "\"include\" is only expanded when loading a file"),
                ("default", [v]) => map.default = Some((*v).to_owned()),
                (key, [v]) if c.block.is_none() => {
                    let key = if let Some(p) = key.strip_prefix("~*") {
                        MapKey::Regex {
                            pattern: p.into(),
                            caseless: true,
                        }
                    } else if let Some(p) = key.strip_prefix('~') {
                        MapKey::Regex {
                            pattern: p.into(),
                            caseless: false,
                        }
                    } else {
                        MapKey::Exact(key.strip_prefix('\\').unwrap_or(key).to_owned())
                    };
                    map.entries.push(MapEntry {
                        key,
                        value: (*v).to_owned(),
                        pos: at(&c.pos),
                    });
                }
                _ => self.err(c, "invalid number of the map parameters"),
            }
        }
        Some(map)
    }
}

enum CondError {
    Invalid,
}

/// nginx's `if` condition: the parentheses are glued to the first and last
/// argument (or stand alone).
fn parse_condition(args: &[&str]) -> Result<Condition, CondError> {
    let mut a: Vec<&str> = args.to_vec();
    if let Some(first) = a.first_mut() {
        *first = first.strip_prefix('(').ok_or(CondError::Invalid)?;
    }
    if let Some(last) = a.last_mut() {
        *last = last.strip_suffix(')').unwrap_or(last);
    }
    a.retain(|s| !s.is_empty());
    match a.as_slice() {
        [v] if v.starts_with('$') => Ok(Condition::NonEmpty((*v).into())),
        [op, path] if FileTest::parse(op).is_some() => {
            let (test, negate) = FileTest::parse(op).ok_or(CondError::Invalid)?;
            Ok(Condition::File {
                path: (*path).to_owned(),
                test,
                negate,
            })
        }
        [v, op, right] if v.starts_with('$') => {
            let left = (*v).to_owned();
            let right = (*right).to_owned();
            Ok(match *op {
                "=" => Condition::Equals {
                    left,
                    right,
                    negate: false,
                },
                "!=" => Condition::Equals {
                    left,
                    right,
                    negate: true,
                },
                "~" | "~*" | "!~" | "!~*" => Condition::Matches {
                    left,
                    regex: right,
                    caseless: op.ends_with('*'),
                    negate: op.starts_with('!'),
                },
                _ => return Err(CondError::Invalid),
            })
        }
        _ => Err(CondError::Invalid),
    }
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
