//! One-off containers whose success is read back from the engine. Compose can exit 0
//! without the container having run (a failed image build that `run` triggered itself), so
//! the exit code that counts is the one the engine recorded for the container, which is
//! named so it can be found, and removed once read.

use anyhow::{bail, Result};

use crate::plan::run_error::ChildFailed;
use crate::plan::Step;

/// What `docker inspect` reports of a finished container: its state and exit code.
const STATE_FORMAT: &str = "{{.State.Status}} {{.State.ExitCode}}";

/// `docker inspect` of the one-off container: prints `<status> <exit code>`.
pub fn inspect(run: &Step, name: &str) -> Step {
    Step::new("docker", &run.dir).args(["inspect", "--format", STATE_FORMAT, name])
}

/// `docker rm --force` of the one-off container, run whatever happened.
pub fn remove(run: &Step, name: &str) -> Step {
    Step::new("docker", &run.dir).args(["rm", "--force", name])
}

/// The three commands as `--dry-run` prints them.
pub fn render(run: &Step, name: &str) -> String {
    format!("{run}\n{}\n{}", inspect(run, name), remove(run, name))
}

/// The outcome of a one-off: `compose_code` is what Compose exited with, `recorded` what
/// `docker inspect` printed (None when the engine knows no such container).
pub fn judge(run: &Step, name: &str, compose_code: u8, recorded: Option<&str>) -> Result<()> {
    let failed = |code: u8| -> Result<()> {
        Err(ChildFailed { command: run.to_string(), code, what: run.failure.clone() }.into())
    };
    let state = recorded.and_then(parse);
    match state {
        Some((_, code)) if code != 0 => failed(code),
        Some(_) if compose_code != 0 => failed(compose_code),
        Some(_) => Ok(()),
        None if compose_code != 0 => failed(compose_code),
        None => bail!("the one-off container {name} never ran, although `{run}` exited 0: see Compose's output above"),
    }
}

/// `exited 3` as the state and exit code of a container that ran and stopped; None for
/// one that was created but never started, or anything unreadable.
fn parse(line: &str) -> Option<(String, u8)> {
    let (status, code) = line.trim().split_once(' ')?;
    if status != "exited" && status != "dead" {
        return None;
    }
    let code: i64 = code.trim().parse().ok()?;
    Some((status.to_owned(), u8::try_from(code).unwrap_or(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Step {
        Step::new("docker", "/p").args(["compose", "run", "--name", "x", "web"])
    }

    fn code(result: Result<()>) -> Option<u8> {
        result.err().map(|e| e.downcast_ref::<ChildFailed>().map_or(0, |f| f.code))
    }

    #[test]
    fn the_containers_own_exit_code_decides() {
        assert_eq!(code(judge(&run(), "x", 0, Some("exited 0\n"))), None);
        assert_eq!(code(judge(&run(), "x", 0, Some("exited 3\n"))), Some(3));
        assert_eq!(code(judge(&run(), "x", 2, Some("exited 0\n"))), Some(2));
    }

    #[test]
    fn a_zero_exit_without_a_container_that_ran_is_a_failure() {
        let error = judge(&run(), "x", 0, None).unwrap_err().to_string();
        assert!(error.starts_with("the one-off container x never ran"), "{error}");
        assert!(judge(&run(), "x", 0, Some("created 0")).is_err());
        assert_eq!(code(judge(&run(), "x", 1, None)), Some(1));
    }
}
