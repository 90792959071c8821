//! rpx's own log (nginx's error log): stderr until the config says
//! otherwise, then where its `error_log` points, from the level it gives.
//! A reload re-points it; SIGUSR1 reopens the file (logrotate).
//!
//! `RUST_LOG`, when set, decides the level instead of the config.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rpx_core::config::{ErrorLogConfig, ErrorLogTarget};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// rustls warns for every client that sends an IP address as SNI.
const QUIET: &str = "rustls=error";

/// The installed logger and what can change in it.
pub struct Logging {
    filter: reload::Handle<EnvFilter, Registry>,
    out: Output,
    /// `RUST_LOG` was set: it keeps deciding the level.
    from_env: bool,
}

impl Logging {
    /// Installs the global logger: stderr, level `info` (or `RUST_LOG`).
    pub fn init() -> Logging {
        let from_env = std::env::var_os("RUST_LOG").is_some();
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(format!("info,{QUIET}")));
        let (filter, handle) = reload::Layer::new(filter);
        let out = Output::default();
        tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(out.clone()),
            )
            .init();
        Logging {
            filter: handle,
            out,
            from_env,
        }
    }

    /// Points the log where `config` says (None: stderr, `info`).
    ///
    /// # Errors
    /// The file cannot be opened for appending; the log stays as it was.
    pub fn apply(&self, config: Option<&ErrorLogConfig>) -> Result<(), String> {
        let file = match config.map(|c| &c.target) {
            Some(ErrorLogTarget::File(path)) => Some((path.clone(), open(path)?)),
            _ => None,
        };
        self.out.set(file);
        if !self.from_env {
            let level = config.map_or(tracing::Level::INFO, |c| c.level.tracing_level());
            let filter = EnvFilter::new(format!("{},{QUIET}", level.as_str().to_lowercase()));
            // Fails only when the subscriber is gone (the process is ending).
            let _ = self.filter.reload(filter);
        }
        Ok(())
    }

    /// Opens the log file anew (after logrotate moved it away).
    ///
    /// # Errors
    /// It cannot be opened; the old handle stays.
    pub fn reopen(&self) -> Result<(), String> {
        let Some(path) = self.out.path() else {
            return Ok(());
        };
        let file = open(&path)?;
        self.out.set(Some((path, file)));
        Ok(())
    }
}

fn open(path: &Path) -> Result<Arc<File>, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Arc::new)
        .map_err(|e| format!("cannot open the error log {}: {e}", path.display()))
}

/// An open log file and the path it was opened at.
type LogFile = (PathBuf, Arc<File>);

/// Where log lines go now: stderr, or a file shared by every writer.
#[derive(Clone, Default)]
struct Output(Arc<RwLock<Option<LogFile>>>);

impl Output {
    fn set(&self, file: Option<LogFile>) {
        if let Ok(mut out) = self.0.write() {
            *out = file;
        }
    }

    fn path(&self) -> Option<PathBuf> {
        self.0.read().ok()?.as_ref().map(|(p, _)| p.clone())
    }
}

/// One event's writer. The formatter writes each event with one
/// `write_all`, and the file is in append mode, so lines never interleave.
enum Writer {
    Stderr(io::Stderr),
    File(Arc<File>),
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Writer::Stderr(e) => e.write(buf),
            Writer::File(f) => (&**f).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Writer::Stderr(e) => e.flush(),
            Writer::File(f) => (&**f).flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for Output {
    type Writer = Writer;

    fn make_writer(&'a self) -> Writer {
        match self
            .0
            .read()
            .ok()
            .and_then(|o| o.as_ref().map(|(_, f)| f.clone()))
        {
            Some(f) => Writer::File(f),
            None => Writer::Stderr(io::stderr()),
        }
    }
}
