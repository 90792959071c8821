//! Writes a [`Config`] as the native TOML format (`rpx convert`).
//!
//! Everything the model holds is written, in a shape the TOML front-end
//! reads back into the same model (positions aside): rewrite steps keep
//! their order, `map` entries theirs, and header lists whose names repeat
//! or whose order a table would change are written as lists.

use std::time::Duration;

use toml::{Table, Value};

use super::error::{ConfigError, ConfigErrors};
use super::model::*;
use super::toml_steps::{map_table, return_value, step_table};
use super::toml_vars::{geo_table, split_table};

/// The TOML text for `config`.
///
/// # Errors
/// Only when the TOML serializer fails.
pub fn to_toml(config: &Config) -> Result<String, ConfigErrors> {
    let mut w = Writer;
    let mut root = Table::new();
    w.settings(&config.settings, &mut root);
    if !config.maps.is_empty() {
        let maps = config.maps.iter().map(|m| Value::Table(map_table(m)));
        root.insert("map".into(), Value::Array(maps.collect()));
    }
    if !config.geos.is_empty() {
        let geos = config.geos.iter().map(|g| Value::Table(geo_table(g)));
        root.insert("geo".into(), Value::Array(geos.collect()));
    }
    if !config.split_clients.is_empty() {
        let splits = config
            .split_clients
            .iter()
            .map(|s| Value::Table(split_table(s)));
        root.insert("split_clients".into(), Value::Array(splits.collect()));
    }
    let servers: Vec<Value> = config
        .servers
        .iter()
        .map(|s| {
            let mut t = w.server(s);
            if let Some(a) = &s.acme {
                super::toml_acme::server_acme(
                    a,
                    config.acme_issuers.first().map(|i| i.name.as_str()),
                    &mut t,
                );
            }
            Value::Table(t)
        })
        .collect();
    if !config.limit_req_zones.is_empty() {
        let mut zones = Table::new();
        for z in &config.limit_req_zones {
            let mut t = Table::new();
            t.insert("key".into(), text(&z.key));
            t.insert("rate".into(), text(&z.rate));
            t.insert("size".into(), integer(z.size));
            zones.insert(z.name.clone(), Value::Table(t));
        }
        root.insert("limit_zone".into(), Value::Table(zones));
    }
    if !config.limit_conn_zones.is_empty() {
        let mut zones = Table::new();
        for z in &config.limit_conn_zones {
            let mut t = Table::new();
            t.insert("key".into(), text(&z.key));
            t.insert("size".into(), integer(z.size));
            zones.insert(z.name.clone(), Value::Table(t));
        }
        root.insert("conn_zone".into(), Value::Table(zones));
    }
    if let Some(acme) = super::toml_acme::acme_value(&config.acme_issuers) {
        root.insert("acme".into(), acme);
    }
    if !servers.is_empty() {
        root.insert("server".into(), Value::Array(servers));
    }
    let mut ups = Table::new();
    for u in &config.upstreams {
        let servers = u
            .servers
            .iter()
            .map(|s| Value::String(upstream_server(s)))
            .collect();
        let mut t = Table::new();
        t.insert("servers".into(), Value::Array(servers));
        upstream_settings(u, &mut t);
        ups.insert(u.name.clone(), Value::Table(t));
    }
    if !ups.is_empty() {
        root.insert("upstream".into(), Value::Table(ups));
    }
    if let Some(d) = config.shutdown_timeout {
        root.insert("shutdown_timeout".into(), duration(d));
    }
    if let Some(log) = &config.error_log {
        let mut t = Table::new();
        let path = match &log.target {
            crate::config::ErrorLogTarget::Stderr => "stderr".to_owned(),
            crate::config::ErrorLogTarget::File(p) => p.display().to_string(),
        };
        t.insert("path".into(), text(&path));
        t.insert("level".into(), text(log.level.name()));
        root.insert("error_log".into(), Value::Table(t));
    }
    let mut formats = Table::new();
    for f in &config.log_formats {
        let mut t = Table::new();
        t.insert("format".into(), text(&f.format));
        t.insert("escape".into(), text(&f.escape));
        formats.insert(f.name.clone(), Value::Table(t));
    }
    if !formats.is_empty() {
        root.insert("log_format".into(), Value::Table(formats));
    }
    toml::to_string(&root)
        .map_err(|e| ConfigError::new(SourcePos::code(), format!("cannot write TOML: {e}")).into())
}

struct Writer;

