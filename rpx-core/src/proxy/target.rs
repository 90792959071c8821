//! Where a `proxy_pass` goes and how the request URI is rewritten for it.

use std::collections::HashMap;
use std::sync::Arc;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::Uri;

use crate::error::ProxyError;
use crate::location::MatchKind;
use crate::upstream::{PickInput, Picked, Tried, UpstreamGroup};
use crate::vars::{Scope, Template, VarCtx};

/// Why a `proxy_pass` target is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not `http://host[:port][/uri]`.
    #[error("invalid proxy_pass URL {0:?}: expected http://host[:port][/uri]")]
    Url(String),
    /// Variables in the target that do not compile.
    #[error("proxy_pass {0:?}: {1}")]
    Variables(String, crate::vars::TemplateError),
    /// nginx forbids a URI part where the location is a regex.
    #[error("proxy_pass cannot have a URI part in a regex location: {0:?}")]
    UriInRegex(String),
    /// An upstream group without servers.
    #[error("upstream group {0:?} has no servers")]
    EmptyGroup(String),
    /// A bad `host:port` in a group.
    #[error("invalid upstream server address {0:?}")]
    Server(String),
}

#[derive(Debug)]
enum Dest {
    Fixed(Authority),
    Group(Arc<UpstreamGroup>),
    /// `proxy_pass` with variables: the URL is rendered per request; its
    /// host names a group of these, or is resolved.
    Dynamic(Template, HashMap<String, Arc<UpstreamGroup>>),
}

/// Where one request goes when `proxy_pass` has variables, as nginx's
/// `ngx_http_proxy_eval` reads the rendered URL.
#[derive(Debug)]
pub(crate) struct Rendered {
    pub(crate) https: bool,
    pub(crate) dest: RenderedDest,
    /// `$proxy_host`: the host, with the port unless it is the scheme's.
    pub(crate) proxy_host: Box<str>,
    pub(crate) host_header: http::HeaderValue,
    pub(crate) proxy_port: u16,
    /// The URI part: sent as it is, without the client's arguments.
    pub(crate) uri: Option<PathAndQuery>,
}

/// The server a rendered URL names.
#[derive(Debug)]
pub(crate) enum RenderedDest {
    /// `host:port`, an address or a name to resolve.
    Fixed(Authority),
    /// An `upstream {}` block's name, without a port.
    Group(Arc<UpstreamGroup>),
}

/// A compiled `proxy_pass` URL.
#[derive(Debug)]
pub struct ProxyTarget {
    scheme: Scheme,
    dest: Dest,
    /// `$proxy_host`: the host part as written (a group's name).
    proxy_host: Box<str>,
    /// The same, parsed once as the default upstream `Host` header.
    host_header: http::HeaderValue,
    proxy_port: u16,
    /// The URI part, when `proxy_pass` has one (even just `/`).
    uri: Option<Box<str>>,
    /// The URL as written, for `proxy_redirect default`.
    url: Box<str>,
}

impl ProxyTarget {
    /// Parses `http://host[:port][/uri]`; a host without port that names a
    /// group in `groups` targets that group.
    ///
    /// # Errors
    /// See [`TargetError`].
    pub fn parse(
        url: &str,
        groups: &HashMap<String, Arc<UpstreamGroup>>,
    ) -> Result<Self, TargetError> {
        Self::parse_in(url, groups, &Scope::new())
    }

