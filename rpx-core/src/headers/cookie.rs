//! nginx's `proxy_cookie_domain`, `proxy_cookie_path` and `proxy_cookie_flags`:
//! rules compiled once that rewrite every `Set-Cookie` of an upstream's
//! response.
//!
//! The work is split as `proxy_redirect`'s is: [`CookieRules::prepare`]
//! renders the variables of the rules while the request exists, and
//! [`CookieRules::apply`] edits the response headers later, when it is gone.
//! A cookie is edited in place: the replaced `domain=` / `path=` values, the
//! flags changed or removed, and the flags added at the end (written as
//! nginx writes them: `; Secure`, `; HttpOnly`, `; SameSite=Strict`) are the
//! only bytes that change.
//!
//! ```
//! use rpx_core::headers::cookie::{CookieFlags, CookieRewrite, CookieRules, PreparedCookies};
//! use rpx_core::vars::Scope;
//!
//! let scope = Scope::new();
//! let rules = CookieRules::new(
//!     vec![CookieRewrite::domain("localhost", "example.org", &scope).unwrap()],
//!     vec![CookieRewrite::path("/two/", "/", &scope).unwrap()],
//!     vec![CookieFlags::parse(&["~", "secure", "samesite=lax"]).unwrap()],
//! );
//! let mut headers = http::HeaderMap::new();
//! headers.insert("set-cookie", "id=1; Domain=localhost; Path=/two/a".parse().unwrap());
//! // No variables in these rules: nothing to prepare.
//! rules.apply(&PreparedCookies::default(), &mut headers);
//! assert_eq!(
//!     headers["set-cookie"],
//!     "id=1; Domain=example.org; Path=/a; Secure; SameSite=Lax"
//! );
//! ```

use std::ops::Range;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue, SET_COOKIE};
use regex::{Regex, RegexBuilder};

use crate::vars::{Scope, Template, TemplateError, VarCtx};

/// Why a rule did not compile.
#[derive(Debug, thiserror::Error)]
pub enum CookieError {
    /// A `~regex` that does not compile.
    #[error("invalid regex {0:?}: {1}")]
    Regex(String, #[source] regex::Error),
    /// A pattern's or replacement's variables.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A flag `proxy_cookie_flags` does not know, or a cookie without flags.
    #[error("invalid parameter \"{0}\"")]
    Parameter(String),
    /// `proxy_cookie_flags` takes a cookie and one to three flags.
    #[error("invalid number of arguments in \"proxy_cookie_flags\" directive")]
    Arguments,
}

/// Text of a rule: fixed, or rendered per request into a slot of
/// [`PreparedCookies`] (numbered by [`CookieRules::new`]).
#[derive(Debug, Clone)]
enum Text {
    Fixed(Box<str>),
    Var(Template, usize),
}

impl Text {
    fn new(template: Template) -> Text {
        match template.as_constant() {
            Some(s) => Text::Fixed(s.into()),
            None => Text::Var(template, 0),
        }
    }

    fn parse(src: &str, scope: &Scope) -> Result<Text, TemplateError> {
        Template::parse_in(src, scope).map(Text::new)
    }

    /// `None` when the request's value was not prepared: the rule then
    /// does not apply, rather than match or write an empty string.
    fn get<'a>(&'a self, prepared: &'a PreparedCookies) -> Option<&'a str> {
        match self {
            Text::Fixed(s) => Some(s),
            Text::Var(_, slot) => prepared.texts.get(*slot).map(String::as_str),
        }
    }
}

/// What a rewrite rule matches the attribute's value with.
#[derive(Debug, Clone)]
enum Matcher {
    /// Literal `proxy_cookie_domain`: the whole value, ignoring ASCII case
    /// and a leading dot (which stays).
    Domain(Text),
    /// Literal `proxy_cookie_path`: a case-sensitive prefix, replaced.
    Prefix(Text),
    /// `~regex`: anywhere in the value; the whole value is replaced.
    Regex(Regex),
}

/// A part of a replacement.
#[derive(Debug, Clone)]
enum Piece {
    Text(Text),
    /// A group of the rule's regex (`$1`, `$name`); empty when it did not take part.
    Capture(usize),
}

/// One `proxy_cookie_domain` / `proxy_cookie_path` rule.
#[derive(Debug, Clone)]
pub struct CookieRewrite {
    matcher: Matcher,
    to: Box<[Piece]>,
}

impl CookieRewrite {
    /// Compiles `proxy_cookie_domain from to`. A literal `from` is compared
    /// with the whole `domain=` value, case-insensitively, a dot in front of
    /// either (and of `to`) ignored as nginx does; `~regex` (always
    /// case-insensitive in nginx; `~*regex` is taken as the same) replaces
    /// the whole value, with `$1`…`$9` and named groups in `to`. Both may
    /// use variables.
    ///
    /// # Errors
    /// A bad regex or variable.
    pub fn domain(from: &str, to: &str, scope: &Scope) -> Result<Self, CookieError> {
        if let Some(re) = from.strip_prefix('~') {
            let regex = compile(re.strip_prefix('*').unwrap_or(re), true)?;
            return Self::regex(regex, to, scope);
        }
        Ok(CookieRewrite {
            matcher: Matcher::Domain(Text::parse(undot(from), scope)?),
            to: Box::new([Piece::Text(Text::parse(undot(to), scope)?)]),
        })
    }

