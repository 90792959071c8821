//! The typed configuration model both front-ends (TOML, nginx) produce.
//!
//! Plain data with source positions; nothing here is compiled. The stack
//! compiler (`crate::stack`) turns a [`Config`] into a routing snapshot.
//! Methods named like nginx directives make it a builder for code, too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::location::MatchKind;

/// Where a config item was written: `file:line:col` (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourcePos {
    /// The file (or `<code>` for configs built in code).
    pub file: Arc<str>,
    /// Line, 1-based; 0 when unknown.
    pub line: u32,
    /// Column, 1-based; 0 when unknown.
    pub col: u32,
}

impl SourcePos {
    /// A position.
    pub fn new(file: impl Into<Arc<str>>, line: u32, col: u32) -> Self {
        SourcePos {
            file: file.into(),
            line,
            col,
        }
    }

    /// The position of items built in code.
    pub fn code() -> Self {
        SourcePos::new("<code>", 0, 0)
    }
}

impl std::fmt::Display for SourcePos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.col) {
            (0, _) => write!(f, "{}", self.file),
            (l, 0) => write!(f, "{}:{l}", self.file),
            (l, c) => write!(f, "{}:{l}:{c}", self.file),
        }
    }
}

/// A value with the position it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub pos: SourcePos,
}

impl<T> Spanned<T> {
    /// A value at `pos`.
    pub fn new(value: T, pos: SourcePos) -> Self {
        Spanned { value, pos }
    }

    /// A value built in code.
    pub fn code(value: T) -> Self {
        Spanned::new(value, SourcePos::code())
    }
}

/// A whole configuration: `http`-level settings, servers and upstream groups.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Defaults every server inherits (nginx's `http {}` level).
    pub settings: Settings,
    /// Virtual servers in config order.
    pub servers: Vec<ServerConfig>,
    /// Named upstream groups.
    pub upstreams: Vec<UpstreamConfig>,
    /// `map` variables, in config order (a map's values may use maps
    /// defined before it).
    pub maps: Vec<MapConfig>,
    /// `geo` variables.
    pub geos: Vec<GeoConfig>,
    /// `split_clients` variables.
    pub split_clients: Vec<SplitClientsConfig>,
    /// `log_format` definitions (`combined` is predefined).
    pub log_formats: Vec<LogFormatConfig>,
    /// How long a graceful stop waits for requests in flight (nginx's
    /// `worker_shutdown_timeout`). Default 30 s; `rpx run --shutdown-timeout` wins.
    pub shutdown_timeout: Option<Duration>,
    /// ACME issuers (`acme_issuer` blocks, TOML `[acme]`).
    pub acme_issuers: Vec<super::AcmeIssuerConfig>,
    /// Where rpx's own log goes (`error_log`). None: stderr, level `info`.
    pub error_log: Option<super::ErrorLogConfig>,
    /// `limit_req_zone`s.
    pub limit_req_zones: Vec<LimitReqZoneConfig>,
    /// `limit_conn_zone`s.
    pub limit_conn_zones: Vec<LimitConnZoneConfig>,
}

/// `limit_conn_zone key zone=name:size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitConnZoneConfig {
    /// The zone's name, as `limit_conn` names it.
    pub name: String,
    /// The key, with variables (`$binary_remote_addr`, `$server_name`).
    pub key: String,
    /// Bytes (nginx's 64 a key).
    pub size: u64,
    /// Where it was written.
    pub pos: SourcePos,
}

/// One `limit_conn zone number`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitConnConfig {
    /// The zone.
    pub zone: String,
    /// Requests in progress allowed per key.
    pub max: u32,
    /// Where it was written.
    pub pos: SourcePos,
}

/// `limit_req_zone key zone=name:size rate=rate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitReqZoneConfig {
    /// The zone's name, as `limit_req zone=` names it.
    pub name: String,
    /// The key, with variables (`$binary_remote_addr`).
    pub key: String,
    /// Bytes (nginx's 128 a key).
    pub size: u64,
    /// `10r/s`, `30r/m`.
    pub rate: String,
    /// Where it was written.
    pub pos: SourcePos,
}

/// One `limit_req zone=name [burst=N] [nodelay | delay=N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitReqConfig {
    /// The zone.
    pub zone: String,
    /// Requests over the rate held. Default 0.
    pub burst: u64,
    /// Of those, how many are not delayed; `None` is `nodelay`. Default 0.
    pub delay: Option<u64>,
    /// Where it was written.
    pub pos: SourcePos,
}

impl Config {
    /// An empty config.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a server.
    pub fn server(mut self, server: ServerConfig) -> Self {
        self.servers.push(server);
        self
    }

    /// Adds an upstream group.
    pub fn upstream(mut self, upstream: UpstreamConfig) -> Self {
        self.upstreams.push(upstream);
        self
    }

    /// Replaces the `http`-level settings.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Adds an ACME issuer.
    pub fn acme_issuer(mut self, issuer: super::AcmeIssuerConfig) -> Self {
        self.acme_issuers.push(issuer);
        self
    }
}

/// `listen address [default_server] [ssl] [http2]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// The socket address.
    pub addr: SocketAddr,
    /// `default_server`: the server for unmatched hosts on this address.
    pub default_server: bool,
    /// `ssl` (served by the TLS work; rejected until then).
    pub ssl: bool,
    /// `http2`.
    pub http2: bool,
    /// `proxy_protocol`: every connection starts with a PROXY protocol
    /// header (v1 or v2), read before TLS. As in nginx, one server naming
    /// it turns it on for the whole address.
    pub proxy_protocol: bool,
    /// Where it was written.
    pub pos: SourcePos,
}

impl Listen {
    /// A plain listener on `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Listen {
            addr,
            default_server: false,
            ssl: false,
            http2: false,
            proxy_protocol: false,
            pos: SourcePos::code(),
        }
    }
}

