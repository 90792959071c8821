//! `map $source $name { … }`: a variable whose value is looked up from
//! another, compiled once (hash for exact keys, regexes in order).

use std::collections::HashMap;
use std::sync::Arc;

use crate::pattern::{Pattern, PatternError};

use super::{Template, VarCtx};

/// A `map` key as the builder receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapKeySpec {
    /// Exact text.
    Exact(String),
    /// A regex, optionally case-insensitive.
    Regex {
        /// The pattern.
        pattern: String,
        /// `~*`.
        caseless: bool,
    },
}

/// A compiled `map`.
///
/// ```
/// use rpx_core::vars::{MapKeySpec, MapVar, Template, Var, VarCtx};
/// let map = MapVar::new(
///     Template::parse("$http_upgrade").unwrap(),
///     Template::parse("upgrade").unwrap(),
///     vec![(MapKeySpec::Exact(String::new()), Template::parse("close").unwrap())],
/// ).unwrap();
/// let var = Var::Map(std::sync::Arc::new(map));
/// # let _ = var;
/// ```
#[derive(Debug)]
pub struct MapVar {
    source: Template,
    /// Lower-cased: nginx's map compares strings case-insensitively.
    exact: HashMap<Box<str>, Template>,
    /// `hostnames`: `*.example.com` and `.example.com` as `.example.com`.
    leading: HashMap<Box<str>, Template>,
    /// `hostnames`: `www.example.*` as `www.example.`.
    trailing: HashMap<Box<str>, Template>,
    hostnames: bool,
    regexes: Vec<(Pattern, Template)>,
    default: Template,
}

impl MapVar {
    /// Compiles a map: exact keys win, then regexes in order, then `default`.
    ///
    /// # Errors
    /// A regex that does not compile.
    pub fn new(
        source: Template,
        default: Template,
        entries: Vec<(MapKeySpec, Template)>,
    ) -> Result<Self, PatternError> {
        Self::build(source, default, entries, false)
    }

    /// [`MapVar::new`] with nginx's `hostnames`: keys may be
    /// `*.example.com`, `.example.com` (the name and its subdomains) and
    /// `www.example.*`; after exact keys, the longest leading mask wins,
    /// then the longest trailing one, then regexes. A final dot of the
    /// value is ignored.
    ///
    /// # Errors
    /// A regex that does not compile.
    pub fn with_hostnames(
        source: Template,
        default: Template,
        entries: Vec<(MapKeySpec, Template)>,
    ) -> Result<Self, PatternError> {
        Self::build(source, default, entries, true)
    }

    fn build(
        source: Template,
        default: Template,
        entries: Vec<(MapKeySpec, Template)>,
        hostnames: bool,
    ) -> Result<Self, PatternError> {
        let mut exact = HashMap::new();
        let mut leading = HashMap::new();
        let mut trailing = HashMap::new();
        let mut regexes = Vec::new();
        for (key, value) in entries {
            match key {
                MapKeySpec::Exact(k) => {
                    let k = k.to_ascii_lowercase();
                    // nginx keeps the first of duplicate keys.
                    if hostnames {
                        if let Some(rest) = k.strip_prefix('*') {
                            leading.entry(rest.into()).or_insert(value);
                            continue;
                        }
                        if let Some(name) = k.strip_prefix('.') {
                            exact.entry(name.into()).or_insert(value.clone());
                            leading.entry(k.as_str().into()).or_insert(value);
                            continue;
                        }
                        if let Some(rest) = k.strip_suffix('*') {
                            trailing.entry(rest.into()).or_insert(value);
                            continue;
                        }
                    }
                    exact.entry(k.into_boxed_str()).or_insert(value);
                }
                MapKeySpec::Regex { pattern, caseless } => {
                    regexes.push((Pattern::new(&pattern, caseless)?, value));
                }
            }
        }
        Ok(MapVar {
            source,
            exact,
            leading,
            trailing,
            hostnames,
            regexes,
            default,
        })
    }

    /// The value of a string key: exact, then (with `hostnames`) the
    /// longest leading mask, then the longest trailing one.
    fn find_string(&self, lower: &str) -> Option<&Template> {
        if let Some(v) = self.exact.get(lower) {
            return Some(v);
        }
        if !self.hostnames {
            return None;
        }
        let leading = lower
            .match_indices('.')
            .find_map(|(i, _)| self.leading.get(&lower[i..]));
        leading.or_else(|| {
            lower
                .rmatch_indices('.')
                .find_map(|(i, _)| self.trailing.get(&lower[..=i]))
        })
    }

