//! Files that appear in the release directory only once complete. On Linux each is written
//! as an unnamed file (`O_TMPFILE`) and linked under its name at the end, so a release that
//! fails or is killed, even by SIGKILL, leaves nothing behind. Elsewhere, or on a file system
//! without `O_TMPFILE`, it is a hidden `.NAME.partial-PID` file renamed at the end and
//! removed on failure.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

pub struct Staged {
    file: File,
    /// The hidden name of a fallback file; `None` for an unnamed one.
    partial: Option<PathBuf>,
}

impl Staged {
    /// A new empty file in `dir`, to become `dir/name`.
    pub fn create(dir: &Path, name: &str) -> Result<Staged> {
        let staged = match unnamed(dir) {
            Ok(file) => Staged { file, partial: None },
            Err(_) => {
                let partial = dir.join(format!(".{name}.partial-{}", std::process::id()));
                let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&partial);
                let file = file.with_context(|| format!("cannot write in {}", dir.display()))?;
                Staged { file, partial: Some(partial) }
            }
        };
        // Artifacts are world-readable whatever the umask, like the files in them.
        staged
            .file
            .set_permissions(Permissions::from_mode(0o644))
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        Ok(staged)
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Gives the file its name; fails rather than replace a file already there.
    pub fn publish(mut self, path: &Path) -> Result<()> {
        self.sync(path)?;
        let linked = match self.partial.take() {
            Some(partial) => fs::hard_link(&partial, path).and_then(|()| fs::remove_file(&partial)),
            None => link_unnamed(&self.file, path),
        };
        linked.with_context(|| format!("cannot create {}", path.display()))
    }

    /// Gives the file its name, atomically replacing any file there.
    pub fn replace(mut self, path: &Path) -> Result<()> {
        self.sync(path)?;
        let partial = match self.partial.take() {
            Some(partial) => partial,
            None => {
                let hidden = hidden_name(path);
                let _ = fs::remove_file(&hidden);
                link_unnamed(&self.file, &hidden).with_context(|| format!("cannot create {}", hidden.display()))?;
                hidden
            }
        };
        let renamed = fs::rename(&partial, path);
        if renamed.is_err() {
            let _ = fs::remove_file(&partial);
        }
        renamed.with_context(|| format!("cannot replace {}", path.display()))
    }
}

impl Staged {
    /// The bytes reach the disk before the name does, so a crash cannot leave a named
    /// but empty artifact.
    fn sync(&self, path: &Path) -> Result<()> {
        self.file.sync_all().with_context(|| format!("cannot write {}", path.display()))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(partial) = &self.partial {
            let _ = fs::remove_file(partial);
        }
    }
}

fn hidden_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.new-{}", std::process::id()))
}

#[cfg(target_os = "linux")]
fn unnamed(dir: &Path) -> io::Result<File> {
    use rustix::fs::{openat, Mode, OFlags, CWD};
    let fd = openat(CWD, dir, OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC, Mode::from_bits_truncate(0o600))?;
    Ok(File::from(fd))
}

#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    use rustix::fs::{linkat, AtFlags, CWD};
    // Linking the /proc name of the descriptor is the unprivileged way to name an O_TMPFILE file.
    let proc_name = format!("/proc/self/fd/{}", file.as_raw_fd());
    Ok(linkat(CWD, proc_name.as_str(), CWD, path, AtFlags::SYMLINK_FOLLOW)?)
}

#[cfg(not(target_os = "linux"))]
fn unnamed(_dir: &Path) -> io::Result<File> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(not(target_os = "linux"))]
fn link_unnamed(_file: &File, _path: &Path) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_staged_file_is_invisible_until_published_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let mut staged = Staged::create(dir.path(), "a.tar.gz").unwrap();
        staged.file().write_all(b"done").unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        staged.publish(&dir.path().join("a.tar.gz")).unwrap();
        assert_eq!(fs::read(dir.path().join("a.tar.gz")).unwrap(), b"done");

        let again = Staged::create(dir.path(), "a.tar.gz").unwrap();
        assert!(again.publish(&dir.path().join("a.tar.gz")).is_err());
        let mut sums = Staged::create(dir.path(), "a.tar.gz").unwrap();
        sums.file().write_all(b"new").unwrap();
        sums.replace(&dir.path().join("a.tar.gz")).unwrap();
        assert_eq!(fs::read(dir.path().join("a.tar.gz")).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_dropped_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut staged = Staged::create(dir.path(), "x").unwrap();
        staged.file().write_all(b"partial").unwrap();
        drop(staged);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
