//! `try_files file… fallback`, compiled once: a step of the location router
//! that runs after the chosen location's rewrites, as nginx's try-files
//! phase does.
//!
//! The candidates are checked in order below the location's `root` or
//! `alias` (`$uri/` means a directory); the first that exists becomes the
//! request's URI and the same location handles it. Otherwise the fallback
//! decides: `=code` answers with the status, `@name` hands the request to a
//! named location, and a URI is an internal redirect (the locations are
//! searched again with it, its query replacing the request's when it has one).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{Request, StatusCode};

use crate::action::FilesMode;
use crate::conn::conn_info;
use crate::vars::{Scope, Template, TemplateError, VarCtx};

use super::request_path;

/// A compiled `try_files`.
///
/// ```
/// use rpx_core::action::FilesMode;
/// use rpx_core::location::TryFiles;
/// use rpx_core::vars::Scope;
///
/// let args = ["$uri".to_owned(), "$uri/".to_owned(), "@app".to_owned()];
/// let t = TryFiles::new(&args, "/srv/www", FilesMode::Root, "example.com".into(), &Scope::new());
/// assert_eq!(t.unwrap().named_fallback(), Some("app"));
/// ```
#[derive(Debug)]
pub struct TryFiles {
    /// Each candidate, and whether it names a directory: written with a
    /// final `/` (decided on the text, as nginx does, not on the value).
    candidates: Box<[(Template, bool)]>,
    fallback: Fallback,
    dir: PathBuf,
    mode: FilesMode,
    server_name: Arc<str>,
}

/// The last argument of `try_files`.
#[derive(Debug)]
enum Fallback {
    /// `=404`: answer with the status.
    Code(StatusCode),
    /// `@name`: a named location handles the request.
    Named(Box<str>),
    /// A URI: search the locations again with it.
    Uri(Template),
}

/// What `try_files` decided for one request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tried<'t> {
    /// A file candidate exists: its URI path (possibly the request's own).
    Found(String),
    /// A directory candidate (`…/`) exists: its URI path without the
    /// final `/`, as nginx sets it (its static module then answers a path
    /// without `/` with a 301 to the directory).
    Dir(String),
    /// `=code`.
    Code(StatusCode),
    /// `@name` (without `@`).
    Named(&'t str),
    /// An internal redirect to this URI (path, maybe `?query`).
    Redirect(String),
}

/// Why `try_files` did not compile.
#[derive(Debug, thiserror::Error)]
pub enum TryFilesError {
    /// Needs a file and a fallback.
    #[error("try_files needs at least one file and a fallback")]
    Arguments,
    /// `=code` that is not a status.
    #[error("invalid try_files code {0:?}")]
    Code(String),
    /// `@` without a name.
    #[error("invalid try_files location {0:?}")]
    Name(String),
    /// A variable.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

impl TryFiles {
    /// Compiles `try_files` arguments for a location serving `dir` the
    /// `mode` way; `server_name` is what `$server_name` renders.
    ///
    /// # Errors
    /// Fewer than two arguments, a bad `=code`, an empty `@`, an unknown
    /// variable.
    pub fn new(
        args: &[String],
        dir: impl Into<PathBuf>,
        mode: FilesMode,
        server_name: Arc<str>,
        scope: &Scope,
    ) -> Result<Self, TryFilesError> {
        let Some((last, candidates)) = args.split_last().filter(|(_, c)| !c.is_empty()) else {
            return Err(TryFilesError::Arguments);
        };
        let fallback = if let Some(code) = last.strip_prefix('=') {
            Fallback::Code(
                code.parse::<u16>()
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .ok_or_else(|| TryFilesError::Code(last.clone()))?,
            )
        } else if let Some(name) = last.strip_prefix('@') {
            if name.is_empty() {
                return Err(TryFilesError::Name(last.clone()));
            }
            Fallback::Named(name.into())
        } else {
            Fallback::Uri(Template::parse_in(last, scope)?)
        };
        Ok(TryFiles {
            candidates: candidates
                .iter()
                .map(|c| Ok((Template::parse_in(c, scope)?, c.ends_with('/'))))
                .collect::<Result<_, TemplateError>>()?,
            fallback,
            dir: dir.into(),
            mode,
            server_name,
        })
    }

    /// The named location the fallback hands requests to, if it is `@name`.
    pub fn named_fallback(&self) -> Option<&str> {
        match &self.fallback {
            Fallback::Named(n) => Some(n),
            _ => None,
        }
    }

