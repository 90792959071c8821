//! nginx's `gzip` (ngx_http_gzip_module) for proxied and file responses:
//! which responses are compressed, decided as nginx decides (the request:
//! `Accept-Encoding`, `gzip_http_version`, `gzip_disable`, `gzip_proxied`
//! for requests that came through a proxy; the response: status 200, 403
//! or 404, `gzip_types`, `gzip_min_length`, not already encoded), and a
//! body compressed as it streams: each upstream write is flushed, so an
//! event stream arrives event by event.

mod body;
pub mod sub_filter;

pub(crate) use body::GzipBody;

/// A content coding rpx compresses with: nginx's gzip, and beyond it
/// brotli and zstd (Caddy's `encode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `gzip`.
    Gzip,
    /// `br`.
    Br,
    /// `zstd`.
    Zstd,
}

impl Coding {
    /// Its `Content-Encoding` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// From its `Content-Encoding` name.
    pub fn from_name(name: &str) -> Option<Coding> {
        [Coding::Gzip, Coding::Br, Coding::Zstd]
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(name))
    }
}

use http::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
    ETAG, EXPIRES, LAST_MODIFIED, USER_AGENT, VARY, VIA,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use regex::RegexSet;

/// A level's `gzip` settings.
#[derive(Debug, Clone)]
pub struct Gzip {
    level: u32,
    /// `gzip_types` besides `text/html`; `None` is `*`.
    types: Option<Box<[Box<str>]>>,
    min_length: u64,
    vary: bool,
    proxied: Proxied,
    disable: Option<RegexSet>,
    /// `gzip_http_version 1.0`: HTTP/1.0 requests too.
    http10: bool,
    /// The codings offered, in the server's order of preference.
    codings: Box<[Coding]>,
}

/// `gzip_proxied`'s words, for requests with `Via`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Proxied {
    /// `any`.
    pub any: bool,
    /// `expired`.
    pub expired: bool,
    /// `no-cache`.
    pub no_cache: bool,
    /// `no-store`.
    pub no_store: bool,
    /// `private`.
    pub private: bool,
    /// `no_last_modified`.
    pub no_last_modified: bool,
    /// `no_etag`.
    pub no_etag: bool,
    /// `auth`.
    pub auth: bool,
}

impl Proxied {
    /// nginx's words (`off` is none of them).
    ///
    /// # Errors
    /// A word nginx does not know.
    pub fn parse(words: &[&str]) -> Result<Proxied, String> {
        let mut p = Proxied::default();
        for w in words {
            match *w {
                "off" => {}
                "any" => p.any = true,
                "expired" => p.expired = true,
                "no-cache" => p.no_cache = true,
                "no-store" => p.no_store = true,
                "private" => p.private = true,
                "no_last_modified" => p.no_last_modified = true,
                "no_etag" => p.no_etag = true,
                "auth" => p.auth = true,
                other => return Err(format!("invalid value \"{other}\"")),
            }
        }
        Ok(p)
    }
}

/// What the request says about compressing its response.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    /// The coding `Accept-Encoding` takes, if the version and `User-Agent`
    /// pass.
    client: Option<Coding>,
    /// The request came through a proxy (`Via`).
    via: bool,
    authorization: bool,
    head: bool,
}

impl Gzip {
    /// nginx's defaults: level 1, `text/html` only, 20 bytes at least, no
    /// `Vary`, nothing for proxied requests, HTTP/1.1 and up.
    pub fn new() -> Gzip {
        Gzip {
            level: 1,
            types: Some(Box::new([])),
            min_length: 20,
            vary: false,
            proxied: Proxied::default(),
            disable: None,
            http10: false,
            codings: Box::new([Coding::Gzip]),
        }
    }

    /// The codings offered, in order of preference (TOML's `encode`);
    /// gzip alone by default, as nginx. The client's `Accept-Encoding`
    /// chooses: its highest q-value, ties going to the earlier here.
    pub fn codings(mut self, codings: &[Coding]) -> Gzip {
        if !codings.is_empty() {
            self.codings = codings.into();
        }
        self
    }

    /// `gzip_comp_level` (1 to 9).
    pub fn level(mut self, level: u32) -> Gzip {
        self.level = level.clamp(1, 9);
        self
    }

    /// `gzip_types`: `"*"` is any type; `text/html` is always in.
    pub fn types(mut self, types: &[&str]) -> Gzip {
        self.types = if types.contains(&"*") {
            None
        } else {
            Some(
                types
                    .iter()
                    .map(|t| t.to_ascii_lowercase().into())
                    .collect(),
            )
        };
        self
    }

