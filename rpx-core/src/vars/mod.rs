//! nginx-style variables (`$host`, `$http_x_real_ip`, `${scheme}`…), compiled
//! once into segments and rendered per request without parsing.

mod captures;
pub mod geo;
mod map;
pub mod split_clients;

use std::fmt::Write as _;
use std::sync::Arc;

use http::{header, HeaderMap, HeaderName, Method, Uri, Version};

use crate::conn::ConnInfo;
use crate::tls::TlsInfo;

pub use captures::Captures;
pub use map::{MapKeySpec, MapVar, Scope};

pub use crate::request::OriginalUri;

/// A variable rpx can render.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Var {
    /// `$host`: request host, lower-cased and without port, else the server name.
    Host,
    /// `$http_host`: the `Host` header as sent.
    HttpHost,
    /// `$remote_addr`.
    RemoteAddr,
    /// `$remote_port`.
    RemotePort,
    /// `$realip_remote_addr`: the connection's peer before `real_ip`.
    RealipRemoteAddr,
    /// `$realip_remote_port`.
    RealipRemotePort,
    /// `$proxy_protocol_addr`: the client's address in the connection's
    /// PROXY protocol header; empty without one.
    ProxyProtocolAddr,
    /// `$proxy_protocol_port`: its port (empty when 0, as nginx).
    ProxyProtocolPort,
    /// `$proxy_protocol_server_addr`: the address the client connected to,
    /// from the same header.
    ProxyProtocolServerAddr,
    /// `$proxy_protocol_server_port`.
    ProxyProtocolServerPort,
    /// `$remote_user`: the user of `Authorization: Basic …`, whether or
    /// not a location asks for a password (as nginx).
    RemoteUser,
    /// `$limit_req_status`: `PASSED`, `DELAYED`, `REJECTED`,
    /// `DELAYED_DRY_RUN`, `REJECTED_DRY_RUN`; empty where no limit applied.
    LimitReqStatus,
    /// `$limit_conn_status`: `PASSED`, `REJECTED`, `REJECTED_DRY_RUN`;
    /// empty where no limit applied.
    LimitConnStatus,
    /// `$limit_rate`: the response's bytes a second, `0` when unpaced.
    LimitRate,
    /// `$proxy_add_x_forwarded_for`: the client's `X-Forwarded-For` plus `$remote_addr`.
    ProxyAddXForwardedFor,
    /// `$scheme`.
    Scheme,
    /// `$server_port`.
    ServerPort,
    /// `$server_addr`.
    ServerAddr,
    /// `$server_name`: the first name of the chosen virtual server.
    ServerName,
    /// `$server_protocol`: `HTTP/1.1`, `HTTP/2.0`.
    ServerProtocol,
    /// `$request_uri`: path and query as the client sent them.
    RequestUri,
    /// `$uri` / `$document_uri`: the normalised path.
    Uri,
    /// `$args` / `$query_string`.
    Args,
    /// `$is_args`: `?` when there are arguments.
    IsArgs,
    /// `$request_method`.
    RequestMethod,
    /// `$proxy_host`: `host[:port]` of the `proxy_pass` target.
    ProxyHost,
    /// `$proxy_port`.
    ProxyPort,
    /// `$http_<name>`: a request header, several values joined with `, `.
    Http(HeaderName),
    /// `$arg_<name>`: a query argument.
    Arg(Box<str>),
    /// `$cookie_<name>`: a cookie.
    Cookie(Box<str>),
    /// `$ssl_protocol`: `TLSv1.3`, empty on plain connections.
    SslProtocol,
    /// `$ssl_cipher`.
    SslCipher,
    /// `$ssl_server_name`: the SNI name.
    SslServerName,
    /// `$ssl_client_verify`: `SUCCESS`, `FAILED:reason` or `NONE`.
    SslClientVerify,
    /// `$ssl_client_s_dn`: the client certificate's subject.
    SslClientSDn,
    /// `$ssl_client_escaped_cert`: the client certificate, URL-escaped PEM.
    SslClientEscapedCert,
    /// A `map` variable, compiled once and shared.
    Map(Arc<MapVar>),
    /// A `geo` variable.
    Geo(Arc<geo::Geo>),
    /// A `split_clients` variable.
    Split(Arc<split_clients::SplitClients>),
    /// A variable the config sets per request (`auth_request_set`): its
    /// value from [`SetVars`], empty when unset.
    Set(Arc<str>),
    /// `$upstream_http_<name>`: a header of the response being looked at
    /// (the authorization subrequest's, for `auth_request_set`).
    UpstreamHttp(HeaderName),
    /// `$0`…`$9`: a group of the latest regex match ([`Captures`]).
    Capture(u8),
    /// `$connection`: the connection's serial number.
    Connection,
    /// `$connection_requests`: requests on the connection so far.
    ConnectionRequests,
    /// `$request_id`: 32 hex digits, unique per request and the same
    /// wherever one request renders it (derived, keyed per process, from
    /// the connection and its request count: nothing is stored).
    RequestId,
    /// `$hostname`: the machine's host name.
    Hostname,
    /// `$nginx_version`: rpx answers its own version.
    NginxVersion,
    /// `$content_type`: the request's `Content-Type`.
    ContentType,
    /// `$content_length`: the request's `Content-Length`.
    ContentLength,
    /// `$connections_active`, `_reading`, `_writing`, `_waiting`: the
    /// process's `stub_status` counts now.
    Connections(ConnectionCount),
    /// `$document_root`: the level's `root` or `alias`.
    DocumentRoot(Arc<FileRoot>),
    /// `$realpath_root`: the same with symbolic links resolved.
    RealpathRoot(Arc<FileRoot>),
    /// `$request_filename`: the file `$uri` names below it.
    RequestFilename(Arc<FileRoot>),
}

