//! The compiled location table and nginx's matching algorithm.
//!
//! Per level (server, or the inside of a location): an `=` exact match wins
//! at once; otherwise the longest matching prefix is remembered; a `^~`
//! prefix skips the regexes; a prefix with nested locations is searched
//! recursively; then the level's regexes are tried in config order and the
//! first match wins; else the longest prefix stands.

use std::collections::HashMap;

use regex::{RegexSet, RegexSetBuilder};

use crate::pattern::{Pattern, PatternError};

/// How a location matches, as nginx's modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchKind {
    /// `location = /path`.
    Exact,
    /// `location /path`.
    Prefix,
    /// `location ^~ /path`: a prefix that, when it is the longest, skips regexes.
    PrefixNoRegex,
    /// `location ~ regex` (case-sensitive).
    Regex,
    /// `location ~* regex` (case-insensitive).
    RegexCaseless,
    /// `location @name`: never matched by path, only reached by name
    /// (`try_files … @name`). The pattern is the name without `@`.
    Named,
}

impl MatchKind {
    /// The nginx modifier (`""` for a plain prefix).
    pub fn modifier(self) -> &'static str {
        match self {
            MatchKind::Exact => "=",
            MatchKind::Prefix => "",
            MatchKind::PrefixNoRegex => "^~",
            MatchKind::Regex => "~",
            MatchKind::RegexCaseless => "~*",
            MatchKind::Named => "@",
        }
    }

    /// Splits nginx's `location` arguments: `"= /x"`, `"~* \.png$"`, `"/x/"`,
    /// `"@name"`.
    pub fn split(spec: &str) -> (MatchKind, &str) {
        let spec = spec.trim();
        for (m, kind) in [
            ("@", MatchKind::Named),
            ("^~", MatchKind::PrefixNoRegex),
            ("~*", MatchKind::RegexCaseless),
            ("=", MatchKind::Exact),
            ("~", MatchKind::Regex),
        ] {
            if let Some(rest) = spec.strip_prefix(m) {
                return (kind, rest.trim_start());
            }
        }
        (MatchKind::Prefix, spec)
    }

    /// True for `~` and `~*`.
    pub fn is_regex(self) -> bool {
        matches!(self, MatchKind::Regex | MatchKind::RegexCaseless)
    }

    /// The location as nginx writes it: `"/x/"`, `"= /x"`, `"~* \.png$"`, `"@app"`.
    pub fn display(self, pattern: &str) -> String {
        match self {
            MatchKind::Prefix => pattern.to_owned(),
            MatchKind::Named => format!("@{pattern}"),
            k => format!("{} {pattern}", k.modifier()),
        }
    }
}

/// One location as the table builder receives it.
#[derive(Debug, Clone)]
pub struct LocationSpec {
    /// Match kind.
    pub kind: MatchKind,
    /// The path or regex.
    pub pattern: String,
    /// Whether `pattern` minus its final `/` answers with a 301 to `pattern`
    /// (nginx does this for proxying locations ending in `/`).
    pub auto_redirect: bool,
    /// Locations nested inside this one.
    pub nested: Vec<LocationSpec>,
}

impl LocationSpec {
    /// A location of `kind` matching `pattern`.
    pub fn new(kind: MatchKind, pattern: impl Into<String>) -> Self {
        LocationSpec {
            kind,
            pattern: pattern.into(),
            auto_redirect: false,
            nested: Vec::new(),
        }
    }
}

/// Why a table did not build.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A regex did not compile.
    #[error("invalid regex {pattern:?}: {source}")]
    Regex {
        /// The pattern.
        pattern: String,
        /// The compiler's message.
        #[source]
        source: PatternError,
    },
    /// Two locations with the same kind and pattern on one level.
    #[error("duplicate location \"{0}\"")]
    Duplicate(String),
    /// A named location (`location @x`) inside another location; nginx
    /// allows them at the server level only.
    #[error("named location \"@{0}\" can be on the server level only")]
    NamedNested(String),
    /// A location inside a named location.
    #[error("location \"{inner}\" cannot be inside the named location \"@{name}\"")]
    InsideNamed {
        /// The named location, without `@`.
        name: String,
        /// The nested location as written.
        inner: String,
    },
    /// A nested location that its parent can never reach.
    #[error("location \"{inner}\" is outside location \"{outer}\"")]
    NotNested {
        /// The parent's pattern.
        outer: String,
        /// The nested pattern.
        inner: String,
    },
}