    /// Compiles `proxy_cookie_path from to`. A literal `from` is a
    /// case-sensitive prefix of the `path=` value, replaced by `to`
    /// (`/two/ /` turns `/two/some/uri/` into `/some/uri/`); `~regex`
    /// (`~*regex` case-insensitive) replaces the whole value, with
    /// `$1`…`$9` and named groups in `to`. Both may use variables.
    ///
    /// # Errors
    /// A bad regex or variable.
    pub fn path(from: &str, to: &str, scope: &Scope) -> Result<Self, CookieError> {
        if let Some(re) = from.strip_prefix('~') {
            let regex = match re.strip_prefix('*') {
                Some(re) => compile(re, true)?,
                None => compile(re, false)?,
            };
            return Self::regex(regex, to, scope);
        }
        Ok(CookieRewrite {
            matcher: Matcher::Prefix(Text::parse(from, scope)?),
            to: Box::new([Piece::Text(Text::parse(to, scope)?)]),
        })
    }

    fn regex(regex: Regex, to: &str, scope: &Scope) -> Result<Self, CookieError> {
        let to = split_captures(to, &regex, scope)?;
        Ok(CookieRewrite {
            matcher: Matcher::Regex(regex),
            to,
        })
    }

    /// The attribute's new value when this rule matches `value`.
    fn rewrite(&self, prepared: &PreparedCookies, value: &str) -> Option<String> {
        match &self.matcher {
            Matcher::Domain(from) => {
                let (dot, name) = match value.strip_prefix('.') {
                    Some(name) => (".", name),
                    None => ("", value),
                };
                if !name.eq_ignore_ascii_case(from.get(prepared)?) {
                    return None;
                }
                let mut out = dot.to_owned();
                self.render(prepared, None, &mut out)?;
                Some(out)
            }
            Matcher::Prefix(from) => {
                let rest = value.strip_prefix(from.get(prepared)?)?;
                let mut out = String::new();
                self.render(prepared, None, &mut out)?;
                out.push_str(rest);
                Some(out)
            }
            Matcher::Regex(re) => {
                let caps = re.captures(value)?;
                let mut out = String::new();
                self.render(prepared, Some(&caps), &mut out)?;
                Some(out)
            }
        }
    }

    fn render(
        &self,
        prepared: &PreparedCookies,
        caps: Option<&regex::Captures<'_>>,
        out: &mut String,
    ) -> Option<()> {
        for piece in self.to.iter() {
            match piece {
                Piece::Text(t) => out.push_str(t.get(prepared)?),
                Piece::Capture(n) => {
                    if let Some(m) = caps.and_then(|c| c.get(*n)) {
                        out.push_str(m.as_str());
                    }
                }
            }
        }
        Some(())
    }