    pub(super) fn write(&self, ctx: &VarCtx<'_>, out: &mut String) {
        let key = self.source.render_to_string(ctx);
        // Lower-cased only when it must be: most keys already are.
        let lowered;
        let mut lower = key.as_str();
        if lower.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = key.to_ascii_lowercase();
            lower = &lowered;
        }
        if self.hostnames {
            lower = lower.strip_suffix('.').unwrap_or(lower);
        }
        if let Some(v) = self.find_string(lower) {
            return v.render(ctx, out);
        }
        for (re, v) in &self.regexes {
            // A value may use the key's groups (`$1`, named ones).
            if let Some(c) = super::Captures::of(re, &key) {
                let mut local = *ctx;
                local.captures = Some(&c);
                return v.render(&local, out);
            }
            if re.captures_len() < 2 && re.is_match(&key) {
                return v.render(ctx, out);
            }
        }
        self.default.render(ctx, out);
    }
}

/// Variables a config defines (`map`), by name, for
/// [`Template::parse_in`].
#[derive(Debug, Clone, Default)]
pub struct Scope {
    vars: HashMap<Box<str>, super::Var>,
}

impl Scope {
    /// An empty scope: only built-in variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Defines `$name` as `map`; a later definition replaces an earlier one.
    pub fn define_map(&mut self, name: &str, map: MapVar) {
        self.vars
            .insert(name.into(), super::Var::Map(Arc::new(map)));
    }

    /// Defines `$name` as a `geo` or `split_clients` variable (any
    /// variable the config compiles: a later definition replaces it).
    pub fn define(&mut self, name: &str, var: super::Var) {
        self.vars.insert(name.into(), var);
    }

    /// Defines `name` as a variable the config sets per request
    /// (`auth_request_set`).
    pub fn define_set(&mut self, name: &str) {
        self.vars.insert(name.into(), super::Var::Set(name.into()));
    }

    /// Defines `$document_root`, `$realpath_root` and `$request_filename`
    /// for the level being compiled.
    pub fn define_files(&mut self, files: super::FileRoot) {
        let files = Arc::new(files);
        let v = &mut self.vars;
        v.insert(
            "document_root".into(),
            super::Var::DocumentRoot(files.clone()),
        );
        v.insert(
            "realpath_root".into(),
            super::Var::RealpathRoot(files.clone()),
        );
        v.insert(
            "request_filename".into(),
            super::Var::RequestFilename(files),
        );
    }

    /// The variable a name refers to in this scope.
    pub fn get(&self, name: &str) -> Option<super::Var> {
        self.vars.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{ConnInfo, Scheme};

    #[test]
    fn websocket_idiom_and_regexes() {
        let t = |s: &str| Template::parse(s).unwrap();
        let mut scope = Scope::new();
        scope.define_map(
            "connection_upgrade",
            MapVar::new(
                t("$http_upgrade"),
                t("upgrade"),
                vec![(MapKeySpec::Exact(String::new()), t("close"))],
            )
            .unwrap(),
        );
        let backend = (MapVar::new(
            t("$uri"),
            t("none"),
            vec![
                (
                    MapKeySpec::Regex {
                        pattern: "^/API/".into(),
                        caseless: true,
                    },
                    Template::parse_in("api:$connection_upgrade", &scope).unwrap(),
                ),
                (MapKeySpec::Exact("/x".into()), t("exact")),
            ],
        )
        .unwrap(),);
        scope.define_map("backend", backend.0);
        let conn = ConnInfo::new(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            Scheme::Http,
        );
        let tpl = Template::parse_in("$connection_upgrade|$backend", &scope).unwrap();
        let render = |req: &http::Request<()>| {
            tpl.render_to_string(&VarCtx::new(req, &conn, req.uri().path(), "s"))
        };
        let plain = http::Request::get("/x").body(()).unwrap();
        assert_eq!(render(&plain), "close|exact");
        let ws = http::Request::get("/api/chat")
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        assert_eq!(render(&ws), "upgrade|api:upgrade");
        let other = http::Request::get("/y").body(()).unwrap();
        assert_eq!(render(&other), "close|none");
    }
}
