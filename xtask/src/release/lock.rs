//! One release at a time into an output directory. The directory itself is locked
//! (`flock`), so the lock writes nothing into it, and a lock held by a release that was
//! killed goes with its process.

use std::fs::{self, File, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{bail, Context as _, Result};

/// Whether a second release waits for the first or fails at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Yes,
    No,
}

/// Locks `dir` (creating it if a release that held it removed it meanwhile); the lock is
/// released when the returned file is dropped.
pub fn acquire(dir: &Path, wait: Wait) -> Result<File> {
    loop {
        fs::create_dir_all(dir).with_context(|| format!("cannot create the output directory {}", dir.display()))?;
        let file = File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) if wait == Wait::No => bail!(
                "another release is writing into {}: wait until it is done, or run again without --no-wait to wait for it",
                dir.display()
            ),
            Err(TryLockError::WouldBlock) => {
                eprintln!("waiting for another release into {} to finish", dir.display());
                file.lock().with_context(|| format!("cannot lock {}", dir.display()))?;
            }
            Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("cannot lock {}", dir.display())),
        }
        // A release that created the directory removes it again when it fails: the lock
        // then guards a directory that is no longer there, so take the new one's.
        if same_directory(&file, dir) {
            return Ok(file);
        }
    }
}

fn same_directory(file: &File, dir: &Path) -> bool {
    match (file.metadata(), fs::metadata(dir)) {
        (Ok(held), Ok(now)) => held.dev() == now.dev() && held.ino() == now.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_at_once_without_waiting_and_is_free_after_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), Wait::No).unwrap();
        let error = acquire(dir.path(), Wait::No).unwrap_err().to_string();
        assert!(error.starts_with("another release is writing into "), "{error}");
        drop(first);
        acquire(dir.path(), Wait::No).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "the lock wrote into the directory");
    }
}
