//! What the upstream's response headers become: hidden headers and
//! `proxy_redirect` rewriting of `Location` / `Refresh`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::vars::{Template, VarCtx};

/// Headers nginx does not pass from an upstream unless `proxy_pass_header`
/// names them (`Server`/`Date` are replaced by the proxy's own).
pub const HIDDEN_BY_DEFAULT: [&str; 8] = [
    "server",
    "date",
    "x-pad",
    "x-accel-expires",
    "x-accel-redirect",
    "x-accel-limit-rate",
    "x-accel-buffering",
    "x-accel-charset",
];

/// One `proxy_redirect from to`.
#[derive(Debug, Clone)]
pub struct RedirectRule {
    /// Prefix of the upstream's `Location` to replace.
    pub from: String,
    /// What replaces it; may use variables.
    pub to: Template,
}

/// `proxy_redirect` as configured.
#[derive(Debug, Clone, Default)]
pub enum ProxyRedirect {
    /// `proxy_redirect default` (nginx's default): derived from `proxy_pass`.
    #[default]
    Default,
    /// `proxy_redirect off`.
    Off,
    /// Explicit rules, tried in order.
    Rules(Vec<RedirectRule>),
}

/// The compiled response-header program of a proxying location.
#[derive(Debug, Clone, Default)]
pub struct ResponseHeaders {
    hide: Box<[HeaderName]>,
    redirects: Box<[RedirectRule]>,
}

impl ResponseHeaders {
    /// `hide` are the names removed (defaults plus `proxy_hide_header`, less
    /// `proxy_pass_header`); `redirects` the resolved `proxy_redirect` rules.
    pub fn new(hide: Vec<HeaderName>, redirects: Vec<RedirectRule>) -> Self {
        ResponseHeaders {
            hide: hide.into(),
            redirects: redirects.into(),
        }
    }

    /// The default hidden set adjusted by `proxy_hide_header` and `proxy_pass_header`.
    pub fn hidden_set(hide: &[HeaderName], pass: &[HeaderName]) -> Vec<HeaderName> {
        let mut out: Vec<HeaderName> = HIDDEN_BY_DEFAULT
            .iter()
            .map(|n| HeaderName::from_static(n))
            .chain(hide.iter().cloned())
            .filter(|n| !pass.contains(n))
            .collect();
        out.dedup();
        out
    }

    /// Renders the redirect replacements that use variables; call while the
    /// request still exists. Empty (no allocation) when all are fixed text.
    pub fn prepare(&self, ctx: &VarCtx<'_>) -> Vec<String> {
        if self.redirects.iter().all(|r| r.to.is_constant()) {
            return Vec::new();
        }
        self.redirects
            .iter()
            .map(|r| r.to.render_to_string(ctx))
            .collect()
    }

    /// Rewrites an upstream response's headers in place; `prepared` comes
    /// from [`ResponseHeaders::prepare`].
    pub fn apply(&self, prepared: &[String], headers: &mut HeaderMap) {
        // One pass over the response's few names (a hashed removal or
        // lookup per hidden name cost more): which are hidden, by their
        // index in `hide`, and whether a redirect header is there at all.
        let mut hidden = [0usize; 4];
        let mut found = 0;
        let mut overflow = false;
        let mut redirect = false;
        for name in headers.keys() {
            redirect |= name == header::LOCATION || name == header::REFRESH;
            if let Some(i) = self.hide.iter().position(|h| h == name) {
                match hidden.get_mut(found) {
                    Some(slot) => {
                        *slot = i;
                        found += 1;
                    }
                    None => overflow = true,
                }
            }
        }
        if overflow {
            for name in self.hide.iter() {
                headers.remove(name);
            }
        } else {
            for &i in &hidden[..found] {
                headers.remove(&self.hide[i]);
            }
        }
        if !redirect || self.redirects.is_empty() {
            return;
        }
        for name in [header::LOCATION, header::REFRESH] {
            let Some(value) = headers.get(&name).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            if let Some(new) = self.rewrite(prepared, &name, value) {
                if let Ok(v) = HeaderValue::from_str(&new) {
                    headers.insert(name, v);
                }
            }
        }
    }

    fn rewrite(&self, prepared: &[String], name: &HeaderName, value: &str) -> Option<String> {
        // `Refresh: 5; url=http://…` carries the URL after `url=`.
        let (head, url) = if *name == header::REFRESH {
            let i = value.to_ascii_lowercase().find("url=")? + 4;
            value.split_at(i)
        } else {
            ("", value)
        };
        let (i, rule) = self
            .redirects
            .iter()
            .enumerate()
            .find(|(_, r)| url.starts_with(&r.from))?;
        let mut out = String::with_capacity(value.len());
        out.push_str(head);
        match rule.to.as_constant() {
            Some(to) => out.push_str(to),
            None => out.push_str(prepared.get(i).map_or("", String::as_str)),
        }
        out.push_str(&url[rule.from.len()..]);
        Some(out)
    }
}