/// Which `stub_status` count a `$connections_*` variable reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionCount {
    /// `$connections_active`.
    Active,
    /// `$connections_reading`.
    Reading,
    /// `$connections_writing`.
    Writing,
    /// `$connections_waiting`.
    Waiting,
}

/// Where a level's files are, as its templates see it: known when the
/// config is compiled, per location ([`Scope::define_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRoot {
    /// `root` or `alias`, as written (empty without either).
    pub dir: Box<str>,
    /// How a path is joined to it.
    pub join: FileJoin,
}

/// How `$request_filename` is made of [`FileRoot::dir`] and `$uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileJoin {
    /// `root`: the whole path is appended.
    Root,
    /// `alias` of a prefix location: the path after this prefix.
    Alias(Box<str>),
    /// `alias` of a regex location: the alias is the file.
    AliasFile,
}

impl FileRoot {
    /// `$request_filename` of `path`, as nginx makes it.
    fn write_filename(&self, path: &str, out: &mut String) {
        out.push_str(&self.dir);
        match &self.join {
            FileJoin::Root => out.push_str(path),
            FileJoin::Alias(prefix) => out.push_str(path.strip_prefix(&**prefix).unwrap_or(path)),
            FileJoin::AliasFile => {}
        }
    }
}

/// Values the config set on a request (`auth_request_set`), by name.
#[derive(Debug, Clone, Default)]
pub struct SetVars(Vec<(Arc<str>, String)>);

impl SetVars {
    /// Sets `name` to `value`.
    pub fn set(&mut self, name: &Arc<str>, value: String) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.clone(), value)),
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl PartialEq for MapVar {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for MapVar {}

/// Compiled variables compare by identity: one definition is one variable.
macro_rules! same_definition {
    ($($t:ty),*) => {$(
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                std::ptr::eq(self, other)
            }
        }
        impl Eq for $t {}
    )*};
}
same_definition!(geo::Geo, split_clients::SplitClients);