    fn texts_mut(&mut self) -> impl Iterator<Item = &mut Text> {
        let CookieRewrite { matcher, to } = self;
        let from = match matcher {
            Matcher::Domain(t) | Matcher::Prefix(t) => Some(t),
            Matcher::Regex(_) => None,
        };
        from.into_iter()
            .chain(to.iter_mut().filter_map(|p| match p {
                Piece::Text(t) => Some(t),
                Piece::Capture(_) => None,
            }))
    }
}

/// A domain without the dot in front, which nginx ignores.
fn undot(domain: &str) -> &str {
    domain.strip_prefix('.').unwrap_or(domain)
}

fn compile(re: &str, caseless: bool) -> Result<Regex, CookieError> {
    RegexBuilder::new(re)
        .case_insensitive(caseless)
        .build()
        .map_err(|e| CookieError::Regex(re.into(), e))
}

/// Splits a regex rule's replacement into captures and templates.
fn split_captures(src: &str, regex: &Regex, scope: &Scope) -> Result<Box<[Piece]>, TemplateError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = src;
    while let Some(i) = rest.find('$') {
        text.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match capture_ref(after, regex) {
            Some((group, len)) => {
                flush_text(&mut text, &mut pieces, scope)?;
                pieces.push(Piece::Capture(group));
                rest = &after[len..];
            }
            None => {
                text.push('$');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    flush_text(&mut text, &mut pieces, scope)?;
    Ok(pieces.into())
}

fn flush_text(
    text: &mut String,
    pieces: &mut Vec<Piece>,
    scope: &Scope,
) -> Result<(), TemplateError> {
    if !text.is_empty() {
        pieces.push(Piece::Text(Text::parse(text, scope)?));
        text.clear();
    }
    Ok(())
}

/// The group named after a `$`, and the length of its name: one digit (as
/// nginx: `$12` is group 1 then `2`), or `name` / `{name}` when `regex`
/// has a group so named. Other names are variables.
fn capture_ref(after: &str, regex: &Regex) -> Option<(usize, usize)> {
    if let Some(d) = after.bytes().next().filter(u8::is_ascii_digit) {
        return Some((usize::from(d - b'0'), 1));
    }
    let (name, len) = match after.strip_prefix('{') {
        Some(braced) => {
            let end = braced.find('}')?;
            (&braced[..end], end + 2)
        }
        None => {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        }
    };
    if name.is_empty() {
        return None;
    }
    if let Ok(n) = name.parse::<usize>() {
        return Some((n, len));
    }
    let group = regex.capture_names().position(|n| n == Some(name))?;
    Some((group, len))
}

/// Which cookies a `proxy_cookie_flags` rule is for.
#[derive(Debug, Clone)]
enum CookieName {
    /// The name, ignoring ASCII case (as nginx compares it).
    Exact(Text),
    /// `~regex`, always case-insensitive (nginx's; `~*` is taken as the same).
    Regex(Regex),
}

/// Flag changes as nginx's bit mask: several may be asked for at once, and
/// the order they are looked at in settles which wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flags(u8);

impl Flags {
    const SECURE: u8 = 1;
    const NOSECURE: u8 = 1 << 1;
    const HTTPONLY: u8 = 1 << 2;
    const NOHTTPONLY: u8 = 1 << 3;
    const STRICT: u8 = 1 << 4;
    const LAX: u8 = 1 << 5;
    const NONE: u8 = 1 << 6;
    const NOSAMESITE: u8 = 1 << 7;

    const WORDS: [(&'static str, u8); 8] = [
        ("secure", Self::SECURE),
        ("nosecure", Self::NOSECURE),
        ("httponly", Self::HTTPONLY),
        ("nohttponly", Self::NOHTTPONLY),
        ("samesite=strict", Self::STRICT),
        ("samesite=lax", Self::LAX),
        ("samesite=none", Self::NONE),
        ("nosamesite", Self::NOSAMESITE),
    ];

    /// `SameSite` values to set, strongest first, as nginx checks them.
    const SAMESITE: [(u8, &'static str, &'static str); 3] = [
        (Self::STRICT, "strict", "SameSite=Strict"),
        (Self::LAX, "lax", "SameSite=Lax"),
        (Self::NONE, "none", "SameSite=None"),
    ];

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// What becomes of an attribute of the cookie; a flag asked for and
    /// found is crossed off, so that it is not added again.
    fn edit(&mut self, name: &str, value: Option<&str>) -> FlagEdit {
        if self.0 == 0 {
            return FlagEdit::Keep;
        }
        if name.eq_ignore_ascii_case("secure") {
            return self.toggle(Self::SECURE, Self::NOSECURE);
        }
        if name.eq_ignore_ascii_case("httponly") {
            return self.toggle(Self::HTTPONLY, Self::NOHTTPONLY);
        }
        if !name.eq_ignore_ascii_case("samesite") {
            return FlagEdit::Keep;
        }
        for (bit, word, set) in Self::SAMESITE {
            if self.has(bit) {
                self.0 &= !bit;
                return match value {
                    Some(v) if v.eq_ignore_ascii_case(word) => FlagEdit::Keep,
                    _ => FlagEdit::Set(set),
                };
            }
        }
        if self.has(Self::NOSAMESITE) {
            FlagEdit::Remove
        } else {
            FlagEdit::Keep
        }
    }

    fn toggle(&mut self, on: u8, off: u8) -> FlagEdit {
        if self.has(on) {
            self.0 &= !on;
            FlagEdit::Keep
        } else if self.has(off) {
            FlagEdit::Remove
        } else {
            FlagEdit::Keep
        }
    }

    /// The flags still to add, in nginx's order and spelling.
    fn added(self) -> impl Iterator<Item = &'static str> {
        let samesite = Self::SAMESITE
            .iter()
            .find(|(bit, _, _)| self.has(*bit))
            .map(|&(_, _, set)| set);
        [
            self.has(Self::SECURE).then_some("Secure"),
            self.has(Self::HTTPONLY).then_some("HttpOnly"),
            samesite,
        ]
        .into_iter()
        .flatten()
    }
}

/// What becomes of one attribute under `proxy_cookie_flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlagEdit {
    Keep,
    Remove,
    /// Replace the whole attribute.
    Set(&'static str),
}

/// One `proxy_cookie_flags` rule.
#[derive(Debug, Clone)]
pub struct CookieFlags {
    cookie: CookieName,
    flags: Flags,
}

impl CookieFlags {
    /// Compiles the words after `proxy_cookie_flags`: the cookie (a name,
    /// which may use nginx's built-in variables, or `~regex`), then one to
    /// three of `secure`, `httponly`, `samesite=strict|lax|none`, `nosecure`,
    /// `nohttponly`, `nosamesite` (any case). `off` is the caller's: an
    /// empty rule set.
    ///
    /// nginx takes unknown flags and ignores them per request; rpx refuses
    /// them here, as a typo would otherwise go unseen.
    ///
    /// # Errors
    /// A wrong number of words, an unknown flag, a bad regex or variable.
    pub fn parse(words: &[&str]) -> Result<Self, CookieError> {
        let (cookie, flags) = words.split_first().ok_or(CookieError::Arguments)?;
        if flags.len() > 3 {
            return Err(CookieError::Arguments);
        }
        if flags.is_empty() {
            // As nginx: a single argument other than `off`.
            return Err(CookieError::Parameter((*cookie).into()));
        }
        let mut mask = 0;
        for word in flags {
            let (_, bit) = Flags::WORDS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(word))
                .ok_or_else(|| CookieError::Parameter((*word).into()))?;
            mask |= bit;
        }
        let cookie = match cookie.strip_prefix('~') {
            Some(re) => CookieName::Regex(compile(re.strip_prefix('*').unwrap_or(re), true)?),
            None => CookieName::Exact(Text::new(Template::parse(cookie)?)),
        };
        Ok(CookieFlags {
            cookie,
            flags: Flags(mask),
        })
    }

    fn matches(&self, prepared: &PreparedCookies, name: &str) -> bool {
        match &self.cookie {
            CookieName::Exact(t) => t
                .get(prepared)
                .is_some_and(|t| t.eq_ignore_ascii_case(name)),
            CookieName::Regex(re) => re.is_match(name),
        }
    }

    fn text_mut(&mut self) -> Option<&mut Text> {
        match &mut self.cookie {
            CookieName::Exact(t) => Some(t),
            CookieName::Regex(_) => None,
        }
    }
}

/// A location's rules, compiled once; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct CookieRules {
    /// `None` when there are no rules: nothing to check per request.
    inner: Option<Arc<Rules>>,
}

#[derive(Debug)]
struct Rules {
    domain: Box<[CookieRewrite]>,
    path: Box<[CookieRewrite]>,
    flags: Box<[CookieFlags]>,
    /// The templates [`CookieRules::prepare`] renders, by slot.
    vars: Box<[Template]>,
}

impl CookieRules {
    /// The rules of one level, each list in directive order (the first
    /// matching rule of a list applies).
    pub fn new(
        mut domain: Vec<CookieRewrite>,
        mut path: Vec<CookieRewrite>,
        mut flags: Vec<CookieFlags>,
    ) -> Self {
        if domain.is_empty() && path.is_empty() && flags.is_empty() {
            return Self::default();
        }
        let mut vars = Vec::new();
        let texts = domain
            .iter_mut()
            .chain(path.iter_mut())
            .flat_map(CookieRewrite::texts_mut)
            .chain(flags.iter_mut().filter_map(CookieFlags::text_mut));
        for text in texts {
            if let Text::Var(template, slot) = text {
                *slot = vars.len();
                vars.push(template.clone());
            }
        }
        CookieRules {
            inner: Some(Arc::new(Rules {
                domain: domain.into(),
                path: path.into(),
                flags: flags.into(),
                vars: vars.into(),
            })),
        }
    }

