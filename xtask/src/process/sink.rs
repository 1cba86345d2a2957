//! Files written from a child's standard output, and their checksums. The output is
//! hashed while it streams into a temporary file, which is renamed into place only once
//! the child has succeeded, so a failed or interrupted run leaves nothing behind. The
//! SHA-256 goes into `<file>.sha256` in the format `sha256sum -c` reads.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use anyhow::{Context as _, Result};
use duct::ReaderHandle;

use crate::process::Sink;
use crate::sha256;

/// What a file's `.sha256` says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    Ok,
    /// The file's SHA-256 differs from the recorded one, or the record is unreadable.
    Mismatch,
    Missing,
}

/// `<file>.sha256`.
pub fn checksum_path(file: &Path) -> PathBuf {
    with_suffix(file, ".sha256")
}

/// Starts a child with `start` and sends its standard output to `sink`; returns the
/// child's status. `start` must not check the exit status: a failure is the caller's to report.
pub(crate) fn run(sink: &Sink, start: impl FnOnce() -> Result<ReaderHandle>) -> Result<ExitStatus> {
    if let Some(dir) = sink.path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let partial = hidden(&sink.path, ".partial");
    let outcome = stream(start, &partial).and_then(|(status, digest)| {
        if status.success() {
            finish(sink, &partial, &digest)?;
        }
        Ok(status)
    });
    if !matches!(&outcome, Ok(status) if status.success()) {
        // Best effort: the temporary file may not exist yet.
        let _ = fs::remove_file(&partial);
    }
    outcome
}

/// Copies the child's stdout into `partial`, hashing on the way; returns the child's
/// status and the hex SHA-256 of what it wrote.
fn stream(start: impl FnOnce() -> Result<ReaderHandle>, partial: &Path) -> Result<(ExitStatus, String)> {
    let mut file = File::create(partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let reader = start()?;
    let copied = sha256::copy(&mut &reader, &mut file);
    let digest = match copied.and_then(|(_, digest)| file.sync_all().map(|()| digest)) {
        Ok(digest) => digest,
        Err(error) => {
            // Stop the child: its output has nowhere to go.
            let _ = reader.kill();
            return Err(error).with_context(|| format!("cannot write {}", partial.display()));
        }
    };
    let status = reader.try_wait()?.map(|output| output.status).context("the child did not finish")?;
    Ok((status, digest))
}

/// Puts the checksum in place first, then the file: a file that is there always has
/// its checksum.
fn finish(sink: &Sink, partial: &Path, digest: &str) -> Result<()> {
    if sink.checksum {
        let name = sink.path.file_name().unwrap_or_default().to_string_lossy();
        let sums = checksum_path(&sink.path);
        let sums_partial = hidden(&sums, ".partial");
        fs::write(&sums_partial, sha256::line(digest, &name))
            .with_context(|| format!("cannot write {}", sums_partial.display()))?;
        rename(&sums_partial, &sums)?;
    }
    rename(partial, &sink.path)
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).with_context(|| format!("cannot rename {} to {}", from.display(), to.display()))
}

/// Checks `file` against its `.sha256`, reading it as a stream.
pub fn verify(file: &Path) -> Result<Checksum> {
    let sums = checksum_path(file);
    let recorded = match fs::read_to_string(&sums) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Checksum::Missing),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", sums.display())),
    };
    // `sha256sum -c` takes upper-case digests too.
    let first = recorded.lines().next().unwrap_or_default().to_ascii_lowercase();
    let Some((recorded, _)) = sha256::parse_line(&first) else { return Ok(Checksum::Mismatch) };
    let (_, actual) = sha256::hash_file(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(if actual == recorded { Checksum::Ok } else { Checksum::Mismatch })
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `dir/.name<suffix>`: hidden, so listings skip it, and in the same directory, so the
/// final rename cannot cross file systems.
fn hidden(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(suffix);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(dir: &Path) -> Sink {
        Sink { path: dir.join("out/x.dump"), checksum: true }
    }

    #[test]
    fn output_lands_with_its_checksum_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let status = run(&sink(dir.path()), || Ok(duct::cmd!("printf", "abc").reader()?)).unwrap();
        assert!(status.success());
        let out = dir.path().join("out");
        assert_eq!(fs::read(out.join("x.dump")).unwrap(), b"abc");
        let sum = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  x.dump\n";
        assert_eq!(fs::read_to_string(out.join("x.dump.sha256")).unwrap(), sum);
        assert_eq!(fs::read_dir(&out).unwrap().count(), 2);
        assert_eq!(verify(&out.join("x.dump")).unwrap(), Checksum::Ok);
    }

    #[test]
    fn a_failing_child_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let child = duct::cmd!("sh", "-c", "printf partial; exit 3").unchecked();
        let status = run(&sink(dir.path()), || Ok(child.reader()?)).unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(fs::read_dir(dir.path().join("out")).unwrap().count(), 0);
    }

    #[test]
    fn a_changed_file_no_longer_matches() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.dump");
        fs::write(&file, "abc").unwrap();
        assert_eq!(verify(&file).unwrap(), Checksum::Missing);
        fs::write(checksum_path(&file), sha256::line(&sha256::hash_file(&file).unwrap().1, "x.dump")).unwrap();
        assert_eq!(verify(&file).unwrap(), Checksum::Ok);
        fs::write(&file, "abd").unwrap();
        assert_eq!(verify(&file).unwrap(), Checksum::Mismatch);
    }
}