/// One virtual server (`server {}`).
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Where the server block starts.
    pub pos: SourcePos,
    /// Its listen addresses; empty means `0.0.0.0:80`, as nginx.
    pub listen: Vec<Listen>,
    /// `server_name` entries: exact, `*.wild`, `wild.*`, `~regex`, `_`.
    pub names: Vec<Spanned<String>>,
    /// Settings of the server level.
    pub settings: Settings,
    /// `rewrite` / `if` / `break` of the server level, run in order before
    /// locations are matched (nginx's server rewrite phase).
    pub rewrites: Vec<RewriteStep>,
    /// A server-level `return`, answered after [`ServerConfig::rewrites`]
    /// and before any location is matched (certbot's redirect servers).
    pub ret: Option<ReturnConfig>,
    /// Locations in config order.
    pub locations: Vec<LocationConfig>,
    /// `acme_certificate`: the server's certificate is obtained by ACME.
    pub acme: Option<super::AcmeCertificateConfig>,
}

impl ServerConfig {
    /// An empty server.
    pub fn new() -> Self {
        ServerConfig {
            pos: SourcePos::code(),
            ..Default::default()
        }
    }

    /// Adds a listen address.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen.push(Listen::new(addr));
        self
    }

    /// Adds a `server_name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.names.push(Spanned::code(name.into()));
        self
    }

    /// Adds a location.
    pub fn location(mut self, location: LocationConfig) -> Self {
        self.locations.push(location);
        self
    }

    /// Sets the server-level settings.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Obtains the server's certificate by ACME (`acme_certificate`).
    pub fn acme(mut self, certificate: super::AcmeCertificateConfig) -> Self {
        self.acme = Some(certificate);
        self
    }

    /// A server-level `return`.
    pub fn returns(mut self, code: u16, text: Option<&str>) -> Self {
        self.ret = Some(ReturnConfig::new(code, text));
        self
    }
}

/// What a location does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    /// `proxy_pass URL`.
    Proxy(Spanned<String>),
    /// `return code [text]`.
    Return(ReturnConfig),
    /// Prometheus metrics (`rpx_metrics;`, TOML `metrics = true`).
    Metrics(SourcePos),
    /// nginx's `stub_status` page (TOML `stub_status = true`).
    StubStatus(SourcePos),
}

/// `return code [text|URL]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnConfig {
    /// Status code.
    pub code: u16,
    /// Body text, or the URL for redirect codes.
    pub text: Option<String>,
    /// Where it was written.
    pub pos: SourcePos,
}

impl ReturnConfig {
    /// A `return` built in code.
    pub fn new(code: u16, text: Option<&str>) -> Self {
        ReturnConfig {
            code,
            text: text.map(Into::into),
            pos: SourcePos::code(),
        }
    }
}

/// One `location {}`.
#[derive(Debug, Clone)]
pub struct LocationConfig {
    /// Where the location starts.
    pub pos: SourcePos,
    /// Match kind (`=`, prefix, `^~`, `~`, `~*`).
    pub kind: MatchKind,
    /// Path or regex.
    pub pattern: String,
    /// `rewrite` / `if` / `break` of this location, run in order once the
    /// location is chosen and before its handler.
    pub rewrites: Vec<RewriteStep>,
    /// What it does; `None` serves files when `root`/`alias` is set, else 404.
    pub handler: Option<Handler>,
    /// `try_files file… fallback` (static files only).
    pub try_files: Option<Spanned<Vec<String>>>,
    /// Settings of this level.
    pub settings: Settings,
    /// Nested locations.
    pub locations: Vec<LocationConfig>,
    /// `internal`: only internal redirects (a rewrite, `try_files`) reach
    /// it; a client's request gets 404.
    pub internal: bool,
    /// `limit_except METHOD… { allow/deny/auth_basic }`.
    pub limit_except: Option<LimitExceptConfig>,
}

/// `limit_except GET POST { … }`: requests with other methods are checked
/// against the block's access settings, a level of its own that inherits
/// the location's (`allow`/`deny`, `auth_basic`, `satisfy`). `GET` lets
/// `HEAD` through too, as nginx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceptConfig {
    /// The methods left alone (upper case).
    pub methods: Vec<String>,
    /// The block's own access settings.
    pub settings: Settings,
    /// Where it was written.
    pub pos: SourcePos,
}

impl LocationConfig {
    /// A location from nginx syntax: `"/api/"`, `"= /x"`, `"~* \.png$"`.
    pub fn new(spec: &str) -> Self {
        let (kind, pattern) = MatchKind::split(spec);
        LocationConfig {
            pos: SourcePos::code(),
            kind,
            pattern: pattern.into(),
            rewrites: Vec::new(),
            handler: None,
            try_files: None,
            settings: Settings::default(),
            locations: Vec::new(),
            internal: false,
            limit_except: None,
        }
    }

    /// `proxy_pass url`.
    pub fn proxy_pass(mut self, url: impl Into<String>) -> Self {
        self.handler = Some(Handler::Proxy(Spanned::code(url.into())));
        self
    }

    /// `return code [text]`.
    pub fn returns(mut self, code: u16, text: Option<&str>) -> Self {
        self.handler = Some(Handler::Return(ReturnConfig::new(code, text)));
        self
    }

    /// `proxy_set_header name value`.
    pub fn proxy_set_header(mut self, name: &str, value: &str) -> Self {
        self.settings
            .proxy_set_header
            .get_or_insert_with(Vec::new)
            .push(HeaderPair::new(name, value));
        self
    }

    /// `add_header name value [always]`.
    pub fn add_header(mut self, name: &str, value: &str, always: bool) -> Self {
        self.settings
            .add_header
            .get_or_insert_with(Vec::new)
            .push(AddHeaderConfig::new(name, value, always));
        self
    }

    /// Sets this level's settings.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Adds a nested location.
    pub fn location(mut self, location: LocationConfig) -> Self {
        self.locations.push(location);
        self
    }
}

/// A `name value` header pair (`proxy_set_header`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderPair {
    /// Header name.
    pub name: String,
    /// Value, with variables.
    pub value: String,
    /// Where it was written.
    pub pos: SourcePos,
}