/// The result of matching a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationMatch {
    /// Location number `n` (in depth-first config order) handles the request.
    Location(usize),
    /// Answer with a 301 to the path plus `/`; location `n` asked for it.
    AddSlash(usize),
    /// No location matches.
    None,
}

#[derive(Debug)]
struct Prefix {
    name: Box<str>,
    id: usize,
    noregex: bool,
    auto_redirect: bool,
    nested: Option<Box<Level>>,
}

#[derive(Debug)]
struct RegexLoc {
    regex: Pattern,
    id: usize,
    nested: Option<Box<Level>>,
}

#[derive(Debug, Default)]
struct Level {
    exact: HashMap<Box<str>, usize>,
    /// Sorted by length, longest first: the first hit is the longest match.
    prefixes: Vec<Prefix>,
    /// Fast reject for the whole level before trying regexes in order;
    /// none when one of them needs backtracking (each is tried then).
    regex_set: Option<RegexSet>,
    regexes: Vec<RegexLoc>,
}

/// A compiled set of locations.
///
/// ```
/// use rpx_core::location::{LocationMatch, LocationSpec, LocationTable, MatchKind};
/// let t = LocationTable::build(&[
///     LocationSpec::new(MatchKind::Prefix, "/"),
///     LocationSpec::new(MatchKind::PrefixNoRegex, "/images/"),
///     LocationSpec::new(MatchKind::RegexCaseless, r"\.(gif|jpg|jpeg)$"),
/// ]).unwrap();
/// assert_eq!(t.find("/documents/a.jpg"), LocationMatch::Location(2));
/// assert_eq!(t.find("/images/a.jpg"), LocationMatch::Location(1));
/// ```
#[derive(Debug)]
pub struct LocationTable {
    root: Level,
    len: usize,
    /// `location @name` ids by name: reached only through [`LocationTable::named`].
    named: HashMap<Box<str>, usize>,
    /// The regex locations whose regex has groups, by id: a match keeps
    /// its captures for the location's directives.
    capturing: Vec<(usize, Pattern)>,
}

impl LocationTable {
    /// Compiles `specs`; ids are assigned depth-first in config order.
    ///
    /// # Errors
    /// Bad regexes, duplicates and nested locations outside their parent.
    pub fn build(specs: &[LocationSpec]) -> Result<Self, TableError> {
        let mut next = 0;
        let mut named = HashMap::new();
        let mut capturing = Vec::new();
        let root = build_level(specs, None, &mut next, &mut named, &mut capturing)?;
        Ok(LocationTable {
            root,
            len: next,
            named,
            capturing,
        })
    }

    /// The captures of `found` on `path`, when it is a regex location
    /// with groups: `$1`… for the location's directives, as nginx keeps
    /// them. Nothing is looked at for other locations.
    pub fn captures(
        &self,
        found: LocationMatch,
        path: &str,
    ) -> Option<(&Pattern, crate::vars::Captures)> {
        let LocationMatch::Location(id) = found else {
            return None;
        };
        let (_, re) = self.capturing.iter().find(|(i, _)| *i == id)?;
        Some((re, crate::vars::Captures::of(re, path)?))
    }

    /// The id of `location @name` (`name` without `@`).
    pub fn named(&self, name: &str) -> Option<usize> {
        self.named.get(name).copied()
    }

    /// Number of locations (ids are `0..len`).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no locations.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finds the location for a normalised path. Allocates nothing.
    pub fn find(&self, path: &str) -> LocationMatch {
        let mut found = LocationMatch::None;
        find_in(&self.root, path, &mut found);
        found
    }
}

/// nginx's `ngx_http_core_find_location` outcome at one level.
#[derive(PartialEq, Eq)]
enum Step {
    /// Final (exact match, regex match, or add-slash redirect).
    Done,
    /// A prefix matched; a regex may still override it.
    Prefix,
    /// Nothing matched at this level.
    Declined,
}