impl Var {
    /// The variable for an nginx name (without `$`), if rpx knows it.
    pub fn from_name(name: &str) -> Option<Var> {
        Some(match name {
            "host" => Var::Host,
            "http_host" => Var::HttpHost,
            "remote_addr" => Var::RemoteAddr,
            "remote_port" => Var::RemotePort,
            "remote_user" => Var::RemoteUser,
            "limit_req_status" => Var::LimitReqStatus,
            "limit_conn_status" => Var::LimitConnStatus,
            "limit_rate" => Var::LimitRate,
            "realip_remote_addr" => Var::RealipRemoteAddr,
            "realip_remote_port" => Var::RealipRemotePort,
            "proxy_protocol_addr" => Var::ProxyProtocolAddr,
            "proxy_protocol_port" => Var::ProxyProtocolPort,
            "proxy_protocol_server_addr" => Var::ProxyProtocolServerAddr,
            "proxy_protocol_server_port" => Var::ProxyProtocolServerPort,
            "proxy_add_x_forwarded_for" => Var::ProxyAddXForwardedFor,
            "scheme" => Var::Scheme,
            "server_port" => Var::ServerPort,
            "server_addr" => Var::ServerAddr,
            "server_name" => Var::ServerName,
            "server_protocol" => Var::ServerProtocol,
            "request_uri" => Var::RequestUri,
            "uri" | "document_uri" => Var::Uri,
            "args" | "query_string" => Var::Args,
            "is_args" => Var::IsArgs,
            "request_method" => Var::RequestMethod,
            "proxy_host" => Var::ProxyHost,
            "proxy_port" => Var::ProxyPort,
            "ssl_protocol" => Var::SslProtocol,
            "ssl_cipher" => Var::SslCipher,
            "ssl_server_name" => Var::SslServerName,
            "ssl_client_verify" => Var::SslClientVerify,
            "ssl_client_s_dn" => Var::SslClientSDn,
            "ssl_client_escaped_cert" => Var::SslClientEscapedCert,
            "connection" => Var::Connection,
            "connection_requests" => Var::ConnectionRequests,
            "request_id" => Var::RequestId,
            "hostname" => Var::Hostname,
            "nginx_version" => Var::NginxVersion,
            "content_type" => Var::ContentType,
            "content_length" => Var::ContentLength,
            "connections_active" => Var::Connections(ConnectionCount::Active),
            "connections_reading" => Var::Connections(ConnectionCount::Reading),
            "connections_writing" => Var::Connections(ConnectionCount::Writing),
            "connections_waiting" => Var::Connections(ConnectionCount::Waiting),
            _ => {
                if let Some(h) = name.strip_prefix("http_") {
                    let h = h.replace('_', "-").to_ascii_lowercase();
                    return HeaderName::from_bytes(h.as_bytes()).ok().map(Var::Http);
                }
                if let Some(a) = name.strip_prefix("arg_").filter(|a| !a.is_empty()) {
                    return Some(Var::Arg(a.into()));
                }
                if let Some(c) = name.strip_prefix("cookie_").filter(|c| !c.is_empty()) {
                    return Some(Var::Cookie(c.into()));
                }
                return None;
            }
        })
    }
}

/// The values of header `name`, joined as nginx joins them (`; ` for
/// cookies, `, ` for the rest).
fn join_values(headers: &HeaderMap, name: &HeaderName, out: &mut String) {
    let mut first = true;
    for v in headers.get_all(name) {
        if let Ok(v) = v.to_str() {
            if !first {
                out.push_str(if name == header::COOKIE { "; " } else { ", " });
            }
            out.push_str(v);
            first = false;
        }
    }
}

/// Why a template did not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `$name` that rpx does not know.
    #[error("unknown variable \"${0}\"")]
    UnknownVariable(String),
    /// `${` without `}` or an empty name.
    #[error("invalid variable name in \"{0}\"")]
    BadSyntax(String),
    /// `$proxy_protocol_tlv_NAME` (nginx 1.23.2): rpx skips the PROXY
    /// protocol header's TLVs.
    #[error(
        "\"${0}\" is not supported: rpx reads the PROXY protocol header's addresses, not its TLVs"
    )]
    ProxyProtocolTlv(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Lit(Box<str>),
    Var(Var),
}