impl HeaderPair {
    /// A pair built in code.
    pub fn new(name: &str, value: &str) -> Self {
        HeaderPair {
            name: name.into(),
            value: value.into(),
            pos: SourcePos::code(),
        }
    }
}

/// `add_header name value [always]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddHeaderConfig {
    /// Header name.
    pub name: String,
    /// Value, with variables.
    pub value: String,
    /// Add to every status, not only 2xx/3xx.
    pub always: bool,
    /// Where it was written.
    pub pos: SourcePos,
}

impl AddHeaderConfig {
    /// A rule built in code.
    pub fn new(name: &str, value: &str, always: bool) -> Self {
        AddHeaderConfig {
            name: name.into(),
            value: value.into(),
            always,
            pos: SourcePos::code(),
        }
    }
}

/// `proxy_redirect` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectConfig {
    /// `proxy_redirect default`.
    Default,
    /// `proxy_redirect off`.
    Off,
    /// `proxy_redirect from to` lines (possibly with `default` among them
    /// expressed as its own rule by the front-end).
    Rules(Vec<(String, String)>),
}

/// `proxy_http_version` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHttpVersion {
    /// `1.0`: accepted with a warning; rpx speaks HTTP/1.1.
    Http10,
    /// `1.1`, the default.
    Http11,
    /// `2`: HTTP/2 by ALPN to `https://` upstreams, h2c to `http://` ones.
    Http2,
}

impl ProxyHttpVersion {
    /// `"1.0"`, `"1.1"` or `"2"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1.0" => Some(ProxyHttpVersion::Http10),
            "1.1" => Some(ProxyHttpVersion::Http11),
            "2" => Some(ProxyHttpVersion::Http2),
            _ => None,
        }
    }

    /// As written in a config.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyHttpVersion::Http10 => "1.0",
            ProxyHttpVersion::Http11 => "1.1",
            ProxyHttpVersion::Http2 => "2",
        }
    }
}

