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
            .map(|s| {
                Value::String(if s.weight == 1 {
                    s.addr.clone()
                } else {
                    format!("{} weight={}", s.addr, s.weight)
                })
            })
            .collect();
        let mut t = Table::new();
        t.insert("servers".into(), Value::Array(servers));
        ups.insert(u.name.clone(), Value::Table(t));
    }
    if !ups.is_empty() {
        root.insert("upstream".into(), Value::Table(ups));
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
    if !w.errors.is_empty() {
        return Err(ConfigErrors(w.errors));
    }
    toml::to_string(&root)
        .map_err(|e| ConfigError::new(SourcePos::code(), format!("cannot write TOML: {e}")).into())
}

struct Writer {
    errors: Vec<ConfigError>,
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
            Some(Handler::Metrics(_)) => {
                t.insert("metrics".into(), Value::Boolean(true));
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
            t.insert(
                "ssl_protocols".into(),
                Value::Array(p.value.iter().map(|x| text(x)).collect()),
            );
        }
        if let Some(n) = &s.proxy_ssl_name {
            t.insert("proxy_ssl_name".into(), text(n));
        }
        for (key, v) in [
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