    /// [`ProxyTarget::parse`], where a URL with variables (those of
    /// `scope` too) is rendered per request: `http://$app`,
    /// `$scheme://backend`, `http://127.0.0.1$request_uri`.
    ///
    /// # Errors
    /// See [`TargetError`].
    pub fn parse_in(
        url: &str,
        groups: &HashMap<String, Arc<UpstreamGroup>>,
        scope: &Scope,
    ) -> Result<Self, TargetError> {
        if url.contains('$') {
            return Self::dynamic(url, groups, scope);
        }
        let Some((https, hostport, uri)) = split_url(url) else {
            return Err(TargetError::Url(url.into()));
        };
        let scheme = if https { Scheme::HTTPS } else { Scheme::HTTP };
        if hostport.is_empty() {
            return Err(TargetError::Url(url.into()));
        }
        let authority: Authority = hostport.parse().map_err(|_| TargetError::Url(url.into()))?;
        let dest = match groups.get(hostport) {
            Some(g) if authority.port().is_none() => Dest::Group(g.clone()),
            _ => Dest::Fixed(authority.clone()),
        };
        if let Some(u) = uri {
            PathAndQuery::try_from(u).map_err(|_| TargetError::Url(url.into()))?;
        }
        let host_header =
            http::HeaderValue::from_str(hostport).map_err(|_| TargetError::Url(url.into()))?;
        let default_port = if scheme == Scheme::HTTPS { 443 } else { 80 };
        Ok(ProxyTarget {
            scheme,
            dest,
            host_header,
            proxy_host: hostport.into(),
            proxy_port: authority.port_u16().unwrap_or(default_port),
            uri: uri.map(Into::into),
            url: url.into(),
        })
    }

    fn dynamic(
        url: &str,
        groups: &HashMap<String, Arc<UpstreamGroup>>,
        scope: &Scope,
    ) -> Result<Self, TargetError> {
        let template =
            Template::parse_in(url, scope).map_err(|e| TargetError::Variables(url.into(), e))?;
        // The scheme, when written out; `$scheme://…` decides per request.
        let scheme = if url.starts_with("https://") {
            Scheme::HTTPS
        } else if url.starts_with("http://") || url.starts_with('$') {
            Scheme::HTTP
        } else {
            return Err(TargetError::Url(url.into()));
        };
        Ok(ProxyTarget {
            scheme,
            dest: Dest::Dynamic(template, groups.clone()),
            proxy_host: "".into(),
            host_header: http::HeaderValue::from_static(""),
            proxy_port: 0,
            uri: None,
            url: url.into(),
        })
    }

    /// True when the URL has variables.
    pub fn is_dynamic(&self) -> bool {
        matches!(self.dest, Dest::Dynamic(..))
    }

    /// True when the URL has variables and its scheme is one of them.
    pub(crate) fn scheme_varies(&self) -> bool {
        self.is_dynamic() && self.url.starts_with('$')
    }

    /// The URL of a dynamic target for one request.
    ///
    /// # Errors
    /// The rendered text is not an `http(s)://host[:port][/uri]` URL: a
    /// 500, as nginx answers.
    pub(crate) fn render(&self, ctx: &VarCtx<'_>) -> Result<Option<Rendered>, ProxyError> {
        let Dest::Dynamic(template, groups) = &self.dest else {
            return Ok(None);
        };
        let url = template.render_to_string(ctx);
        let bad = |why: &str| ProxyError::Internal(format!("{why} in \"{url}\"").into());
        let Some((https, hostport, uri)) = split_url(&url) else {
            return Err(bad("invalid URL prefix"));
        };
        let authority: Authority = hostport.parse().map_err(|_| bad("invalid host"))?;
        if authority.host().is_empty() {
            return Err(bad("no host"));
        }
        let default_port = if https { 443 } else { 80 };
        let port = authority.port_u16().unwrap_or(default_port);
        let dest = match groups.get(authority.host()) {
            Some(g) if authority.port().is_none() => RenderedDest::Group(g.clone()),
            _ if authority.port().is_none() => {
                let with_port = format!("{}:{port}", authority.host());
                RenderedDest::Fixed(with_port.parse().map_err(|_| bad("invalid host"))?)
            }
            _ => RenderedDest::Fixed(authority.clone()),
        };
        let proxy_host: Box<str> = if port == default_port {
            authority.host().into()
        } else {
            hostport.into()
        };
        let uri = match uri {
            None | Some("") => None,
            // `http://b?x`: the path `/` is implied, as nginx adds it.
            Some(u) if u.starts_with('?') => Some(uri_part(&format!("/{u}"))),
            Some(u) => Some(uri_part(u)),
        };
        Ok(Some(Rendered {
            https,
            dest,
            host_header: http::HeaderValue::from_str(&proxy_host)
                .map_err(|_| bad("invalid host"))?,
            proxy_host,
            proxy_port: port,
            uri,
        }))
    }