/// Settings that nginx inherits from `http` to `server` to `location`: a
/// level that sets one replaces the inherited value (for lists: the whole
/// inherited list, as nginx does for `add_header` and `proxy_set_header`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `proxy_set_header` list.
    pub proxy_set_header: Option<Vec<HeaderPair>>,
    /// `add_header` list.
    pub add_header: Option<Vec<AddHeaderConfig>>,
    /// `proxy_cookie_domain` lines, as their words (`off`: an empty list,
    /// cancelling the inherited ones).
    pub proxy_cookie_domain: Option<Vec<Spanned<Vec<String>>>>,
    /// `proxy_cookie_path` lines, likewise.
    pub proxy_cookie_path: Option<Vec<Spanned<Vec<String>>>>,
    /// `proxy_cookie_flags` lines, likewise.
    pub proxy_cookie_flags: Option<Vec<Spanned<Vec<String>>>>,
    /// `server_tokens`: `Server: rpx/VERSION` (on, the default) or `rpx`.
    pub server_tokens: Option<bool>,
    /// `expires`, as its words (`["modified", "1d"]`, `["$expires"]`).
    pub expires: Option<Spanned<Vec<String>>>,
    /// `proxy_hide_header` list.
    pub proxy_hide_header: Option<Vec<Spanned<String>>>,
    /// `proxy_pass_header` list.
    pub proxy_pass_header: Option<Vec<Spanned<String>>>,
    /// `proxy_redirect`.
    pub proxy_redirect: Option<Spanned<RedirectConfig>>,
    /// `client_max_body_size` in bytes; 0 = unlimited. Default 1 MiB.
    pub client_max_body_size: Option<u64>,
    /// `proxy_connect_timeout`. Default 60 s.
    pub proxy_connect_timeout: Option<Duration>,
    /// `proxy_read_timeout`. Default 60 s.
    pub proxy_read_timeout: Option<Duration>,
    /// `proxy_send_timeout`. Default 60 s.
    pub proxy_send_timeout: Option<Duration>,
    /// `proxy_http_version`. Default 1.1.
    pub proxy_http_version: Option<Spanned<ProxyHttpVersion>>,
    /// `client_body_timeout`. Default 60 s.
    pub client_body_timeout: Option<Duration>,
    /// `client_header_timeout` (server level and up). Default 60 s.
    pub client_header_timeout: Option<Duration>,
    /// `keepalive_timeout` for client connections. Default 75 s.
    pub keepalive_timeout: Option<Duration>,
    /// `keepalive_requests` for client connections: requests one connection
    /// carries before it is closed (server level and up). Default 1000.
    pub keepalive_requests: Option<u32>,
    /// `keepalive_time` for client connections: after it, a connection is
    /// closed once its next request is answered (server level and up).
    /// Default 1 h.
    pub keepalive_time: Option<Duration>,
    /// `root` directory.
    pub root: Option<Spanned<String>>,
    /// `alias` directory (location level only, not inherited).
    pub alias: Option<Spanned<String>>,
    /// `index` file names. Default `index.html`.
    pub index: Option<Vec<String>>,
    /// `ssl_certificate`: PEM chain for TLS listeners (server level and up).
    pub ssl_certificate: Option<Spanned<String>>,
    /// `ssl_certificate_key`: its PEM key.
    pub ssl_certificate_key: Option<Spanned<String>>,
    /// `ssl_protocols`: `TLSv1.2`, `TLSv1.3` (older ones are never offered).
    pub ssl_protocols: Option<Spanned<Vec<String>>>,
    /// `ssl_ciphers`: an OpenSSL cipher string choosing the TLS 1.2 suites
    /// (TLS 1.3 suites are not affected). Default: all of rustls' suites.
    pub ssl_ciphers: Option<Spanned<String>>,
    /// `ssl_prefer_server_ciphers`: the server's suite order wins. Default off.
    pub ssl_prefer_server_ciphers: Option<bool>,
    /// `ssl_session_tickets`. Default on.
    pub ssl_session_tickets: Option<bool>,
    /// `ssl_session_cache` as a number of sessions; 0 is `off`. Default 16384.
    pub ssl_session_cache: Option<usize>,
    /// `http2 on`: offer HTTP/2 by ALPN on this server's TLS listener, like
    /// `listen … http2`. Default off.
    pub http2: Option<bool>,
    /// `ssl_client_certificate`: CAs for client certificates.
    pub ssl_client_certificate: Option<Spanned<String>>,
    /// `ssl_verify_client`: `on`, `optional`, `optional_no_ca`, `off`.
    pub ssl_verify_client: Option<Spanned<String>>,
    /// `proxy_ssl_verify`. Default on in TOML; the nginx front-end sets off, as nginx.
    pub proxy_ssl_verify: Option<bool>,
    /// `proxy_ssl_trusted_certificate`: CAs for `https://` upstreams.
    pub proxy_ssl_trusted_certificate: Option<Spanned<String>>,
    /// `proxy_ssl_name`: name to verify and send as SNI.
    pub proxy_ssl_name: Option<String>,
    /// `proxy_ssl_server_name`: send SNI. Default on in TOML, off in nginx.
    pub proxy_ssl_server_name: Option<bool>,
    /// `proxy_ssl_certificate`: client certificate for upstreams.
    pub proxy_ssl_certificate: Option<Spanned<String>>,
    /// `proxy_ssl_certificate_key`: its key.
    pub proxy_ssl_certificate_key: Option<Spanned<String>>,
    /// `proxy_ssl_session_reuse`. Default on.
    pub proxy_ssl_session_reuse: Option<bool>,
    /// `access_log` destinations of this level (`off` is an empty list).
    pub access_log: Option<Vec<AccessLogConfig>>,
    /// `proxy_next_upstream` words. Default `error timeout`.
    pub proxy_next_upstream: Option<Spanned<Vec<String>>>,
    /// `proxy_next_upstream_tries`; 0 is unlimited. Default 0.
    pub proxy_next_upstream_tries: Option<u32>,
    /// `proxy_next_upstream_timeout`; zero is unlimited. Default unlimited.
    pub proxy_next_upstream_timeout: Option<Duration>,
    /// `merge_slashes` (server level and up). Default on.
    pub merge_slashes: Option<bool>,
    /// `underscores_in_headers` (a listener's default server). Default off.
    pub underscores_in_headers: Option<bool>,
    /// `ignore_invalid_headers` (a listener's default server). Default on.
    pub ignore_invalid_headers: Option<bool>,
    /// `client_header_buffer_size` in bytes (a listener's default server).
    /// Default 1k.
    pub client_header_buffer_size: Option<u64>,
    /// `large_client_header_buffers number size` (a listener's default
    /// server). Default 4 8k.
    pub large_client_header_buffers: Option<HeaderBuffers>,
    /// Which `Upgrade` requests (WebSocket) a proxying location tunnels.
    /// Default [`Upgrades::Always`]; the nginx front-end sets
    /// [`Upgrades::WhenForwarded`].
    pub websocket: Option<Upgrades>,
    /// `proxy_request_buffering`: read up to `client_body_buffer_size` of
    /// a request body before the upstream is contacted. Default off in
    /// TOML (bodies stream); the nginx front-end sets on, as nginx.
    pub proxy_request_buffering: Option<bool>,
    /// `proxy_pass_request_body`: send the client's body on. Off, the
    /// upstream gets no body, and no `Content-Length` or
    /// `Transfer-Encoding` for it. Default on.
    pub proxy_pass_request_body: Option<bool>,
    /// `proxy_pass_request_headers`: send the client's headers on. Off,
    /// the upstream gets only the `proxy_set_header` ones (and the body's
    /// framing). Default on.
    pub proxy_pass_request_headers: Option<bool>,
    /// `error_page`s, in order. A level with any replaces the inherited
    /// list, as nginx.
    pub error_page: Option<Vec<Spanned<crate::error_page::ErrorPageSpec>>>,
    /// `proxy_intercept_errors`: upstream responses of 300 and above with
    /// an `error_page` get that page. Default off.
    pub proxy_intercept_errors: Option<bool>,
    /// `recursive_error_pages`: a page's own errors get their pages too.
    /// Default off.
    pub recursive_error_pages: Option<bool>,
    /// `client_body_buffer_size` in bytes. Default 16k.
    pub client_body_buffer_size: Option<u64>,
    /// `resolver`: the DNS servers names of a `proxy_pass` with variables
    /// are resolved with, at request time.
    pub resolver: Option<Spanned<crate::upstream::ResolverSpec>>,
    /// `resolver_timeout`. Default 30 s.
    pub resolver_timeout: Option<Duration>,
    /// `send_timeout`: how long a write may wait for the client (a
    /// listener's default server). Default 60 s.
    pub send_timeout: Option<Duration>,
    /// `allow` / `deny` rules in order; a level with any replaces the
    /// inherited list, as nginx.
    pub access: Option<Vec<AccessRuleConfig>>,
    /// `set_real_ip_from`: trusted proxies (addresses, CIDR, `unix:`;
    /// checked when read); a level with any replaces the inherited list.
    pub set_real_ip_from: Option<Vec<Spanned<String>>>,
    /// `real_ip_header`. Default `X-Real-IP`.
    pub real_ip_header: Option<Spanned<String>>,
    /// `real_ip_recursive`. Default off.
    pub real_ip_recursive: Option<bool>,
    /// `auth_basic`: the realm, or off. A password is asked for only with
    /// `auth_basic_user_file` too (both inherited apart), as nginx.
    pub auth_basic: Option<Spanned<AuthBasic>>,
    /// `auth_basic_user_file`: an htpasswd file.
    pub auth_basic_user_file: Option<Spanned<String>>,
    /// `satisfy`. Default all.
    pub satisfy: Option<crate::access::Satisfy>,
    /// `auth_request uri | off`.
    pub auth_request: Option<Spanned<AuthRequestConfig>>,
    /// `auth_request_set $name value`s; a level with any replaces the
    /// inherited ones.
    pub auth_request_set: Option<Vec<AuthRequestSetConfig>>,
    /// `limit_req`s; a level with any replaces the inherited ones.
    pub limit_req: Option<Vec<LimitReqConfig>>,
    /// `limit_req_status`. Default 503.
    pub limit_req_status: Option<u16>,
    /// `limit_req_dry_run`. Default off.
    pub limit_req_dry_run: Option<bool>,
    /// `limit_req_log_level`. Default error.
    pub limit_req_log_level: Option<super::ErrorLogLevel>,
    /// `gzip`. Default off.
    pub gzip: Option<bool>,
    /// `sub_filter string replacement` pairs; a level with any replaces
    /// the inherited ones.
    pub sub_filter: Option<Vec<Spanned<(String, String)>>>,
    /// `sub_filter_once`. Default on.
    pub sub_filter_once: Option<bool>,
    /// `sub_filter_types` (besides `text/html`; `*` is any).
    pub sub_filter_types: Option<Vec<String>>,
    /// `sub_filter_last_modified`. Default off.
    pub sub_filter_last_modified: Option<bool>,
    /// `gzip_types` (besides `text/html`; `*` is any). Default none.
    pub gzip_types: Option<Vec<String>>,
    /// `gzip_min_length`. Default 20.
    pub gzip_min_length: Option<u64>,
    /// `gzip_comp_level`, 1 to 9. Default 1.
    pub gzip_comp_level: Option<u32>,
    /// `gzip_vary`. Default off.
    pub gzip_vary: Option<bool>,
    /// `encode` (TOML; Caddy's name): the codings offered, in order of
    /// preference, compression on. Default gzip alone, when `gzip` is on.
    pub encode: Option<Vec<crate::compress::Coding>>,
    /// `gzip_proxied` words. Default `off`.
    pub gzip_proxied: Option<Spanned<Vec<String>>>,
    /// `gzip_disable` regexes (`msie6`, `degradation`).
    pub gzip_disable: Option<Spanned<Vec<String>>>,
    /// `gzip_http_version 1.0` (true) or `1.1`. Default 1.1.
    pub gzip_http10: Option<bool>,
    /// `limit_rate`: response bytes a second; 0 is none. Default 0.
    pub limit_rate: Option<u64>,
    /// `limit_rate_after`: bytes sent before `limit_rate` applies.
    /// Default 0.
    pub limit_rate_after: Option<u64>,
    /// `limit_conn`s; a level with any replaces the inherited ones.
    pub limit_conn: Option<Vec<LimitConnConfig>>,
    /// `limit_conn_status`. Default 503.
    pub limit_conn_status: Option<u16>,
    /// `limit_conn_dry_run`. Default off.
    pub limit_conn_dry_run: Option<bool>,
    /// `limit_conn_log_level`. Default error.
    pub limit_conn_log_level: Option<super::ErrorLogLevel>,
}

