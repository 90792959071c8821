//! Writes a [`Config`] as the native TOML format (`rpx convert`).
//!
//! Everything the TOML front-end reads is written; what it cannot express
//! yet (`map`, `rewrite`/`if`, `try_files`, repeated `add_header` names) is
//! an error naming where it was written, so a conversion never silently
//! changes behaviour.

use std::time::Duration;

use toml::{Table, Value};

use super::error::{ConfigError, ConfigErrors};
use super::model::*;
use crate::location::MatchKind;

/// The TOML text for `config`.
///
/// # Errors
/// Every part of the config TOML cannot express yet.
pub fn to_toml(config: &Config) -> Result<String, ConfigErrors> {
    let mut w = Writer { errors: Vec::new() };
    let mut root = Table::new();
    w.settings(&config.settings, &mut root);
    for m in &config.maps {
        w.cannot(&m.pos, format!("map ${}", m.name));
    }
    let servers: Vec<Value> = config
        .servers
        .iter()
        .map(|s| Value::Table(w.server(s)))
        .collect();
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
    if !w.errors.is_empty() {
        return Err(ConfigErrors(w.errors));
    }
    toml::to_string(&root)
        .map_err(|e| ConfigError::new(SourcePos::code(), format!("cannot write TOML: {e}")).into())
}

struct Writer {
    errors: Vec<ConfigError>,
}

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

fn ret_text(r: &ReturnConfig) -> Value {
    match &r.text {
        None => Value::Integer(i64::from(r.code)),
        Some(t) => Value::String(format!("{} {t}", r.code)),
    }
}

impl Writer {
    fn cannot(&mut self, pos: &SourcePos, what: String) {
        self.errors.push(
            ConfigError::new(pos.clone(), format!("{what} cannot be written as TOML yet"))
                .hint("keep the nginx file for this config"),
        );
    }

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
            self.cannot(&s.pos, "server-level rewrite/if/break".into());
        }
        if let Some(r) = &s.ret {
            t.insert("return".into(), ret_text(r));
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
        let path = match l.kind {
            MatchKind::Prefix => l.pattern.clone(),
            k => format!("{} {}", k.modifier(), l.pattern),
        };
        t.insert("path".into(), Value::String(path));
        if !l.rewrites.is_empty() {
            self.cannot(&l.pos, "rewrite/if/break".into());
        }
        if let Some(tf) = &l.try_files {
            self.cannot(&tf.pos, "try_files".into());
        }
        match &l.handler {
            Some(Handler::Proxy(url)) => {
                t.insert("proxy_pass".into(), text(&url.value));
            }
            Some(Handler::Return(r)) => {
                t.insert("return".into(), ret_text(r));
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
            let mut m = Table::new();
            for h in list {
                // rpx applies them in order, so a later one for a name wins.
                m.insert(h.name.clone(), text(&h.value));
            }
            t.insert("proxy_set_header".into(), Value::Table(m));
        }
        if let Some(list) = &s.add_header {
            let mut m = Table::new();
            for h in list {
                let mut v = Table::new();
                v.insert("value".into(), text(&h.value));
                v.insert("always".into(), Value::Boolean(h.always));
                if m.insert(h.name.clone(), Value::Table(v)).is_some() {
                    self.cannot(&h.pos, format!("a second add_header {}", h.name));
                }
            }
            t.insert("add_header".into(), Value::Table(m));
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
            t.insert(
                "client_max_body_size".into(),
                Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)),
            );
        }
        for (key, d) in [
            ("proxy_connect_timeout", s.proxy_connect_timeout),
            ("proxy_read_timeout", s.proxy_read_timeout),
            ("proxy_send_timeout", s.proxy_send_timeout),
            ("client_body_timeout", s.client_body_timeout),
            ("client_header_timeout", s.client_header_timeout),
            ("keepalive_timeout", s.keepalive_timeout),
        ] {
            if let Some(d) = d {
                t.insert(key.into(), duration(d));
            }
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
    }
}
