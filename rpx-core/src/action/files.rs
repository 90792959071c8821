//! Static files from `root` or `alias`, with `index`, through tower-http's `ServeDir`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{Request, Response, StatusCode, Uri};
use tower::ServiceExt;
use tower_http::services::ServeDir;

use crate::body::RpxBody;
use crate::error::ProxyError;
use crate::location::request_path;

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

impl FilesMode {
    /// The path below the directory for a URI path.
    pub fn relative(&self, path: &str) -> String {
        match self {
            FilesMode::Root => path.to_owned(),
            FilesMode::Alias { prefix } => {
                format!("/{}", path.strip_prefix(prefix.as_str()).unwrap_or(""))
            }
        }
    }
}

/// Serves files below one directory (`try_files` is the location router's
/// step: see [`crate::location::TryFiles`]).
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
            }),
        }
    }

    pub(crate) async fn serve<B>(self, req: Request<B>) -> Result<Response<RpxBody>, ProxyError> {
        let mut rel = self.inner.mode.relative(request_path(&req));
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
