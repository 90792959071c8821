//! The native TOML format: a direct view of the model, in nginx's words.
//!
//! ```toml
//! client_max_body_size = "10m"              # http-level defaults
//!
//! [[server]]
//! listen = ["127.0.0.1:8080 default_server"]
//! server_name = ["app.example.com"]
//! add_header = { "Strict-Transport-Security" = { value = "max-age=63072000", always = true } }
//!
//!   [[server.location]]
//!   path = "/api/"                          # or "= /x", "^~ /static/", "~* \\.png$"
//!   proxy_pass = "http://127.0.0.1:3000/"
//!   proxy_set_header = { Host = "$host", "X-Forwarded-For" = "$proxy_add_x_forwarded_for" }
//!   proxy_read_timeout = "1h"
//!
//!   [[server.location]]
//!   path = "/"
//!   root = "/srv/www"
//!   try_files = ["$uri", "$uri/", "@app"]   # or a "=404" / "/index.html" fallback
//!
//!   [[server.location]]
//!   path = "@app"                           # named: reached by try_files only
//!   proxy_pass = "http://app"
//!
//!   [[server.location.rewrite]]             # rewrite / if / return / break, in order
//!   if = "$request_method = TRACE"
//!   return = 405
//!
//! [[map]]                                   # `map $http_upgrade $connection_upgrade`
//! source = "$http_upgrade"
//! variable = "$connection_upgrade"
//! default = "upgrade"
//! entries = [["", "close"]]
//!
//! [upstream.app]
//! servers = ["127.0.0.1:3001", "127.0.0.1:3002 weight=2"]
//! ```
//!
//! `add_header` and `proxy_set_header` also take a list,
//! `[{ name = "X", value = "1" }, …]`, where names repeat or order matters.
//! The shape of rewrite steps and maps is in `toml_steps`; `docs/config.md`
//! is the full reference.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::acme::AcmeCertificateConfig;
use super::error::{ConfigError, ConfigErrors};
use super::model::*;
use super::toml_acme::{read_acme, RawAcme, RawServerAcme};
use super::toml_steps::{read_map, read_steps, RawMap, RawStep};
use super::toml_vars::{read_geo, read_split, RawGeo, RawSplit};
use super::{parse_duration, parse_listen, parse_return, parse_size};
use crate::location::MatchKind;

/// Reads and parses a TOML config file.
///
/// # Errors
/// The file cannot be read, or any problem in it, each with `file:line:col`.
pub fn load_toml_file(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            SourcePos::new(name.as_str(), 0, 0),
            format!("cannot read config: {e}"),
        )
    })?;
    parse_toml(&src, &name)
}

/// Parses TOML config text; `file` names it in errors.
///
/// # Errors
/// Every problem found, each with `file:line:col`.
pub fn parse_toml(src: &str, file: &str) -> Result<Config, ConfigErrors> {
    let (config, errors) = parse_toml_partial(src, file)?;
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Like [`parse_toml`], but a file that is valid TOML yields the model of
/// everything that was understood along with the errors, so a checker can
/// go on to report what the compiler finds in the rest.
///
/// # Errors
/// Only TOML syntax and shape errors, which leave no model.
pub fn parse_toml_partial(
    src: &str,
    file: &str,
) -> Result<(Config, Vec<ConfigError>), ConfigErrors> {
    let lines = LineIndex::new(src, file);
    let raw: RawFile = toml::from_str(src).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let message = super::toml_shape::explain(e.message().trim(), src, offset);
        ConfigError::new(lines.pos(offset), message)
    })?;
    let mut cx = Cx {
        lines: &lines,
        errors: Vec::new(),
        acme_default: None,
    };
    let config = cx.file(raw);
    Ok((config, cx.errors))
}

/// Byte offsets to `file:line:col`.
struct LineIndex {
    file: Arc<str>,
    starts: Vec<usize>,
    src: String,
}

impl LineIndex {
    fn new(src: &str, file: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex {
            file: file.into(),
            starts,
            src: src.to_owned(),
        }
    }

