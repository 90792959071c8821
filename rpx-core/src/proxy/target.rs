//! Where a `proxy_pass` goes and how the request URI is rewritten for it.

use std::collections::HashMap;
use std::sync::Arc;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::Uri;

use crate::location::MatchKind;
use crate::upstream::{PickInput, Picked, Tried, UpstreamGroup};

/// Why a `proxy_pass` target is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not `http://host[:port][/uri]`.
    #[error("invalid proxy_pass URL {0:?}: expected http://host[:port][/uri]")]
    Url(String),
    /// Variables in the target.
    #[error("variables in proxy_pass are not supported: {0:?}")]
    Variables(String),
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
        if url.contains('$') {
            return Err(TargetError::Variables(url.into()));
        }
        let (scheme, rest) = if let Some(r) = url.strip_prefix("http://") {
            (Scheme::HTTP, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (Scheme::HTTPS, r)
        } else {
            return Err(TargetError::Url(url.into()));
        };
        let (hostport, uri) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
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

    /// The group this target balances over, if any.
    pub fn group(&self) -> Option<&Arc<UpstreamGroup>> {
        match &self.dest {
            Dest::Fixed(_) => None,
            Dest::Group(g) => Some(g),
        }
    }

    /// The server for one attempt: the fixed address (first attempt only),
    /// or a group's pick; `None` when there is none left.
    pub(crate) fn pick(&self, input: &PickInput<'_>, tried: &Tried) -> Option<Pick> {
        match &self.dest {
            Dest::Fixed(a) => Some(Pick::Fixed(a.clone())),
            Dest::Group(g) => {
                g.ensure_started();
                g.pick(input, tried).map(Pick::Group)
            }
        }
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
        let a = t.pick(&PickInput::default(), &Tried::default()).unwrap();
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
            t.pick(&PickInput::default(), &Tried::default())
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
            ProxyTarget::parse("http://$h", &groups),
            Err(TargetError::Variables(_))
        ));
        let t = ProxyTarget::parse("https://backend", &groups).unwrap();
        assert!(t.is_https());
        assert_eq!(t.proxy_port(), 443);
    }
}
