//! Log files: one writer thread per path, fed through a bounded channel so
//! a request never waits for the disk (a full channel drops the line and
//! counts it). Writers are shared across reloads and reopened on SIGUSR1.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

/// Lines waiting for the disk before new ones are dropped.
const QUEUE: usize = 16 * 1024;
/// How often buffered lines reach the file when traffic is light.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

enum Msg {
    Line(String),
    Reopen,
}

/// A log file that lines are sent to.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    tx: SyncSender<Msg>,
    dropped: AtomicU64,
}

/// Why a log file could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot open the log file: {source}", path.display())]
pub struct LogFileError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<LogFile>>> {
    static FILES: OnceLock<Mutex<HashMap<PathBuf, Weak<LogFile>>>> = OnceLock::new();
    FILES.get_or_init(Default::default)
}

impl LogFile {
    /// The writer for `path`, shared with every config (and reload) that
    /// logs there; opened for appending.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(path: &Path) -> Result<Arc<LogFile>, LogFileError> {
        // Config compilation only, never per request.
        let mut files = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = files.get(path).and_then(Weak::upgrade) {
            return Ok(f);
        }
        let file = open_append(path)?;
        let (tx, rx) = sync_channel(QUEUE);
        let writer_path = path.to_owned();
        std::thread::Builder::new()
            .name("rpx-access-log".into())
            .spawn(move || write_loop(writer_path, file, rx))
            .map_err(|source| LogFileError {
                path: path.to_owned(),
                source,
            })?;
        let f = Arc::new(LogFile {
            path: path.to_owned(),
            tx,
            dropped: AtomicU64::new(0),
        });
        files.insert(path.to_owned(), Arc::downgrade(&f));
        Ok(f)
    }

    /// Queues a line; never blocks.
    pub fn write(&self, line: String) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Msg::Line(line)) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(file = %self.path.display(), dropped = n + 1, "access log is behind; lines dropped");
            }
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reopens every open log file (after logrotate moved them), as nginx on SIGUSR1.
pub fn reopen_all() {
    let files = registry().lock().unwrap_or_else(|p| p.into_inner());
    for f in files.values().filter_map(Weak::upgrade) {
        let _ = f.tx.try_send(Msg::Reopen);
    }
}

fn open_append(path: &Path) -> Result<File, LogFileError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LogFileError {
            path: path.to_owned(),
            source,
        })
}

fn write_loop(path: PathBuf, file: File, rx: Receiver<Msg>) {
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    loop {
        match rx.recv_timeout(FLUSH_EVERY) {
            Ok(Msg::Line(line)) => {
                if let Err(e) = out.write_all(line.as_bytes()) {
                    tracing::warn!(file = %path.display(), error = %e, "access log write failed");
                }
            }
            Ok(Msg::Reopen) => {
                let _ = out.flush();
                match open_append(&path) {
                    Ok(f) => out = BufWriter::with_capacity(64 * 1024, f),
                    Err(e) => tracing::warn!(error = %e, "keeping the old access log file"),
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = out.flush();
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        }
    }
}