/// `auth_request uri | off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequestConfig {
    /// `off`: no subrequest, even where an outer level asks for one.
    Off,
    /// The subrequest's URI (a path, maybe with a query).
    Uri(String),
}

/// `auth_request_set $name value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequestSetConfig {
    /// The variable, without `$`.
    pub name: String,
    /// Its value, with variables (the subrequest's `$upstream_http_*`).
    pub value: String,
    /// Where it was written.
    pub pos: SourcePos,
}

/// `auth_basic "realm" | off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthBasic {
    /// `off`: no password, even where an outer level asks for one.
    Off,
    /// The realm the browser shows.
    Realm(String),
}

/// One `allow` or `deny`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRuleConfig {
    /// Which of the two.
    pub verdict: crate::access::Verdict,
    /// An address, a CIDR, `unix:` or `all` (checked when read).
    pub rule: String,
    /// Where it was written.
    pub pos: SourcePos,
}

/// Which `Upgrade` requests a proxying location tunnels to its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrades {
    /// Every one (TOML's `websocket = true`, the default).
    Always,
    /// None: `Upgrade` is dropped and the request is an ordinary one
    /// (`websocket = false`).
    Off,
    /// As nginx: only where `proxy_set_header` forwards `Upgrade`
    /// (`websocket = "nginx"`).
    WhenForwarded,
}

/// `large_client_header_buffers number size`: a request line or header
/// line must fit in one buffer, a whole head in all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderBuffers {
    /// How many.
    pub number: u32,
    /// Bytes each.
    pub size: u64,
}

impl HeaderBuffers {
    /// `"4 8k"`, as nginx writes it.
    pub fn parse(words: &[&str]) -> Option<HeaderBuffers> {
        let [number, size] = words else {
            return None;
        };
        let number = number.parse().ok().filter(|&n| n > 0)?;
        let size = super::units::parse_size(size).filter(|&s| s > 0)?;
        Some(HeaderBuffers { number, size })
    }
}

/// `access_log path [format]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// The file.
    pub path: String,
    /// A `log_format` name; default `combined`.
    pub format: Option<String>,
    /// Where it was written.
    pub pos: SourcePos,
}

/// `log_format name [escape=default|json|none] 'text'…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormatConfig {
    /// The name `access_log` refers to.
    pub name: String,
    /// `default`, `json` or `none`.
    pub escape: String,
    /// The template, with variables.
    pub format: String,
    /// Where it was written.
    pub pos: SourcePos,
}