    /// `$proxy_host`.
    pub fn proxy_host(&self) -> &str {
        &self.proxy_host
    }

    /// `$proxy_host` as a header value.
    pub fn host_header(&self) -> &http::HeaderValue {
        &self.host_header
    }

    /// `$proxy_port`.
    pub fn proxy_port(&self) -> u16 {
        self.proxy_port
    }

    /// The URL as written.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True for `https://` targets.
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// True when `proxy_pass` has a URI part.
    pub fn has_uri(&self) -> bool {
        self.uri.is_some()
    }

    /// The group this target balances over, if any (for a URL with
    /// variables, see [`Rendered`]).
    pub fn group(&self) -> Option<&Arc<UpstreamGroup>> {
        match &self.dest {
            Dest::Fixed(_) | Dest::Dynamic(..) => None,
            Dest::Group(g) => Some(g),
        }
    }

    /// The server for one attempt: the fixed address (first attempt only),
    /// or a group's pick; `None` when there is none left. A URL with
    /// variables picks from what `rendered` names.
    pub(crate) fn pick(
        &self,
        rendered: Option<&Rendered>,
        input: &PickInput<'_>,
        tried: &Tried,
    ) -> Option<Pick> {
        let group = match (rendered.map(|r| &r.dest), &self.dest) {
            (Some(RenderedDest::Fixed(a)), _) | (None, Dest::Fixed(a)) => {
                return Some(Pick::Fixed(a.clone()))
            }
            (Some(RenderedDest::Group(g)), _) | (None, Dest::Group(g)) => g,
            (None, Dest::Dynamic(..)) => return None,
        };
        group.ensure_started();
        group.pick(input, tried).map(Pick::Group)
    }

    /// The upstream URI for a request, nginx's rules: without a URI part the
    /// request URI goes as the client sent it; with one, the part of the
    /// normalised path matched by the location is replaced by it; a URI a
    /// `rewrite` changed goes as is either way.
    #[cfg(test)]
    fn upstream_uri(
        &self,
        authority: Authority,
        original: &Uri,
        path: &str,
        location: (MatchKind, &str),
        rewritten: bool,
    ) -> Result<Uri, http::Error> {
        let pq = self.upstream_path(original, path, location, rewritten)?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(authority)
            .path_and_query(pq)
            .build()
    }

    /// The path and query sent upstream; see [`ProxyTarget::upstream_uri`].
    pub(crate) fn upstream_path(
        &self,
        original: &Uri,
        path: &str,
        location: (MatchKind, &str),
        rewritten: bool,
    ) -> Result<PathAndQuery, http::Error> {
        let pq = match &self.uri {
            _ if rewritten => original
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
            None => original
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
            Some(uri) => {
                let rest = match location.0 {
                    MatchKind::Exact => "",
                    _ => path.strip_prefix(location.1).unwrap_or(path),
                };
                // `path` is decoded (`$uri`): escaped again, as nginx does.
                let rest = crate::location::escape_path(rest);
                let mut s = String::with_capacity(uri.len() + rest.len() + 32);
                s.push_str(uri);
                s.push_str(&rest);
                if let Some(q) = original.query() {
                    s.push('?');
                    s.push_str(q);
                }
                PathAndQuery::from_maybe_shared(bytes::Bytes::from(s))?
            }
        };
        Ok(pq)
    }
}

/// `http(s)://host[:port][/uri]` → (https, `host[:port]`, URI part), the
/// scheme in any case, as nginx reads a `proxy_pass` URL.
fn split_url(url: &str) -> Option<(bool, &str, Option<&str>)> {
    let (https, rest) = if let Some(r) = strip_prefix_ci(url, "http://") {
        (false, r)
    } else {
        (true, strip_prefix_ci(url, "https://")?)
    };
    Some(match rest.find(['/', '?']) {
        Some(i) => (https, &rest[..i], Some(&rest[i..])),
        None => (https, rest, None),
    })
}

