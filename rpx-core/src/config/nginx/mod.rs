//! Lexer and parser for nginx's configuration syntax.
//!
//! Follows `ngx_conf_read_token` and `ngx_conf_parse` from nginx's
//! `ngx_conf_file.c` so that files nginx accepts split into the same tokens,
//! and errors carry nginx-like messages with `file:line:col` positions. The
//! result is a plain directive tree: giving directives meaning is left to the
//! caller.

mod directives;
mod include;
mod lexer;
mod mapping;
mod parser;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Deepest block nesting accepted. Real configs nest a handful of levels;
/// the cap keeps hostile input from exhausting the stack in the recursive
/// parser and in the tree's own (recursive) drop, clone and debug code.
const MAX_NESTING: usize = 64;

/// Where a token or directive starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    /// The file the token was read from.
    pub file: Arc<Path>,
    /// 1-based line; 0 only for errors about a file as a whole.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub col: u32,
}

impl Pos {
    /// A position naming a file but no place in it (e.g. it cannot be read).
    fn whole_file(file: &Path) -> Self {
        Pos {
            file: Arc::from(file),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
        }
    }
}

/// One argument of a directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// Quotes removed and escapes processed.
    pub value: String,
    /// Whether the source spelled it in `"..."` or `'...'`.
    pub quoted: bool,
    /// Where the argument starts.
    pub pos: Pos,
}

/// `name args;` or, when `block` is set, `name args { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The directive's name (quotes removed).
    pub name: String,
    /// Its arguments.
    pub args: Vec<Arg>,
    /// The block's directives, for `name args { … }`.
    pub block: Option<Vec<Directive>>,
    /// Where the name starts.
    pub pos: Pos,
}

/// A syntax or include error, with its position.
#[derive(Debug, thiserror::Error)]
#[error("{pos}: {kind}")]
pub struct ParseError {
    /// Where.
    pub pos: Pos,
    /// What.
    pub kind: ParseErrorKind,
}

impl ParseError {
    fn new(pos: Pos, kind: ParseErrorKind) -> Self {
        ParseError { pos, kind }
    }
}

/// What went wrong while reading the syntax; variants are documented by
/// their messages, fields name what they hold.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum ParseErrorKind {
    /// A stray `;`, `{` or `}`, or a character glued to a closing quote.
    #[error("unexpected \"{ch}\"")]
    UnexpectedChar { ch: char },
    /// Reported at the opening quote.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// Input ended inside a directive; reported at the directive.
    #[error("unexpected end of file, directive \"{directive}\" is not terminated by \";\"")]
    MissingSemicolon { directive: String },
    /// Input ended inside a block; reported at the directive that opened it.
    #[error(
        "unexpected end of file, expecting \"}}\" to close the \"{directive}\" block opened here"
    )]
    UnclosedBlock { directive: String },
    #[error("blocks nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("invalid UTF-8 in token")]
    InvalidUtf8,
    /// A configuration file could not be opened or read.
    #[error("open() \"{}\" failed ({})", .path.display(), os_error_text(.source))]
    Io { path: PathBuf, source: io::Error },
    /// A directory could not be listed while expanding an include glob.
    #[error("opendir() \"{}\" failed ({})", .path.display(), os_error_text(.source))]
    ReadDir { path: PathBuf, source: io::Error },
    /// `include` needs exactly one argument; `count` is how many it had.
    #[error("invalid number of arguments in \"include\" directive")]
    IncludeArgs { count: usize },
    #[error("directive \"include\" is not terminated by \";\"")]
    IncludeBlock,
    /// `chain` runs from the first file of the cycle back to itself.
    #[error("include cycle: {}", chain_text(.chain))]
    IncludeCycle { chain: Vec<PathBuf> },
    #[error("includes nested deeper than {limit} levels")]
    IncludeDepth { limit: usize },
    #[error("more than {limit} configuration files")]
    TooManyFiles { limit: usize },
}

/// `io::Error`'s text without the " (os error N)" suffix, as nginx prints it.
fn os_error_text(err: &io::Error) -> String {
    let text = err.to_string();
    match err.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .unwrap_or(&text)
            .to_owned(),
        None => text,
    }
}

fn chain_text(chain: &[PathBuf]) -> String {
    let quoted: Vec<String> = chain
        .iter()
        .map(|p| format!("\"{}\"", p.display()))
        .collect();
    quoted.join(" -> ")
}

/// Parse text without following includes (`include` stays a plain
/// [`Directive`]). For fuzzing and tests. Never panics on any input.
pub fn parse_str(src: &str, file: &Path) -> Result<Vec<Directive>, ParseError> {
    parser::parse(src.as_bytes(), Arc::from(file))
}

/// Read and parse a file, expanding every `include` in place (recursively):
/// the include directive is replaced by the directives of the included files,
/// which keep their own file positions. Relative include patterns resolve
/// against the directory of `path`, as nginx resolves them against its conf
/// prefix.
pub fn load(path: &Path) -> Result<Vec<Directive>, ParseError> {
    include::load(path)
}