    /// True when no rule is set (`off`, or none configured).
    pub fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    /// At request time: the variable parts of the rules rendered (captures
    /// stay for match time). Nothing is allocated when no rule uses a
    /// variable.
    pub fn prepare(&self, ctx: &VarCtx<'_>) -> PreparedCookies {
        match &self.inner {
            Some(rules) if !rules.vars.is_empty() => PreparedCookies {
                texts: rules.vars.iter().map(|t| t.render_to_string(ctx)).collect(),
            },
            _ => PreparedCookies::default(),
        }
    }

    /// At response time: every `Set-Cookie` rewritten; `prepared` comes from
    /// [`CookieRules::prepare`]. A value that is not UTF-8, or that would
    /// not be a valid header value once rewritten, is left as it was.
    pub fn apply(&self, prepared: &PreparedCookies, headers: &mut HeaderMap) {
        let Some(rules) = &self.inner else {
            return;
        };
        // Checked first: `entry` may grow the map for a missing name.
        if !headers.contains_key(SET_COOKIE) {
            return;
        }
        let http::header::Entry::Occupied(mut cookies) = headers.entry(SET_COOKIE) else {
            return;
        };
        for value in cookies.iter_mut() {
            let Ok(raw) = std::str::from_utf8(value.as_bytes()) else {
                continue;
            };
            let Some(new) = rules.rewrite(prepared, raw) else {
                continue;
            };
            if let Ok(mut new) = HeaderValue::from_maybe_shared(bytes::Bytes::from(new)) {
                new.set_sensitive(value.is_sensitive());
                *value = new;
            }
        }
    }
}

impl Rules {
    /// The rules for an attribute named `name` (nginx ignores its case).
    fn rewrites_for(&self, name: &str) -> &[CookieRewrite] {
        if name.eq_ignore_ascii_case("domain") {
            &self.domain
        } else if name.eq_ignore_ascii_case("path") {
            &self.path
        } else {
            &[]
        }
    }

