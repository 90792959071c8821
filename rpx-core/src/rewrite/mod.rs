//! nginx's rewrite module: `rewrite`, `if`, `return` and `break`, compiled
//! once into a [`Program`] that runs on a request before routing (server
//! level) or before a location's handler (location level).
//!
//! Supported: `rewrite regex replacement [last|break|redirect|permanent]`
//! with `$1`…`$9` and variables, nginx's argument rules (the original query
//! is appended unless the replacement ends in `?`), replacements starting
//! with `http://`, `https://` or `$scheme` redirecting; `if` with `($var)`,
//! `=`, `!=`, `~`, `~*`, `!~`, `!~*`; `return`; `break`.
//! `set $name value` stores its rendered value on the request
//! ([`SetVars`]), read by every later template that names the variable.
//! A regex of `if` or `rewrite` that matches keeps its groups as the
//! request's captures (`$1`…, named groups as variables) for the
//! directives after it. File tests (`-f`, `-d`, `-e`, `-x`) `stat` the
//! rendered path.

use std::sync::Arc;

use crate::pattern::{Pattern, PatternError};
use http::{Request, StatusCode};

use crate::action::ReturnService;
use crate::conn::conn_info;
use crate::error::ProxyError;
use crate::headers::AddHeadersLayer;
use crate::reply::{redirect, Reply};
use crate::request::{request_path, set_uri};
use crate::vars::{Captures, Scope, SetVars, Template, TemplateError, VarCtx};

/// How many times locations may be searched again (`rewrite … last`)
/// before the request fails, as nginx's `NGX_HTTP_MAX_URI_CHANGES`.
pub const MAX_URI_CHANGES: usize = 10;

/// Why a rewrite program did not compile.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// A regex.
    #[error("invalid regex {0:?}: {1}")]
    Regex(String, #[source] PatternError),
    /// A replacement or value's variables.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// What a `rewrite` does after replacing the URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// Go on with the next step.
    Continue,
    /// Stop; search the locations again.
    Last,
    /// Stop; stay in the current location.
    Break,
    /// Answer with a redirect (302 or 301).
    Redirect(StatusCode),
}

/// A `rewrite` rule.
#[derive(Debug)]
pub struct Rule {
    regex: Pattern,
    pieces: Box<[Piece]>,
    /// The replacement ends in `?`: the original arguments are dropped.
    drop_args: bool,
    flag: Flag,
}

#[derive(Debug)]
enum Piece {
    Text(Template),
    Capture(usize),
}

impl Rule {
    /// Compiles `rewrite regex replacement flag`.
    ///
    /// # Errors
    /// A bad regex or variable.
    pub fn new(
        regex: &str,
        replacement: &str,
        flag: Flag,
        scope: &Scope,
    ) -> Result<Self, RewriteError> {
        let re = Pattern::new(regex, false).map_err(|e| RewriteError::Regex(regex.into(), e))?;
        let is_url = ["http://", "https://", "$scheme"]
            .iter()
            .any(|p| replacement.starts_with(p));
        let (body, drop_args) = match replacement.strip_suffix('?') {
            Some(b) => (b, true),
            None => (replacement, false),
        };
        Ok(Rule {
            regex: re,
            pieces: split_captures(body, scope)?.into(),
            drop_args,
            // A full URL always redirects.
            flag: match (is_url, flag) {
                (true, Flag::Redirect(s)) => Flag::Redirect(s),
                (true, _) => Flag::Redirect(StatusCode::FOUND),
                (false, f) => f,
            },
        })
    }
}

/// `$1`…`$9` become captures; the text between them is a template.
fn split_captures(src: &str, scope: &Scope) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = src;
    let mut text = String::new();
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let digit = after.bytes().next().filter(u8::is_ascii_digit);
        text.push_str(&rest[..i]);
        match digit {
            Some(d) => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(Template::parse_in(&text, scope)?));
                    text.clear();
                }
                pieces.push(Piece::Capture(usize::from(d - b'0')));
                rest = &after[1..];
            }
            None => {
                text.push('$');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(Template::parse_in(&text, scope)?));
    }
    Ok(pieces)
}