/// `prefix`, in any case, stripped from `s`.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A rendered URI part as a request target: bytes a request line cannot
/// carry (a space of a decoded `$uri`, say) are percent-escaped.
fn uri_part(u: &str) -> PathAndQuery {
    if let Ok(pq) = PathAndQuery::try_from(u) {
        return pq;
    }
    let mut s = String::with_capacity(u.len() + 16);
    for b in u.bytes() {
        if b.is_ascii_graphic()
            && !matches!(
                b,
                b'"' | b'<' | b'>' | b'`' | b'{' | b'}' | b'|' | b'\\' | b'^'
            )
        {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    PathAndQuery::try_from(s).unwrap_or_else(|_| PathAndQuery::from_static("/"))
}

/// The server of one attempt.
#[derive(Debug)]
pub(crate) enum Pick {
    /// A `proxy_pass` to one address.
    Fixed(Authority),
    /// A group's server, counted active while this lives.
    Group(Picked),
}

impl Pick {
    pub(crate) fn authority(&self) -> &Authority {
        match self {
            Pick::Fixed(a) => a,
            Pick::Group(p) => p.authority(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(pass: &str, location: (MatchKind, &str), req: &str) -> String {
        let t = ProxyTarget::parse(pass, &HashMap::new()).unwrap();
        let original: Uri = req.parse().unwrap();
        let path = crate::location::normalize(original.path()).unwrap();
        let a = t
            .pick(None, &PickInput::default(), &Tried::default())
            .unwrap();
        let uri = t
            .upstream_uri(a.authority().clone(), &original, &path, location, false)
            .unwrap();
        uri.path_and_query().unwrap().to_string()
    }

    #[test]
    fn nginx_uri_rules() {
        use MatchKind::*;
        let cases = [
            // Without a URI part: as the client sent it, even unnormalised.
            ("http://b:1", (Prefix, "/api/"), "/api/x?q=1", "/api/x?q=1"),
            ("http://b:1", (Prefix, "/"), "/a//b/../c", "/a//b/../c"),
            ("http://b:1", (Regex, r"\.php$"), "/x.php", "/x.php"),
            // With one: the location prefix is replaced.
            ("http://b:1/", (Prefix, "/api/"), "/api/x?q=1", "/x?q=1"),
            (
                "http://b:1/v2/",
                (Prefix, "/api/"),
                "/api/users/7",
                "/v2/users/7",
            ),
            ("http://b:1/v2", (Prefix, "/api/"), "/api/users", "/v2users"),
            (
                "http://b:1/v2/",
                (Prefix, "/api"),
                "/api/users",
                "/v2//users",
            ),
            ("http://b:1/", (Prefix, "/api/"), "/api//a/./b", "/a/b"),
            (
                "http://b:1/status",
                (Exact, "/health"),
                "/health?full",
                "/status?full",
            ),
            ("http://b:1/", (Prefix, "/"), "/%7Euser/", "/~user/"),
            // The decoded path, escaped again (nginx's NGX_ESCAPE_URI).
            (
                "http://b:1/zm/",
                (Prefix, "/zm/"),
                "/zm/a%20b%2Fc",
                "/zm/a%20b/c",
            ),
            (
                "http://b:1/",
                (Prefix, "/"),
                "/a%3Fb%23c?q=%2F",
                "/a%3Fb%23c?q=%2F",
            ),
            (
                "http://b:1/",
                (Prefix, "/"),
                "/caf%c3%a9%25",
                "/caf%C3%A9%25",
            ),
            ("http://b:1", (Prefix, "/"), "/a%2fb%20", "/a%2fb%20"),
            (
                "http://b:1/app/",
                (PrefixNoRegex, "/static/"),
                "/static/a.css",
                "/app/a.css",
            ),
        ];
        for (pass, loc, req, want) in cases {
            assert_eq!(rewrite(pass, loc, req), want, "{pass} {loc:?} {req}");
        }
    }

    #[test]
    fn rendered_urls_read_as_nginx_reads_them() {
        let groups: HashMap<_, _> = [(
            "backend".to_string(),
            Arc::new(
                UpstreamGroup::builder("backend")
                    .server(crate::upstream::ServerSpec::new("127.0.0.1:1"))
                    .build()
                    .unwrap(),
            ),
        )]
        .into();
        let render = |url: &str, req: &str| {
            let t = ProxyTarget::parse(url, &groups).unwrap();
            let req = http::Request::get(req)
                .header("host", "h.test")
                .body(())
                .unwrap();
            let conn = crate::conn::conn_info(&req);
            let ctx = VarCtx::new(&req, &conn, req.uri().path(), "s");
            t.render(&ctx).map(|r| {
                let r = r.unwrap();
                let dest = match &r.dest {
                    RenderedDest::Group(g) => format!("group {}", g.name()),
                    RenderedDest::Fixed(a) => a.to_string(),
                };
                let uri = r.uri.map(|u| u.to_string()).unwrap_or_default();
                format!("{} {dest} {} {uri}", r.https, r.proxy_host)
            })
        };
        let ok = |url: &str, req: &str| render(url, req).unwrap();
        assert_eq!(
            ok("http://$arg_b", "/?b=backend"),
            "false group backend backend "
        );
        // With a port, a group's name is a host name.
        assert_eq!(
            ok("http://$arg_b", "/?b=backend:80"),
            "false backend:80 backend "
        );
        assert_eq!(ok("$scheme://$arg_b", "/?b=a:8080"), "false a:8080 a:8080 ");
        assert_eq!(ok("https://$arg_b", "/?b=a:443"), "true a:443 a ");
        assert_eq!(
            ok("http://$host$uri", "/x%20y?q"),
            "false h.test:80 h.test /x%20y"
        );
        assert_eq!(ok("http://$arg_b?x=1", "/?b=a"), "false a:80 a /?x=1");
        assert!(render("$arg_b", "/?b=ftp://a").is_err());
        assert!(render("http://$arg_b", "/").is_err());
    }

    #[test]
    fn parse_errors_and_groups() {
        let groups: HashMap<_, _> = [(
            "backend".to_string(),
            Arc::new(
                UpstreamGroup::builder("backend")
                    .server(crate::upstream::ServerSpec::new("127.0.0.1:1"))
                    .server(crate::upstream::ServerSpec::new("127.0.0.1:2"))
                    .build()
                    .unwrap(),
            ),
        )]
        .into();
        let pick = |t: &ProxyTarget| {
            t.pick(None, &PickInput::default(), &Tried::default())
                .unwrap()
                .authority()
                .to_string()
        };
        let t = ProxyTarget::parse("http://backend", &groups).unwrap();
        assert_eq!(t.proxy_host(), "backend");
        assert_eq!(pick(&t), "127.0.0.1:1");
        assert_eq!(pick(&t), "127.0.0.1:2");
        assert_eq!(pick(&t), "127.0.0.1:1");
        let t = ProxyTarget::parse("http://backend:8080", &groups).unwrap();
        assert_eq!(pick(&t), "backend:8080");
        assert_eq!(t.proxy_port(), 8080);
        assert!(matches!(
            ProxyTarget::parse("ftp://x", &groups),
            Err(TargetError::Url(_))
        ));
        assert!(matches!(
            ProxyTarget::parse("http://", &groups),
            Err(TargetError::Url(_))
        ));
        assert!(matches!(
            ProxyTarget::parse("http://$nonesuch", &groups),
            Err(TargetError::Variables(..))
        ));
        assert!(ProxyTarget::parse("http://$host", &groups)
            .unwrap()
            .is_dynamic());
        assert!(matches!(
            ProxyTarget::parse("ftp://$host", &groups),
            Err(TargetError::Url(_))
        ));
        let t = ProxyTarget::parse("https://backend", &groups).unwrap();
        assert!(t.is_https());
        assert_eq!(t.proxy_port(), 443);
    }
}