/// A string with variables, compiled once.
///
/// ```
/// use rpx_core::vars::Template;
/// let t = Template::parse("$scheme://$host$request_uri").unwrap();
/// assert!(!t.is_constant());
/// assert_eq!(Template::parse("max-age=63072000").unwrap().as_constant(), Some("max-age=63072000"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Box<[Segment]>,
}

impl Template {
    /// Compiles `src`.
    ///
    /// # Errors
    /// Unknown variables and malformed `${…}`.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        Self::parse_with(src, |_| None)
    }

    /// Compiles `src` with the variables a config defines.
    ///
    /// # Errors
    /// Unknown variables and malformed `${…}`.
    pub fn parse_in(src: &str, scope: &Scope) -> Result<Template, TemplateError> {
        Self::parse_with(src, |n| scope.get(n))
    }

    /// Compiles `src`, asking `extra` first for names the caller defines
    /// (such as `map` results or regex captures).
    ///
    /// # Errors
    /// Unknown variables and malformed `${…}`.
    pub fn parse_with(
        src: &str,
        extra: impl Fn(&str) -> Option<Var>,
    ) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut lit = String::new();
        let mut rest = src;
        while let Some(i) = rest.find('$') {
            lit.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            // `$1`: one digit, as nginx reads it (`$10` is `$1` then `0`).
            if let Some(d) = rest.bytes().next().filter(u8::is_ascii_digit) {
                if !lit.is_empty() {
                    segments.push(Segment::Lit(std::mem::take(&mut lit).into()));
                }
                segments.push(Segment::Var(Var::Capture(d - b'0')));
                rest = &rest[1..];
                continue;
            }
            let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
                let end = braced
                    .find('}')
                    .ok_or_else(|| TemplateError::BadSyntax(src.to_owned()))?;
                (&braced[..end], &braced[end + 1..])
            } else {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            };
            if name.is_empty() {
                // A lone `$` is literal, as in nginx regex replacements.
                lit.push('$');
                continue;
            }
            let var = extra(name)
                .or_else(|| Var::from_name(name))
                .ok_or_else(|| {
                    if name.starts_with("proxy_protocol_tlv_") {
                        TemplateError::ProxyProtocolTlv(name.to_owned())
                    } else {
                        TemplateError::UnknownVariable(name.to_owned())
                    }
                })?;
            if !lit.is_empty() {
                segments.push(Segment::Lit(std::mem::take(&mut lit).into()));
            }
            segments.push(Segment::Var(var));
            rest = after;
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            segments.push(Segment::Lit(lit.into()));
        }
        Ok(Template {
            segments: segments.into(),
        })
    }

    /// True when the template has no variables.
    pub fn is_constant(&self) -> bool {
        self.as_constant().is_some()
    }

    /// The text of a template without variables.
    pub fn as_constant(&self) -> Option<&str> {
        match &*self.segments {
            [] => Some(""),
            [Segment::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Appends the rendered value to `out`.
    pub fn render(&self, ctx: &VarCtx<'_>, out: &mut String) {
        for seg in self.segments.iter() {
            match seg {
                Segment::Lit(s) => out.push_str(s),
                Segment::Var(v) => ctx.write_var(v, out),
            }
        }
    }

    /// Renders into a new string.
    pub fn render_to_string(&self, ctx: &VarCtx<'_>) -> String {
        let mut s = String::new();
        self.render(ctx, &mut s);
        s
    }
}

/// What variables are evaluated against: borrowed parts of one request.
#[derive(Debug, Clone, Copy)]
pub struct VarCtx<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Request URI as received.
    pub uri: &'a Uri,
    /// Request version.
    pub version: Version,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Connection facts.
    pub conn: &'a ConnInfo,
    /// The normalised path (`$uri`).
    pub path: &'a str,
    /// The chosen server's first name.
    pub server_name: &'a str,
    /// `host[:port]` of the proxy target, empty outside `proxy_pass`.
    pub proxy_host: &'a str,
    /// Port of the proxy target.
    pub proxy_port: u16,
    /// TLS facts of the connection, if it is TLS.
    pub tls: Option<&'a TlsInfo>,
    /// `$request_uri` when a rewrite changed `uri`.
    pub original_uri: Option<&'a str>,
    /// The connection's peer when `real_ip` replaced the client's address.
    pub realip: Option<std::net::SocketAddr>,
    /// `$limit_req_status`, once `limit_req` decided.
    pub limit_req: Option<&'static str>,
    /// `$limit_conn_status`, once `limit_conn` decided.
    pub limit_conn: Option<&'static str>,
    /// `$limit_rate` where the response is paced.
    pub limit_rate: Option<u64>,
    /// What the config set on the request (`set`, `auth_request_set`,
    /// named captures).
    pub sets: Option<&'a SetVars>,
    /// The latest regex match's groups.
    pub captures: Option<&'a Captures>,
    /// The response `$upstream_http_*` reads, where there is one.
    pub upstream: Option<&'a HeaderMap>,
}

impl<'a> VarCtx<'a> {
    /// A context for `req` with no proxy target.
    pub fn new<B>(
        req: &'a http::Request<B>,
        conn: &'a ConnInfo,
        path: &'a str,
        server_name: &'a str,
    ) -> Self {
        let main = req.extensions().get::<crate::request::MainRequest>();
        VarCtx {
            method: main.map_or(req.method(), |m| &m.method),
            uri: req.uri(),
            version: req.version(),
            headers: req.headers(),
            conn,
            path,
            server_name,
            proxy_host: "",
            proxy_port: 0,
            tls: req
                .extensions()
                .get::<std::sync::Arc<TlsInfo>>()
                .map(|t| &**t),
            original_uri: req
                .extensions()
                .get::<OriginalUri>()
                .map(|o| o.0.as_str())
                .or_else(|| main.map(|m| m.uri.as_str())),
            realip: req
                .extensions()
                .get::<crate::realip::RealipPeer>()
                .map(|p| p.0),
            limit_req: req
                .extensions()
                .get::<crate::limit::rate::RateDecision>()
                .map(|d| d.as_str()),
            limit_conn: req
                .extensions()
                .get::<crate::limit::conn::ConnStatus>()
                .map(|s| s.0),
            sets: req.extensions().get::<SetVars>(),
            captures: req.extensions().get::<Captures>(),
            limit_rate: req
                .extensions()
                .get::<crate::limit::bandwidth::LimitRate>()
                .map(|l| l.0),
            upstream: None,
        }
    }

    fn write_var(&self, var: &Var, out: &mut String) {
        match var {
            Var::Host => match request_host(self.uri, self.headers) {
                Some(h) => push_lowercase(out, h),
                None => out.push_str(self.server_name),
            },
            Var::HttpHost => {
                if let Some(h) = self.headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
                    out.push_str(h);
                } else if let Some(a) = self.uri.authority() {
                    out.push_str(a.as_str());
                }
            }
            Var::RemoteAddr => push_ip(out, self.conn.peer.ip()),
            Var::LimitReqStatus => out.push_str(self.limit_req.unwrap_or_default()),
            Var::Set(name) => {
                if let Some(v) = self.sets.and_then(|s| s.get(name)) {
                    out.push_str(v);
                }
            }
            Var::Capture(n) => {
                if let Some(c) = self.captures {
                    out.push_str(c.get(usize::from(*n)));
                }
            }
            Var::UpstreamHttp(name) => {
                if let Some(h) = self.upstream {
                    join_values(h, name, out);
                }
            }
            Var::Connection => {
                let _ = write!(out, "{}", self.conn.serial);
            }
            Var::ConnectionRequests => {
                let _ = write!(out, "{}", self.conn.requests);
            }
            Var::RequestId => request_id(self.conn, out),
            Var::Hostname => out.push_str(&HOSTNAME),
            Var::NginxVersion => out.push_str(env!("CARGO_PKG_VERSION")),
            Var::ContentType => {
                if let Some(v) = self.headers.get(header::CONTENT_TYPE) {
                    out.push_str(v.to_str().unwrap_or_default());
                }
            }
            Var::ContentLength => {
                if let Some(v) = self.headers.get(header::CONTENT_LENGTH) {
                    out.push_str(v.to_str().unwrap_or_default());
                }
            }
            Var::Connections(which) => {
                use crate::metrics::stub_status as s;
                let n = match which {
                    ConnectionCount::Active => s::connections_active(),
                    ConnectionCount::Reading => s::connections_reading(),
                    ConnectionCount::Writing => s::connections_writing(),
                    ConnectionCount::Waiting => s::connections_waiting(),
                };
                let _ = write!(out, "{n}");
            }
            Var::DocumentRoot(f) => out.push_str(&f.dir),
            Var::RealpathRoot(f) => {
                if let Ok(p) = std::fs::canonicalize(&*f.dir) {
                    out.push_str(&p.to_string_lossy());
                }
            }
            Var::RequestFilename(f) => f.write_filename(self.path, out),
            Var::LimitConnStatus => out.push_str(self.limit_conn.unwrap_or_default()),
            Var::LimitRate => {
                let _ = write!(out, "{}", self.limit_rate.unwrap_or(0));
            }
            Var::RemoteUser => {
                if let Some(c) = crate::access::basic::Credentials::from_headers(self.headers) {
                    out.push_str(&String::from_utf8_lossy(c.user()));
                }
            }
            // Port 0: a real address read without one, shown empty as nginx.
            Var::RemotePort if self.conn.peer.port() == 0 => {}
            Var::RemotePort => push_num(out, self.conn.peer.port()),
            Var::RealipRemoteAddr => push_ip(out, self.realip.unwrap_or(self.conn.peer).ip()),
            Var::RealipRemotePort => push_num(out, self.realip.unwrap_or(self.conn.peer).port()),
            Var::ProxyProtocolAddr | Var::ProxyProtocolServerAddr => {
                if let Some(p) = self.conn.proxied {
                    let a = if *var == Var::ProxyProtocolAddr {
                        p.source
                    } else {
                        p.destination
                    };
                    push_ip(out, a.ip());
                }
            }
            Var::ProxyProtocolPort | Var::ProxyProtocolServerPort => {
                if let Some(p) = self.conn.proxied {
                    let a = if *var == Var::ProxyProtocolPort {
                        p.source
                    } else {
                        p.destination
                    };
                    // Port 0 is empty, as nginx.
                    if a.port() != 0 {
                        push_num(out, a.port());
                    }
                }
            }
            Var::ProxyAddXForwardedFor => {
                for v in self.headers.get_all("x-forwarded-for") {
                    if let Ok(v) = v.to_str() {
                        out.push_str(v);
                        out.push_str(", ");
                    }
                }
                push_ip(out, self.conn.peer.ip());
            }
            Var::Scheme => out.push_str(self.conn.scheme.as_str()),
            Var::ServerPort => push_num(out, self.conn.server_port()),
            Var::ServerAddr => push_ip(out, self.conn.local.ip()),
            Var::ServerName => out.push_str(self.server_name),
            Var::ServerProtocol => out.push_str(match self.version {
                Version::HTTP_09 => "HTTP/0.9",
                Version::HTTP_10 => "HTTP/1.0",
                Version::HTTP_2 => "HTTP/2.0",
                Version::HTTP_3 => "HTTP/3.0",
                _ => "HTTP/1.1",
            }),
            Var::RequestUri if self.original_uri.is_some() => {
                out.push_str(self.original_uri.unwrap_or_default());
            }
            Var::RequestUri => match self.uri.path_and_query() {
                Some(pq) => out.push_str(pq.as_str()),
                None => out.push('/'),
            },
            Var::Uri => out.push_str(self.path),
            Var::Args => out.push_str(self.uri.query().unwrap_or("")),
            Var::IsArgs => {
                if self.uri.query().is_some_and(|q| !q.is_empty()) {
                    out.push('?');
                }
            }
            Var::RequestMethod => out.push_str(self.method.as_str()),
            Var::ProxyHost => out.push_str(self.proxy_host),
            Var::ProxyPort => push_num(out, self.proxy_port),
            Var::Http(name) => join_values(self.headers, name, out),
            Var::Arg(name) => {
                if let Some(v) = query_arg(self.uri.query().unwrap_or(""), name) {
                    out.push_str(v);
                }
            }
            Var::SslProtocol => out.push_str(self.tls.map_or("", |t| t.protocol)),
            Var::SslCipher => out.push_str(self.tls.map_or("", |t| t.cipher)),
            Var::SslServerName => out.push_str(
                self.tls
                    .and_then(|t| t.server_name.as_deref())
                    .unwrap_or(""),
            ),
            Var::SslClientVerify => {
                if let Some(t) = self.tls {
                    out.push_str(&t.client_verify.as_text());
                }
            }
            Var::SslClientSDn => out.push_str(
                self.tls
                    .and_then(|t| t.client_subject.as_deref())
                    .unwrap_or(""),
            ),
            Var::SslClientEscapedCert => out.push_str(
                self.tls
                    .and_then(|t| t.client_cert_escaped.as_deref())
                    .unwrap_or(""),
            ),
            Var::Map(map) => map.write(self, out),
            Var::Geo(geo) => geo.write(self, out),
            Var::Split(split) => split.write(self, out),
            Var::Cookie(name) => {
                if let Some(v) = self
                    .headers
                    .get_all(header::COOKIE)
                    .iter()
                    .find_map(|h| h.to_str().ok().and_then(|h| cookie_value(h, name)))
                {
                    out.push_str(v);
                }
            }
        }
    }
}