/// An `if` condition.
#[derive(Debug)]
pub enum Condition {
    /// `($var)`: not empty and not `0`.
    NonEmpty(Template),
    /// `($var = text)`, or `!=` when `negate`.
    Equals(Template, String, bool),
    /// `($var ~ regex)`, or `!~` when `negate`.
    Matches(Template, Pattern, bool),
    /// `(-f path)` and the other file tests, or `!-f` … when `negate`.
    File(Template, FileTest, bool),
}

/// The file tests of `if`, made with `stat` as nginx makes them
/// (synchronously, as `try_files`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileTest {
    /// `-f`: a regular file (a symbolic link to one too).
    File,
    /// `-d`: a directory.
    Dir,
    /// `-e`: a file, directory or symbolic link to one (nginx `stat`s, so a
    /// dangling link does not exist).
    Exists,
    /// `-x`: a file its owner may execute.
    Exec,
}

impl FileTest {
    fn holds(self, path: &str) -> bool {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path);
        match self {
            FileTest::File => meta.is_ok_and(|m| m.is_file()),
            FileTest::Dir => meta.is_ok_and(|m| m.is_dir()),
            FileTest::Exists => meta.is_ok(),
            FileTest::Exec => meta.is_ok_and(|m| m.permissions().mode() & 0o100 != 0),
        }
    }
}

impl Condition {
    /// `(left ~ regex)` and friends.
    ///
    /// # Errors
    /// A bad regex or variable.
    pub fn matches(
        left: &str,
        regex: &str,
        caseless: bool,
        negate: bool,
        scope: &Scope,
    ) -> Result<Self, RewriteError> {
        let re = Pattern::new(regex, caseless).map_err(|e| RewriteError::Regex(regex.into(), e))?;
        Ok(Condition::Matches(
            Template::parse_in(left, scope)?,
            re,
            negate,
        ))
    }

    /// Whether the condition holds, and the captures of a regex that
    /// matched (kept even when `!~` makes the condition false, as nginx).
    fn holds(&self, ctx: &VarCtx<'_>) -> (bool, Option<(&Pattern, Captures)>) {
        match self {
            Condition::NonEmpty(t) => {
                let v = t.render_to_string(ctx);
                (!v.is_empty() && v != "0", None)
            }
            Condition::Equals(t, right, negate) => {
                ((t.render_to_string(ctx) == *right) != *negate, None)
            }
            Condition::File(t, test, negate) => {
                (test.holds(&t.render_to_string(ctx)) != *negate, None)
            }
            Condition::Matches(t, re, negate) => {
                let v = t.render_to_string(ctx);
                match Captures::of(re, &v) {
                    Some(c) => (!*negate, Some((re, c))),
                    None => (re.is_match(&v) != *negate, None),
                }
            }
        }
    }
}

/// One step of a program.
#[derive(Debug)]
pub enum Step {
    /// `rewrite`.
    Rewrite(Rule),
    /// `return`.
    Return(ReturnService),
    /// `if (cond) { steps }`.
    If(Condition, Box<[Step]>),
    /// `break`.
    Break,
    /// `set $name value`.
    Set(Arc<str>, Template),
}

/// What running a program decided.
#[derive(Debug)]
pub enum Outcome {
    /// Go on (the URI may have been rewritten in place).
    Continue,
    /// `rewrite … last`: search the locations again with the new URI.
    Last,
    /// Answer with this response.
    Respond(Box<Reply>),
    /// The rewritten URI is not one (`rewrite ^ x;`): nginx answers 500.
    Fail(ProxyError),
}

/// The rewrite steps of one level, compiled.
#[derive(Debug, Clone)]
pub struct Program {
    steps: Arc<[Step]>,
    server_name: Arc<str>,
    /// The level's `add_header`s, for the responses the program makes.
    headers: Option<AddHeadersLayer>,
}

