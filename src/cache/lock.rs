//! The run lock: one writer per store at a time. `FILE.lock`, beside the
//! database, is held with an exclusive lock for the life of a writable
//! [`Store`](super::Store) (the kernel releases it even on `kill -9`); the
//! holder writes its pid inside, so a second run can name it in
//! [`StoreError::Busy`].

use super::StoreError;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The run lock: `FILE.lock`, exclusively locked for the store's lifetime,
/// with the holder's pid inside for the error message.
pub(super) fn take_lock(path: &Path) -> Result<File, StoreError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let open_err = |source| StoreError::Open {
        path: lock_path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(open_err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(StoreError::Busy {
                path: path.to_path_buf(),
                pid: text.trim().parse().ok(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(open_err(e)),
    }
    file.set_len(0).map_err(open_err)?;
    file.rewind().map_err(open_err)?;
    write!(file, "{}", std::process::id()).map_err(open_err)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Store;

    #[test]
    fn second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let _first = Store::open(&path).unwrap();
        match Store::open(&path) {
            Err(StoreError::Busy { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Busy, got {:?}", other.err()),
        }
        // Readers are welcome.
        Store::open_read_only(&path).unwrap().runs(10).unwrap();
    }
}