/// The machine's name, read once (`$hostname`; nginx asks `gethostname`,
/// which on Linux is this file).
static HOSTNAME: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
});

/// `$request_id`: 128 bits of two keyed SipHashes of the connection's
/// serial and request count, as lowercase hex. Unpredictable without the
/// process's random keys, and the same for one request wherever rendered.
fn request_id(conn: &ConnInfo, out: &mut String) {
    use std::hash::{BuildHasher, Hasher};
    static KEYS: std::sync::LazyLock<std::collections::hash_map::RandomState> =
        std::sync::LazyLock::new(Default::default);
    for half in 0u8..2 {
        let mut h = KEYS.build_hasher();
        h.write_u8(half);
        h.write_u64(conn.serial);
        h.write_u64(conn.requests);
        let _ = write!(out, "{:016x}", h.finish());
    }
}

/// The host of a request without port or a final dot (`Example.com.:80`
/// is `Example.com`, as nginx's `$host` before it is lower-cased): the URI
/// authority (HTTP/2 `:authority`, absolute-form) first, then the `Host`
/// header.
pub fn request_host<'r>(uri: &'r Uri, headers: &'r HeaderMap) -> Option<&'r str> {
    let host = match uri.host() {
        Some(h) => h,
        None => strip_port(headers.get(header::HOST)?.to_str().ok()?),
    };
    Some(host.strip_suffix('.').unwrap_or(host))
}