fn find_in(level: &Level, path: &str, found: &mut LocationMatch) -> Step {
    if let Some(&id) = level.exact.get(path) {
        *found = LocationMatch::Location(id);
        return Step::Done;
    }
    let mut step = Step::Declined;
    let mut noregex = false;
    let longest = level.prefixes.iter().find(|p| path.starts_with(&*p.name));
    let exact_len_hit = longest.is_some_and(|p| p.name.len() == path.len());
    if !exact_len_hit {
        // `/x` with a proxying `location /x/` → 301 to `/x/`, ahead of shorter
        // prefixes and of regexes, as nginx's static tree walk does.
        if let Some(p) = level.prefixes.iter().find(|p| {
            p.auto_redirect
                && p.name.len() == path.len() + 1
                && p.name.ends_with('/')
                && p.name.starts_with(path)
        }) {
            *found = LocationMatch::AddSlash(p.id);
            return Step::Done;
        }
    }
    if let Some(p) = longest {
        *found = LocationMatch::Location(p.id);
        step = Step::Prefix;
        noregex = p.noregex;
        if let Some(nested) = &p.nested {
            if find_in(nested, path, found) == Step::Done {
                return Step::Done;
            }
        }
    }
    if !noregex {
        let maybe = level
            .regex_set
            .as_ref()
            .is_none_or(|set| set.is_match(path));
        if maybe && !level.regexes.is_empty() {
            {
                if let Some(r) = level.regexes.iter().find(|r| r.regex.is_match(path)) {
                    *found = LocationMatch::Location(r.id);
                    if let Some(nested) = &r.nested {
                        find_in(nested, path, found);
                    }
                    return Step::Done;
                }
            }
        }
    }
    step
}