impl Settings {
    /// This level's settings with unset ones taken from `parent`.
    pub fn inherit(&self, parent: &Settings) -> Settings {
        fn pick<T: Clone>(own: &Option<T>, parent: &Option<T>) -> Option<T> {
            own.clone().or_else(|| parent.clone())
        }
        Settings {
            proxy_set_header: pick(&self.proxy_set_header, &parent.proxy_set_header),
            add_header: pick(&self.add_header, &parent.add_header),
            expires: pick(&self.expires, &parent.expires),
            server_tokens: pick(&self.server_tokens, &parent.server_tokens),
            proxy_cookie_domain: pick(&self.proxy_cookie_domain, &parent.proxy_cookie_domain),
            proxy_cookie_path: pick(&self.proxy_cookie_path, &parent.proxy_cookie_path),
            proxy_cookie_flags: pick(&self.proxy_cookie_flags, &parent.proxy_cookie_flags),
            proxy_hide_header: pick(&self.proxy_hide_header, &parent.proxy_hide_header),
            proxy_pass_header: pick(&self.proxy_pass_header, &parent.proxy_pass_header),
            proxy_redirect: pick(&self.proxy_redirect, &parent.proxy_redirect),
            client_max_body_size: pick(&self.client_max_body_size, &parent.client_max_body_size),
            proxy_connect_timeout: pick(&self.proxy_connect_timeout, &parent.proxy_connect_timeout),
            proxy_read_timeout: pick(&self.proxy_read_timeout, &parent.proxy_read_timeout),
            proxy_send_timeout: pick(&self.proxy_send_timeout, &parent.proxy_send_timeout),
            proxy_http_version: pick(&self.proxy_http_version, &parent.proxy_http_version),
            client_body_timeout: pick(&self.client_body_timeout, &parent.client_body_timeout),
            client_header_timeout: pick(&self.client_header_timeout, &parent.client_header_timeout),
            keepalive_timeout: pick(&self.keepalive_timeout, &parent.keepalive_timeout),
            keepalive_requests: pick(&self.keepalive_requests, &parent.keepalive_requests),
            keepalive_time: pick(&self.keepalive_time, &parent.keepalive_time),
            root: pick(&self.root, &parent.root),
            alias: self.alias.clone(),
            index: pick(&self.index, &parent.index),
            ssl_certificate: pick(&self.ssl_certificate, &parent.ssl_certificate),
            ssl_certificate_key: pick(&self.ssl_certificate_key, &parent.ssl_certificate_key),
            ssl_protocols: pick(&self.ssl_protocols, &parent.ssl_protocols),
            ssl_ciphers: pick(&self.ssl_ciphers, &parent.ssl_ciphers),
            ssl_prefer_server_ciphers: pick(
                &self.ssl_prefer_server_ciphers,
                &parent.ssl_prefer_server_ciphers,
            ),
            ssl_session_tickets: pick(&self.ssl_session_tickets, &parent.ssl_session_tickets),
            ssl_session_cache: pick(&self.ssl_session_cache, &parent.ssl_session_cache),
            http2: pick(&self.http2, &parent.http2),
            ssl_client_certificate: pick(
                &self.ssl_client_certificate,
                &parent.ssl_client_certificate,
            ),
            ssl_verify_client: pick(&self.ssl_verify_client, &parent.ssl_verify_client),
            proxy_ssl_verify: pick(&self.proxy_ssl_verify, &parent.proxy_ssl_verify),
            proxy_ssl_trusted_certificate: pick(
                &self.proxy_ssl_trusted_certificate,
                &parent.proxy_ssl_trusted_certificate,
            ),
            proxy_ssl_name: pick(&self.proxy_ssl_name, &parent.proxy_ssl_name),
            proxy_ssl_server_name: pick(&self.proxy_ssl_server_name, &parent.proxy_ssl_server_name),
            proxy_ssl_certificate: pick(&self.proxy_ssl_certificate, &parent.proxy_ssl_certificate),
            proxy_ssl_certificate_key: pick(
                &self.proxy_ssl_certificate_key,
                &parent.proxy_ssl_certificate_key,
            ),
            proxy_ssl_session_reuse: pick(
                &self.proxy_ssl_session_reuse,
                &parent.proxy_ssl_session_reuse,
            ),
            access_log: pick(&self.access_log, &parent.access_log),
            proxy_next_upstream: pick(&self.proxy_next_upstream, &parent.proxy_next_upstream),
            proxy_next_upstream_tries: pick(
                &self.proxy_next_upstream_tries,
                &parent.proxy_next_upstream_tries,
            ),
            proxy_next_upstream_timeout: pick(
                &self.proxy_next_upstream_timeout,
                &parent.proxy_next_upstream_timeout,
            ),
            merge_slashes: pick(&self.merge_slashes, &parent.merge_slashes),
            underscores_in_headers: pick(
                &self.underscores_in_headers,
                &parent.underscores_in_headers,
            ),
            ignore_invalid_headers: pick(
                &self.ignore_invalid_headers,
                &parent.ignore_invalid_headers,
            ),
            client_header_buffer_size: pick(
                &self.client_header_buffer_size,
                &parent.client_header_buffer_size,
            ),
            large_client_header_buffers: pick(
                &self.large_client_header_buffers,
                &parent.large_client_header_buffers,
            ),
            websocket: pick(&self.websocket, &parent.websocket),
            send_timeout: pick(&self.send_timeout, &parent.send_timeout),
            resolver: pick(&self.resolver, &parent.resolver),
            resolver_timeout: pick(&self.resolver_timeout, &parent.resolver_timeout),
            access: pick(&self.access, &parent.access),
            set_real_ip_from: pick(&self.set_real_ip_from, &parent.set_real_ip_from),
            real_ip_header: pick(&self.real_ip_header, &parent.real_ip_header),
            real_ip_recursive: pick(&self.real_ip_recursive, &parent.real_ip_recursive),
            auth_basic: pick(&self.auth_basic, &parent.auth_basic),
            auth_basic_user_file: pick(&self.auth_basic_user_file, &parent.auth_basic_user_file),
            satisfy: pick(&self.satisfy, &parent.satisfy),
            auth_request: pick(&self.auth_request, &parent.auth_request),
            auth_request_set: pick(&self.auth_request_set, &parent.auth_request_set),
            limit_req: pick(&self.limit_req, &parent.limit_req),
            limit_req_status: pick(&self.limit_req_status, &parent.limit_req_status),
            limit_req_dry_run: pick(&self.limit_req_dry_run, &parent.limit_req_dry_run),
            limit_req_log_level: pick(&self.limit_req_log_level, &parent.limit_req_log_level),
            gzip: pick(&self.gzip, &parent.gzip),
            gzip_types: pick(&self.gzip_types, &parent.gzip_types),
            sub_filter: pick(&self.sub_filter, &parent.sub_filter),
            sub_filter_once: pick(&self.sub_filter_once, &parent.sub_filter_once),
            sub_filter_types: pick(&self.sub_filter_types, &parent.sub_filter_types),
            sub_filter_last_modified: pick(
                &self.sub_filter_last_modified,
                &parent.sub_filter_last_modified,
            ),
            gzip_min_length: pick(&self.gzip_min_length, &parent.gzip_min_length),
            gzip_comp_level: pick(&self.gzip_comp_level, &parent.gzip_comp_level),
            gzip_vary: pick(&self.gzip_vary, &parent.gzip_vary),
            gzip_proxied: pick(&self.gzip_proxied, &parent.gzip_proxied),
            gzip_disable: pick(&self.gzip_disable, &parent.gzip_disable),
            gzip_http10: pick(&self.gzip_http10, &parent.gzip_http10),
            encode: pick(&self.encode, &parent.encode),
            limit_rate: pick(&self.limit_rate, &parent.limit_rate),
            limit_rate_after: pick(&self.limit_rate_after, &parent.limit_rate_after),
            limit_conn: pick(&self.limit_conn, &parent.limit_conn),
            limit_conn_status: pick(&self.limit_conn_status, &parent.limit_conn_status),
            limit_conn_dry_run: pick(&self.limit_conn_dry_run, &parent.limit_conn_dry_run),
            limit_conn_log_level: pick(&self.limit_conn_log_level, &parent.limit_conn_log_level),
            proxy_request_buffering: pick(
                &self.proxy_request_buffering,
                &parent.proxy_request_buffering,
            ),
            proxy_pass_request_body: pick(
                &self.proxy_pass_request_body,
                &parent.proxy_pass_request_body,
            ),
            proxy_pass_request_headers: pick(
                &self.proxy_pass_request_headers,
                &parent.proxy_pass_request_headers,
            ),
            error_page: pick(&self.error_page, &parent.error_page),
            proxy_intercept_errors: pick(
                &self.proxy_intercept_errors,
                &parent.proxy_intercept_errors,
            ),
            recursive_error_pages: pick(&self.recursive_error_pages, &parent.recursive_error_pages),
            client_body_buffer_size: pick(
                &self.client_body_buffer_size,
                &parent.client_body_buffer_size,
            ),
        }
    }
}