    /// `gzip_min_length`: a response that says it is shorter is left alone.
    pub fn min_length(mut self, bytes: u64) -> Gzip {
        self.min_length = bytes;
        self
    }

    /// `gzip_vary on`.
    pub fn vary(mut self, on: bool) -> Gzip {
        self.vary = on;
        self
    }

    /// `gzip_proxied`.
    pub fn proxied(mut self, proxied: Proxied) -> Gzip {
        self.proxied = proxied;
        self
    }

    /// `gzip_disable`: `User-Agent` regexes (case-insensitive, as nginx);
    /// `msie6` is nginx's own mask for MSIE 4 to 6.
    ///
    /// # Errors
    /// A regex that does not compile.
    pub fn disable(mut self, patterns: &[&str]) -> Result<Gzip, regex::Error> {
        let patterns: Vec<String> = patterns
            .iter()
            .map(|p| match *p {
                "msie6" => r"MSIE [4-6]\.".to_owned(),
                // Network degradation, not a browser: never matches a UA.
                "degradation" => r"[^\s\S]".to_owned(),
                p => format!("(?i){p}"),
            })
            .collect();
        self.disable = (!patterns.is_empty())
            .then(|| RegexSet::new(&patterns))
            .transpose()?;
        Ok(self)
    }

    /// `gzip_http_version 1.0` (else 1.1).
    pub fn http10(mut self, on: bool) -> Gzip {
        self.http10 = on;
        self
    }

    /// The request's side of nginx's decision.
    pub fn ask<B>(&self, req: &Request<B>) -> Asked {
        let h = req.headers();
        let version_ok =
            req.version() >= Version::HTTP_11 || (self.http10 && req.version() == Version::HTTP_10);
        let ua_ok = match (&self.disable, h.get(USER_AGENT)) {
            (Some(set), Some(ua)) => !set.is_match(&String::from_utf8_lossy(ua.as_bytes())),
            _ => true,
        };
        Asked {
            client: (version_ok && ua_ok)
                .then(|| chosen(&self.codings, h))
                .flatten(),
            via: h.contains_key(VIA),
            authorization: h.contains_key(AUTHORIZATION),
            head: req.method() == Method::HEAD,
        }
    }

    /// The response's side: whether `Vary` is due and whether to compress.
    /// Marks the response's headers as nginx does when it compresses.
    pub fn apply<B>(&self, asked: Asked, res: &mut Response<B>) -> bool {
        if !self.compressible(res) {
            return false;
        }
        if self.vary {
            res.headers_mut()
                .append(VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        // A HEAD gets the headers a GET would (as nginx), and no body.
        let Some(coding) = asked.client else {
            return false;
        };
        if asked.via && !self.proxied_ok(asked, res.headers()) {
            return false;
        }
        let h = res.headers_mut();
        h.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.as_str()));
        h.remove(CONTENT_LENGTH);
        // nginx weakens a strong ETag: the bytes are not the same.
        if let Some(tag) = h.get(ETAG).filter(|t| !t.as_bytes().starts_with(b"W/")) {
            if let Ok(weak) = HeaderValue::from_bytes(&[b"W/", tag.as_bytes()].concat()) {
                h.insert(ETAG, weak);
            }
        }
        true
    }

    /// The coding and level to encode a body with, if the request will
    /// get one.
    pub(crate) fn encoding(&self, asked: Asked) -> Option<(Coding, u32)> {
        asked
            .client
            .filter(|_| !asked.head)
            .map(|c| (c, self.level))
    }

    /// nginx's header filter's first test.
    fn compressible<B>(&self, res: &Response<B>) -> bool {
        let status = res.status();
        let h = res.headers();
        let ok_status = matches!(
            status,
            StatusCode::OK | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
        );
        let encoded = h.get(CONTENT_ENCODING).is_some_and(|e| !e.is_empty());
        let short = h
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n < self.min_length);
        ok_status && !encoded && !short && self.type_ok(h)
    }

    fn type_ok(&self, h: &HeaderMap) -> bool {
        let Some(ct) = h.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match &self.types {
            None => true,
            Some(types) => mime == "text/html" || types.iter().any(|t| **t == *mime),
        }
    }

    /// `gzip_proxied` for a request that came through a proxy.
    fn proxied_ok(&self, asked: Asked, h: &HeaderMap) -> bool {
        let p = self.proxied;
        if p.any || (p.auth && asked.authorization) {
            return true;
        }
        if let Some(e) = h.get(EXPIRES) {
            if !p.expired {
                return false;
            }
            let past = e
                .to_str()
                .ok()
                .and_then(|t| httpdate::parse_http_date(t).ok())
                .is_none_or(|t| t <= std::time::SystemTime::now());
            return past;
        }
        if let Some(cc) = h.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()) {
            let has = |w: &str| cc.to_ascii_lowercase().contains(w);
            return (p.no_cache && has("no-cache"))
                || (p.no_store && has("no-store"))
                || (p.private && has("private"));
        }
        (p.no_last_modified && !h.contains_key(LAST_MODIFIED))
            || (p.no_etag && !h.contains_key(ETAG))
    }
}