    /// The rewritten cookie, `None` when nothing changes.
    fn rewrite(&self, prepared: &PreparedCookies, raw: &str) -> Option<String> {
        let mut attrs = Attrs::new(raw);
        let first = attrs.next()?;
        // nginx leaves a cookie without `name=value` alone.
        first.value.as_ref()?;
        let name = &raw[first.name.clone()];
        let mut flags = self
            .flags
            .iter()
            .find(|f| f.matches(prepared, name))
            .map_or(Flags(0), |f| f.flags);
        let mut edit = Editor::new(raw);
        // Where added flags go: after the last attribute kept.
        let mut tail = first.content_end();
        for attr in attrs {
            let name = &raw[attr.name.clone()];
            if let Some(range) = attr.value.clone() {
                let value = &raw[range.clone()];
                let rules = self.rewrites_for(name);
                if let Some(new) = rules.iter().find_map(|r| r.rewrite(prepared, value)) {
                    edit.replace(range, &new);
                }
            }
            match flags.edit(name, attr.value.clone().map(|v| &raw[v])) {
                FlagEdit::Keep => {}
                FlagEdit::Remove => {
                    // With the `;` before it: an attribute is never first.
                    edit.replace(attr.span.start.saturating_sub(1)..attr.span.end, "");
                    continue;
                }
                FlagEdit::Set(text) => edit.replace(attr.name.start..attr.content_end(), text),
            }
            if !attr.is_empty() {
                tail = attr.content_end();
            }
        }
        let at = tail.max(edit.done);
        for flag in flags.added() {
            edit.replace(at..at, "; ");
            edit.replace(at..at, flag);
        }
        edit.finish()
    }
}

/// Renders of the variable parts of a location's rules for one request.
/// The default holds nothing: enough for rules without variables.
#[derive(Debug, Clone, Default)]
pub struct PreparedCookies {
    texts: Vec<String>,
}

/// One `;`-separated part of a `Set-Cookie` value, as nginx splits it:
/// spaces around the name and the value are no part of them.
#[derive(Debug, Clone)]
struct Attr {
    /// From after the `;` before it to the next `;` or the end.
    span: Range<usize>,
    name: Range<usize>,
    /// After `=`; `None` without one.
    value: Option<Range<usize>>,
}

impl Attr {
    fn parse(raw: &str, span: Range<usize>) -> Attr {
        let part = &raw[span.clone()];
        let (name, value) = match part.find('=') {
            Some(eq) => (
                trim(span.start, &part[..eq]),
                Some(trim(span.start + eq + 1, &part[eq + 1..])),
            ),
            None => (trim(span.start, part), None),
        };
        Attr { span, name, value }
    }

    fn content_end(&self) -> usize {
        self.value.as_ref().map_or(self.name.end, |v| v.end)
    }

    /// Only spaces between two `;`.
    fn is_empty(&self) -> bool {
        self.name.is_empty() && self.value.is_none()
    }
}

/// `s`, found at `at`, without the spaces around it.
fn trim(at: usize, s: &str) -> Range<usize> {
    let start = at + (s.len() - s.trim_start_matches(' ').len());
    let end = at + s.trim_end_matches(' ').len();
    start..end.max(start)
}

/// The parts of a `Set-Cookie` value, the cookie's own `name=value` first.
struct Attrs<'a> {
    raw: &'a str,
    next: Option<usize>,
}

impl<'a> Attrs<'a> {
    fn new(raw: &'a str) -> Self {
        Attrs { raw, next: Some(0) }
    }
}

impl Iterator for Attrs<'_> {
    type Item = Attr;

    fn next(&mut self) -> Option<Attr> {
        let start = self.next?;
        let end = self.raw[start..]
            .find(';')
            .map_or(self.raw.len(), |i| start + i);
        self.next = (end < self.raw.len()).then_some(end + 1);
        Some(Attr::parse(self.raw, start..end))
    }
}

/// A copy of a header value with ranges replaced in order, made only once
/// a first range is.
struct Editor<'a> {
    raw: &'a str,
    out: Option<String>,
    /// How much of `raw` is in `out` (or replaced).
    done: usize,
}

impl<'a> Editor<'a> {
    fn new(raw: &'a str) -> Self {
        Editor {
            raw,
            out: None,
            done: 0,
        }
    }

    /// Replaces `range`, which starts at or after the previous one's end.
    fn replace(&mut self, range: Range<usize>, with: &str) {
        let raw = self.raw;
        let out = self
            .out
            .get_or_insert_with(|| String::with_capacity(raw.len() + 32));
        out.push_str(&raw[self.done..range.start]);
        out.push_str(with);
        self.done = range.end;
    }