/// A `servers` entry: the address and the parameters that differ from
/// nginx's defaults.
fn upstream_server(s: &UpstreamServerConfig) -> String {
    let d = UpstreamServerConfig::new(&s.addr);
    let mut out = s.addr.clone();
    if s.weight != d.weight {
        out.push_str(&format!(" weight={}", s.weight));
    }
    if s.max_fails != d.max_fails {
        out.push_str(&format!(" max_fails={}", s.max_fails));
    }
    if s.fail_timeout != d.fail_timeout {
        out.push_str(&format!(" fail_timeout={}ms", s.fail_timeout.as_millis()));
    }
    if s.max_conns != d.max_conns {
        out.push_str(&format!(" max_conns={}", s.max_conns));
    }
    if s.backup {
        out.push_str(" backup");
    }
    if s.down {
        out.push_str(" down");
    }
    out
}

/// An upstream's own keys besides `servers`.
fn upstream_settings(u: &UpstreamConfig, t: &mut Table) {
    if let Some(b) = &u.balance {
        let v = match &b.value {
            BalanceConfig::LeastConn => "least_conn".to_owned(),
            BalanceConfig::IpHash => "ip_hash".to_owned(),
            BalanceConfig::Hash { key, consistent } => {
                format!("hash {key}{}", if *consistent { " consistent" } else { "" })
            }
            BalanceConfig::Random { two } => {
                format!("random{}", if *two { " two least_conn" } else { "" })
            }
        };
        t.insert("balance".into(), Value::String(v));
    }
    for (key, n) in [
        ("keepalive", u.keepalive),
        ("keepalive_requests", u.keepalive_requests),
    ] {
        if let Some(n) = n {
            t.insert(key.into(), Value::Integer(i64::from(n)));
        }
    }
    for (key, d) in [
        ("keepalive_timeout", u.keepalive_timeout),
        ("keepalive_time", u.keepalive_time),
        ("resolve_interval", u.resolve_interval),
    ] {
        if let Some(d) = d {
            t.insert(key.into(), duration(d));
        }
    }
    if u.resolve_strict {
        t.insert("resolve_strict".into(), Value::Boolean(true));
    }
    if let Some(h) = &u.health_check {
        let h = &h.value;
        let mut v = format!(
            "interval={}ms path={} status={}-{} rise={} fall={} timeout={}ms",
            h.interval.as_millis(),
            h.path,
            h.status.0,
            h.status.1,
            h.rise,
            h.fall,
            h.timeout.as_millis()
        );
        if let Some(p) = h.port {
            v.push_str(&format!(" port={p}"));
        }
        t.insert("health_check".into(), Value::String(v));
    }
}

fn text(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn duration(d: Duration) -> Value {
    if d.subsec_millis() == 0 {
        Value::String(format!("{}s", d.as_secs()))
    } else {
        Value::String(format!("{}ms", d.as_millis()))
    }
}

fn steps(list: &[RewriteStep]) -> Value {
    Value::Array(list.iter().map(|s| Value::Table(step_table(s))).collect())
}

/// Whether `names` read back from a TOML table (sorted, unique keys) in
/// the same order.
fn table_keeps_order<'a>(mut names: impl Iterator<Item = &'a str>) -> bool {
    let Some(mut prev) = names.next() else {
        return true;
    };
    names.all(|n| {
        let ok = prev < n;
        prev = n;
        ok
    })
}

impl Writer {
    fn server(&mut self, s: &ServerConfig) -> Table {
        let mut t = Table::new();
        let listen: Vec<Value> = s
            .listen
            .iter()
            .map(|l| {
                let mut words = vec![l.addr.to_string()];
                for (on, flag) in [
                    (l.default_server, "default_server"),
                    (l.ssl, "ssl"),
                    (l.http2, "http2"),
                    (l.proxy_protocol, "proxy_protocol"),
                ] {
                    if on {
                        words.push(flag.into());
                    }
                }
                Value::String(words.join(" "))
            })
            .collect();
        if !listen.is_empty() {
            t.insert("listen".into(), Value::Array(listen));
        }
        if !s.names.is_empty() {
            let names = s.names.iter().map(|n| text(&n.value)).collect();
            t.insert("server_name".into(), Value::Array(names));
        }
        if !s.rewrites.is_empty() {
            t.insert("rewrite".into(), steps(&s.rewrites));
        }
        if let Some(r) = &s.ret {
            t.insert("return".into(), return_value(r));
        }
        self.settings(&s.settings, &mut t);
        let locs: Vec<Value> = s
            .locations
            .iter()
            .map(|l| Value::Table(self.location(l)))
            .collect();
        if !locs.is_empty() {
            t.insert("location".into(), Value::Array(locs));
        }
        t
    }

