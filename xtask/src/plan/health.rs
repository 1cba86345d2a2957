//! Waiting for started containers to become healthy, and explaining why they did not:
//! every container of a stack (a first start), or the named containers of a new version
//! started beside the old one (a redeploy).
//!
//! Docker runs a container's first healthcheck one interval after the start (the engine
//! here predates `start_interval`), so its status says "starting" for seconds after the
//! container is ready. The wait runs a starting container's own healthcheck command itself
//! (`docker exec`, in the background) and counts it ready once that passes; Docker's status still decides
//! "unhealthy", and the healthchecks stay as they are for restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::thread::JoinHandle;

use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::context::Context;
use crate::plan::{Action, Step};
use crate::process::{self, stop_if_interrupted};

/// Polls until every container of the stack that has a healthcheck is healthy; `compose` is
/// the stack's compose command without a subcommand. A container that stops fails the wait
/// at once, with its last log lines.
#[derive(Debug, Clone)]
pub struct WaitHealthy {
    pub compose: Step,
    pub timeout_secs: u64,
}

impl Action for WaitHealthy {
    fn render(&self) -> String {
        format!("# wait up to {}s until every healthcheck passes, polling: {} ps -q", self.timeout_secs, self.compose)
    }

    fn run(&self, cx: &Context) -> Result<()> {
        wait_for(cx, Target::Stack(&self.compose), self.timeout_secs)
    }
}

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
    /// The healthcheck's test as Docker stores it (`["CMD-SHELL", "..."]`), when it has one.
    test: Vec<String>,
}

/// A container labelled `xtask.health` (any value) has a healthcheck that reports on something
/// other than its readiness (a stale backup): it is listed as `report ...` and not waited for.
const INSPECT_FORMAT: &str = r#"{{if index .Config.Labels "xtask.health"}}report {{end}}{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.Name}} {{if .Config.Healthcheck}}{{json .Config.Healthcheck.Test}}{{end}}"#;
const POLL: Duration = Duration::from_millis(500);

