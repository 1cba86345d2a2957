//! One backup command at a time per project: they stage and restore in the same directories
//! under `.stack/backup`, so a second one (a timer firing during a manual run) would empty
//! the first one's staging directory while restic reads it. The lock is a file holding the
//! owner's pid; one whose process is gone is taken over.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context as _, Result};

/// Whether this process holds the lock: a restore's safety snapshot runs inside the restore.
static HELD: AtomicBool = AtomicBool::new(false);

/// Held until dropped.
pub struct Lock {
    path: Option<PathBuf>,
}

/// Takes the lock of `dir`, or says which process has it.
pub fn acquire(dir: &Path) -> Result<Lock> {
    if HELD.swap(true, Ordering::SeqCst) {
        return Ok(Lock { path: None });
    }
    let taken = take(dir);
    if taken.is_err() {
        HELD.store(false, Ordering::SeqCst);
    }
    taken
}

fn take(dir: &Path) -> Result<Lock> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("lock");
    loop {
        match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                writeln!(file, "{}", std::process::id()).with_context(|| format!("cannot write {}", path.display()))?;
                return Ok(Lock { path: Some(path) });
            }
            Err(error) if error.kind() == ErrorKind::AlreadyExists => {
                let owner = fs::read_to_string(&path).unwrap_or_default().trim().parse::<i32>().ok();
                if let Some(pid) = owner.filter(|pid| alive(*pid)) {
                    bail!(
                        "another backup command (pid {pid}) is running in {}: wait until it has ended",
                        dir.display()
                    );
                }
                // Its owner is gone: an interrupted run.
                fs::remove_file(&path).with_context(|| format!("cannot remove the stale {}", path.display()))?;
            }
            Err(error) => return Err(error).with_context(|| format!("cannot create {}", path.display())),
        }
    }
}

/// Whether process `pid` exists (one of another user's answers "not permitted").
fn alive(pid: i32) -> bool {
    rustix::process::Pid::from_raw(pid).is_some_and(|pid| match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(errno) => errno == rustix::io::Errno::PERM,
    })
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = fs::remove_file(path);
            HELD.store(false, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_owner_keeps_it_a_gone_one_does_not() {
        let dir = std::env::temp_dir().join(format!("backup-lock-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        // pid 1 always runs.
        fs::write(dir.join("lock"), "1\n").unwrap();
        let message = take(&dir).err().unwrap().to_string();
        assert!(message.starts_with("another backup command (pid 1) is running in "), "{message}");
        // A pid above the kernel's maximum never runs.
        fs::write(dir.join("lock"), "2147483647\n").unwrap();
        let lock = take(&dir).unwrap();
        assert_eq!(fs::read_to_string(dir.join("lock")).unwrap(), format!("{}\n", std::process::id()));
        drop(lock);
        assert!(!dir.join("lock").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