/// Loads an nginx config file (includes expanded) and maps it onto the
/// model: every error and warning, each with `file:line`.
pub fn load_config(path: &Path, opts: super::LoadOptions) -> super::Loaded {
    match load(path) {
        Ok(dirs) => mapping::to_config(&dirs, &prefix_of(path), opts),
        Err(e) => super::Loaded::failed(e.into()),
    }
}

/// nginx's conf prefix for a main file: its directory.
fn prefix_of(main: &Path) -> PathBuf {
    main.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// [`load_config`] for text: `include` is not followed (an error). Never
/// panics on any input.
pub fn config_from_str(src: &str, file: &Path, opts: super::LoadOptions) -> super::Loaded {
    match parse_str(src, file) {
        Ok(dirs) => mapping::to_config(&dirs, &prefix_of(file), opts),
        Err(e) => super::Loaded::failed(e.into()),
    }
}

impl From<ParseError> for super::ConfigError {
    fn from(e: ParseError) -> Self {
        let pos = super::SourcePos::new(e.pos.file.display().to_string(), e.pos.line, e.pos.col);
        super::ConfigError::new(pos, e.kind.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, col: u32) -> Pos {
        Pos {
            file: Arc::from(Path::new("/etc/nginx/nginx.conf")),
            line,
            col,
        }
    }

    #[test]
    fn pos_display() {
        assert_eq!(pos(3, 7).to_string(), "/etc/nginx/nginx.conf:3:7");
        assert_eq!(pos(0, 0).to_string(), "/etc/nginx/nginx.conf");
    }

    #[test]
    fn error_messages() {
        let not_found = || io::Error::from_raw_os_error(2);
        let cases: Vec<(ParseErrorKind, &str)> = vec![
            (
                ParseErrorKind::UnexpectedChar { ch: '}' },
                r#"unexpected "}""#,
            ),
            (
                ParseErrorKind::UnexpectedChar { ch: ';' },
                r#"unexpected ";""#,
            ),
            (
                ParseErrorKind::UnterminatedQuote,
                "unterminated quoted string",
            ),
            (
                ParseErrorKind::MissingSemicolon {
                    directive: "listen".into(),
                },
                r#"unexpected end of file, directive "listen" is not terminated by ";""#,
            ),
            (
                ParseErrorKind::UnclosedBlock {
                    directive: "server".into(),
                },
                r#"unexpected end of file, expecting "}" to close the "server" block opened here"#,
            ),
            (
                ParseErrorKind::TooDeep { limit: 64 },
                "blocks nested deeper than 64 levels",
            ),
            (ParseErrorKind::InvalidUtf8, "invalid UTF-8 in token"),
            (
                ParseErrorKind::Io {
                    path: "/x/a.conf".into(),
                    source: not_found(),
                },
                r#"open() "/x/a.conf" failed (No such file or directory)"#,
            ),
            (
                ParseErrorKind::ReadDir {
                    path: "/x".into(),
                    source: io::Error::from_raw_os_error(13),
                },
                r#"opendir() "/x" failed (Permission denied)"#,
            ),
            (
                ParseErrorKind::IncludeArgs { count: 2 },
                r#"invalid number of arguments in "include" directive"#,
            ),
            (
                ParseErrorKind::IncludeBlock,
                r#"directive "include" is not terminated by ";""#,
            ),
            (
                ParseErrorKind::IncludeCycle {
                    chain: vec!["/x/a".into(), "/x/b".into(), "/x/a".into()],
                },
                r#"include cycle: "/x/a" -> "/x/b" -> "/x/a""#,
            ),
            (
                ParseErrorKind::IncludeDepth { limit: 32 },
                "includes nested deeper than 32 levels",
            ),
            (
                ParseErrorKind::TooManyFiles { limit: 1024 },
                "more than 1024 configuration files",
            ),
        ];
        for (kind, want) in cases {
            assert_eq!(kind.to_string(), want);
        }
    }

    #[test]
    fn parse_error_display_has_position() {
        let err = ParseError::new(pos(2, 5), ParseErrorKind::UnterminatedQuote);
        assert_eq!(
            err.to_string(),
            "/etc/nginx/nginx.conf:2:5: unterminated quoted string"
        );
    }

    #[test]
    fn io_error_keeps_source() {
        use std::error::Error;
        let kind = ParseErrorKind::Io {
            path: "/x".into(),
            source: io::Error::from_raw_os_error(2),
        };
        assert!(kind.source().is_some());
    }

    #[test]
    fn parse_str_smoke() {
        let dirs = parse_str("worker_processes auto;", Path::new("t.conf")).unwrap();
        assert_eq!(dirs.len(), 1);
        assert_eq!(dirs[0].name, "worker_processes");
        assert_eq!(dirs[0].args[0].value, "auto");
        assert_eq!(dirs[0].pos.to_string(), "t.conf:1:1");
    }
}