pub fn wait_for(cx: &Context, target: Target, timeout_secs: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let mut probes = Probes::default();
    loop {
        let containers = inspect(cx, target);
        // Ctrl-C reaches the probes too, and stops the wait rather than timing it out.
        stop_if_interrupted()?;
        let containers = containers?;
        let failing = stopped(&containers, target);
        if !failing.is_empty() {
            explain(cx, target, &failing);
            bail!("{} {} stopped before becoming healthy", noun(target), failing.join(", "));
        }
        probes.poll(cx, &containers);
        let waiting = unhealthy(&containers, target, &probes.ready);
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

/// The healthchecks the wait runs itself, each in a thread of its own so that a slow one (a
/// worker's check may take seconds) holds up neither the poll nor the others.
#[derive(Default)]
struct Probes {
    running: BTreeMap<String, JoinHandle<bool>>,
    /// The containers whose check has passed.
    ready: BTreeSet<String>,
}

impl Probes {
    /// Collects the checks that finished, then starts one for each container Docker has not
    /// judged yet that has none running and has not passed.
    fn poll(&mut self, cx: &Context, containers: &[Container]) {
        let finished: Vec<String> =
            self.running.iter().filter(|(_, run)| run.is_finished()).map(|(name, _)| name.clone()).collect();
        for name in finished {
            if self.running.remove(&name).is_some_and(|run| run.join().unwrap_or(false)) {
                self.ready.insert(name);
            }
        }
        for container in containers.iter().filter(|c| c.health.as_deref() == Some("starting")) {
            let Some(name) = &container.name else { continue };
            if self.ready.contains(name) || self.running.contains_key(name) {
                continue;
            }
            let Some(step) = probe(&cx.root, name, &container.test) else { continue };
            let run = std::thread::spawn(move || process::output(&step).is_ok_and(|out| out.ok));
            self.running.insert(name.clone(), run);
        }
    }
}

/// `docker exec` of the healthcheck `test` in container `name`, as Docker runs it.
fn probe(dir: &Path, name: &str, test: &[String]) -> Option<Step> {
    let exec = Step::new("docker", dir).args(["exec", name]);
    match test.split_first()? {
        (kind, command) if kind == "CMD" && !command.is_empty() => Some(exec.args(command.iter().cloned())),
        (kind, [shell]) if kind == "CMD-SHELL" => Some(exec.args(["sh", "-c", shell])),
        _ => None,
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
        Target::Stack(compose) => stack_ids(compose)?,
        Target::Containers(names) => names.to_vec(),
    };
    let inspect = Step::new("docker", &cx.root).args(["inspect", "--format", INSPECT_FORMAT]).args(ids);
    let out = process::captured(&inspect, "inspect the containers")?;
    Ok(out.lines().filter(|line| !line.starts_with("report ")).filter_map(parse_line).collect())
}

fn stack_ids(compose: &Step) -> Result<Vec<String>> {
    let ps = compose.clone().args(["ps", "-q"]);
    let out = process::captured(&ps, "list the stack's containers")?;
    let ids: Vec<String> = out.split_whitespace().map(str::to_owned).collect();
    if ids.is_empty() {
        bail!("the stack has no containers: `{ps}` listed none");
    }
    Ok(ids)
}

fn parse_line(line: &str) -> Option<Container> {
    let mut words = line.splitn(5, ' ').filter(|w| !w.is_empty());
    let (service, state, health) = (words.next()?, words.next()?, words.next()?);
    Some(Container {
        service: service.to_owned(),
        state: state.to_owned(),
        health: (health != "none").then(|| health.to_owned()),
        name: words.next().map(|n| n.trim_start_matches('/').to_owned()),
        test: words.next().and_then(|json| serde_json::from_str(json.trim()).ok()).unwrap_or_default(),
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

/// Containers whose healthcheck has not passed, neither by Docker's account nor by the
/// wait's own run of it (the names in `ready`).
fn unhealthy(containers: &[Container], target: Target, ready: &BTreeSet<String>) -> Vec<String> {
    containers
        .iter()
        .filter(|c| c.health.as_deref().is_some_and(|h| h != "healthy"))
        .filter(|c| c.name.as_ref().is_none_or(|n| !ready.contains(n)))
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
        if process::run(&logs).is_err() {
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
        assert_eq!(unhealthy(&list, Target::Stack(&compose), &BTreeSet::new()), ["web", "db"]);
        assert!(stopped(&list, Target::Stack(&compose)).is_empty());
    }

    #[test]
    fn a_starting_container_whose_own_healthcheck_passed_is_not_waited_for() {
        let list = containers(
            "web running starting /shop-prod-web-1 [\"CMD\",\"python\",\"-c\",\"print(1)\"]\nnginx running starting /shop-prod-nginx-1 [\"CMD-SHELL\",\"wget -q -O /dev/null http://127.0.0.1/\"]\n",
        );
        assert_eq!(list[0].test, ["CMD", "python", "-c", "print(1)"]);
        let ready = BTreeSet::from(["shop-prod-web-1".to_owned()]);
        assert_eq!(unhealthy(&list, NAMED, &ready), ["shop-prod-nginx-1"]);
        let nginx = probe(Path::new("/"), "shop-prod-nginx-1", &list[1].test).unwrap();
        assert_eq!(
            nginx.to_string(),
            "cd / && docker exec shop-prod-nginx-1 sh -c 'wget -q -O /dev/null http://127.0.0.1/'"
        );
        assert!(probe(Path::new("/"), "x", &["NONE".to_owned()]).is_none());
    }

    #[test]
    fn an_exited_container_is_reported_at_once() {
        let list = containers("web exited none\nnginx running healthy\n");
        let compose = Step::new("docker", "/");
        assert_eq!(stopped(&list, Target::Stack(&compose)), ["web"]);
        assert!(unhealthy(&list, Target::Stack(&compose), &BTreeSet::new()).is_empty());
    }

    #[test]
    fn named_containers_are_reported_by_name() {
        let list = containers("web running unhealthy /shop-prod-web-2\nweb exited none /shop-prod-web-3\n");
        assert_eq!(unhealthy(&list, NAMED, &BTreeSet::new()), ["shop-prod-web-2"]);
        assert_eq!(stopped(&list, NAMED), ["shop-prod-web-3"]);
    }
}
