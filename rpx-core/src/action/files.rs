//! Static files from `root` or `alias`, with `index`, through tower-http's `ServeDir`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{Request, Response, StatusCode, Uri};
use tower::ServiceExt;
use tower_http::services::ServeDir;

use crate::body::RpxBody;
use crate::conn::conn_info;
use crate::error::ProxyError;
use crate::location::request_path;
use crate::vars::{Scope, Template, TemplateError, VarCtx};

/// How the request path maps onto the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilesMode {
    /// `root dir`: the whole path is appended to `dir`.
    Root,
    /// `alias dir` in `location prefix`: the prefix is replaced by `dir`.
    Alias {
        /// The location's prefix.
        prefix: String,
    },
}

/// Serves files below one directory.
#[derive(Debug, Clone)]
pub struct FileService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    mode: FilesMode,
    index: Vec<String>,
    serve: ServeDir,
    try_files: Option<TryFiles>,
    server_name: Arc<str>,
}

/// `try_files candidate… fallback`.
#[derive(Debug)]
pub struct TryFiles {
    candidates: Vec<Template>,
    fallback: TryFallback,
}

/// The last argument of `try_files`.
#[derive(Debug)]
enum TryFallback {
    /// `=404`: answer with the status.
    Code(StatusCode),
    /// A URI: served from the same directory (see [`TryFiles::new`]).
    Uri(Template),
}

impl TryFiles {
    /// Compiles `try_files` arguments. The last is `=code` or a URI; rpx
    /// serves a fallback URI as a file below the same directory rather than
    /// searching the locations again (the single-page-app idiom
    /// `try_files $uri $uri/ /index.html` behaves as in nginx).
    ///
    /// # Errors
    /// Fewer than two arguments, a bad `=code`, an unknown variable.
    pub fn new(args: &[String], scope: &Scope) -> Result<Self, TryFilesError> {
        let Some((last, candidates)) = args.split_last().filter(|(_, c)| !c.is_empty()) else {
            return Err(TryFilesError::Arguments);
        };
        let fallback = match last.strip_prefix('=') {
            Some(code) => TryFallback::Code(
                code.parse::<u16>()
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .ok_or_else(|| TryFilesError::Code(last.clone()))?,
            ),
            None => TryFallback::Uri(Template::parse_in(last, scope)?),
        };
        Ok(TryFiles {
            candidates: candidates
                .iter()
                .map(|c| Template::parse_in(c, scope))
                .collect::<Result<_, _>>()?,
            fallback,
        })
    }
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
    /// A variable.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

impl FileService {
    /// Files below `dir`, trying `index` names for paths ending in `/`.
    pub fn new(dir: impl Into<PathBuf>, mode: FilesMode, index: Vec<String>) -> Self {
        let dir = dir.into();
        FileService {
            inner: Arc::new(Inner {
                serve: ServeDir::new(&dir).append_index_html_on_directories(false),
                dir,
                mode,
                index,
                try_files: None,
                server_name: "".into(),
            }),
        }
    }

    /// Files below `dir` chosen by `try_files`; `server_name` is what
    /// `$server_name` renders in its arguments.
    pub fn with_try_files(
        dir: impl Into<PathBuf>,
        mode: FilesMode,
        index: Vec<String>,
        try_files: TryFiles,
        server_name: Arc<str>,
    ) -> Self {
        let dir = dir.into();
        FileService {
            inner: Arc::new(Inner {
                serve: ServeDir::new(&dir).append_index_html_on_directories(false),
                dir,
                mode,
                index,
                try_files: Some(try_files),
                server_name,
            }),
        }
    }

    /// `try_files` arguments rendered for one request.
    fn render_try<B>(
        &self,
        t: &TryFiles,
        req: &Request<B>,
    ) -> (Vec<String>, Result<String, StatusCode>) {
        let conn = conn_info(req);
        let ctx = VarCtx::new(req, &conn, request_path(req), &self.inner.server_name);
        let c = t
            .candidates
            .iter()
            .map(|c| c.render_to_string(&ctx))
            .collect();
        let f = match &t.fallback {
            TryFallback::Code(code) => Err(*code),
            TryFallback::Uri(u) => Ok(u.render_to_string(&ctx)),
        };
        (c, f)
    }

    /// The path below the directory for a URI path.
    fn relative(&self, path: &str) -> String {
        match &self.inner.mode {
            FilesMode::Root => path.to_owned(),
            FilesMode::Alias { prefix } => {
                format!("/{}", path.strip_prefix(prefix.as_str()).unwrap_or(""))
            }
        }
    }

    /// The first `try_files` candidate that exists, as a path below the
    /// directory; `Err` is the fallback status.
    async fn try_candidates(
        &self,
        (candidates, fallback): (Vec<String>, Result<String, StatusCode>),
    ) -> Result<String, StatusCode> {
        for c in candidates {
            let rel = self.relative(&c);
            let full = self.inner.dir.join(rel.trim_start_matches('/'));
            let exists = if rel.ends_with('/') {
                tokio::fs::metadata(&full).await.is_ok_and(|m| m.is_dir())
            } else {
                is_file(&full).await
            };
            if exists {
                return Ok(rel);
            }
        }
        fallback.map(|uri| self.relative(uri.split('?').next().unwrap_or("")))
    }

    pub(crate) async fn serve<B>(self, req: Request<B>) -> Result<Response<RpxBody>, ProxyError> {
        let mut rel = match &self.inner.try_files {
            Some(t) => match self.try_candidates(self.render_try(t, &req)).await {
                Ok(rel) => rel,
                Err(StatusCode::NOT_FOUND) => return Err(ProxyError::NoRoute),
                Err(code) => return Ok(crate::error::error_page(code)),
            },
            None => self.relative(request_path(&req)),
        };
        if rel.ends_with('/') {
            match self.find_index(&rel).await {
                Some(name) => rel.push_str(name),
                None => return Err(ProxyError::NoRoute),
            }
        }
        let uri: Uri = rel
            .parse()
            .map_err(|_| ProxyError::BadRequest("path is not servable"))?;
        let (mut parts, _) = req.into_parts();
        parts.uri = uri;
        let res = self
            .inner
            .serve
            .clone()
            .oneshot(Request::from_parts(parts, ()))
            .await
            .map_err(|e| ProxyError::Internal(e.into()))?;
        if res.status() == StatusCode::NOT_FOUND {
            return Err(ProxyError::NoRoute);
        }
        Ok(res.map(RpxBody::file))
    }

    async fn find_index(&self, dir: &str) -> Option<&str> {
        let base = self.inner.dir.join(dir.trim_start_matches('/'));
        for name in &self.inner.index {
            if is_file(&base.join(name)).await {
                return Some(name);
            }
        }
        None
    }
}

async fn is_file(p: &Path) -> bool {
    tokio::fs::metadata(p).await.is_ok_and(|m| m.is_file())
}