    fn finish(self) -> Option<String> {
        let mut out = self.out?;
        out.push_str(&self.raw[self.done..]);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_rules(rules: &CookieRules, host: &str) -> PreparedCookies {
        let req = http::Request::get("/")
            .header("host", host)
            .body(())
            .unwrap();
        let conn = crate::conn::conn_info(&req);
        let ctx = VarCtx::new(&req, &conn, "/", "server");
        rules.prepare(&ctx)
    }

    fn scope() -> Scope {
        Scope::new()
    }

    fn domain(from: &str, to: &str) -> CookieRewrite {
        CookieRewrite::domain(from, to, &scope()).unwrap()
    }

    fn path(from: &str, to: &str) -> CookieRewrite {
        CookieRewrite::path(from, to, &scope()).unwrap()
    }

    fn flags(words: &[&str]) -> CookieFlags {
        CookieFlags::parse(words).unwrap()
    }

    /// Every `Set-Cookie` after `rules` ran on `cookies`, with `h.test` as host.
    fn run(rules: &CookieRules, cookies: &[&str]) -> Vec<String> {
        let mut headers = HeaderMap::new();
        for c in cookies {
            headers.append(SET_COOKIE, HeaderValue::from_str(c).unwrap());
        }
        let prepared = ctx_rules(rules, "h.test");
        rules.apply(&prepared, &mut headers);
        headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    fn one(rules: &CookieRules, cookie: &str) -> String {
        run(rules, &[cookie]).remove(0)
    }

    fn domains(rules: Vec<CookieRewrite>) -> CookieRules {
        CookieRules::new(rules, vec![], vec![])
    }

    fn paths(rules: Vec<CookieRewrite>) -> CookieRules {
        CookieRules::new(vec![], rules, vec![])
    }

    fn flag_rules(rules: Vec<CookieFlags>) -> CookieRules {
        CookieRules::new(vec![], vec![], rules)
    }

    #[test]
    fn domain_literal_as_documented() {
        let r = domains(vec![domain("localhost", "example.org")]);
        assert_eq!(
            one(&r, "id=1; domain=localhost; path=/"),
            "id=1; domain=example.org; path=/"
        );
    }

    #[test]
    fn domain_literal_is_the_whole_value_case_insensitive() {
        let r = domains(vec![domain("localhost", "example.org")]);
        assert_eq!(
            one(&r, "id=1; Domain=LocalHost"),
            "id=1; Domain=example.org"
        );
        assert_eq!(
            one(&r, "id=1; DOMAIN=localhost"),
            "id=1; DOMAIN=example.org"
        );
        assert_eq!(
            one(&r, "id=1; domain=sub.localhost"),
            "id=1; domain=sub.localhost"
        );
        assert_eq!(
            one(&r, "id=1; domain=localhost.net"),
            "id=1; domain=localhost.net"
        );
    }

    #[test]
    fn domain_leading_dots_are_ignored_and_the_value_keeps_its_own() {
        let r = domains(vec![domain(".localhost", ".example.org")]);
        assert_eq!(
            one(&r, "id=1; domain=localhost"),
            "id=1; domain=example.org"
        );
        assert_eq!(
            one(&r, "id=1; domain=.localhost"),
            "id=1; domain=.example.org"
        );
    }

    #[test]
    fn domain_regex_with_positional_and_named_captures() {
        let r = domains(vec![domain(r"~\.([a-z]+\.[a-z]+)$", "$1")]);
        assert_eq!(
            one(&r, "id=1; domain=.www.example.com"),
            "id=1; domain=example.com"
        );
        let r = domains(vec![domain(
            r"~\.(?P<sl_domain>[-0-9a-z]+\.[a-z]+)$",
            "$sl_domain",
        )]);
        assert_eq!(
            one(&r, "id=1; domain=a.b.example.org"),
            "id=1; domain=example.org"
        );
        let r = domains(vec![domain(r"~^(www)\.(?<rest>.+)$", "${rest}-$1")]);
        assert_eq!(
            one(&r, "id=1; domain=www.x.test"),
            "id=1; domain=x.test-www"
        );
    }

    #[test]
    fn domain_regex_is_case_insensitive_and_replaces_the_whole_value() {
        let r = domains(vec![domain("~EXAMPLE", "other.test")]);
        assert_eq!(
            one(&r, "id=1; domain=www.example.com"),
            "id=1; domain=other.test"
        );
        let r = domains(vec![domain("~*EXAMPLE", "other.test")]);
        assert_eq!(
            one(&r, "id=1; domain=www.example.com"),
            "id=1; domain=other.test"
        );
    }

    #[test]
    fn path_literal_is_a_prefix_as_documented() {
        let r = paths(vec![path("/two/", "/")]);
        assert_eq!(
            one(&r, "id=1; path=/two/some/uri/"),
            "id=1; path=/some/uri/"
        );
        assert_eq!(one(&r, "id=1; Path=/two/"), "id=1; Path=/");
        assert_eq!(one(&r, "id=1; path=/three/two/"), "id=1; path=/three/two/");
    }

    #[test]
    fn path_literal_is_case_sensitive() {
        let r = paths(vec![path("/Two/", "/")]);
        assert_eq!(one(&r, "id=1; path=/two/x"), "id=1; path=/two/x");
    }

    #[test]
    fn path_regex_case_sensitive_or_not() {
        let r = paths(vec![path("~*^/user/([^/]+)", "/u/$1")]);
        assert_eq!(one(&r, "id=1; path=/USER/john/x"), "id=1; path=/u/john");
        let r = paths(vec![path("~^/user/([^/]+)", "/u/$1")]);
        assert_eq!(
            one(&r, "id=1; path=/USER/john/x"),
            "id=1; path=/USER/john/x"
        );
        assert_eq!(one(&r, "id=1; path=/user/john/x"), "id=1; path=/u/john");
    }

    #[test]
    fn captures_that_did_not_take_part_are_empty() {
        let r = paths(vec![path("~^/(a)?b", "/x$1$2y")]);
        assert_eq!(one(&r, "id=1; path=/b"), "id=1; path=/xy");
        assert_eq!(one(&r, "id=1; path=/ab"), "id=1; path=/xay");
    }

    #[test]
    fn variables_in_patterns_and_replacements() {
        let r = domains(vec![domain("www.$host", "$host")]);
        assert_eq!(one(&r, "id=1; domain=www.h.test"), "id=1; domain=h.test");
        let r = domains(vec![domain("localhost", "$host")]);
        assert_eq!(one(&r, "id=1; domain=localhost"), "id=1; domain=h.test");
        // `$uri` is `/` here.
        let r = paths(vec![path("$uri", "/some$uri")]);
        assert_eq!(one(&r, "id=1; path=/x"), "id=1; path=/some/x");
        let r = paths(vec![path("~^/app(/.*)$", "/$host$1")]);
        assert_eq!(one(&r, "id=1; path=/app/y"), "id=1; path=/h.test/y");
        let r = flag_rules(vec![flags(&["$host", "secure"])]);
        assert_eq!(one(&r, "h.test=1"), "h.test=1; Secure");
        assert_eq!(one(&r, "other=1"), "other=1");
    }

    #[test]
    fn unprepared_variables_do_not_match() {
        let r = domains(vec![domain("localhost", "$host")]);
        let mut headers = HeaderMap::new();
        headers.insert(
            SET_COOKIE,
            HeaderValue::from_static("id=1; domain=localhost"),
        );
        r.apply(&PreparedCookies::default(), &mut headers);
        assert_eq!(headers[SET_COOKIE], "id=1; domain=localhost");
    }

    #[test]
    fn first_matching_rule_wins() {
        let r = domains(vec![
            domain("localhost", "first.test"),
            domain("~local", "second.test"),
        ]);
        assert_eq!(one(&r, "id=1; domain=localhost"), "id=1; domain=first.test");
        assert_eq!(
            one(&r, "id=1; domain=local.net"),
            "id=1; domain=second.test"
        );
        let r = paths(vec![path("/a/", "/one/"), path("/a/b/", "/two/")]);
        assert_eq!(one(&r, "id=1; path=/a/b/c"), "id=1; path=/one/b/c");
    }

    #[test]
    fn domain_and_path_together_and_every_such_attribute() {
        let r = CookieRules::new(
            vec![domain("localhost", "example.org")],
            vec![path("/two/", "/")],
            vec![],
        );
        assert_eq!(
            one(&r, "id=1; path=/two/x; domain=localhost; Max-Age=5"),
            "id=1; path=/x; domain=example.org; Max-Age=5"
        );
        assert_eq!(
            one(&r, "id=1; domain=localhost; domain=LOCALHOST"),
            "id=1; domain=example.org; domain=example.org"
        );
    }

    #[test]
    fn a_cookie_named_path_or_domain_is_not_an_attribute() {
        let r = CookieRules::new(
            vec![domain("localhost", "example.org")],
            vec![path("/two/", "/")],
            vec![],
        );
        assert_eq!(one(&r, "path=/two/x; Path=/two/"), "path=/two/x; Path=/");
        assert_eq!(one(&r, "domain=localhost"), "domain=localhost");
    }

    #[test]
    fn spacing_and_case_around_edits_stay() {
        let r = CookieRules::new(
            vec![domain("localhost", "example.org")],
            vec![path("/two/", "/")],
            vec![flags(&["id", "samesite=lax"])],
        );
        assert_eq!(
            one(
                &r,
                "id=1 ;  PATH =  /two/x  ;DoMaIn=localhost;samesite=strict ; x"
            ),
            "id=1 ;  PATH =  /x  ;DoMaIn=example.org;SameSite=Lax ; x"
        );
    }

    #[test]
    fn untouched_cookies_stay_byte_identical() {
        let r = CookieRules::new(
            vec![domain("localhost", "example.org")],
            vec![path("/two/", "/")],
            vec![flags(&["other", "secure"])],
        );
        let odd = "id=1 ;  Path = /three ;HttpOnly;; Expires=Wed, 21 Oct 2015 07:28:00 GMT;";
        assert_eq!(one(&r, odd), odd);
        // Without `name=value` first, nginx leaves the whole header alone.
        assert_eq!(one(&r, "nonsense; path=/two/"), "nonsense; path=/two/");
    }

    #[test]
    fn flags_added_in_nginx_spelling_and_order() {
        let r = flag_rules(vec![flags(&["id", "samesite=none", "httponly", "secure"])]);
        assert_eq!(
            one(&r, "id=1; Path=/"),
            "id=1; Path=/; Secure; HttpOnly; SameSite=None"
        );
        // After the last attribute, before a trailing `;`.
        assert_eq!(
            one(&r, "id=1; Path=/; "),
            "id=1; Path=/; Secure; HttpOnly; SameSite=None; "
        );
    }

    #[test]
    fn flags_present_are_kept_once() {
        let r = flag_rules(vec![flags(&[
            "id",
            "secure",
            "httponly",
            "samesite=strict",
        ])]);
        let c = "id=1; secure; HTTPONLY; SameSite=STRICT";
        assert_eq!(one(&r, c), c);
        assert_eq!(
            one(&r, "id=1; Secure"),
            "id=1; Secure; HttpOnly; SameSite=Strict"
        );
    }

    #[test]
    fn samesite_is_replaced_when_it_differs() {
        let r = flag_rules(vec![flags(&["id", "samesite=strict"])]);
        assert_eq!(
            one(&r, "id=1; samesite=lax; Path=/"),
            "id=1; SameSite=Strict; Path=/"
        );
        assert_eq!(one(&r, "id=1; samesite"), "id=1; SameSite=Strict");
    }

    #[test]
    fn flags_removed() {
        let r = flag_rules(vec![flags(&["id", "nosecure", "nohttponly", "nosamesite"])]);
        assert_eq!(
            one(&r, "id=1; Secure; Path=/; HttpOnly; SameSite=Lax"),
            "id=1; Path=/"
        );
        assert_eq!(one(&r, "id=1;Secure"), "id=1");
        assert_eq!(one(&r, "id=1; Path=/"), "id=1; Path=/");
    }

    #[test]
    fn removed_and_added_together() {
        let r = flag_rules(vec![flags(&["id", "nosecure", "httponly"])]);
        assert_eq!(one(&r, "id=1; Path=/; Secure"), "id=1; Path=/; HttpOnly");
        assert_eq!(one(&r, "id=1; Secure; Path=/"), "id=1; Path=/; HttpOnly");
    }

    #[test]
    fn flags_documented_example_first_match_wins() {
        // proxy_cookie_flags one httponly;
        // proxy_cookie_flags ~ nosecure samesite=strict;
        let r = flag_rules(vec![
            flags(&["one", "httponly"]),
            flags(&["~", "nosecure", "samesite=strict"]),
        ]);
        assert_eq!(
            run(&r, &["one=1; Secure", "two=2; Secure; Path=/"]),
            ["one=1; Secure; HttpOnly", "two=2; Path=/; SameSite=Strict"]
        );
    }

    #[test]
    fn flag_names_and_cookie_names_ignore_case() {
        let r = flag_rules(vec![flags(&["SESSION", "Secure", "SameSite=Lax"])]);
        assert_eq!(one(&r, "session=1"), "session=1; Secure; SameSite=Lax");
        let r = flag_rules(vec![flags(&["~^sess", "httponly"])]);
        assert_eq!(one(&r, "SESSION=1"), "SESSION=1; HttpOnly");
        assert_eq!(one(&r, "other=1"), "other=1");
    }

    #[test]
    fn every_set_cookie_and_nothing_else() {
        let r = CookieRules::new(
            vec![domain("localhost", "example.org")],
            vec![],
            vec![flags(&["~", "secure"])],
        );
        let mut headers = HeaderMap::new();
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static("a=1; domain=localhost"),
        );
        headers.append(SET_COOKIE, HeaderValue::from_static("b=2"));
        headers.append(SET_COOKIE, HeaderValue::from_static("c=3; Secure"));
        headers.insert(
            "x-cookie",
            HeaderValue::from_static("d=4; domain=localhost"),
        );
        r.apply(&PreparedCookies::default(), &mut headers);
        let got: Vec<_> = headers.get_all(SET_COOKIE).iter().collect();
        assert_eq!(
            got,
            [
                "a=1; domain=example.org; Secure",
                "b=2; Secure",
                "c=3; Secure"
            ]
        );
        assert_eq!(headers["x-cookie"], "d=4; domain=localhost");
    }

    #[test]
    fn invalid_results_and_non_utf8_values_are_left_alone() {
        let r = domains(vec![domain("localhost", "bad\nvalue")]);
        assert_eq!(one(&r, "id=1; domain=localhost"), "id=1; domain=localhost");
        let r = domains(vec![domain("~.", "x")]);
        let mut headers = HeaderMap::new();
        let latin1 = HeaderValue::from_bytes(b"id=\xe9; domain=localhost").unwrap();
        headers.insert(SET_COOKIE, latin1.clone());
        r.apply(&PreparedCookies::default(), &mut headers);
        assert_eq!(headers[SET_COOKIE], latin1);
    }

    #[test]
    fn sensitivity_is_kept() {
        let r = flag_rules(vec![flags(&["id", "secure"])]);
        let mut headers = HeaderMap::new();
        let mut v = HeaderValue::from_static("id=1");
        v.set_sensitive(true);
        headers.insert(SET_COOKIE, v);
        r.apply(&PreparedCookies::default(), &mut headers);
        assert_eq!(headers[SET_COOKIE], "id=1; Secure");
        assert!(headers[SET_COOKIE].is_sensitive());
    }

    #[test]
    fn empty_rules_do_nothing() {
        for r in [
            CookieRules::default(),
            CookieRules::new(vec![], vec![], vec![]),
        ] {
            assert!(r.is_empty());
            let prepared = ctx_rules(&r, "h.test");
            assert_eq!(prepared.texts.capacity(), 0);
            let c = "id=1; domain=localhost; path=/two/";
            assert_eq!(one(&r, c), c);
        }
        let fixed = domains(vec![domain("localhost", "example.org")]);
        assert!(!fixed.is_empty());
        assert_eq!(ctx_rules(&fixed, "h.test").texts.capacity(), 0);
    }

    #[test]
    fn no_set_cookie_leaves_the_map_alone() {
        let r = domains(vec![domain("localhost", "example.org")]);
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        r.apply(&PreparedCookies::default(), &mut headers);
        assert_eq!(headers.len(), 1);
    }

    #[test]
    fn compile_errors() {
        let e = CookieFlags::parse(&["id", "secure", "bogus"]).unwrap_err();
        assert_eq!(e.to_string(), "invalid parameter \"bogus\"");
        let e = CookieFlags::parse(&["id"]).unwrap_err();
        assert_eq!(e.to_string(), "invalid parameter \"id\"");
        assert!(matches!(
            CookieFlags::parse(&[]),
            Err(CookieError::Arguments)
        ));
        assert!(matches!(
            CookieFlags::parse(&["id", "secure", "httponly", "nosamesite", "nosecure"]),
            Err(CookieError::Arguments)
        ));
        assert!(matches!(
            CookieFlags::parse(&["~(", "secure"]),
            Err(CookieError::Regex(..))
        ));
        assert!(matches!(
            CookieRewrite::domain("~(", "x", &scope()),
            Err(CookieError::Regex(..))
        ));
        assert!(matches!(
            CookieRewrite::path("/a", "$nope", &scope()),
            Err(CookieError::Template(_))
        ));
    }
}