/// `upstream name { server …; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The group's name, used as `proxy_pass http://name`.
    pub name: String,
    /// Its servers.
    pub servers: Vec<UpstreamServerConfig>,
    /// `least_conn`, `ip_hash`, `hash`, `random`; round robin when `None`.
    pub balance: Option<Spanned<BalanceConfig>>,
    /// `keepalive N`: idle connections kept per server. Default 256.
    pub keepalive: Option<u32>,
    /// `keepalive_timeout T`: how long they are kept idle. Default 60 s.
    pub keepalive_timeout: Option<Duration>,
    /// `keepalive_requests N`: requests per connection. Default 1000.
    pub keepalive_requests: Option<u32>,
    /// `keepalive_time T`: how long one connection is used. Default 1 h.
    pub keepalive_time: Option<Duration>,
    /// `health_check …` (rpx): active HTTP probes.
    pub health_check: Option<Spanned<HealthCheckConfig>>,
    /// `resolve_interval T` (rpx): how often server names are resolved
    /// again. Default 10 s.
    pub resolve_interval: Option<Duration>,
    /// `resolve_strict on` (rpx): a server name that does not resolve is an
    /// error at startup, as nginx; by default it is a warning and retried.
    pub resolve_strict: bool,
    /// Where it was written.
    pub pos: SourcePos,
}

impl UpstreamConfig {
    /// A group built in code from `host:port` addresses.
    pub fn new(name: &str, servers: &[&str]) -> Self {
        UpstreamConfig {
            name: name.into(),
            servers: servers
                .iter()
                .map(|s| UpstreamServerConfig::new(s))
                .collect(),
            balance: None,
            keepalive: None,
            keepalive_timeout: None,
            keepalive_requests: None,
            keepalive_time: None,
            health_check: None,
            resolve_interval: None,
            resolve_strict: false,
            pos: SourcePos::code(),
        }
    }
}

/// `server host:port [weight=N] [max_fails=N] [fail_timeout=T] [backup]
/// [down] [max_conns=N]` inside an upstream group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamServerConfig {
    /// `host:port`.
    pub addr: String,
    /// `weight=N`. Default 1.
    pub weight: u32,
    /// `max_fails=N`; 0 disables the accounting. Default 1.
    pub max_fails: u32,
    /// `fail_timeout=T`. Default 10 s.
    pub fail_timeout: Duration,
    /// `backup`.
    pub backup: bool,
    /// `down`.
    pub down: bool,
    /// `max_conns=N`; 0 is unlimited. Default 0.
    pub max_conns: u32,
    /// Where it was written.
    pub pos: SourcePos,
}

impl UpstreamServerConfig {
    /// A server with nginx's defaults.
    pub fn new(addr: &str) -> Self {
        UpstreamServerConfig {
            addr: addr.into(),
            weight: 1,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            backup: false,
            down: false,
            max_conns: 0,
            pos: SourcePos::code(),
        }
    }
}

/// A group's balancing method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalanceConfig {
    /// `least_conn`.
    LeastConn,
    /// `ip_hash`.
    IpHash,
    /// `hash KEY [consistent]`.
    Hash {
        /// The key, with variables.
        key: String,
        /// `consistent`: ketama.
        consistent: bool,
    },
    /// `random [two [least_conn]]`.
    Random {
        /// `two`: the less loaded of two.
        two: bool,
    },
}

