//! One-off containers whose success is read back from the engine. Compose can exit 0
//! without the container having run (a failed image build that `run` triggered itself), so
//! the exit code that counts is the one the engine recorded for the container, which is
//! named so it can be found, and removed once read.

use anyhow::{bail, Result};

use crate::context::Context;
use crate::plan::{Action, Step};
use crate::process::error::{status_code, ChildFailed};
use crate::process::{self, stop_if_interrupted};

/// A one-off container named `name`, started by `run` (`compose run --name NAME`, without
/// `--rm`), whose outcome is trusted only once the engine reports that container's own exit
/// code; the container is removed afterwards, whatever happened (Ctrl-C included).
#[derive(Debug, Clone)]
pub struct OneOff {
    pub run: Step,
    pub name: String,
}

impl Action for OneOff {
    fn render(&self) -> String {
        format!("{}\n{}\n{}", self.run, inspect(&self.run, &self.name), remove(&self.run, &self.name))
    }

    fn run(&self, _: &Context) -> Result<()> {
        let (run, name) = (&self.run, &self.name);
        let status = process::status(run);
        let recorded = process::output(&inspect(run, name)).ok().and_then(process::Output::stdout_if_ok);
        let removal = remove(run, name);
        let removed = process::output(&removal).is_ok_and(|o| o.ok);
        if !removed && recorded.is_some() {
            eprintln!("warning: could not remove the one-off container {name}: run `{removal}`");
        }
        stop_if_interrupted()?;
        judge(run, name, status_code(status?), recorded.as_deref())
    }
}

/// What `docker inspect` reports of a finished container: its state and exit code.
const STATE_FORMAT: &str = "{{.State.Status}} {{.State.ExitCode}}";

/// `docker inspect` of the one-off container: prints `<status> <exit code>`.
fn inspect(run: &Step, name: &str) -> Step {
    Step::new("docker", &run.dir).args(["inspect", "--format", STATE_FORMAT, name])
}

/// `docker rm --force` of the one-off container, run whatever happened.
fn remove(run: &Step, name: &str) -> Step {
    Step::new("docker", &run.dir).args(["rm", "--force", name])
}

/// The outcome of a one-off: `compose_code` is what Compose exited with, `recorded` what
/// `docker inspect` printed (None when the engine knows no such container).
fn judge(run: &Step, name: &str, compose_code: u8, recorded: Option<&str>) -> Result<()> {
    let failed = |code: u8| -> Result<()> {
        Err(ChildFailed { command: run.to_string(), code, what: run.failure.clone(), cause: None }.into())
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
