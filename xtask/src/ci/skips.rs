//! Tests that cannot run on this machine (no Compose v1, root that cannot drop a capability):
//! such a test fails with its reason unless the run allows skips (`XTASK_ALLOW_SKIPS=1`,
//! which `cargo xtask ci --allow-skips` sets for its steps). An allowed skip is written as one
//! line, `<test>\t<reason>`, to the file `XTASK_SKIPS_FILE` names, which `cargo xtask ci`
//! points at a fresh file of the step's under target/ci-skips/ and reads after the step
//! for its summary.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::plan::Step;

/// Set to `1`, a test that cannot run here returns instead of failing.
pub const ALLOW: &str = "XTASK_ALLOW_SKIPS";
/// The file that collects the skipped tests.
pub const FILE: &str = "XTASK_SKIPS_FILE";

/// A test that returned without running, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub test: String,
    pub reason: String,
}

/// Whether this process may skip tests.
pub fn allowed() -> bool {
    std::env::var(ALLOW).is_ok_and(|v| v == "1")
}

/// Adds `test` and `reason` to the skips file, when one is named.
pub fn record(test: &str, reason: &str) -> Result<()> {
    let Some(path) = std::env::var_os(FILE) else { return Ok(()) };
    let line = format!("{}\t{}\n", one_line(test), one_line(reason));
    // One write of one short line in append mode: tests running in parallel do not interleave.
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open the skips file {}", Path::new(&path).display()))?;
    file.write_all(line.as_bytes()).with_context(|| format!("cannot write to {}", Path::new(&path).display()))
}

/// The skips recorded in `path`; none when it does not exist.
pub fn read(path: &Path) -> Result<Vec<Skipped>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(text.lines().map(parse).collect())
}

/// The skips file of one step of a `cargo xtask ci` run, and whether it may skip tests.
/// Each step has its own, so a step running in the background keeps its skips apart.
pub(super) struct SkipsFile {
    path: PathBuf,
    allow: bool,
}

impl SkipsFile {
    pub fn new(root: &Path, step: &str, allow: bool) -> SkipsFile {
        let name = step.replace(|c: char| !c.is_ascii_alphanumeric(), "-");
        SkipsFile { path: root.join("target/ci-skips").join(name), allow }
    }

    /// `step` told where to record its skipped tests and whether it may skip any (also when
    /// the shell running ci allows skips: only `--allow-skips` does).
    pub fn pass_to(&self, step: Step) -> Step {
        step.env(FILE, self.path.to_string_lossy()).env(ALLOW, if self.allow { "1" } else { "0" })
    }

    /// Starts an empty file before the step, so that its skips are this run's.
    pub fn clear(&self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        fs::write(&self.path, "").with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// The tests the step skipped.
    pub fn take(&self) -> Result<Vec<Skipped>> {
        read(&self.path)
    }
}

fn parse(line: &str) -> Skipped {
    let (test, reason) = line.split_once('\t').unwrap_or((line, ""));
    Skipped { test: test.to_owned(), reason: reason.to_owned() }
}

/// `text` on one line, with no tab: the file's separators.
fn one_line(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_line_reads_back_as_the_test_and_its_reason() {
        let line = format!("{}\t{}", one_line("stack::v1"), one_line("no docker-compose\ton PATH\n"));
        assert_eq!(parse(&line), Skipped { test: "stack::v1".into(), reason: "no docker-compose on PATH ".into() });
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&dir.path().join("none")).unwrap(), []);
    }
}