    fn pos(&self, offset: usize) -> SourcePos {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let col = self
            .src
            .get(start..offset.min(self.src.len()))
            .map_or(1, |s| s.chars().count() + 1);
        SourcePos {
            file: self.file.clone(),
            line: line as u32,
            col: col as u32,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Num(u64),
    Text(String),
}

/// `limit_except = { methods = ["GET"], allow = […], deny = "all" }` (or
/// `access = [[…]]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimitExcept {
    methods: Vec<String>,
    #[serde(default)]
    allow: Option<Spanned<OneOrMany<String>>>,
    #[serde(default)]
    deny: Option<Spanned<OneOrMany<String>>>,
    #[serde(default)]
    access: Option<Spanned<Vec<(String, String)>>>,
    #[serde(default)]
    basic_auth: Option<Spanned<RawBasicAuth>>,
}

/// `basic_auth = { realm = "…", users = "htpasswd file" }`, or `false`
/// (nginx's `auth_basic off`). Each of the two is inherited apart, as
/// nginx's `auth_basic` and `auth_basic_user_file`, so a level may set one.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawBasicAuth {
    Flag(bool),
    On(RawBasicAuthOn),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuthOn {
    #[serde(default)]
    realm: Option<String>,
    #[serde(default)]
    users: Option<String>,
}

/// `forward_auth = { uri = "/auth", set = { user = "$upstream_http_remote_user" } }`
/// (Caddy's and Traefik's name for nginx's `auth_request` and
/// `auth_request_set`, each inherited apart), or `false`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawForwardAuth {
    Flag(bool),
    On(RawForwardAuthOn),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForwardAuthOn {
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    set: Option<BTreeMap<String, String>>,
}

/// `auth_request`, `auth_request_set`.
type ForwardAuthSettings = (
    Option<super::model::Spanned<super::model::AuthRequestConfig>>,
    Option<Vec<super::model::AuthRequestSetConfig>>,
);

/// `auth_basic`, `auth_basic_user_file`.
type BasicAuthSettings = (
    Option<super::model::Spanned<super::model::AuthBasic>>,
    Option<super::model::Spanned<String>>,
);

/// `set_real_ip_from`, `real_ip_header`, `real_ip_recursive`.
type RealIpSettings = (
    Option<Vec<super::model::Spanned<String>>>,
    Option<super::model::Spanned<String>>,
    Option<bool>,
);

/// `real_ip = { from = [...], header = "X-Forwarded-For", recursive = true }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRealIp {
    from: OneOrMany<String>,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    recursive: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawWebsocket {
    Flag(bool),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawAddHeader {
    Value(String),
    Full {
        value: String,
        #[serde(default)]
        always: bool,
    },
}

/// `name = …` pairs as a table, or `[{ name = …, value = … }, …]` where a
/// name repeats or the order matters.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawHeaders<T, L> {
    Table(BTreeMap<String, T>),
    List(Vec<L>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamedHeader {
    name: String,
    value: String,
    #[serde(default)]
    always: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamedPair {
    name: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawRedirect {
    Word(String),
    Rules(Vec<(String, String)>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawLogItem {
    Path(String),
    Full {
        path: String,
        format: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawAccessLog {
    One(RawLogItem),
    Many(Vec<RawLogItem>),
}

/// `error_log = "path"` or `{ path = "…", level = "warn" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawErrorLog {
    Path(String),
    Full {
        path: String,
        #[serde(default)]
        level: Option<String>,
    },
}

/// `[limit_zone.NAME]`: nginx's `limit_req_zone`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimitZone {
    key: String,
    rate: String,
    #[serde(default)]
    size: Option<Spanned<NumOrText>>,
}

/// `[conn_zone.NAME]`: nginx's `limit_conn_zone`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnZone {
    key: String,
    #[serde(default)]
    size: Option<Spanned<NumOrText>>,
}

/// `conn_limit = { zone = "addr", max = 10 }`, or a list: nginx's
/// `limit_conn`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnLimit {
    zone: String,
    max: u32,
}

/// `rate_limit = { zone = "api", burst = 20, nodelay = true }` (or
/// `delay = 5`), or a list of them: nginx's `limit_req`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    zone: String,
    #[serde(default)]
    burst: Option<u64>,
    #[serde(default)]
    nodelay: Option<bool>,
    #[serde(default)]
    delay: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogFormat {
    format: String,
    #[serde(default)]
    escape: Option<String>,
}

/// The settings every level accepts, plus each level's own fields.
macro_rules! with_settings {
    ($(#[$m:meta])* struct $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($(#[$fm])* #[serde(default)] $field: $ty,)*
            #[serde(default)] access_log: Option<Spanned<RawAccessLog>>,
            #[serde(default)] proxy_set_header: Option<Spanned<RawHeaders<String, RawNamedPair>>>,
            #[serde(default)] add_header: Option<Spanned<RawHeaders<RawAddHeader, RawNamedHeader>>>,
            #[serde(default)] expires: Option<Spanned<String>>,
            #[serde(default)] server_tokens: Option<bool>,
            #[serde(default)] proxy_cookie_domain: Option<Spanned<OneOrMany<String>>>,
            #[serde(default)] proxy_cookie_path: Option<Spanned<OneOrMany<String>>>,
            #[serde(default)] proxy_cookie_flags: Option<Spanned<OneOrMany<String>>>,
            #[serde(default)] proxy_hide_header: Option<Vec<Spanned<String>>>,
            #[serde(default)] proxy_pass_header: Option<Vec<Spanned<String>>>,
            #[serde(default)] proxy_redirect: Option<Spanned<RawRedirect>>,
            #[serde(default)] client_max_body_size: Option<Spanned<NumOrText>>,
            #[serde(default)] proxy_connect_timeout: Option<Spanned<NumOrText>>,
            #[serde(default)] proxy_read_timeout: Option<Spanned<NumOrText>>,
            #[serde(default)] proxy_send_timeout: Option<Spanned<NumOrText>>,
            #[serde(default)] proxy_http_version: Option<Spanned<NumOrText>>,
            #[serde(default)] client_body_timeout: Option<Spanned<NumOrText>>,
            #[serde(default)] client_header_timeout: Option<Spanned<NumOrText>>,
            #[serde(default)] keepalive_timeout: Option<Spanned<NumOrText>>,
            #[serde(default)] keepalive_requests: Option<u32>,
            #[serde(default)] keepalive_time: Option<Spanned<NumOrText>>,
            #[serde(default)] root: Option<Spanned<String>>,
            #[serde(default)] index: Option<Vec<String>>,
            #[serde(default)] ssl_certificate: Option<Spanned<String>>,
            #[serde(default)] ssl_certificate_key: Option<Spanned<String>>,
            #[serde(default)] ssl_client_certificate: Option<Spanned<String>>,
            #[serde(default)] ssl_verify_client: Option<Spanned<String>>,
            #[serde(default)] proxy_ssl_trusted_certificate: Option<Spanned<String>>,
            #[serde(default)] proxy_ssl_certificate: Option<Spanned<String>>,
            #[serde(default)] proxy_ssl_certificate_key: Option<Spanned<String>>,
            #[serde(default)] ssl_protocols: Option<Spanned<Vec<String>>>,
            #[serde(default)] ssl_ciphers: Option<Spanned<String>>,
            #[serde(default)] ssl_prefer_server_ciphers: Option<bool>,
            #[serde(default)] ssl_session_tickets: Option<bool>,
            #[serde(default)] ssl_session_cache: Option<Spanned<NumOrText>>,
            #[serde(default)] http2: Option<bool>,
            #[serde(default)] proxy_ssl_name: Option<String>,
            #[serde(default)] proxy_ssl_verify: Option<bool>,
            #[serde(default)] proxy_ssl_server_name: Option<bool>,
            #[serde(default)] proxy_ssl_session_reuse: Option<bool>,
            #[serde(default)] proxy_next_upstream: Option<Spanned<OneOrMany<String>>>,
            #[serde(default)] proxy_next_upstream_tries: Option<u32>,
            #[serde(default)] proxy_next_upstream_timeout: Option<Spanned<NumOrText>>,
            #[serde(default)] merge_slashes: Option<bool>,
            #[serde(default)] underscores_in_headers: Option<bool>,
            #[serde(default)] ignore_invalid_headers: Option<bool>,
            #[serde(default)] client_header_buffer_size: Option<Spanned<NumOrText>>,
            #[serde(default)] large_client_header_buffers: Option<Spanned<String>>,
            #[serde(default)] websocket: Option<Spanned<RawWebsocket>>,
            #[serde(default)] proxy_request_buffering: Option<bool>,
            #[serde(default)] proxy_pass_request_body: Option<bool>,
            #[serde(default)] proxy_pass_request_headers: Option<bool>,
            #[serde(default)] error_page: Option<Spanned<OneOrMany<String>>>,
            #[serde(default)] proxy_intercept_errors: Option<bool>,
            #[serde(default)] recursive_error_pages: Option<bool>,
            #[serde(default)] client_body_buffer_size: Option<Spanned<NumOrText>>,
            #[serde(default)] send_timeout: Option<Spanned<NumOrText>>,
            #[serde(default)] resolver: Option<Spanned<OneOrMany<String>>>,
            #[serde(default)] resolver_timeout: Option<Spanned<NumOrText>>,
            #[serde(default)] allow: Option<Spanned<OneOrMany<String>>>,
            #[serde(default)] deny: Option<Spanned<OneOrMany<String>>>,
            #[serde(default)] access: Option<Spanned<Vec<(String, String)>>>,
            #[serde(default)] real_ip: Option<Spanned<RawRealIp>>,
            #[serde(default)] basic_auth: Option<Spanned<RawBasicAuth>>,
            #[serde(default)] satisfy: Option<Spanned<String>>,
            #[serde(default)] forward_auth: Option<Spanned<RawForwardAuth>>,
            #[serde(default)] rate_limit: Option<Spanned<OneOrMany<RawRateLimit>>>,
            #[serde(default)] rate_limit_status: Option<Spanned<u16>>,
            #[serde(default)] rate_limit_dry_run: Option<bool>,
            #[serde(default)] rate_limit_log_level: Option<Spanned<String>>,
            #[serde(default)] gzip: Option<bool>,
            #[serde(default)] gzip_types: Option<OneOrMany<String>>,
            #[serde(default)] sub_filter: Option<Spanned<Vec<(String, String)>>>,
            #[serde(default)] sub_filter_once: Option<bool>,
            #[serde(default)] sub_filter_types: Option<OneOrMany<String>>,
            #[serde(default)] sub_filter_last_modified: Option<bool>,
            #[serde(default)] gzip_min_length: Option<Spanned<NumOrText>>,
            #[serde(default)] gzip_comp_level: Option<Spanned<u32>>,
            #[serde(default)] gzip_vary: Option<bool>,
            #[serde(default)] encode: Option<Spanned<OneOrMany<String>>>,
            #[serde(default)] gzip_proxied: Option<Spanned<OneOrMany<String>>>,
            #[serde(default)] gzip_disable: Option<Spanned<OneOrMany<String>>>,
            #[serde(default)] gzip_http_version: Option<Spanned<String>>,
            #[serde(default)] limit_rate: Option<Spanned<NumOrText>>,
            #[serde(default)] limit_rate_after: Option<Spanned<NumOrText>>,
            #[serde(default)] conn_limit: Option<Spanned<OneOrMany<RawConnLimit>>>,
            #[serde(default)] conn_limit_status: Option<Spanned<u16>>,
            #[serde(default)] conn_limit_dry_run: Option<bool>,
            #[serde(default)] conn_limit_log_level: Option<Spanned<String>>,
        }

        impl HasSettings for $name {
            fn take_settings(&mut self, cx: &mut Cx<'_>) -> Settings {
                cx.settings(RawSettings {
                    access_log: self.access_log.take(),
                    proxy_set_header: self.proxy_set_header.take(),
                    add_header: self.add_header.take(),
                    expires: self.expires.take(),
                    server_tokens: self.server_tokens.take(),
                    proxy_cookie_domain: self.proxy_cookie_domain.take(),
                    proxy_cookie_path: self.proxy_cookie_path.take(),
                    proxy_cookie_flags: self.proxy_cookie_flags.take(),
                    proxy_hide_header: self.proxy_hide_header.take(),
                    proxy_pass_header: self.proxy_pass_header.take(),
                    proxy_redirect: self.proxy_redirect.take(),
                    client_max_body_size: self.client_max_body_size.take(),
                    proxy_connect_timeout: self.proxy_connect_timeout.take(),
                    proxy_read_timeout: self.proxy_read_timeout.take(),
                    proxy_send_timeout: self.proxy_send_timeout.take(),
                    proxy_http_version: self.proxy_http_version.take(),
                    client_body_timeout: self.client_body_timeout.take(),
                    client_header_timeout: self.client_header_timeout.take(),
                    keepalive_timeout: self.keepalive_timeout.take(),
                    keepalive_requests: self.keepalive_requests.take(),
                    keepalive_time: self.keepalive_time.take(),
                    root: self.root.take(),
                    index: self.index.take(),
                    ssl_certificate: self.ssl_certificate.take(),
                    ssl_certificate_key: self.ssl_certificate_key.take(),
                    ssl_client_certificate: self.ssl_client_certificate.take(),
                    ssl_verify_client: self.ssl_verify_client.take(),
                    proxy_ssl_trusted_certificate: self.proxy_ssl_trusted_certificate.take(),
                    proxy_ssl_certificate: self.proxy_ssl_certificate.take(),
                    proxy_ssl_certificate_key: self.proxy_ssl_certificate_key.take(),
                    ssl_protocols: self.ssl_protocols.take(),
                    ssl_ciphers: self.ssl_ciphers.take(),
                    ssl_prefer_server_ciphers: self.ssl_prefer_server_ciphers.take(),
                    ssl_session_tickets: self.ssl_session_tickets.take(),
                    ssl_session_cache: self.ssl_session_cache.take(),
                    http2: self.http2.take(),
                    proxy_ssl_name: self.proxy_ssl_name.take(),
                    proxy_ssl_verify: self.proxy_ssl_verify.take(),
                    proxy_ssl_server_name: self.proxy_ssl_server_name.take(),
                    proxy_ssl_session_reuse: self.proxy_ssl_session_reuse.take(),
                    proxy_next_upstream: self.proxy_next_upstream.take(),
                    proxy_next_upstream_tries: self.proxy_next_upstream_tries.take(),
                    proxy_next_upstream_timeout: self.proxy_next_upstream_timeout.take(),
                    merge_slashes: self.merge_slashes.take(),
                    underscores_in_headers: self.underscores_in_headers.take(),
                    ignore_invalid_headers: self.ignore_invalid_headers.take(),
                    client_header_buffer_size: self.client_header_buffer_size.take(),
                    large_client_header_buffers: self.large_client_header_buffers.take(),
                    websocket: self.websocket.take(),
                    proxy_request_buffering: self.proxy_request_buffering.take(),
                    proxy_pass_request_body: self.proxy_pass_request_body.take(),
                    proxy_pass_request_headers: self.proxy_pass_request_headers.take(),
                    error_page: self.error_page.take(),
                    proxy_intercept_errors: self.proxy_intercept_errors.take(),
                    recursive_error_pages: self.recursive_error_pages.take(),
                    client_body_buffer_size: self.client_body_buffer_size.take(),
                    send_timeout: self.send_timeout.take(),
                    resolver: self.resolver.take(),
                    resolver_timeout: self.resolver_timeout.take(),
                    allow: self.allow.take(),
                    deny: self.deny.take(),
                    access: self.access.take(),
                    real_ip: self.real_ip.take(),
                    basic_auth: self.basic_auth.take(),
                    satisfy: self.satisfy.take(),
                    forward_auth: self.forward_auth.take(),
                    rate_limit: self.rate_limit.take(),
                    rate_limit_status: self.rate_limit_status.take(),
                    rate_limit_dry_run: self.rate_limit_dry_run.take(),
                    rate_limit_log_level: self.rate_limit_log_level.take(),
                    gzip: self.gzip.take(),
                    gzip_types: self.gzip_types.take(),
                    sub_filter: self.sub_filter.take(),
                    sub_filter_once: self.sub_filter_once.take(),
                    sub_filter_types: self.sub_filter_types.take(),
                    sub_filter_last_modified: self.sub_filter_last_modified.take(),
                    gzip_min_length: self.gzip_min_length.take(),
                    gzip_comp_level: self.gzip_comp_level.take(),
                    gzip_vary: self.gzip_vary.take(),
                    encode: self.encode.take(),
                    gzip_proxied: self.gzip_proxied.take(),
                    gzip_disable: self.gzip_disable.take(),
                    gzip_http_version: self.gzip_http_version.take(),
                    limit_rate: self.limit_rate.take(),
                    limit_rate_after: self.limit_rate_after.take(),
                    conn_limit: self.conn_limit.take(),
                    conn_limit_status: self.conn_limit_status.take(),
                    conn_limit_dry_run: self.conn_limit_dry_run.take(),
                    conn_limit_log_level: self.conn_limit_log_level.take(),
                })
            }
        }
    };
}

trait HasSettings {
    fn take_settings(&mut self, cx: &mut Cx<'_>) -> Settings;
}

struct RawSettings {
    access_log: Option<Spanned<RawAccessLog>>,
    proxy_set_header: Option<Spanned<RawHeaders<String, RawNamedPair>>>,
    add_header: Option<Spanned<RawHeaders<RawAddHeader, RawNamedHeader>>>,
    expires: Option<Spanned<String>>,
    server_tokens: Option<bool>,
    proxy_cookie_domain: Option<Spanned<OneOrMany<String>>>,
    proxy_cookie_path: Option<Spanned<OneOrMany<String>>>,
    proxy_cookie_flags: Option<Spanned<OneOrMany<String>>>,
    proxy_hide_header: Option<Vec<Spanned<String>>>,
    proxy_pass_header: Option<Vec<Spanned<String>>>,
    proxy_redirect: Option<Spanned<RawRedirect>>,
    client_max_body_size: Option<Spanned<NumOrText>>,
    proxy_connect_timeout: Option<Spanned<NumOrText>>,
    proxy_read_timeout: Option<Spanned<NumOrText>>,
    proxy_send_timeout: Option<Spanned<NumOrText>>,
    proxy_http_version: Option<Spanned<NumOrText>>,
    client_body_timeout: Option<Spanned<NumOrText>>,
    client_header_timeout: Option<Spanned<NumOrText>>,
    keepalive_timeout: Option<Spanned<NumOrText>>,
    keepalive_requests: Option<u32>,
    keepalive_time: Option<Spanned<NumOrText>>,
    root: Option<Spanned<String>>,
    index: Option<Vec<String>>,
    ssl_certificate: Option<Spanned<String>>,
    ssl_certificate_key: Option<Spanned<String>>,
    ssl_client_certificate: Option<Spanned<String>>,
    ssl_verify_client: Option<Spanned<String>>,
    proxy_ssl_trusted_certificate: Option<Spanned<String>>,
    proxy_ssl_certificate: Option<Spanned<String>>,
    proxy_ssl_certificate_key: Option<Spanned<String>>,
    ssl_protocols: Option<Spanned<Vec<String>>>,
    ssl_ciphers: Option<Spanned<String>>,
    ssl_prefer_server_ciphers: Option<bool>,
    ssl_session_tickets: Option<bool>,
    ssl_session_cache: Option<Spanned<NumOrText>>,
    http2: Option<bool>,
    proxy_ssl_name: Option<String>,
    proxy_ssl_verify: Option<bool>,
    proxy_ssl_server_name: Option<bool>,
    proxy_ssl_session_reuse: Option<bool>,
    proxy_next_upstream: Option<Spanned<OneOrMany<String>>>,
    proxy_next_upstream_tries: Option<u32>,
    proxy_next_upstream_timeout: Option<Spanned<NumOrText>>,
    merge_slashes: Option<bool>,
    underscores_in_headers: Option<bool>,
    ignore_invalid_headers: Option<bool>,
    client_header_buffer_size: Option<Spanned<NumOrText>>,
    large_client_header_buffers: Option<Spanned<String>>,
    websocket: Option<Spanned<RawWebsocket>>,
    proxy_request_buffering: Option<bool>,
    proxy_pass_request_body: Option<bool>,
    proxy_pass_request_headers: Option<bool>,
    error_page: Option<Spanned<OneOrMany<String>>>,
    proxy_intercept_errors: Option<bool>,
    recursive_error_pages: Option<bool>,
    client_body_buffer_size: Option<Spanned<NumOrText>>,
    send_timeout: Option<Spanned<NumOrText>>,
    resolver: Option<Spanned<OneOrMany<String>>>,
    resolver_timeout: Option<Spanned<NumOrText>>,
    allow: Option<Spanned<OneOrMany<String>>>,
    deny: Option<Spanned<OneOrMany<String>>>,
    access: Option<Spanned<Vec<(String, String)>>>,
    real_ip: Option<Spanned<RawRealIp>>,
    basic_auth: Option<Spanned<RawBasicAuth>>,
    satisfy: Option<Spanned<String>>,
    forward_auth: Option<Spanned<RawForwardAuth>>,
    rate_limit: Option<Spanned<OneOrMany<RawRateLimit>>>,
    rate_limit_status: Option<Spanned<u16>>,
    rate_limit_dry_run: Option<bool>,
    rate_limit_log_level: Option<Spanned<String>>,
    gzip: Option<bool>,
    gzip_types: Option<OneOrMany<String>>,
    sub_filter: Option<Spanned<Vec<(String, String)>>>,
    sub_filter_once: Option<bool>,
    sub_filter_types: Option<OneOrMany<String>>,
    sub_filter_last_modified: Option<bool>,
    gzip_min_length: Option<Spanned<NumOrText>>,
    gzip_comp_level: Option<Spanned<u32>>,
    gzip_vary: Option<bool>,
    encode: Option<Spanned<OneOrMany<String>>>,
    gzip_proxied: Option<Spanned<OneOrMany<String>>>,
    gzip_disable: Option<Spanned<OneOrMany<String>>>,
    gzip_http_version: Option<Spanned<String>>,
    limit_rate: Option<Spanned<NumOrText>>,
    limit_rate_after: Option<Spanned<NumOrText>>,
    conn_limit: Option<Spanned<OneOrMany<RawConnLimit>>>,
    conn_limit_status: Option<Spanned<u16>>,
    conn_limit_dry_run: Option<bool>,
    conn_limit_log_level: Option<Spanned<String>>,
}

with_settings! {
    struct RawFile {
        shutdown_timeout: Option<Spanned<NumOrText>>,
        error_log: Option<Spanned<RawErrorLog>>,
        log_format: BTreeMap<String, Spanned<RawLogFormat>>,
        map: Vec<Spanned<RawMap>>,
        geo: Vec<Spanned<RawGeo>>,
        split_clients: Vec<Spanned<RawSplit>>,
        server: Vec<Spanned<RawServer>>,
        upstream: BTreeMap<String, Spanned<RawUpstream>>,
        acme: Option<Spanned<RawAcme>>,
        limit_zone: BTreeMap<String, Spanned<RawLimitZone>>,
        conn_zone: BTreeMap<String, Spanned<RawConnZone>>,
    }
}

with_settings! {
    struct RawServer {
        listen: Option<Spanned<OneOrMany<String>>>,
        server_name: Option<Spanned<OneOrMany<String>>>,
        #[serde(rename = "return")]
        ret: Option<Spanned<NumOrText>>,
        rewrite: Vec<Spanned<RawStep>>,
        location: Vec<Spanned<RawLocation>>,
        acme: Option<Spanned<RawServerAcme>>,
        acme_identifiers: Option<Vec<String>>,
        acme_key: Option<Spanned<String>>,
    }
}

with_settings! {
    struct RawLocation {
        path: Option<Spanned<String>>,
        rewrite: Vec<Spanned<RawStep>>,
        try_files: Option<Spanned<Vec<String>>>,
        proxy_pass: Option<Spanned<String>>,
        #[serde(rename = "return")]
        ret: Option<Spanned<NumOrText>>,
        alias: Option<Spanned<String>>,
        metrics: Option<Spanned<bool>>,
        stub_status: Option<Spanned<bool>>,
        internal: Option<bool>,
        limit_except: Option<Spanned<RawLimitExcept>>,
        location: Vec<Spanned<RawLocation>>,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    servers: Vec<Spanned<String>>,
    #[serde(default)]
    balance: Option<Spanned<String>>,
    #[serde(default)]
    keepalive: Option<u32>,
    #[serde(default)]
    keepalive_timeout: Option<Spanned<NumOrText>>,
    #[serde(default)]
    keepalive_requests: Option<u32>,
    #[serde(default)]
    keepalive_time: Option<Spanned<NumOrText>>,
    #[serde(default)]
    health_check: Option<Spanned<String>>,
    #[serde(default)]
    resolve_interval: Option<Spanned<NumOrText>>,
    #[serde(default)]
    resolve_strict: bool,
}

struct Cx<'a> {
    lines: &'a LineIndex,
    errors: Vec<ConfigError>,
    /// The issuer `acme = true` means: the only (or first) one.
    acme_default: Option<String>,
}

impl Cx<'_> {
    fn at<T>(&self, s: &Spanned<T>) -> SourcePos {
        self.lines.pos(s.span().start)
    }

    fn err(&mut self, pos: SourcePos, msg: impl Into<String>) {
        self.errors.push(ConfigError::new(pos, msg));
    }

    fn file(&mut self, mut raw: RawFile) -> Config {
        let settings = raw.take_settings(self);
        let acme_issuers = match raw.acme.take() {
            Some(a) => {
                let lines = self.lines;
                read_acme(a, &|offset| lines.pos(offset), &mut self.errors)
            }
            None => Vec::new(),
        };
        self.acme_default = acme_issuers.first().map(|i| i.name.clone());
        let maps = std::mem::take(&mut raw.map)
            .into_iter()
            .filter_map(|m| {
                let pos = self.at(&m);
                read_map(m.into_inner(), pos, &mut self.errors)
            })
            .collect();
        let geos = std::mem::take(&mut raw.geo)
            .into_iter()
            .filter_map(|g| {
                let pos = self.at(&g);
                read_geo(g.into_inner(), pos, &mut self.errors)
            })
            .collect();
        let split_clients = std::mem::take(&mut raw.split_clients)
            .into_iter()
            .filter_map(|s| {
                let pos = self.at(&s);
                read_split(s.into_inner(), pos, &mut self.errors)
            })
            .collect();
        let servers = std::mem::take(&mut raw.server)
            .into_iter()
            .map(|s| self.server(s))
            .collect();
        let upstreams = std::mem::take(&mut raw.upstream)
            .into_iter()
            .map(|(name, u)| self.upstream(name, u))
            .collect();
        let log_formats = std::mem::take(&mut raw.log_format)
            .into_iter()
            .map(|(name, f)| {
                let pos = self.at(&f);
                let f = f.into_inner();
                LogFormatConfig {
                    name,
                    escape: f.escape.unwrap_or_else(|| "default".into()),
                    format: f.format,
                    pos,
                }
            })
            .collect();
        let shutdown_timeout = raw.shutdown_timeout.take().and_then(|d| self.duration(d));
        let error_log = raw.error_log.take().and_then(|e| self.error_log(e));
        let limit_req_zones = std::mem::take(&mut raw.limit_zone)
            .into_iter()
            .map(|(name, z)| {
                let pos = self.at(&z);
                let z = z.into_inner();
                LimitReqZoneConfig {
                    name,
                    key: z.key,
                    // nginx's tutorials' size: 160,000 IPv4 clients' states.
                    size: z.size.and_then(|s| self.size(s)).unwrap_or(10 << 20),
                    rate: z.rate,
                    pos,
                }
            })
            .collect();
        let limit_conn_zones = std::mem::take(&mut raw.conn_zone)
            .into_iter()
            .map(|(name, z)| {
                let pos = self.at(&z);
                let z = z.into_inner();
                LimitConnZoneConfig {
                    name,
                    key: z.key,
                    size: z.size.and_then(|s| self.size(s)).unwrap_or(10 << 20),
                    pos,
                }
            })
            .collect();
        Config {
            limit_req_zones,
            limit_conn_zones,
            settings,
            servers,
            upstreams,
            maps,
            geos,
            split_clients,
            log_formats,
            shutdown_timeout,
            acme_issuers,
            error_log,
        }
    }

    fn error_log(&mut self, raw: Spanned<RawErrorLog>) -> Option<crate::config::ErrorLogConfig> {
        let pos = self.at(&raw);
        let (path, level) = match raw.into_inner() {
            RawErrorLog::Path(p) => (p, None),
            RawErrorLog::Full { path, level } => (path, level),
        };
        match crate::config::ErrorLogConfig::parse(&path, level.as_deref(), pos.clone()) {
            // The native format has no destinations it does not support.
            Ok((_, Some(_))) => {
                self.err(pos, "error_log: a file path or \"stderr\"");
                None
            }
            Ok((log, None)) => Some(log),
            Err(e) => {
                self.err(pos, e);
                None
            }
        }
    }

    fn server(&mut self, raw: Spanned<RawServer>) -> ServerConfig {
        let pos = self.at(&raw);
        let mut raw = raw.into_inner();
        let settings = raw.take_settings(self);
        let listen = self
            .spanned_list(raw.listen.take())
            .into_iter()
            .filter_map(|(pos, l)| {
                let words: Vec<&str> = l.split_whitespace().collect();
                match parse_listen(&words) {
                    Ok(mut listen) => {
                        listen.pos = pos;
                        Some(listen)
                    }
                    Err(msg) => {
                        self.err(pos, msg);
                        None
                    }
                }
            })
            .collect();
        let names = self
            .spanned_list(raw.server_name.take())
            .into_iter()
            .map(|(pos, n)| pos.with(n))
            .collect();
        let ret = raw.ret.take().and_then(|r| self.ret(r));
        let rewrites = self.steps(std::mem::take(&mut raw.rewrite));
        let locations = std::mem::take(&mut raw.location)
            .into_iter()
            .filter_map(|l| self.location(l))
            .collect();
        let acme = self.server_acme(&mut raw);
        ServerConfig {
            pos,
            listen,
            names,
            settings,
            rewrites,
            ret,
            locations,
            acme,
        }
    }

    /// `acme = true | "issuer"`, with `acme_identifiers` and `acme_key`.
    fn server_acme(&mut self, raw: &mut RawServer) -> Option<AcmeCertificateConfig> {
        let choice = raw.acme.take()?;
        let pos = self.at(&choice);
        let issuer = match choice.into_inner() {
            RawServerAcme::On(false) => return None,
            RawServerAcme::On(true) => match &self.acme_default {
                Some(name) => name.clone(),
                None => {
                    self.errors.push(
                        ConfigError::new(pos, "acme = true, but there is no [acme] table")
                            .hint("add [acme] with email = \"you@example.com\""),
                    );
                    return None;
                }
            },
            RawServerAcme::Issuer(name) => name,
        };
        Some(AcmeCertificateConfig {
            pos,
            issuer,
            identifiers: raw.acme_identifiers.take().unwrap_or_default(),
            key: raw
                .acme_key
                .take()
                .map(|k| self.at(&k).with(k.into_inner())),
        })
    }

    fn location(&mut self, raw: Spanned<RawLocation>) -> Option<LocationConfig> {
        let pos = self.at(&raw);
        let mut raw = raw.into_inner();
        let settings = raw.take_settings(self);
        let Some(path) = raw.path.take() else {
            self.errors.push(
                ConfigError::new(pos, "location without `path`")
                    .hint("add path = \"/prefix/\" (or \"= /exact\", \"~ regex\")"),
            );
            return None;
        };
        let (kind, pattern) = MatchKind::split(path.get_ref());
        let named = kind == MatchKind::Named;
        if pattern.is_empty() || (!kind.is_regex() && !named && !pattern.starts_with('/')) {
            let p = self.at(&path);
            self.errors.push(
                ConfigError::new(p, format!("invalid location path {:?}", path.get_ref()))
                    .hint("a path starts with `/`; regexes start with `~` or `~*`; names with `@`"),
            );
        }
        let pattern = pattern.to_owned();
        let mut handler = None;
        if let Some(url) = raw.proxy_pass.take() {
            handler = Some(Handler::Proxy(self.at(&url).with(url.into_inner())));
        }
        if let Some(r) = raw.ret.take() {
            if handler.is_some() {
                let p = self.at(&r);
                self.err(
                    p,
                    "a location has either `proxy_pass` or `return`, not both",
                );
            }
            handler = self.ret(r).map(Handler::Return);
        }
        if let Some(m) = raw.metrics.take() {
            let p = self.at(&m);
            if handler.is_some() {
                self.err(
                    p.clone(),
                    "a location has one of `proxy_pass`, `return` or `metrics`",
                );
            }
            if m.into_inner() {
                handler = Some(Handler::Metrics(p));
            }
        }
        if let Some(s) = raw.stub_status.take() {
            let p = self.at(&s);
            if handler.is_some() {
                self.err(
                    p.clone(),
                    "a location has one of `proxy_pass`, `return`, `metrics` or `stub_status`",
                );
            }
            if s.into_inner() {
                handler = Some(Handler::StubStatus(p));
            }
        }
        let mut settings = settings;
        if let Some(alias) = raw.alias.take() {
            settings.alias = Some(self.at(&alias).with(alias.into_inner()));
        }
        let rewrites = self.steps(std::mem::take(&mut raw.rewrite));
        let try_files = raw.try_files.take().map(|t| {
            let pos = self.at(&t);
            pos.with(t.into_inner())
        });
        let locations = std::mem::take(&mut raw.location)
            .into_iter()
            .filter_map(|l| self.location(l))
            .collect();
        Some(LocationConfig {
            pos,
            kind,
            pattern,
            rewrites,
            handler,
            try_files,
            settings,
            locations,
            internal: raw.internal.unwrap_or(false),
            limit_except: raw.limit_except.take().map(|l| {
                let pos = self.at(&l);
                let l = l.into_inner();
                let methods = l.methods.iter().map(|m| m.to_ascii_uppercase()).collect();
                let (auth_basic, auth_basic_user_file) = self.basic_auth(l.basic_auth);
                let settings = Settings {
                    access: self.access(l.allow, l.deny, l.access),
                    auth_basic,
                    auth_basic_user_file,
                    ..Settings::default()
                };
                LimitExceptConfig {
                    methods,
                    settings,
                    pos,
                }
            }),
        })
    }

    /// `[[…rewrite]]` steps, in order.
    fn steps(&mut self, raw: Vec<Spanned<RawStep>>) -> Vec<RewriteStep> {
        let raw = raw
            .into_iter()
            .map(|s| (self.at(&s), s.into_inner()))
            .collect();
        read_steps(raw, &mut self.errors)
    }

    /// A string-or-list value; every item gets the value's position.
    fn spanned_list(&self, v: Option<Spanned<OneOrMany<String>>>) -> Vec<(SourcePos, String)> {
        let Some(v) = v else { return Vec::new() };
        let pos = self.at(&v);
        v.into_inner()
            .into_vec()
            .into_iter()
            .map(|s| (pos.clone(), s))
            .collect()
    }

    fn ret(&mut self, raw: Spanned<NumOrText>) -> Option<ReturnConfig> {
        let pos = self.at(&raw);
        let text;
        let words: Vec<&str> = match raw.get_ref() {
            NumOrText::Num(n) => {
                text = n.to_string();
                vec![text.as_str()]
            }
            NumOrText::Text(t) => match t.split_once(char::is_whitespace) {
                Some((code, rest)) if code.bytes().all(|b| b.is_ascii_digit()) => {
                    vec![code, rest.trim()]
                }
                _ => vec![t.as_str()],
            },
        };
        match parse_return(&words) {
            Ok((code, text)) => Some(ReturnConfig { code, text, pos }),
            Err(msg) => {
                self.err(pos, msg);
                None
            }
        }
    }

    fn upstream(&mut self, name: String, raw: Spanned<RawUpstream>) -> UpstreamConfig {
        let pos = self.at(&raw);
        let raw = raw.into_inner();
        let servers = raw
            .servers
            .into_iter()
            .filter_map(|s| {
                let pos = self.at(&s);
                let words: Vec<&str> = s.get_ref().split_whitespace().collect();
                match super::upstream::server_line(&words) {
                    Ok(server) => Some(UpstreamServerConfig { pos, ..server }),
                    Err(msg) => {
                        self.err(pos, msg);
                        None
                    }
                }
            })
            .collect();
        let balance = raw.balance.and_then(|b| {
            let pos = self.at(&b);
            let words: Vec<&str> = b.get_ref().split_whitespace().collect();
            let (name, args) = words.split_first().unwrap_or((&"", &[]));
            match super::upstream::balance(name, args) {
                Ok(m) => Some(pos.with(m)),
                Err(msg) => {
                    self.err(pos, msg);
                    None
                }
            }
        });
        let health_check = raw.health_check.and_then(|h| {
            let pos = self.at(&h);
            let words: Vec<&str> = h.get_ref().split_whitespace().collect();
            match super::upstream::health_check(&words) {
                Ok(h) => Some(pos.with(h)),
                Err(msg) => {
                    self.err(pos, msg);
                    None
                }
            }
        });
        UpstreamConfig {
            name,
            servers,
            balance,
            keepalive: raw.keepalive,
            keepalive_timeout: raw.keepalive_timeout.and_then(|d| self.duration(d)),
            keepalive_requests: raw.keepalive_requests,
            keepalive_time: raw.keepalive_time.and_then(|d| self.duration(d)),
            health_check,
            resolve_interval: raw.resolve_interval.and_then(|d| self.duration(d)),
            resolve_strict: raw.resolve_strict,
            pos,
        }
    }

    fn settings(&mut self, raw: RawSettings) -> Settings {
        let real_ip = self.real_ip(raw.real_ip);
        let (auth_basic, auth_basic_user_file) = self.basic_auth(raw.basic_auth);
        let (auth_request, auth_request_set) = self.forward_auth(raw.forward_auth);
        Settings {
            auth_request,
            auth_request_set,
            access_log: raw.access_log.map(|v| {
                let pos = self.at(&v);
                let items = match v.into_inner() {
                    RawAccessLog::One(i) => vec![i],
                    RawAccessLog::Many(v) => v,
                };
                items
                    .into_iter()
                    .filter_map(|i| match i {
                        RawLogItem::Path(p) if p == "off" => None,
                        RawLogItem::Path(path) => Some(AccessLogConfig {
                            path,
                            format: None,
                            pos: pos.clone(),
                        }),
                        RawLogItem::Full { path, format } => Some(AccessLogConfig {
                            path,
                            format,
                            pos: pos.clone(),
                        }),
                    })
                    .collect()
            }),
            proxy_set_header: raw.proxy_set_header.map(|m| {
                let pos = self.at(&m);
                let pairs: Vec<(String, String)> = match m.into_inner() {
                    RawHeaders::Table(t) => t.into_iter().collect(),
                    RawHeaders::List(l) => l.into_iter().map(|p| (p.name, p.value)).collect(),
                };
                pairs
                    .into_iter()
                    .map(|(name, value)| HeaderPair {
                        name,
                        value,
                        pos: pos.clone(),
                    })
                    .collect()
            }),
            server_tokens: raw.server_tokens,
            proxy_cookie_domain: raw.proxy_cookie_domain.map(|l| self.word_lines(l)),
            proxy_cookie_path: raw.proxy_cookie_path.map(|l| self.word_lines(l)),
            proxy_cookie_flags: raw.proxy_cookie_flags.map(|l| self.word_lines(l)),
            expires: raw.expires.map(|e| {
                let pos = self.at(&e);
                pos.with(e.into_inner().split_whitespace().map(str::to_owned).collect())
            }),
            add_header: raw.add_header.map(|m| {
                let pos = self.at(&m);
                let rules: Vec<(String, String, bool)> = match m.into_inner() {
                    RawHeaders::Table(t) => t
                        .into_iter()
                        .map(|(name, v)| match v {
                            RawAddHeader::Value(value) => (name, value, false),
                            RawAddHeader::Full { value, always } => (name, value, always),
                        })
                        .collect(),
                    RawHeaders::List(l) => {
                        l.into_iter().map(|h| (h.name, h.value, h.always)).collect()
                    }
                };
                rules
                    .into_iter()
                    .map(|(name, value, always)| AddHeaderConfig {
                        name,
                        value,
                        always,
                        pos: pos.clone(),
                    })
                    .collect()
            }),
            proxy_hide_header: raw.proxy_hide_header.map(|v| self.names(v)),
            proxy_pass_header: raw.proxy_pass_header.map(|v| self.names(v)),
            proxy_redirect: raw.proxy_redirect.and_then(|r| {
                let pos = self.at(&r);
                let value = match r.into_inner() {
                    RawRedirect::Word(w) if w == "default" => RedirectConfig::Default,
                    RawRedirect::Word(w) if w == "off" => RedirectConfig::Off,
                    RawRedirect::Word(w) => {
                        self.errors.push(
                            ConfigError::new(pos, format!("invalid proxy_redirect {w:?}"))
                                .hint("use \"default\", \"off\" or [[\"from\", \"to\"], …]"),
                        );
                        return None;
                    }
                    RawRedirect::Rules(rules) => RedirectConfig::Rules(rules),
                };
                Some(pos.with(value))
            }),
            client_max_body_size: raw.client_max_body_size.and_then(|s| self.size(s)),
            proxy_connect_timeout: raw.proxy_connect_timeout.and_then(|d| self.duration(d)),
            proxy_read_timeout: raw.proxy_read_timeout.and_then(|d| self.duration(d)),
            proxy_send_timeout: raw.proxy_send_timeout.and_then(|d| self.duration(d)),
            proxy_http_version: raw.proxy_http_version.and_then(|v| {
                let pos = self.at(&v);
                // `2` is a TOML integer; "1.1" has to be a string.
                let text = match v.into_inner() {
                    NumOrText::Num(n) => n.to_string(),
                    NumOrText::Text(t) => t,
                };
                match ProxyHttpVersion::parse(&text) {
                    Some(version) => Some(pos.with(version)),
                    None => {
                        self.errors.push(
                            ConfigError::new(pos, format!("invalid proxy_http_version {text:?}"))
                                .hint("use \"1.0\", \"1.1\" or \"2\""),
                        );
                        None
                    }
                }
            }),
            client_body_timeout: raw.client_body_timeout.and_then(|d| self.duration(d)),
            client_header_timeout: raw.client_header_timeout.and_then(|d| self.duration(d)),
            keepalive_timeout: raw.keepalive_timeout.and_then(|d| self.duration(d)),
            keepalive_requests: raw.keepalive_requests,
            keepalive_time: raw.keepalive_time.and_then(|d| self.duration(d)),
            root: raw.root.map(|r| self.at(&r).with(r.into_inner())),
            alias: None,
            index: raw.index,
            ssl_certificate: raw
                .ssl_certificate
                .map(|v| self.at(&v).with(v.into_inner())),
            ssl_certificate_key: raw
                .ssl_certificate_key
                .map(|v| self.at(&v).with(v.into_inner())),
            ssl_client_certificate: raw
                .ssl_client_certificate
                .map(|v| self.at(&v).with(v.into_inner())),
            ssl_verify_client: raw
                .ssl_verify_client
                .map(|v| self.at(&v).with(v.into_inner())),
            proxy_ssl_trusted_certificate: raw
                .proxy_ssl_trusted_certificate
                .map(|v| self.at(&v).with(v.into_inner())),
            proxy_ssl_certificate: raw
                .proxy_ssl_certificate
                .map(|v| self.at(&v).with(v.into_inner())),
            proxy_ssl_certificate_key: raw
                .proxy_ssl_certificate_key
                .map(|v| self.at(&v).with(v.into_inner())),
            ssl_protocols: raw.ssl_protocols.map(|v| self.at(&v).with(v.into_inner())),
            ssl_ciphers: raw.ssl_ciphers.map(|v| self.at(&v).with(v.into_inner())),
            ssl_prefer_server_ciphers: raw.ssl_prefer_server_ciphers,
            ssl_session_tickets: raw.ssl_session_tickets,
            ssl_session_cache: raw.ssl_session_cache.and_then(|c| self.session_cache(c)),
            http2: raw.http2,
            proxy_ssl_name: raw.proxy_ssl_name,
            proxy_ssl_verify: raw.proxy_ssl_verify,
            proxy_ssl_server_name: raw.proxy_ssl_server_name,
            proxy_ssl_session_reuse: raw.proxy_ssl_session_reuse,
            proxy_next_upstream: raw.proxy_next_upstream.map(|v| {
                let pos = self.at(&v);
                // "error timeout" or ["error", "timeout"].
                let words = v
                    .into_inner()
                    .into_vec()
                    .iter()
                    .flat_map(|w| w.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                    .collect();
                pos.with(words)
            }),
            proxy_next_upstream_tries: raw.proxy_next_upstream_tries,
            proxy_next_upstream_timeout: raw
                .proxy_next_upstream_timeout
                .and_then(|d| self.duration(d)),
            merge_slashes: raw.merge_slashes,
            underscores_in_headers: raw.underscores_in_headers,
            ignore_invalid_headers: raw.ignore_invalid_headers,
            client_header_buffer_size: raw.client_header_buffer_size.and_then(|s| self.size(s)),
            large_client_header_buffers: raw.large_client_header_buffers.and_then(|b| {
                let words: Vec<&str> = b.get_ref().split_whitespace().collect();
                HeaderBuffers::parse(&words).or_else(|| {
                    let pos = self.at(&b);
                    self.errors.push(
                        ConfigError::new(pos, format!("invalid large_client_header_buffers {:?}", b.get_ref()))
                            .hint("a number and a size: \"4 8k\""),
                    );
                    None
                })
            }),
            proxy_request_buffering: raw.proxy_request_buffering,
            proxy_pass_request_body: raw.proxy_pass_request_body,
            proxy_pass_request_headers: raw.proxy_pass_request_headers,
            error_page: raw.error_page.map(|list| {
                let pos = self.at(&list);
                let mut pages = Vec::new();
                for line in list.into_inner().into_vec() {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    match crate::error_page::ErrorPageSpec::parse(&words) {
                        Ok(page) => pages.push(pos.clone().with(page)),
                        Err(e) => self.errors.push(
                            ConfigError::new(pos.clone(), format!("error_page {line:?}: {e}"))
                                .hint("codes, then `=` or `=code` if wanted, then a URI, `@name` or URL: \"500 502 503 504 /50x.html\""),
                        ),
                    }
                }
                pages
            }),
            proxy_intercept_errors: raw.proxy_intercept_errors,
            recursive_error_pages: raw.recursive_error_pages,
            send_timeout: raw.send_timeout.and_then(|d| self.duration(d)),
            resolver: raw.resolver.and_then(|r| {
                let pos = self.at(&r);
                let lines = r.into_inner().into_vec();
                let words: Vec<&str> = lines.iter().flat_map(|l| l.split_whitespace()).collect();
                match crate::upstream::ResolverSpec::parse(&words) {
                    Ok(spec) => Some(pos.with(spec)),
                    Err(e) => {
                        self.errors.push(
                            ConfigError::new(pos, format!("resolver: {e}"))
                                .hint("resolver = \"127.0.0.11 valid=10s\": IP addresses, then valid=, ipv4=, ipv6="),
                        );
                        None
                    }
                }
            }),
            resolver_timeout: raw.resolver_timeout.and_then(|d| self.duration(d)),
            access: self.access(raw.allow, raw.deny, raw.access),
            set_real_ip_from: real_ip.0,
            real_ip_header: real_ip.1,
            real_ip_recursive: real_ip.2,
            auth_basic,
            auth_basic_user_file,
            limit_req: raw.rate_limit.map(|r| {
                let pos = self.at(&r);
                r.into_inner()
                    .into_vec()
                    .into_iter()
                    .map(|l| LimitReqConfig {
                        zone: l.zone,
                        burst: l.burst.unwrap_or(0),
                        delay: if l.nodelay == Some(true) {
                            None
                        } else {
                            Some(l.delay.unwrap_or(0))
                        },
                        pos: pos.clone(),
                    })
                    .collect()
            }),
            limit_req_status: raw.rate_limit_status.and_then(|c| self.refusal_status(c, "rate_limit_status")),
            limit_req_dry_run: raw.rate_limit_dry_run,
            limit_req_log_level: raw.rate_limit_log_level.and_then(|l| self.limit_log_level(l, "rate_limit_log_level")),
            gzip: raw.gzip,
            gzip_types: raw.gzip_types.map(OneOrMany::into_vec),
            sub_filter: raw.sub_filter.map(|pairs| {
                let pos = self.at(&pairs);
                pairs
                    .into_inner()
                    .into_iter()
                    .map(|p| super::model::Spanned::new(p, pos.clone()))
                    .collect()
            }),
            sub_filter_once: raw.sub_filter_once,
            sub_filter_types: raw.sub_filter_types.map(OneOrMany::into_vec),
            sub_filter_last_modified: raw.sub_filter_last_modified,
            gzip_min_length: raw.gzip_min_length.and_then(|s| self.size(s)),
            gzip_comp_level: raw.gzip_comp_level.and_then(|l| match *l.get_ref() {
                n @ 1..=9 => Some(n),
                n => {
                    let pos = self.at(&l);
                    self.err(pos, format!("invalid gzip_comp_level {n}: 1 (fastest) to 9 (smallest)"));
                    None
                }
            }),
            gzip_vary: raw.gzip_vary,
            encode: raw.encode.and_then(|list| {
                let pos = self.at(&list);
                let mut codings = Vec::new();
                for name in list.into_inner().into_vec() {
                    match crate::compress::Coding::from_name(&name) {
                        Some(c) if !codings.contains(&c) => codings.push(c),
                        Some(_) => {}
                        None => self.errors.push(
                            ConfigError::new(pos.clone(), format!("encode: unknown coding {name:?}"))
                                .hint("\"zstd\", \"br\" or \"gzip\", in order of preference"),
                        ),
                    }
                }
                (!codings.is_empty()).then_some(codings)
            }),
            gzip_proxied: raw.gzip_proxied.and_then(|p| {
                let pos = self.at(&p);
                let words = p.into_inner().into_vec();
                let refs: Vec<&str> = words.iter().map(String::as_str).collect();
                match crate::compress::Proxied::parse(&refs) {
                    Ok(_) => Some(pos.with(words)),
                    Err(e) => {
                        self.errors.push(ConfigError::new(pos, format!("gzip_proxied: {e}")).hint(
                            "\"off\", \"any\", \"expired\", \"no-cache\", \"no-store\", \"private\", \"no_last_modified\", \"no_etag\", \"auth\"",
                        ));
                        None
                    }
                }
            }),
            gzip_disable: raw.gzip_disable.map(|d| {
                let pos = self.at(&d);
                pos.with(d.into_inner().into_vec())
            }),
            gzip_http10: raw.gzip_http_version.and_then(|v| match v.get_ref().as_str() {
                "1.0" => Some(true),
                "1.1" => Some(false),
                other => {
                    let pos = self.at(&v);
                    self.err(pos, format!("invalid gzip_http_version {other:?}: \"1.0\" or \"1.1\""));
                    None
                }
            }),
            limit_rate: raw.limit_rate.and_then(|s| self.size(s)),
            limit_rate_after: raw.limit_rate_after.and_then(|s| self.size(s)),
            limit_conn: raw.conn_limit.map(|r| {
                let pos = self.at(&r);
                r.into_inner()
                    .into_vec()
                    .into_iter()
                    .map(|l| LimitConnConfig {
                        zone: l.zone,
                        max: l.max,
                        pos: pos.clone(),
                    })
                    .collect()
            }),
            limit_conn_status: raw.conn_limit_status.and_then(|c| self.refusal_status(c, "conn_limit_status")),
            limit_conn_dry_run: raw.conn_limit_dry_run,
            limit_conn_log_level: raw.conn_limit_log_level.and_then(|l| self.limit_log_level(l, "conn_limit_log_level")),
            satisfy: raw.satisfy.and_then(|v| match v.get_ref().as_str() {
                "all" => Some(crate::access::Satisfy::All),
                "any" => Some(crate::access::Satisfy::Any),
                other => {
                    let pos = self.at(&v);
                    self.errors.push(
                        ConfigError::new(pos, format!("invalid satisfy {other:?}"))
                            .hint("\"all\" (every check must pass, the default) or \"any\" (an allow rule or the password)"),
                    );
                    None
                }
            }),
            client_body_buffer_size: raw.client_body_buffer_size.and_then(|s| self.size(s)),
            websocket: raw.websocket.and_then(|w| match w.get_ref() {
                RawWebsocket::Flag(true) => Some(Upgrades::Always),
                RawWebsocket::Flag(false) => Some(Upgrades::Off),
                RawWebsocket::Text(t) if t == "nginx" => Some(Upgrades::WhenForwarded),
                RawWebsocket::Text(t) => {
                    let pos = self.at(&w);
                    self.errors.push(
                        ConfigError::new(pos, format!("invalid websocket {t:?}"))
                            .hint("`true`, `false`, or \"nginx\" (only where proxy_set_header forwards Upgrade)"),
                    );
                    None
                }
            }),
        }
    }

    /// `forward_auth = { uri, set }` or `false`, as nginx's two directives.
    fn forward_auth(&mut self, raw: Option<Spanned<RawForwardAuth>>) -> ForwardAuthSettings {
        use super::model::{AuthRequestConfig, AuthRequestSetConfig};
        let Some(raw) = raw else {
            return (None, None);
        };
        let pos = self.at(&raw);
        match raw.into_inner() {
            RawForwardAuth::Flag(false) => (Some(pos.with(AuthRequestConfig::Off)), None),
            RawForwardAuth::Flag(true)
            | RawForwardAuth::On(RawForwardAuthOn {
                uri: None,
                set: None,
            }) => {
                self.errors.push(
                    ConfigError::new(pos, "forward_auth says no uri")
                        .hint("forward_auth = { uri = \"/auth\" }, a location that answers 2xx to let a request in"),
                );
                (None, None)
            }
            RawForwardAuth::On(on) => {
                let sets = on.set.map(|set| {
                    set.into_iter()
                        .map(|(name, value)| AuthRequestSetConfig {
                            name: name.trim_start_matches('$').to_owned(),
                            value,
                            pos: pos.clone(),
                        })
                        .collect()
                });
                (on.uri.map(|u| pos.with(AuthRequestConfig::Uri(u))), sets)
            }
        }
    }

    /// A limit's refusal status: 400 to 599.
    fn refusal_status(&mut self, code: Spanned<u16>, key: &str) -> Option<u16> {
        match *code.get_ref() {
            c @ 400..=599 => Some(c),
            other => {
                let pos = self.at(&code);
                self.err(
                    pos,
                    format!("invalid {key} {other}: a status from 400 to 599"),
                );
                None
            }
        }
    }

    /// A limit's log level.
    fn limit_log_level(
        &mut self,
        level: Spanned<String>,
        key: &str,
    ) -> Option<crate::config::ErrorLogLevel> {
        let parsed = crate::config::ErrorLogLevel::parse_limit(level.get_ref());
        if parsed.is_none() {
            let pos = self.at(&level);
            let other = level.get_ref();
            self.err(
                pos,
                format!("invalid {key} {other:?}: \"info\", \"notice\", \"warn\" or \"error\""),
            );
        }
        parsed
    }

    /// `basic_auth = { realm, users }` or `false`, as nginx's two
    /// directives.
    fn basic_auth(&mut self, raw: Option<Spanned<RawBasicAuth>>) -> BasicAuthSettings {
        use super::model::AuthBasic;
        let Some(raw) = raw else {
            return (None, None);
        };
        let pos = self.at(&raw);
        match raw.into_inner() {
            RawBasicAuth::Flag(false) => (Some(pos.with(AuthBasic::Off)), None),
            RawBasicAuth::Flag(true) => {
                self.errors.push(
                    ConfigError::new(pos, "basic_auth = true says neither realm nor users").hint(
                        "basic_auth = { realm = \"Staff only\", users = \"/etc/rpx/htpasswd\" }",
                    ),
                );
                (None, None)
            }
            RawBasicAuth::On(RawBasicAuthOn {
                realm: None,
                users: None,
            }) => {
                self.errors.push(
                    ConfigError::new(pos, "basic_auth = {} says neither realm nor users").hint(
                        "basic_auth = { realm = \"Staff only\", users = \"/etc/rpx/htpasswd\" }",
                    ),
                );
                (None, None)
            }
            RawBasicAuth::On(on) => (
                on.realm.map(|r| pos.clone().with(AuthBasic::Realm(r))),
                on.users.map(|u| pos.with(u)),
            ),
        }
    }

    /// `real_ip = { from, header, recursive }` as the three settings.
    fn real_ip(&mut self, raw: Option<Spanned<RawRealIp>>) -> RealIpSettings {
        let Some(raw) = raw else {
            return (None, None, None);
        };
        let pos = self.at(&raw);
        let raw = raw.into_inner();
        let mut from = Vec::new();
        for rule in raw.from.into_vec() {
            if rule == "all" || crate::access::AccessList::builder().allow(&rule).is_err() {
                self.errors.push(
                    ConfigError::new(pos.clone(), format!("invalid real_ip.from {rule:?}"))
                        .hint("the trusted proxies: addresses or CIDR (\"10.0.0.0/8\")"),
                );
            } else {
                from.push(pos.clone().with(rule));
            }
        }
        if let Some(h) = &raw.header {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                self.errors.push(ConfigError::new(
                    pos.clone(),
                    format!("invalid real_ip.header {h:?}"),
                ));
            }
        }
        let header = raw.header.map(|h| pos.with(h));
        (Some(from), header, raw.recursive)
    }

    /// `allow` and `deny` (every `allow` before every `deny`), or `access`
    /// (`[["deny", "…"], ["allow", "…"]]`, in nginx's order).
    fn access(
        &mut self,
        allow: Option<Spanned<OneOrMany<String>>>,
        deny: Option<Spanned<OneOrMany<String>>>,
        access: Option<Spanned<Vec<(String, String)>>>,
    ) -> Option<Vec<AccessRuleConfig>> {
        use crate::access::Verdict;
        let mut rules: Vec<(Verdict, String, SourcePos)> = Vec::new();
        for (verdict, list) in [(Verdict::Allow, allow), (Verdict::Deny, deny)] {
            if let Some(list) = list {
                let pos = self.at(&list);
                if let Some(a) = &access {
                    let pos = self.at(a);
                    self.errors.push(
                        ConfigError::new(pos, "`access` and `allow`/`deny` at one level")
                            .hint("write the rules once: `access = [[\"deny\", \"…\"], [\"allow\", \"…\"]]` keeps their order"),
                    );
                }
                for rule in list.into_inner().into_vec() {
                    rules.push((verdict, rule, pos.clone()));
                }
            }
        }
        if let Some(list) = access.filter(|_| rules.is_empty()) {
            let pos = self.at(&list);
            for (word, rule) in list.into_inner() {
                let verdict = match word.as_str() {
                    "allow" => Verdict::Allow,
                    "deny" => Verdict::Deny,
                    _ => {
                        self.errors.push(
                            ConfigError::new(pos.clone(), format!("invalid access rule {word:?}"))
                                .hint("each rule is [\"allow\", \"…\"] or [\"deny\", \"…\"]"),
                        );
                        continue;
                    }
                };
                rules.push((verdict, rule, pos.clone()));
            }
        }
        if rules.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for (verdict, rule, pos) in rules {
            match crate::access::AccessList::builder().rule(verdict, &rule) {
                Ok(_) => out.push(AccessRuleConfig { verdict, rule, pos }),
                Err(e) => self.errors.push(ConfigError::new(pos, e.to_string())),
            }
        }
        Some(out)
    }

    fn names(&mut self, v: Vec<Spanned<String>>) -> Vec<super::model::Spanned<String>> {
        v.into_iter()
            .map(|n| self.at(&n).with(n.into_inner()))
            .collect()
    }

    fn size(&mut self, s: Spanned<NumOrText>) -> Option<u64> {
        match s.get_ref() {
            NumOrText::Num(n) => Some(*n),
            NumOrText::Text(t) => parse_size(t).or_else(|| {
                let pos = self.at(&s);
                self.errors.push(
                    ConfigError::new(pos, format!("invalid size {t:?}"))
                        .hint("bytes, or a number with k, m or g: \"10m\""),
                );
                None
            }),
        }
    }

    /// A number of sessions, or nginx's words (`"off"`, `"shared:SSL:10m"`).
    fn session_cache(&mut self, s: Spanned<NumOrText>) -> Option<usize> {
        match s.get_ref() {
            NumOrText::Num(n) => Some(usize::try_from(*n).map_or(super::MAX_SESSION_CACHE, |n| {
                n.min(super::MAX_SESSION_CACHE)
            })),
            NumOrText::Text(t) => {
                let words: Vec<&str> = t.split_whitespace().collect();
                match super::parse_session_cache(&words) {
                    Ok(n) => Some(n),
                    Err(e) => {
                        let pos = self.at(&s);
                        self.errors.push(
                            ConfigError::new(pos, e).hint(
                                "a number of sessions, \"off\", or nginx's \"shared:SSL:10m\"",
                            ),
                        );
                        None
                    }
                }
            }
        }
    }

    /// nginx lines as their words (`proxy_cookie_path = ["/two/ /"]`);
    /// `"off"` or `[]`: none, cancelling what is inherited.
    fn word_lines(
        &mut self,
        lines: Spanned<OneOrMany<String>>,
    ) -> Vec<super::model::Spanned<Vec<String>>> {
        let pos = self.at(&lines);
        let lines = lines.into_inner().into_vec();
        if lines.len() == 1 && lines[0].trim() == "off" {
            return Vec::new();
        }
        lines
            .iter()
            .map(|l| {
                pos.clone()
                    .with(l.split_whitespace().map(str::to_owned).collect())
            })
            .collect()
    }

    fn duration(&mut self, s: Spanned<NumOrText>) -> Option<Duration> {
        match s.get_ref() {
            NumOrText::Num(n) => Some(Duration::from_secs(*n)),
            NumOrText::Text(t) => parse_duration(t).or_else(|| {
                let pos = self.at(&s);
                self.errors.push(
                    ConfigError::new(pos, format!("invalid time {t:?}"))
                        .hint("seconds, or units ms s m h d: \"30s\", \"1h\""),
                );
                None
            }),
        }
    }
}

/// `pos.with(value)`: a model value at a position (the model's `Spanned`,
/// not toml's, which this module reads).
trait WithValue {
    fn with<T>(self, value: T) -> super::model::Spanned<T>;
}

impl WithValue for SourcePos {
    fn with<T>(self, value: T) -> super::model::Spanned<T> {
        super::model::Spanned::new(value, self)
    }
}