    fn location(&mut self, l: &LocationConfig) -> Table {
        let mut t = Table::new();
        t.insert("path".into(), Value::String(l.kind.display(&l.pattern)));
        if !l.rewrites.is_empty() {
            t.insert("rewrite".into(), steps(&l.rewrites));
        }
        if let Some(le) = &l.limit_except {
            let rules = &le.settings;
            let mut inner = Table::new();
            inner.insert(
                "methods".into(),
                Value::Array(le.methods.iter().map(|m| text(m)).collect()),
            );
            let mut access = Table::new();
            self.settings(rules, &mut access);
            inner.extend(access);
            t.insert("limit_except".into(), Value::Table(inner));
        }
        if l.internal {
            t.insert("internal".into(), Value::Boolean(true));
        }
        if let Some(tf) = &l.try_files {
            let files = tf.value.iter().map(|f| text(f)).collect();
            t.insert("try_files".into(), Value::Array(files));
        }
        match &l.handler {
            Some(Handler::Proxy(url)) => {
                t.insert("proxy_pass".into(), text(&url.value));
            }
            Some(Handler::Return(r)) => {
                t.insert("return".into(), return_value(r));
            }
            Some(Handler::Metrics(_)) => {
                t.insert("metrics".into(), Value::Boolean(true));
            }
            Some(Handler::StubStatus(_)) => {
                t.insert("stub_status".into(), Value::Boolean(true));
            }
            None => {}
        }
        if let Some(a) = &l.settings.alias {
            t.insert("alias".into(), text(&a.value));
        }
        self.settings(&l.settings, &mut t);
        let locs: Vec<Value> = l
            .locations
            .iter()
            .map(|l| Value::Table(self.location(l)))
            .collect();
        if !locs.is_empty() {
            t.insert("location".into(), Value::Array(locs));
        }
        t
    }