impl Default for Gzip {
    fn default() -> Self {
        Gzip::new()
    }
}

/// The coding of `offered` that `Accept-Encoding` takes with the highest
/// q-value above 0; ties go to the earlier. (`*` is not read: nginx
/// compresses only for a client that names gzip.)
fn chosen(offered: &[Coding], h: &HeaderMap) -> Option<Coding> {
    let mut best: Option<(Coding, f32)> = None;
    for &c in offered {
        let q = accepted_q(h, c.as_str());
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((c, q));
        }
    }
    best.map(|(c, _)| c)
}

/// The q-value `Accept-Encoding` gives `coding`; 0 if it names it not.
fn accepted_q(h: &HeaderMap, coding: &str) -> f32 {
    for v in h.get_all(ACCEPT_ENCODING) {
        for item in String::from_utf8_lossy(v.as_bytes()).split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .next()
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if name.eq_ignore_ascii_case(coding) {
                return q;
            }
        }
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(accept: &str) -> Request<()> {
        Request::get("/")
            .header(ACCEPT_ENCODING, accept)
            .body(())
            .unwrap()
    }

    #[test]
    fn accept_encoding_is_read_with_q_values() {
        for (ae, ok) in [
            ("gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("GZIP", true),
            ("gzip;q=0", false),
            ("gzip; q=0.000", false),
            ("br", false),
            ("identity", false),
        ] {
            let got = chosen(&[Coding::Gzip], req(ae).headers());
            assert_eq!(got.is_some(), ok, "{ae}");
        }
    }

    #[test]
    fn the_client_s_q_values_choose_ties_go_to_the_server_s_order() {
        let offered = [Coding::Zstd, Coding::Br, Coding::Gzip];
        for (ae, want) in [
            ("gzip, br, zstd", Some(Coding::Zstd)),
            ("gzip, br", Some(Coding::Br)),
            ("gzip;q=1, br;q=0.5", Some(Coding::Gzip)),
            ("zstd;q=0, br;q=0, gzip", Some(Coding::Gzip)),
            ("*", None),
            ("deflate", None),
        ] {
            assert_eq!(chosen(&offered, req(ae).headers()), want, "{ae}");
        }
    }

    #[test]
    fn only_the_types_statuses_and_lengths_nginx_takes() {
        let g = Gzip::new().types(&["application/json"]).vary(true);
        let asked = g.ask(&req("gzip"));
        let res = |status: u16, ct: &str, len: Option<&str>| {
            let mut r = Response::builder().status(status).header(CONTENT_TYPE, ct);
            if let Some(l) = len {
                r = r.header(CONTENT_LENGTH, l);
            }
            r.body(()).unwrap()
        };
        let mut ok = res(200, "application/json; charset=utf-8", Some("500"));
        assert!(g.apply(asked, &mut ok));
        assert_eq!(ok.headers()[CONTENT_ENCODING], "gzip");
        assert!(!ok.headers().contains_key(CONTENT_LENGTH));
        assert_eq!(ok.headers()[VARY], "Accept-Encoding");
        assert!(g.apply(asked, &mut res(404, "text/html", None)));
        assert!(!g.apply(asked, &mut res(500, "text/html", None)));
        assert!(!g.apply(asked, &mut res(200, "image/png", None)));
        assert!(!g.apply(asked, &mut res(200, "text/html", Some("19"))));
        let mut proxied = req("gzip");
        proxied
            .headers_mut()
            .insert(VIA, HeaderValue::from_static("1.1 lb"));
        let mut r = res(200, "text/html", None);
        assert!(!g.apply(g.ask(&proxied), &mut r), "gzip_proxied off");
        assert_eq!(r.headers()[VARY], "Accept-Encoding", "Vary all the same");
    }
}