fn build_level(
    specs: &[LocationSpec],
    parent: Option<&LocationSpec>,
    next: &mut usize,
    named: &mut HashMap<Box<str>, usize>,
    capturing: &mut Vec<(usize, Pattern)>,
) -> Result<Level, TableError> {
    let mut level = Level::default();
    let mut patterns = Vec::new();
    for spec in specs {
        let id = *next;
        *next += 1;
        if spec.kind == MatchKind::Named {
            if parent.is_some() {
                return Err(TableError::NamedNested(spec.pattern.clone()));
            }
            if named.insert(spec.pattern.as_str().into(), id).is_some() {
                return Err(TableError::Duplicate(format!("@{}", spec.pattern)));
            }
            // nginx rejects locations inside a named one too.
            if let Some(inner) = spec.nested.first() {
                return Err(TableError::InsideNamed {
                    name: spec.pattern.clone(),
                    inner: inner.kind.display(&inner.pattern),
                });
            }
            continue;
        }
        if let Some(outer) = parent.filter(|o| !o.kind.is_regex() && !spec.kind.is_regex()) {
            if !spec.pattern.starts_with(&outer.pattern) {
                return Err(TableError::NotNested {
                    outer: outer.pattern.clone(),
                    inner: spec.pattern.clone(),
                });
            }
        }
        let nested = if spec.nested.is_empty() {
            None
        } else {
            Some(Box::new(build_level(
                &spec.nested,
                Some(spec),
                next,
                named,
                capturing,
            )?))
        };
        let dup = || TableError::Duplicate(format!("{} {}", spec.kind.modifier(), spec.pattern));
        match spec.kind {
            MatchKind::Exact => {
                if level
                    .exact
                    .insert(spec.pattern.as_str().into(), id)
                    .is_some()
                {
                    return Err(dup());
                }
            }
            MatchKind::Prefix | MatchKind::PrefixNoRegex => {
                if level.prefixes.iter().any(|p| *p.name == *spec.pattern) {
                    return Err(dup());
                }
                level.prefixes.push(Prefix {
                    name: spec.pattern.as_str().into(),
                    id,
                    noregex: spec.kind == MatchKind::PrefixNoRegex,
                    auto_redirect: spec.auto_redirect,
                    nested,
                });
            }
            // Stored in `named` above, never matched by path.
            MatchKind::Named => {}
            MatchKind::Regex | MatchKind::RegexCaseless => {
                let caseless = spec.kind == MatchKind::RegexCaseless;
                let regex =
                    Pattern::new(&spec.pattern, caseless).map_err(|source| TableError::Regex {
                        pattern: spec.pattern.clone(),
                        source,
                    })?;
                patterns.push((spec.pattern.clone(), caseless));
                if regex.captures_len() > 1 {
                    capturing.push((id, regex.clone()));
                }
                level.regexes.push(RegexLoc { regex, id, nested });
            }
        }
    }
    // Stable sort: equal lengths cannot both match one path unless equal,
    // and duplicates were rejected above.
    level
        .prefixes
        .sort_by_key(|p| std::cmp::Reverse(p.name.len()));
    let all_linear = level.regexes.iter().all(|r| r.regex.linear().is_some());
    if !patterns.is_empty() && all_linear {
        let set = RegexSetBuilder::new(patterns.iter().map(|(p, caseless)| {
            if *caseless {
                format!("(?i:{p})")
            } else {
                p.clone()
            }
        }))
        .build();
        // A set too large to build only costs the fast reject.
        level.regex_set = set.ok();
    }
    Ok(level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use LocationMatch::{AddSlash, Location, None as NoMatch};

    fn spec(s: &str) -> LocationSpec {
        let (kind, pattern) = MatchKind::split(s);
        LocationSpec::new(kind, pattern)
    }

    /// nginx's own documentation example (ngx_http_core_module, `location`).
    fn nginx_doc_table() -> LocationTable {
        LocationTable::build(&[
            spec("= /"),                   // A
            spec("/"),                     // B
            spec("/documents/"),           // C
            spec("^~ /images/"),           // D
            spec(r"~* \.(gif|jpg|jpeg)$"), // E
        ])
        .unwrap()
    }

    #[test]
    fn nginx_documented_examples() {
        let t = nginx_doc_table();
        assert_eq!(t.find("/"), Location(0));
        assert_eq!(t.find("/index.html"), Location(1));
        assert_eq!(t.find("/documents/document.html"), Location(2));
        assert_eq!(t.find("/images/1.gif"), Location(3));
        assert_eq!(t.find("/documents/1.jpg"), Location(4));
        assert_eq!(t.find("/DOCUMENTS/1.JPG"), Location(4));
    }

    #[test]
    fn table_of_cases() {
        let t = LocationTable::build(&[
            spec("/"),                          // 0
            spec("/api/"),                      // 1
            spec("/api/v2/"),                   // 2
            spec("= /api/v2/health"),           // 3
            spec("^~ /static/"),                // 4
            spec(r"~ \.php$"),                  // 5
            spec(r"~* \.(png|JPG)$"),           // 6
            spec(r"~ ^/api/v1/(users|groups)"), // 7
            spec("/exact-prefix"),              // 8
            spec("^~ /static/raw/"),            // 9
            spec("= /login"),                   // 10
            spec(r"~ /login"),                  // 11
        ])
        .unwrap();
        let cases: &[(&str, LocationMatch)] = &[
            ("/", Location(0)),
            ("/anything", Location(0)),
            ("/api", Location(0)),
            ("/api/", Location(1)),
            ("/api/x", Location(1)),
            ("/api/v2/", Location(2)),
            ("/api/v2/items", Location(2)),
            ("/api/v2/health", Location(3)),
            ("/api/v2/health/", Location(2)),
            ("/api/v2/x.php", Location(5)),
            ("/static/a.php", Location(4)),
            ("/static/a.png", Location(4)),
            ("/static/raw/a.php", Location(9)),
            ("/img/a.PNG", Location(6)),
            ("/img/a.jpg", Location(6)),
            ("/img/a.Php", Location(0)),
            ("/api/v1/users/7", Location(7)),
            ("/api/v1/users.php", Location(5)),
            ("/api/v1/other", Location(1)),
            ("/exact-prefix", Location(8)),
            ("/exact-prefixes", Location(8)),
            ("/login", Location(10)),
            ("/login/x", Location(11)),
            ("/x/login", Location(11)),
        ];
        for (path, want) in cases {
            assert_eq!(t.find(path), *want, "path {path}");
        }
    }

    #[test]
    fn no_root_location_means_no_match() {
        let t = LocationTable::build(&[spec("/a/"), spec("= /b")]).unwrap();
        assert_eq!(t.find("/c"), NoMatch);
        assert_eq!(t.find("/b/"), NoMatch);
        assert_eq!(t.find("/a/x"), Location(0));
    }

    #[test]
    fn add_slash_redirect() {
        let mut app = spec("/app/");
        app.auto_redirect = true;
        let t = LocationTable::build(&[spec("/"), app, spec(r"~ ^/ap")]).unwrap();
        // The redirect is final: the regex is not consulted for `/app`...
        assert_eq!(t.find("/app"), AddSlash(1));
        // ...but `/app/` is a plain prefix match, which a regex overrides.
        assert_eq!(t.find("/app/"), Location(2));
        assert_eq!(t.find("/apx"), Location(2));
        assert_eq!(t.find("/b"), Location(0));
        // An exact location for /app wins over the redirect.
        let mut app = spec("/app/");
        app.auto_redirect = true;
        let t = LocationTable::build(&[app, spec("= /app")]).unwrap();
        assert_eq!(t.find("/app"), Location(1));
        // A prefix equal to the path also wins.
        let mut app = spec("/app/");
        app.auto_redirect = true;
        let t = LocationTable::build(&[app, spec("/app")]).unwrap();
        assert_eq!(t.find("/app"), Location(1));
    }

    #[test]
    fn nested_locations() {
        let mut outer = spec("/files/");
        outer.nested = vec![spec("/files/private/"), spec(r"~ \.txt$")];
        let t = LocationTable::build(&[spec("/"), outer, spec(r"~ \.(txt|md)$")]).unwrap();
        // ids: / = 0, /files/ = 1, /files/private/ = 2, inner \.txt$ = 3, outer regex = 4
        assert_eq!(t.find("/files/a"), Location(1));
        assert_eq!(t.find("/files/private/a"), Location(2));
        assert_eq!(t.find("/files/a.txt"), Location(3));
        assert_eq!(t.find("/files/a.md"), Location(4));
        assert_eq!(t.find("/other/a.txt"), Location(4));
        let mut bad = spec("/a/");
        bad.nested = vec![spec("/b/")];
        assert!(matches!(
            LocationTable::build(&[bad]),
            Err(TableError::NotNested { .. })
        ));
    }

    #[test]
    fn named_locations_are_never_matched_by_path() {
        let t = LocationTable::build(&[spec("@app"), spec("/"), spec("~ app")]).unwrap();
        assert_eq!(t.named("app"), Some(0));
        assert_eq!(t.named("other"), None);
        assert_eq!(t.find("/@app"), Location(2));
        assert_eq!(t.find("@app"), Location(2));
        assert_eq!(t.find("/x"), Location(1));
        let t = LocationTable::build(&[spec("@app")]).unwrap();
        assert_eq!(t.find("/"), NoMatch);
        assert_eq!(t.len(), 1);
        assert!(matches!(
            LocationTable::build(&[spec("@a"), spec("@a")]),
            Err(TableError::Duplicate(d)) if d == "@a"
        ));
        let mut outer = spec("/x/");
        outer.nested = vec![spec("@a")];
        assert!(matches!(
            LocationTable::build(&[outer]),
            Err(TableError::NamedNested(_))
        ));
        let mut named = spec("@a");
        named.nested = vec![spec("/x/")];
        assert_eq!(
            LocationTable::build(&[named]).unwrap_err().to_string(),
            "location \"/x/\" cannot be inside the named location \"@a\""
        );
    }

    #[test]
    fn build_errors() {
        assert!(matches!(
            LocationTable::build(&[spec("~ ([a-z]")]),
            Err(TableError::Regex { .. })
        ));
        assert!(matches!(
            LocationTable::build(&[spec("/a"), spec("/a")]),
            Err(TableError::Duplicate(_))
        ));
    }

    #[test]
    fn split_modifiers() {
        assert_eq!(MatchKind::split("= /x"), (MatchKind::Exact, "/x"));
        assert_eq!(MatchKind::split("=/x"), (MatchKind::Exact, "/x"));
        assert_eq!(
            MatchKind::split("^~ /s/"),
            (MatchKind::PrefixNoRegex, "/s/")
        );
        assert_eq!(
            MatchKind::split(r"~* \.png$"),
            (MatchKind::RegexCaseless, r"\.png$")
        );
        assert_eq!(MatchKind::split(r"~\.png$"), (MatchKind::Regex, r"\.png$"));
        assert_eq!(MatchKind::split("/p"), (MatchKind::Prefix, "/p"));
        assert_eq!(MatchKind::split("@app"), (MatchKind::Named, "app"));
        assert_eq!(MatchKind::Named.display("app"), "@app");
        assert_eq!(MatchKind::RegexCaseless.display("x"), "~* x");
    }
}
