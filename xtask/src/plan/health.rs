//! Waiting for started containers to become healthy, and explaining why they did not:
//! every container of a stack (a first start), or the named containers of a new version
//! started beside the old one (a redeploy).

use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use xshell::cmd;

use crate::context::Context;
use crate::plan::runner;
use crate::plan::Step;

/// What to wait for.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Every container of the stack whose compose command (without a subcommand) this is.
    Stack(&'a Step),
    /// These containers, by name.
    Containers(&'a [String]),
}

/// One container as `docker inspect` reports it.
#[derive(Debug, PartialEq, Eq)]
struct Container {
    service: String,
    state: String,
    /// `None` when the service has no healthcheck.
    health: Option<String>,
    /// The container's name, when the engine gave it.
    name: Option<String>,
}

const INSPECT_FORMAT: &str = r#"{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.Name}}"#;
const POLL: Duration = Duration::from_secs(2);

/// Polls every container of the stack until each one with a healthcheck is healthy.
pub fn wait(cx: &Context, compose: &Step, timeout_secs: u64) -> Result<()> {
    wait_for(cx, Target::Stack(compose), timeout_secs)
}

pub fn wait_for(cx: &Context, target: Target, timeout_secs: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    loop {
        let containers = inspect(cx, target);
        // Ctrl-C reaches the probes too, and stops the wait rather than timing it out.
        runner::stop_if_interrupted()?;
        let containers = containers?;
        let failing = stopped(&containers, target);
        if !failing.is_empty() {
            explain(cx, target, &failing);
            bail!("{} {} stopped before becoming healthy", noun(target), failing.join(", "));
        }
        let waiting = unhealthy(&containers, target);
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            explain(cx, target, &waiting);
            bail!(
                "{} {} not healthy after {timeout_secs}s: see the logs above, or raise --wait-timeout",
                noun(target),
                waiting.join(", ")
            );
        }
        sleep(POLL);
    }
}

fn noun(target: Target) -> &'static str {
    match target {
        Target::Stack(_) => "service(s)",
        Target::Containers(_) => "container(s)",
    }
}

fn inspect(cx: &Context, target: Target) -> Result<Vec<Container>> {
    let ids = match target {
        Target::Stack(compose) => stack_ids(cx, compose)?,
        Target::Containers(names) => names.to_vec(),
    };
    if cx.verbose {
        eprintln!("+ docker inspect {}", ids.join(" "));
    }
    let sh = cx.shell()?;
    let report = cmd!(sh, "docker inspect --format {INSPECT_FORMAT} {ids...}").quiet().read()?;
    Ok(report.lines().filter_map(parse_line).collect())
}

fn stack_ids(cx: &Context, compose: &Step) -> Result<Vec<String>> {
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
    let ids: Vec<String> = ids.split_whitespace().map(str::to_owned).collect();
    if ids.is_empty() {
        bail!("the stack has no containers: `{ps}` listed none");
    }
    Ok(ids)
}

fn parse_line(line: &str) -> Option<Container> {
    let mut words = line.split_whitespace();
    let (service, state, health) = (words.next()?, words.next()?, words.next()?);
    Some(Container {
        service: service.to_owned(),
        state: state.to_owned(),
        health: (health != "none").then(|| health.to_owned()),
        name: words.next().map(|n| n.trim_start_matches('/').to_owned()),
    })
}

/// How a container is named in messages: its service for a stack, its name otherwise.
fn label(container: &Container, target: Target) -> String {
    match (target, &container.name) {
        (Target::Containers(_), Some(name)) => name.clone(),
        _ => container.service.clone(),
    }
}

/// Containers that have exited or died: waiting longer will not help.
fn stopped(containers: &[Container], target: Target) -> Vec<String> {
    containers.iter().filter(|c| matches!(c.state.as_str(), "exited" | "dead")).map(|c| label(c, target)).collect()
}

fn unhealthy(containers: &[Container], target: Target) -> Vec<String> {
    containers
        .iter()
        .filter(|c| c.health.as_deref().is_some_and(|h| h != "healthy"))
        .map(|c| label(c, target))
        .collect()
}

/// How many log lines a failed container shows: enough to reach past gunicorn's own
/// shutdown traceback (about 30 lines) to the worker's error that caused it.
const LOG_LINES: &str = "100";

/// Prints the last log lines of each named service or container.
fn explain(cx: &Context, target: Target, names: &[String]) {
    eprintln!("last log lines of {}:", names.join(", "));
    let steps = match target {
        Target::Stack(compose) => {
            vec![compose.clone().args(["logs", "--no-color", "--tail", LOG_LINES]).args(names.iter().cloned())]
        }
        Target::Containers(_) => names
            .iter()
            .map(|name| Step::new("docker", &cx.root).args(["logs", "--tail", LOG_LINES]).arg(name.clone()))
            .collect(),
    };
    for logs in steps {
        if runner::run_step(cx, &logs).is_err() {
            eprintln!("(could not read the logs: `{logs}`)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn containers(lines: &str) -> Vec<Container> {
        lines.lines().filter_map(parse_line).collect()
    }

    const NAMED: Target = Target::Containers(&[]);

    #[test]
    fn only_services_with_a_failing_or_pending_healthcheck_are_waited_for() {
        let list =
            containers("web running starting\nnginx running healthy\nworker running none\ndb running unhealthy\n");
        let compose = Step::new("docker", "/");
        assert_eq!(unhealthy(&list, Target::Stack(&compose)), ["web", "db"]);
        assert!(stopped(&list, Target::Stack(&compose)).is_empty());
    }

    #[test]
    fn an_exited_container_is_reported_at_once() {
        let list = containers("web exited none\nnginx running healthy\n");
        let compose = Step::new("docker", "/");
        assert_eq!(stopped(&list, Target::Stack(&compose)), ["web"]);
        assert!(unhealthy(&list, Target::Stack(&compose)).is_empty());
    }

    #[test]
    fn named_containers_are_reported_by_name() {
        let list = containers("web running unhealthy /shop-prod-web-2\nweb exited none /shop-prod-web-3\n");
        assert_eq!(unhealthy(&list, NAMED), ["shop-prod-web-2"]);
        assert_eq!(stopped(&list, NAMED), ["shop-prod-web-3"]);
    }
}
