//! Waiting for a started stack to become healthy, and explaining why it did not.

use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use xshell::cmd;

use crate::context::Context;
use crate::plan::runner;
use crate::plan::Step;

/// One container as `docker inspect` reports it.
#[derive(Debug, PartialEq, Eq)]
struct Container {
    service: String,
    state: String,
    /// `None` when the service has no healthcheck.
    health: Option<String>,
}

const INSPECT_FORMAT: &str = r#"{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}"#;
const POLL: Duration = Duration::from_secs(2);

pub fn wait(cx: &Context, compose: &Step, timeout_secs: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    loop {
        let containers = inspect(cx, compose);
        // Ctrl-C reaches the probes too, and stops the wait rather than timing it out.
        runner::stop_if_interrupted()?;
        let containers = containers?;
        let failing = stopped(&containers);
        if !failing.is_empty() {
            explain(cx, compose, &failing);
            bail!("service(s) {} stopped before becoming healthy", failing.join(", "));
        }
        let waiting = unhealthy(&containers);
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            explain(cx, compose, &waiting);
            bail!(
                "service(s) {} not healthy after {timeout_secs}s: see the logs above, or raise --wait-timeout",
                waiting.join(", ")
            );
        }
        sleep(POLL);
    }
}

fn inspect(cx: &Context, compose: &Step) -> Result<Vec<Container>> {
    let sh = cx.shell()?;
    let ps = compose.clone().args(["ps", "-q"]);
    if cx.verbose {
        eprintln!("+ {ps}");
    }
    let (program, args) = (&ps.program, &ps.args);
    let mut ids_cmd = cmd!(sh, "{program} {args...}").quiet();
    for (key, value) in &ps.env {
        ids_cmd = ids_cmd.env(key, value);
    }
    let ids = ids_cmd.read().context("cannot list the stack's containers")?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        bail!("the stack has no containers: `{ps}` listed none");
    }
    if cx.verbose {
        eprintln!("+ docker inspect {}", ids.join(" "));
    }
    let report = cmd!(sh, "docker inspect --format {INSPECT_FORMAT} {ids...}").quiet().read()?;
    Ok(report.lines().filter_map(parse_line).collect())
}

fn parse_line(line: &str) -> Option<Container> {
    let mut words = line.split_whitespace();
    let (service, state, health) = (words.next()?, words.next()?, words.next()?);
    Some(Container {
        service: service.to_owned(),
        state: state.to_owned(),
        health: (health != "none").then(|| health.to_owned()),
    })
}

/// Services whose container has exited or died: waiting longer will not help.
fn stopped(containers: &[Container]) -> Vec<String> {
    containers.iter().filter(|c| matches!(c.state.as_str(), "exited" | "dead")).map(|c| c.service.clone()).collect()
}

fn unhealthy(containers: &[Container]) -> Vec<String> {
    containers
        .iter()
        .filter(|c| c.health.as_deref().is_some_and(|h| h != "healthy"))
        .map(|c| c.service.clone())
        .collect()
}

/// Prints the last log lines of each named service.
fn explain(cx: &Context, compose: &Step, services: &[String]) {
    let logs = compose.clone().args(["logs", "--no-color", "--tail", "30"]).args(services.iter().cloned());
    eprintln!("last log lines of {}:", services.join(", "));
    if runner::run_step(cx, &logs).is_err() {
        eprintln!("(could not read the logs: `{logs}`)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn containers(lines: &str) -> Vec<Container> {
        lines.lines().filter_map(parse_line).collect()
    }

    #[test]
    fn only_services_with_a_failing_or_pending_healthcheck_are_waited_for() {
        let list =
            containers("web running starting\nnginx running healthy\nworker running none\ndb running unhealthy\n");
        assert_eq!(unhealthy(&list), ["web", "db"]);
        assert!(stopped(&list).is_empty());
    }

    #[test]
    fn an_exited_container_is_reported_at_once() {
        let list = containers("web exited none\nnginx running healthy\n");
        assert_eq!(stopped(&list), ["web"]);
        assert!(unhealthy(&list).is_empty());
    }
}