enum Flow {
    Next,
    Stop,
    Last,
    Respond(Box<Reply>),
    Fail(ProxyError),
}

impl Program {
    /// A program of `steps`; `server_name` is what `$server_name` renders.
    pub fn new(steps: Vec<Step>, server_name: Arc<str>) -> Self {
        Program {
            steps: steps.into(),
            server_name,
            headers: None,
        }
    }

    /// Adds these response headers to the responses the program makes
    /// (`return`, redirects), as the level's `add_header` would.
    pub fn with_headers(mut self, headers: AddHeadersLayer) -> Self {
        self.headers = Some(headers);
        self
    }

    /// Runs the steps on `req`, rewriting its URI in place.
    pub fn run<B>(&self, req: &mut Request<B>) -> Outcome {
        match self.run_steps(&self.steps, req) {
            Flow::Next | Flow::Stop => Outcome::Continue,
            Flow::Last => Outcome::Last,
            Flow::Fail(e) => Outcome::Fail(e),
            Flow::Respond(mut r) => {
                if let Some(h) = &self.headers {
                    h.apply_to(req, &mut r);
                }
                Outcome::Respond(r)
            }
        }
    }

    fn run_steps<B>(&self, steps: &[Step], req: &mut Request<B>) -> Flow {
        for step in steps {
            let flow = match step {
                Step::Break => Flow::Stop,
                Step::Return(r) => Flow::Respond(Box::new(r.respond(req))),
                Step::If(cond, inner) => {
                    let conn = conn_info(req);
                    let (holds, captures) = cond.holds(&VarCtx::new(
                        req,
                        &conn,
                        request_path(req),
                        &self.server_name,
                    ));
                    if let Some((re, c)) = captures {
                        c.keep(re, req);
                    }
                    if holds {
                        self.run_steps(inner, req)
                    } else {
                        Flow::Next
                    }
                }
                Step::Rewrite(rule) => self.rewrite(rule, req),
                Step::Set(name, value) => {
                    let conn = conn_info(req);
                    let ctx = VarCtx::new(req, &conn, request_path(req), &self.server_name);
                    let value = value.render_to_string(&ctx);
                    match req.extensions_mut().get_mut::<SetVars>() {
                        Some(sets) => sets.set(name, value),
                        None => {
                            let mut sets = SetVars::default();
                            sets.set(name, value);
                            req.extensions_mut().insert(sets);
                        }
                    }
                    Flow::Next
                }
            };
            if !matches!(flow, Flow::Next) {
                return flow;
            }
        }
        Flow::Next
    }