    /// Checks the candidates for `req` and decides.
    ///
    /// The checks are `stat` calls made synchronously on the request path,
    /// as nginx makes them: a metadata lookup of a local file is cheap (and
    /// usually cached by the OS), and doing it inline keeps routing a plain
    /// function instead of a future per request.
    pub(crate) fn resolve<B>(&self, req: &Request<B>) -> Tried<'_> {
        let conn = conn_info(req);
        let ctx = VarCtx::new(req, &conn, request_path(req), &self.server_name);
        for (c, dir) in self.candidates.iter() {
            let uri = c.render_to_string(&ctx);
            let rel = self.mode.relative(&uri);
            let full = self.dir.join(rel.trim_start_matches('/'));
            let exists = if *dir { is_dir(&full) } else { is_file(&full) };
            if exists {
                return if *dir {
                    let mut uri = uri;
                    uri.pop();
                    Tried::Dir(uri)
                } else {
                    Tried::Found(uri)
                };
            }
        }
        match &self.fallback {
            Fallback::Code(c) => Tried::Code(*c),
            Fallback::Named(n) => Tried::Named(n),
            Fallback::Uri(t) => {
                // The fallback's own query replaces the request's, and no
                // query drops it (hence the `/index.php?$args` idiom); an
                // empty one leaves no `?`. Both as nginx.
                let mut target = t.render_to_string(&ctx);
                if target.ends_with('?') {
                    target.pop();
                }
                Tried::Redirect(target)
            }
        }
    }
}

fn is_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file())
}

fn is_dir(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn try_files(args: &[&str], dir: &Path, mode: FilesMode) -> TryFiles {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        TryFiles::new(&args, dir, mode, "s".into(), &Scope::new()).unwrap()
    }

    fn req(uri: &str) -> Request<()> {
        Request::get(uri).header("host", "h.test").body(()).unwrap()
    }

    #[test]
    fn candidates_then_fallbacks() {
        let dir = std::env::temp_dir().join(format!("rpx-try-files-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        std::fs::write(dir.join("a.html"), "a").unwrap();
        let t = try_files(
            &["$uri", "$uri.html", "$uri/", "@app"],
            &dir,
            FilesMode::Root,
        );
        assert_eq!(t.resolve(&req("/a.html")), Tried::Found("/a.html".into()));
        assert_eq!(t.resolve(&req("/a?x=1")), Tried::Found("/a.html".into()));
        assert_eq!(t.resolve(&req("/docs")), Tried::Dir("/docs".into()));
        // `$uri` names a file even when the value ends in `/`.
        let t3 = try_files(&["$uri", "=404"], &dir, FilesMode::Root);
        assert_eq!(
            t3.resolve(&req("/docs/")),
            Tried::Code(StatusCode::NOT_FOUND)
        );
        // A directory is not a file, a file is not a directory.
        let t2 = try_files(&["$uri", "/a.html/", "=418"], &dir, FilesMode::Root);
        assert_eq!(
            t2.resolve(&req("/docs")),
            Tried::Code(StatusCode::IM_A_TEAPOT)
        );
        assert_eq!(t.resolve(&req("/nothing")), Tried::Named("app"));

        let t = try_files(&["$uri", "/index.php?$args&p=1"], &dir, FilesMode::Root);
        assert_eq!(
            t.resolve(&req("/x?q=2")),
            Tried::Redirect("/index.php?q=2&p=1".into())
        );
        let t = try_files(&["$uri", "/index.php?$args"], &dir, FilesMode::Root);
        assert_eq!(t.resolve(&req("/x")), Tried::Redirect("/index.php".into()));
        let t = try_files(&["$uri", "/index.html"], &dir, FilesMode::Root);
        assert_eq!(
            t.resolve(&req("/x?q=2")),
            Tried::Redirect("/index.html".into())
        );

        let alias = FilesMode::Alias {
            prefix: "/static/".into(),
        };
        let t = try_files(&["$uri", "=404"], &dir, alias);
        assert_eq!(
            t.resolve(&req("/static/a.html")),
            Tried::Found("/static/a.html".into())
        );
        assert_eq!(
            t.resolve(&req("/a.html")),
            Tried::Code(StatusCode::NOT_FOUND)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_arguments() {
        let new = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            TryFiles::new(&args, "/", FilesMode::Root, "s".into(), &Scope::new())
        };
        assert!(matches!(new(&["=404"]), Err(TryFilesError::Arguments)));
        assert!(matches!(new(&["$uri", "=4x"]), Err(TryFilesError::Code(_))));
        assert!(matches!(new(&["$uri", "@"]), Err(TryFilesError::Name(_))));
        assert!(matches!(
            new(&["$nope", "=404"]),
            Err(TryFilesError::Template(_))
        ));
    }
}