    fn settings(&mut self, s: &Settings, t: &mut Table) {
        if let Some(list) = &s.proxy_set_header {
            let v = if table_keeps_order(list.iter().map(|h| h.name.as_str())) {
                let m = list.iter().map(|h| (h.name.clone(), text(&h.value)));
                Value::Table(m.collect())
            } else {
                let items = list.iter().map(|h| {
                    let mut i = Table::new();
                    i.insert("name".into(), text(&h.name));
                    i.insert("value".into(), text(&h.value));
                    Value::Table(i)
                });
                Value::Array(items.collect())
            };
            t.insert("proxy_set_header".into(), v);
        }
        if let Some(list) = &s.add_header {
            let rule = |h: &AddHeaderConfig| {
                let mut v = Table::new();
                v.insert("value".into(), text(&h.value));
                if h.always {
                    v.insert("always".into(), Value::Boolean(true));
                }
                v
            };
            let v = if table_keeps_order(list.iter().map(|h| h.name.as_str())) {
                let m = list.iter().map(|h| (h.name.clone(), Value::Table(rule(h))));
                Value::Table(m.collect())
            } else {
                let items = list.iter().map(|h| {
                    let mut i = Table::new();
                    i.insert("name".into(), text(&h.name));
                    i.extend(rule(h));
                    Value::Table(i)
                });
                Value::Array(items.collect())
            };
            t.insert("add_header".into(), v);
        }
        for (key, list) in [
            ("proxy_hide_header", &s.proxy_hide_header),
            ("proxy_pass_header", &s.proxy_pass_header),
        ] {
            if let Some(list) = list {
                t.insert(
                    key.into(),
                    Value::Array(list.iter().map(|h| text(&h.value)).collect()),
                );
            }
        }
        if let Some(r) = &s.proxy_redirect {
            let v = match &r.value {
                RedirectConfig::Default => text("default"),
                RedirectConfig::Off => text("off"),
                RedirectConfig::Rules(rules) => Value::Array(
                    rules
                        .iter()
                        .map(|(f, to)| Value::Array(vec![text(f), text(to)]))
                        .collect(),
                ),
            };
            t.insert("proxy_redirect".into(), v);
        }
        if let Some(n) = s.client_max_body_size {
            t.insert("client_max_body_size".into(), integer(n));
        }
        for (key, d) in [
            ("proxy_connect_timeout", s.proxy_connect_timeout),
            ("proxy_read_timeout", s.proxy_read_timeout),
            ("proxy_send_timeout", s.proxy_send_timeout),
            ("client_body_timeout", s.client_body_timeout),
            ("client_header_timeout", s.client_header_timeout),
            ("keepalive_timeout", s.keepalive_timeout),
            ("keepalive_time", s.keepalive_time),
            ("send_timeout", s.send_timeout),
            ("resolver_timeout", s.resolver_timeout),
        ] {
            if let Some(d) = d {
                t.insert(key.into(), duration(d));
            }
        }
        if let Some(n) = s.keepalive_requests {
            t.insert("keepalive_requests".into(), integer(u64::from(n)));
        }
        for (key, flag) in [
            ("merge_slashes", s.merge_slashes),
            ("underscores_in_headers", s.underscores_in_headers),
            ("ignore_invalid_headers", s.ignore_invalid_headers),
            ("proxy_request_buffering", s.proxy_request_buffering),
            ("proxy_pass_request_body", s.proxy_pass_request_body),
            ("proxy_pass_request_headers", s.proxy_pass_request_headers),
            ("proxy_intercept_errors", s.proxy_intercept_errors),
            ("recursive_error_pages", s.recursive_error_pages),
            ("server_tokens", s.server_tokens),
            ("sub_filter_once", s.sub_filter_once),
            ("sub_filter_last_modified", s.sub_filter_last_modified),
        ] {
            if let Some(on) = flag {
                t.insert(key.into(), Value::Boolean(on));
            }
        }
        if let Some(n) = s.client_body_buffer_size {
            t.insert("client_body_buffer_size".into(), integer(n));
        }
        if let Some(n) = s.client_header_buffer_size {
            t.insert("client_header_buffer_size".into(), integer(n));
        }
        if let Some(rules) = &s.access {
            use crate::access::Verdict;
            let allows = rules
                .iter()
                .take_while(|r| r.verdict == Verdict::Allow)
                .count();
            let in_key_order = rules[allows..].iter().all(|r| r.verdict == Verdict::Deny);
            if in_key_order && !rules.is_empty() {
                for (key, verdict) in [("allow", Verdict::Allow), ("deny", Verdict::Deny)] {
                    let list: Vec<Value> = rules
                        .iter()
                        .filter(|r| r.verdict == verdict)
                        .map(|r| text(&r.rule))
                        .collect();
                    if !list.is_empty() {
                        t.insert(key.into(), Value::Array(list));
                    }
                }
            } else {
                let list = rules
                    .iter()
                    .map(|r| {
                        let word = if r.verdict == Verdict::Allow {
                            "allow"
                        } else {
                            "deny"
                        };
                        Value::Array(vec![text(word), text(&r.rule)])
                    })
                    .collect();
                t.insert("access".into(), Value::Array(list));
            }
        }
        match (&s.auth_basic, &s.auth_basic_user_file) {
            (Some(off), _) if off.value == AuthBasic::Off => {
                t.insert("basic_auth".into(), Value::Boolean(false));
            }
            (None, None) => {}
            (realm, users) => {
                let mut b = Table::new();
                if let Some(AuthBasic::Realm(r)) = realm.as_ref().map(|r| &r.value) {
                    b.insert("realm".into(), text(r));
                }
                if let Some(u) = users {
                    b.insert("users".into(), text(&u.value));
                }
                t.insert("basic_auth".into(), Value::Table(b));
            }
        }
        if let Some(limits) = &s.limit_req {
            let list: Vec<Value> = limits
                .iter()
                .map(|l| {
                    let mut t = Table::new();
                    t.insert("zone".into(), text(&l.zone));
                    if l.burst > 0 {
                        t.insert("burst".into(), integer(l.burst));
                    }
                    match l.delay {
                        None => {
                            t.insert("nodelay".into(), Value::Boolean(true));
                        }
                        Some(0) => {}
                        Some(d) => {
                            t.insert("delay".into(), integer(d));
                        }
                    }
                    Value::Table(t)
                })
                .collect();
            t.insert("rate_limit".into(), Value::Array(list));
        }
        if let Some(code) = s.limit_req_status {
            t.insert("rate_limit_status".into(), integer(u64::from(code)));
        }
        if let Some(on) = s.limit_req_dry_run {
            t.insert("rate_limit_dry_run".into(), Value::Boolean(on));
        }
        if let Some(level) = s.limit_req_log_level {
            t.insert("rate_limit_log_level".into(), text(level.name()));
        }
        if let Some(on) = s.gzip {
            t.insert("gzip".into(), Value::Boolean(on));
        }
        if let Some(pairs) = &s.sub_filter {
            let pairs = pairs
                .iter()
                .map(|p| Value::Array(vec![text(&p.value.0), text(&p.value.1)]));
            t.insert("sub_filter".into(), Value::Array(pairs.collect()));
        }
        if let Some(types) = &s.sub_filter_types {
            t.insert(
                "sub_filter_types".into(),
                Value::Array(types.iter().map(|x| text(x)).collect()),
            );
        }
        if let Some(types) = &s.gzip_types {
            t.insert(
                "gzip_types".into(),
                Value::Array(types.iter().map(|x| text(x)).collect()),
            );
        }
        if let Some(n) = s.gzip_min_length {
            t.insert("gzip_min_length".into(), integer(n));
        }
        if let Some(n) = s.gzip_comp_level {
            t.insert("gzip_comp_level".into(), integer(u64::from(n)));
        }
        if let Some(list) = &s.encode {
            t.insert(
                "encode".into(),
                Value::Array(list.iter().map(|c| text(c.as_str())).collect()),
            );
        }
        if let Some(on) = s.gzip_vary {
            t.insert("gzip_vary".into(), Value::Boolean(on));
        }
        for (key, lines) in [
            ("proxy_cookie_domain", &s.proxy_cookie_domain),
            ("proxy_cookie_path", &s.proxy_cookie_path),
            ("proxy_cookie_flags", &s.proxy_cookie_flags),
        ] {
            if let Some(lines) = lines {
                let lines = lines.iter().map(|l| text(&l.value.join(" "))).collect();
                t.insert(key.into(), Value::Array(lines));
            }
        }
        if let Some(e) = &s.expires {
            t.insert("expires".into(), text(&e.value.join(" ")));
        }
        if let Some(r) = &s.resolver {
            t.insert("resolver".into(), text(&r.value.words().join(" ")));
        }
        if let Some(pages) = &s.error_page {
            t.insert(
                "error_page".into(),
                Value::Array(pages.iter().map(|p| text(&p.value.to_string())).collect()),
            );
        }
        if let Some(p) = &s.gzip_proxied {
            t.insert(
                "gzip_proxied".into(),
                Value::Array(p.value.iter().map(|x| text(x)).collect()),
            );
        }
        if let Some(d) = &s.gzip_disable {
            t.insert(
                "gzip_disable".into(),
                Value::Array(d.value.iter().map(|x| text(x)).collect()),
            );
        }
        if let Some(ten) = s.gzip_http10 {
            t.insert(
                "gzip_http_version".into(),
                text(if ten { "1.0" } else { "1.1" }),
            );
        }
        if let Some(n) = s.limit_rate {
            t.insert("limit_rate".into(), integer(n));
        }
        if let Some(n) = s.limit_rate_after {
            t.insert("limit_rate_after".into(), integer(n));
        }
        if let Some(limits) = &s.limit_conn {
            let list: Vec<Value> = limits
                .iter()
                .map(|l| {
                    let mut t = Table::new();
                    t.insert("zone".into(), text(&l.zone));
                    t.insert("max".into(), integer(u64::from(l.max)));
                    Value::Table(t)
                })
                .collect();
            t.insert("conn_limit".into(), Value::Array(list));
        }
        if let Some(code) = s.limit_conn_status {
            t.insert("conn_limit_status".into(), integer(u64::from(code)));
        }
        if let Some(on) = s.limit_conn_dry_run {
            t.insert("conn_limit_dry_run".into(), Value::Boolean(on));
        }
        if let Some(level) = s.limit_conn_log_level {
            t.insert("conn_limit_log_level".into(), text(level.name()));
        }
        match (&s.auth_request, &s.auth_request_set) {
            (Some(off), _) if off.value == AuthRequestConfig::Off => {
                t.insert("forward_auth".into(), Value::Boolean(false));
            }
            (None, None) => {}
            (uri, sets) => {
                let mut f = Table::new();
                if let Some(AuthRequestConfig::Uri(u)) = uri.as_ref().map(|u| &u.value) {
                    f.insert("uri".into(), text(u));
                }
                if let Some(sets) = sets {
                    let mut set = Table::new();
                    for v in sets {
                        set.insert(v.name.clone(), text(&v.value));
                    }
                    f.insert("set".into(), Value::Table(set));
                }
                t.insert("forward_auth".into(), Value::Table(f));
            }
        }
        if s.satisfy == Some(crate::access::Satisfy::Any) {
            t.insert("satisfy".into(), text("any"));
        } else if s.satisfy.is_some() {
            t.insert("satisfy".into(), text("all"));
        }
        if s.set_real_ip_from.is_some()
            || s.real_ip_header.is_some()
            || s.real_ip_recursive.is_some()
        {
            let mut r = Table::new();
            let from = s
                .set_real_ip_from
                .iter()
                .flatten()
                .map(|f| text(&f.value))
                .collect();
            r.insert("from".into(), Value::Array(from));
            if let Some(h) = &s.real_ip_header {
                r.insert("header".into(), text(&h.value));
            }
            if let Some(on) = s.real_ip_recursive {
                r.insert("recursive".into(), Value::Boolean(on));
            }
            t.insert("real_ip".into(), Value::Table(r));
        }
        if let Some(w) = s.websocket {
            let v = match w {
                Upgrades::Always => Value::Boolean(true),
                Upgrades::Off => Value::Boolean(false),
                Upgrades::WhenForwarded => text("nginx"),
            };
            t.insert("websocket".into(), v);
        }
        if let Some(b) = s.large_client_header_buffers {
            t.insert(
                "large_client_header_buffers".into(),
                text(&format!("{} {}", b.number, b.size)),
            );
        }
        if let Some(v) = &s.proxy_http_version {
            t.insert("proxy_http_version".into(), text(v.value.as_str()));
        }
        if let Some(n) = &s.proxy_next_upstream {
            t.insert(
                "proxy_next_upstream".into(),
                Value::Array(n.value.iter().map(|w| text(w)).collect()),
            );
        }
        if let Some(n) = s.proxy_next_upstream_tries {
            t.insert(
                "proxy_next_upstream_tries".into(),
                Value::Integer(i64::from(n)),
            );
        }
        if let Some(d) = s.proxy_next_upstream_timeout {
            t.insert("proxy_next_upstream_timeout".into(), duration(d));
        }
        if let Some(r) = &s.root {
            t.insert("root".into(), text(&r.value));
        }
        if let Some(i) = &s.index {
            t.insert(
                "index".into(),
                Value::Array(i.iter().map(|x| text(x)).collect()),
            );
        }
        for (key, v) in [
            ("ssl_certificate", &s.ssl_certificate),
            ("ssl_certificate_key", &s.ssl_certificate_key),
            ("ssl_client_certificate", &s.ssl_client_certificate),
            ("ssl_verify_client", &s.ssl_verify_client),
            (
                "proxy_ssl_trusted_certificate",
                &s.proxy_ssl_trusted_certificate,
            ),
            ("proxy_ssl_certificate", &s.proxy_ssl_certificate),
            ("proxy_ssl_certificate_key", &s.proxy_ssl_certificate_key),
        ] {
            if let Some(v) = v {
                t.insert(key.into(), text(&v.value));
            }
        }
        if let Some(p) = &s.ssl_protocols {
            let list = p.value.iter().map(|x| text(x)).collect();
            t.insert("ssl_protocols".into(), Value::Array(list));
        }
        if let Some(c) = &s.ssl_ciphers {
            t.insert("ssl_ciphers".into(), text(&c.value));
        }
        if let Some(n) = s.ssl_session_cache {
            t.insert("ssl_session_cache".into(), integer(n as u64));
        }
        if let Some(n) = &s.proxy_ssl_name {
            t.insert("proxy_ssl_name".into(), text(n));
        }
        for (key, v) in [
            ("ssl_prefer_server_ciphers", s.ssl_prefer_server_ciphers),
            ("ssl_session_tickets", s.ssl_session_tickets),
            ("http2", s.http2),
            ("proxy_ssl_verify", s.proxy_ssl_verify),
            ("proxy_ssl_server_name", s.proxy_ssl_server_name),
            ("proxy_ssl_session_reuse", s.proxy_ssl_session_reuse),
        ] {
            if let Some(v) = v {
                t.insert(key.into(), Value::Boolean(v));
            }
        }
        if let Some(logs) = &s.access_log {
            let v = if logs.is_empty() {
                text("off")
            } else {
                Value::Array(
                    logs.iter()
                        .map(|l| {
                            let mut e = Table::new();
                            e.insert("path".into(), text(&l.path));
                            if let Some(f) = &l.format {
                                e.insert("format".into(), text(f));
                            }
                            Value::Table(e)
                        })
                        .collect(),
                )
            };
            t.insert("access_log".into(), v);
        }
    }
}

/// A count as a TOML integer (saturating: TOML integers are signed).
fn integer(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}
