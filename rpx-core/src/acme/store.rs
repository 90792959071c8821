//! An issuer's state: the account and each certificate with its key, in a
//! directory (files 0600, written whole then renamed into place) or, with
//! `state_path off`, in memory.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where an issuer's files live.
#[derive(Debug)]
pub(crate) enum Store {
    Dir(PathBuf),
    Memory(Mutex<HashMap<String, Vec<u8>>>),
}

impl Store {
    /// A directory store; the directory is created (0700) at the first
    /// write, so that `rpx check` and a start with stored certificates
    /// change nothing on disk.
    pub(crate) fn dir(path: &Path) -> Self {
        Store::Dir(path.to_owned())
    }

    pub(crate) fn memory() -> Self {
        Store::Memory(Mutex::new(HashMap::new()))
    }

    /// Where `name` is (or would be) on disk.
    pub(crate) fn path(&self, name: &str) -> Option<PathBuf> {
        match self {
            Store::Dir(dir) => Some(dir.join(name)),
            Store::Memory(_) => None,
        }
    }

    /// The file's content; `None` when it does not exist.
    pub(crate) fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match self {
            Store::Dir(dir) => match std::fs::read(dir.join(name)) {
                Ok(data) => Ok(Some(data)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            Store::Memory(m) => Ok(lock(m).get(name).cloned()),
        }
    }

    /// Replaces the file: a reader sees the old or the new content, never
    /// half of one. Every file is private (0600): keys, and certificates
    /// beside them.
    pub(crate) fn write(&self, name: &str, data: &[u8]) -> io::Result<()> {
        match self {
            Store::Dir(dir) => {
                let mut builder = std::fs::DirBuilder::new();
                builder.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                builder.create(dir)?;
                let tmp = dir.join(format!(".{name}.tmp"));
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut file = opts.open(&tmp)?;
                io::Write::write_all(&mut file, data)?;
                file.sync_all()?;
                std::fs::rename(&tmp, dir.join(name))
            }
            Store::Memory(m) => {
                lock(m).insert(name.to_owned(), data.to_vec());
                Ok(())
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A file name for a certificate of `names`: the first name, made safe
/// (`*.example.com` → `_.example.com`).
pub(crate) fn cert_file_stem(names: &[String]) -> String {
    let first = names.first().map_or("certificate", String::as_str);
    first
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_private_and_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("rpx-store-{}", std::process::id()));
        let store = Store::dir(&dir);
        assert_eq!(store.read("a.key").unwrap(), None);
        store.write("a.key", b"one").unwrap();
        store.write("a.key", b"two").unwrap();
        assert_eq!(store.read("a.key").unwrap().as_deref(), Some(&b"two"[..]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("a.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stems_are_file_safe() {
        assert_eq!(cert_file_stem(&["*.Example.com".into()]), "_.example.com");
        assert_eq!(cert_file_stem(&["a/../b".into()]), "a_.._b");
    }
}