    fn rewrite<B>(&self, rule: &Rule, req: &mut Request<B>) -> Flow {
        let conn = conn_info(req);
        let path = request_path(req);
        let Some(spans) = rule.regex.spans(path) else {
            return Flow::Next;
        };
        let group = |n: usize| match spans.get(n) {
            Some(Some((a, b))) => &path[*a..*b],
            _ => "",
        };
        let ctx = VarCtx::new(req, &conn, path, &self.server_name);
        let mut target = String::new();
        for piece in rule.pieces.iter() {
            match piece {
                Piece::Text(t) => t.render(&ctx, &mut target),
                Piece::Capture(n) => target.push_str(group(*n)),
            }
        }
        if !rule.drop_args {
            if let Some(q) = req.uri().query().filter(|q| !q.is_empty()) {
                target.push(if target.contains('?') { '&' } else { '?' });
                target.push_str(q);
            }
        }
        // The rule's groups are the request's latest captures now.
        let captures = (spans.len() > 1).then(|| Captures::from_spans(path, spans));
        if let Some(c) = captures {
            c.keep(&rule.regex, req);
        }
        if let Flag::Redirect(status) = rule.flag {
            return Flow::Respond(Box::new(redirect(req, status, &target)));
        }
        if !set_uri(req, &target) {
            return Flow::Fail(ProxyError::BadRedirect(target));
        }
        match rule.flag {
            Flag::Continue => Flow::Next,
            Flag::Break => Flow::Stop,
            Flag::Last | Flag::Redirect(_) => Flow::Last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::OriginalUri;

    fn program(steps: Vec<Step>) -> Program {
        Program::new(steps, "s".into())
    }

    fn rule(re: &str, to: &str, flag: Flag) -> Step {
        Step::Rewrite(Rule::new(re, to, flag, &Scope::new()).unwrap())
    }

    fn req(uri: &str) -> Request<()> {
        Request::get(uri).header("host", "h.test").body(()).unwrap()
    }

    #[test]
    fn rewrites_with_captures_and_args() {
        let p = program(vec![rule("^/old/(.*)$", "/new/$1", Flag::Continue)]);
        let mut r = req("/old/a/b?x=1");
        assert!(matches!(p.run(&mut r), Outcome::Continue));
        assert_eq!(r.uri().to_string(), "/new/a/b?x=1");
        assert_eq!(request_path(&r), "/new/a/b");
        assert_eq!(
            r.extensions().get::<OriginalUri>().unwrap().0,
            "/old/a/b?x=1"
        );

        let p = program(vec![rule("^/a$", "/b?y=2", Flag::Last)]);
        let mut r = req("/a?x=1");
        assert!(matches!(p.run(&mut r), Outcome::Last));
        assert_eq!(r.uri().to_string(), "/b?y=2&x=1");

        let p = program(vec![
            rule("^/a$", "/b?", Flag::Break),
            rule("^/b$", "/c", Flag::Continue),
        ]);
        let mut r = req("/a?x=1");
        assert!(matches!(p.run(&mut r), Outcome::Continue));
        assert_eq!(r.uri().to_string(), "/b");
    }

    #[test]
    fn redirects() {
        let p = program(vec![rule(
            "^/(.*)$",
            "/v2/$1",
            Flag::Redirect(StatusCode::MOVED_PERMANENTLY),
        )]);
        let Outcome::Respond(res) = p.run(&mut req("/x?q")) else {
            panic!()
        };
        assert_eq!(res.status(), 301);
        assert_eq!(res.headers()["location"], "http://h.test/v2/x?q");
        let p = program(vec![rule(
            "^",
            "https://$host$request_uri?",
            Flag::Continue,
        )]);
        let Outcome::Respond(res) = p.run(&mut req("/x?q")) else {
            panic!()
        };
        assert_eq!(res.status(), 302);
        assert_eq!(res.headers()["location"], "https://h.test/x?q");
    }

    #[test]
    fn conditions() {
        let scope = Scope::new();
        let host_is =
            |h: &str, neg| Condition::Equals(Template::parse("$host").unwrap(), h.into(), neg);
        let ret = |c| Step::Return(ReturnService::new(c, None).unwrap());
        let p = program(vec![
            Step::If(host_is("a.test", false), vec![ret(418)].into()),
            Step::If(
                Condition::matches("$http_user_agent", "bot", true, false, &scope).unwrap(),
                vec![ret(403)].into(),
            ),
            Step::If(
                Condition::NonEmpty(Template::parse("$arg_x").unwrap()),
                vec![Step::Break].into(),
            ),
            Step::If(host_is("h.test", true), vec![ret(400)].into()),
            ret(204),
        ]);
        let status = |r: &mut Request<()>| match p.run(r) {
            Outcome::Respond(res) => res.status().as_u16(),
            _ => 0,
        };
        let mut a = Request::get("/").header("host", "a.test").body(()).unwrap();
        assert_eq!(status(&mut a), 418);
        let mut b = Request::get("/")
            .header("host", "h.test")
            .header("user-agent", "GoogleBot")
            .body(())
            .unwrap();
        assert_eq!(status(&mut b), 403);
        assert_eq!(status(&mut req("/?x=1")), 0);
        assert_eq!(status(&mut req("/?x=0")), 204);
        let mut c = Request::get("/").header("host", "c.test").body(()).unwrap();
        assert_eq!(status(&mut c), 400);
    }
}