/// `health_check [interval=T] [path=/p] [status=200|200-399] [rise=N]
/// [fall=N] [timeout=T] [port=N]` (rpx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// Time between two probes of a server. Default 5 s.
    pub interval: Duration,
    /// The path probed with `GET`. Default `/`.
    pub path: String,
    /// Statuses counted healthy, inclusive. Default 200–399.
    pub status: (u16, u16),
    /// Successes in a row that bring a server back. Default 2.
    pub rise: u32,
    /// Failures in a row that take it out. Default 3.
    pub fall: u32,
    /// How long one probe may take. Default 2 s.
    pub timeout: Duration,
    /// Probe this port instead of the server's.
    pub port: Option<u16>,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            interval: Duration::from_secs(5),
            path: "/".into(),
            status: (200, 399),
            rise: 2,
            fall: 3,
            timeout: Duration::from_secs(2),
            port: None,
        }
    }
}

/// One step of nginx's rewrite module, in config order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewriteStep {
    /// `rewrite regex replacement [flag]`.
    Rewrite(RewriteConfig),
    /// `return code [text]` (inside `if`, or before other steps).
    Return(ReturnConfig),
    /// `if (condition) { steps }`.
    If(IfConfig),
    /// `break`: stop running this level's steps.
    Break,
    /// `set $name value`.
    Set(SetConfig),
}

/// `set $name value`: the variable, known to the whole config (nginx's
/// variables are global), takes `value` when this step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetConfig {
    /// The variable, without `$`.
    pub name: String,
    /// The value, with variables.
    pub value: String,
    /// Where it was written.
    pub pos: SourcePos,
}

/// What a `rewrite` does after replacing the URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteFlag {
    /// No flag: go on with the next step.
    None,
    /// `last`: stop, and search the locations again with the new URI.
    Last,
    /// `break`: stop, and go on in the current location with the new URI.
    Break,
    /// `redirect`: answer 302 with the new URI.
    Redirect,
    /// `permanent`: answer 301 with the new URI.
    Permanent,
}

/// `rewrite regex replacement [flag]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteConfig {
    /// Matched against the (normalised) URI path.
    pub regex: String,
    /// The new URI: `$1`…`$9` captures and variables; one starting with
    /// `http://`, `https://` or `$scheme` redirects.
    pub replacement: String,
    /// What happens next.
    pub flag: RewriteFlag,
    /// Where it was written.
    pub pos: SourcePos,
}

/// `if (condition) { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfConfig {
    /// The condition.
    pub cond: Condition,
    /// The steps run when it holds.
    pub steps: Vec<RewriteStep>,
    /// Where it was written.
    pub pos: SourcePos,
}

/// The `if` conditions rpx evaluates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `(-f path)`, `-d`, `-e`, `-x`, or `!-f` … when `negate`.
    File {
        /// The path, with variables (`$request_filename`).
        path: String,
        /// Which test.
        test: FileTest,
        /// `!-f`.
        negate: bool,
    },
    /// `($var)`: true unless empty or `0`.
    NonEmpty(String),
    /// `($var = text)` / `($var != text)`.
    Equals {
        /// The value with variables.
        left: String,
        /// The text compared with.
        right: String,
        /// `!=`.
        negate: bool,
    },
    /// `($var ~ regex)`, `~*`, `!~`, `!~*`.
    Matches {
        /// The value with variables.
        left: String,
        /// The regex.
        regex: String,
        /// `~*`.
        caseless: bool,
        /// `!~`.
        negate: bool,
    },
}

/// The file tests of `if`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileTest {
    /// `-f`: a regular file.
    File,
    /// `-d`: a directory.
    Dir,
    /// `-e`: a file, directory or symbolic link.
    Exists,
    /// `-x`: an executable file.
    Exec,
}

impl FileTest {
    /// `-f`, `!-d` … as (test, negated).
    pub fn parse(op: &str) -> Option<(FileTest, bool)> {
        let (negate, op) = match op.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, op),
        };
        let test = match op {
            "-f" => FileTest::File,
            "-d" => FileTest::Dir,
            "-e" => FileTest::Exists,
            "-x" => FileTest::Exec,
            _ => return None,
        };
        Some((test, negate))
    }

    /// The operator as written, `!` when `negate`.
    pub fn op(self, negate: bool) -> String {
        let op = match self {
            FileTest::File => "-f",
            FileTest::Dir => "-d",
            FileTest::Exists => "-e",
            FileTest::Exec => "-x",
        };
        if negate {
            format!("!{op}")
        } else {
            op.into()
        }
    }
}

/// `map $source $name { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapConfig {
    /// The value looked up, with variables (usually one variable).
    pub source: String,
    /// The variable defined, without `$`.
    pub name: String,
    /// The value when nothing matches; empty by default.
    pub default: Option<String>,
    /// Exact keys and regexes, in config order (exact keys win over regexes,
    /// regexes are tried in order, as nginx).
    pub entries: Vec<MapEntry>,
    /// `hostnames`: keys may be `*.example.com`, `.example.com`, `www.example.*`.
    pub hostnames: bool,
    /// Where it was written.
    pub pos: SourcePos,
}

/// `geo [$address] $name { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoConfig {
    /// The address looked up, with variables; `$remote_addr` when `None`.
    pub source: Option<String>,
    /// The variable defined, without `$`.
    pub name: String,
    /// The block's lines as words (`["10.0.0.0/8", "1"]`, `["ranges"]`).
    pub lines: Vec<Spanned<Vec<String>>>,
    /// Where it was written.
    pub pos: SourcePos,
}

/// `split_clients string $name { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitClientsConfig {
    /// The string hashed, with variables.
    pub source: String,
    /// The variable defined, without `$`.
    pub name: String,
    /// `(percent or "*", value)` in order.
    pub parts: Vec<(String, String)>,
    /// Where it was written.
    pub pos: SourcePos,
}

/// One `key value;` line of a `map`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    /// What is matched.
    pub key: MapKey,
    /// The value, with variables.
    pub value: String,
    /// Where it was written.
    pub pos: SourcePos,
}

/// A `map` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapKey {
    /// Exact text (`''` is the empty value).
    Exact(String),
    /// `~regex` or `~*regex`.
    Regex {
        /// The pattern.
        pattern: String,
        /// `~*`.
        caseless: bool,
    },
}
