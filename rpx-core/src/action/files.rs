//! Static files from `root` or `alias`, with `index`, through tower-http's `ServeDir`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode, Uri};
use tower::{Service, ServiceExt};
use tower_http::services::fs::ServeFileSystemResponseBody;
use tower_http::services::ServeDir;

use crate::error::ProxyError;
use crate::request::request_path;

/// The body of a file response: tower-http's, read in chunks.
pub type FileBody = ServeFileSystemResponseBody;

/// Future of [`FileService`]. Boxed: it awaits tower-http's `ServeDir`,
/// whose own future cannot be named, and the file system besides.
pub type FilesFuture = Pin<Box<dyn Future<Output = Result<Response<FileBody>, ProxyError>> + Send>>;

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

    /// Serves the file `req` names; its body is not read.
    pub fn serve<B>(&self, req: Request<B>) -> FilesFuture {
        let rel = self.inner.mode.relative(request_path(&req));
        let (parts, _) = req.into_parts();
        Box::pin(self.clone().serve_at(rel, parts))
    }

    async fn serve_at(
        self,
        mut rel: String,
        mut parts: http::request::Parts,
    ) -> Result<Response<FileBody>, ProxyError> {
        if rel.ends_with('/') {
            match self.find_index(&rel).await {
                Some(name) => rel.push_str(name),
                None => return Err(ProxyError::NoRoute),
            }
        }
        // nginx's static module: GET and HEAD; a POST is refused only once
        // the file is found (a missing one is a 404, which `error_page`
        // may replace); anything else is a 405.
        match parts.method {
            http::Method::GET | http::Method::HEAD => {}
            http::Method::POST => {
                let path = self.inner.dir.join(rel.trim_start_matches('/'));
                if tokio::fs::metadata(&path).await.is_err() {
                    return Err(ProxyError::NoRoute);
                }
                return Err(ProxyError::MethodNotAllowed);
            }
            _ => return Err(ProxyError::MethodNotAllowed),
        }
        // tower-http decodes the path again.
        let uri: Uri = crate::location::escape_path(&rel)
            .parse()
            .map_err(|_| ProxyError::BadRequest("path is not servable"))?;
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
        Ok(res)
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

impl<B> Service<Request<B>> for FileService {
    type Response = Response<FileBody>;
    type Error = ProxyError;
    type Future = FilesFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> FilesFuture {
        self.serve(req)
    }
}