/// `example.com:8080` → `example.com`, `[::1]:80` → `[::1]`.
pub fn strip_port(hostport: &str) -> &str {
    if hostport.starts_with('[') {
        return match hostport.find(']') {
            Some(end) => &hostport[..=end],
            None => hostport,
        };
    }
    // A byte scan: `rfind(char)` goes through the generic searcher, and
    // this runs for every request's Host.
    match hostport.bytes().rposition(|b| b == b':') {
        Some(i) => &hostport[..i],
        None => hostport,
    }
}

fn query_arg<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

fn cookie_value<'c>(header: &'c str, name: &str) -> Option<&'c str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

fn push_lowercase(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| c.to_ascii_lowercase()));
}

fn push_num(out: &mut String, n: u16) {
    let _ = write!(out, "{n}");
}

fn push_ip(out: &mut String, ip: std::net::IpAddr) {
    let _ = write!(out, "{ip}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Scheme;

    fn render(tpl: &str, req: &http::Request<()>) -> String {
        let conn = ConnInfo::new(
            "10.0.0.7:5555".parse().unwrap(),
            "127.0.0.1:8080".parse().unwrap(),
            "127.0.0.1:8080".parse().unwrap(),
            Scheme::Http,
        );
        let mut ctx = VarCtx::new(req, &conn, "/a/b", "example.com");
        ctx.proxy_host = "backend:3000";
        ctx.proxy_port = 3000;
        Template::parse(tpl).unwrap().render_to_string(&ctx)
    }

    #[test]
    fn renders_every_variable() {
        let req = http::Request::builder()
            .uri("/a/b?x=1&y=2")
            .header("host", "Example.COM:8080")
            .header("x-forwarded-for", "1.2.3.4")
            .header("x-real-thing", "v1")
            .header("cookie", "a=1; sid=abc")
            .body(())
            .unwrap();
        let cases = [
            ("$host", "example.com"),
            ("$http_host", "Example.COM:8080"),
            ("$remote_addr:$remote_port", "10.0.0.7:5555"),
            ("$proxy_add_x_forwarded_for", "1.2.3.4, 10.0.0.7"),
            (
                "$scheme://$server_addr:$server_port",
                "http://127.0.0.1:8080",
            ),
            ("$server_name", "example.com"),
            ("$request_uri", "/a/b?x=1&y=2"),
            ("$uri$is_args$args", "/a/b?x=1&y=2"),
            ("$request_method $server_protocol", "GET HTTP/1.1"),
            ("$proxy_host/$proxy_port", "backend:3000/3000"),
            ("$http_x_real_thing", "v1"),
            ("${arg_y}z", "2z"),
            ("$cookie_sid", "abc"),
            ("$http_missing", ""),
            ("cost: 5$", "cost: 5$"),
        ];
        for (tpl, want) in cases {
            assert_eq!(render(tpl, &req), want, "template {tpl}");
        }
    }

    #[test]
    fn xff_without_client_value_is_remote_addr() {
        let req = http::Request::builder().uri("/").body(()).unwrap();
        assert_eq!(render("$proxy_add_x_forwarded_for", &req), "10.0.0.7");
        assert_eq!(render("$host", &req), "example.com");
        assert_eq!(render("[$is_args]", &req), "[]");
    }

    #[test]
    fn proxy_protocol_addresses() {
        let req = http::Request::builder().uri("/").body(()).unwrap();
        let tpl = "[$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port]";
        assert_eq!(render(tpl, &req), "[   ]", "empty without a header");
        let lo = "127.0.0.1:8080".parse().unwrap();
        let conn =
            ConnInfo::new(lo, lo, lo, Scheme::Http).with_proxied(Some(crate::conn::ProxiedAddrs {
                source: "[2001:db8::7]:51000".parse().unwrap(),
                destination: "192.0.2.1:0".parse().unwrap(),
            }));
        let ctx = VarCtx::new(&req, &conn, "/", "");
        assert_eq!(
            Template::parse(tpl).unwrap().render_to_string(&ctx),
            "[2001:db8::7 51000 192.0.2.1 ]"
        );
        assert_eq!(
            Template::parse("$proxy_protocol_tlv_alpn").unwrap_err(),
            TemplateError::ProxyProtocolTlv("proxy_protocol_tlv_alpn".into())
        );
    }

    #[test]
    fn rejects_unknown_and_malformed() {
        assert_eq!(
            Template::parse("$nope").unwrap_err(),
            TemplateError::UnknownVariable("nope".into())
        );
        assert!(matches!(
            Template::parse("${host"),
            Err(TemplateError::BadSyntax(_))
        ));
    }

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
    }
}
