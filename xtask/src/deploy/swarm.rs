//! The Swarm as the Docker CLI reaches it (a context, or DOCKER_HOST=ssh://...): what it
//! has, the objects a deploy creates, and the waits that tell whether a step happened.
//! Nothing is trusted from an exit code alone: a job is done when its task completed, a
//! service when its update completed and its tasks run.

use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

use crate::context::Context;
use crate::deploy::settings::Secret;
use crate::plan::runner;
use crate::process::stop_if_interrupted;
use crate::process::{self, Step};

/// Lines of a failed task's log shown with the error.
const LOG_LINES: &str = "100";
const POLL: Duration = Duration::from_millis(1000);

pub fn docker(cx: &Context) -> Step {
    Step::new("docker", &cx.root)
}

/// Runs `step`, which must succeed; the error names `what` and the command's first line.
pub fn run(step: &Step, what: &str) -> Result<String> {
    let process::Output { ok, stdout, stderr } = process::output(step)?;
    if !ok {
        bail!("{what}: `{step}` failed: {}", process::error_line(&stderr));
    }
    Ok(stdout)
}

/// The CLI must reach a Swarm manager: deploys and service updates are a manager's. Asked
/// while the command plans, so not under --dry-run.
pub fn require_manager(cx: &Context) -> Result<()> {
    let info = docker(cx).args(["info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"]);
    let Some(process::Output { ok, stdout, stderr }) = runner::probe(cx, &info)? else { return Ok(()) };
    if !ok {
        bail!("cannot reach the Docker engine ({}): start it, or point the CLI at a Swarm manager with `docker context use` or DOCKER_HOST=ssh://user@manager", process::error_line(&stderr));
    }
    match stdout.trim() {
        "active true" => Ok(()),
        "active false" => bail!("the Docker CLI points at a Swarm worker, not a manager: point it at a manager (`docker context use`, DOCKER_HOST=ssh://user@manager)"),
        state => bail!("the Docker engine the CLI points at is in no Swarm ({state}): run `docker swarm init` there, or point the CLI at a manager (`docker context use`, DOCKER_HOST)"),
    }
}

/// The nodes that carry the label `key=true`.
pub fn labelled_nodes(cx: &Context, key: &str) -> Result<Vec<String>> {
    let list =
        docker(cx).args(["node", "ls", "--filter", &format!("node.label={key}=true"), "--format", "{{.Hostname}}"]);
    let out = run(&list, "cannot list the Swarm's nodes")?;
    Ok(out.lines().map(str::to_owned).filter(|l| !l.is_empty()).collect())
}

/// `docker network create` of the stack's overlay network (attachable, so that the
/// migration job can join it).
pub fn network_create(cx: &Context, name: &str) -> Step {
    docker(cx).args(["network", "create", "--driver", "overlay", "--attachable", name])
}

/// Creates the network unless it exists.
pub fn ensure_network(cx: &Context, name: &str) -> Result<()> {
    if process::output(&docker(cx).args(["network", "inspect", "--format", "{{.Driver}}", name]))?.ok {
        return Ok(());
    }
    run(&network_create(cx, name), &format!("cannot create the network {name}")).map(drop)
}

/// A Swarm object made from a value: `secret` or `config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Secret,
    Config,
}

impl Object {
    pub fn noun(self) -> &'static str {
        match self {
            Object::Secret => "secret",
            Object::Config => "config",
        }
    }
}

/// `docker secret create` (or config) with the value on stdin, never on the command line.
pub fn object_create(cx: &Context, kind: Object, stack: &str, secret: &Secret) -> Step {
    docker(cx)
        .args([kind.noun(), "create", "--label", &format!("xtask.stack={stack}"), &secret.name, "-"])
        .stdin_value(&secret.value, &secret.origin)
}

/// Creates `secret` unless the Swarm has it: its name carries its value's hash, so one
/// that exists holds this value. The value goes on stdin, never on a command line.
pub fn ensure_object(cx: &Context, kind: Object, stack: &str, secret: &Secret) -> Result<bool> {
    if process::output(&docker(cx).args([kind.noun(), "inspect", "--format", "{{.ID}}", &secret.name]))?.ok {
        return Ok(false);
    }
    let out = process::output(&object_create(cx, kind, stack, secret))?;
    if !out.ok {
        bail!("cannot create the Swarm {} {} for {}: {}", kind.noun(), secret.name, secret.origin, out.why());
    }
    Ok(true)
}

/// A service as `docker service inspect` shows it, reduced to what a deploy reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Inspected {
    #[serde(rename = "Spec")]
    spec: serde_json::Value,
    #[serde(rename = "UpdateStatus", default)]
    pub update: Option<UpdateStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UpdateStatus {
    #[serde(rename = "State", default)]
    pub state: String,
    #[serde(rename = "StartedAt", default)]
    pub started: String,
    #[serde(rename = "Message", default)]
    pub message: String,
}

impl Inspected {
    /// The replicas wanted, None for a global service (one task a node).
    pub fn replicas(&self) -> Option<u64> {
        self.spec.pointer("/Mode/Replicated/Replicas").and_then(|n| n.as_u64())
    }

    pub fn image(&self) -> String {
        let image = self.spec.pointer("/TaskTemplate/ContainerSpec/Image").and_then(|v| v.as_str());
        image.unwrap_or_default().to_owned()
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        let labels = self.spec.get("Labels").and_then(|l| l.as_object());
        labels
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
            .unwrap_or_default()
    }

    /// What its tasks are made from: a change means new tasks.
    fn template(&self) -> String {
        self.spec.get("TaskTemplate").map(|t| t.to_string()).unwrap_or_default()
    }
}

/// The service `name`, or None when the Swarm has none; asked while the command plans, so
/// None under --dry-run.
pub fn inspect_for_plan(cx: &Context, name: &str) -> Result<Option<Inspected>> {
    match runner::probe(cx, &docker(cx).args(["service", "inspect", name]))? {
        Some(out) => inspected(name, out),
        None => Ok(None),
    }
}

/// The service `name`, or None when the Swarm has none.
pub fn inspect(cx: &Context, name: &str) -> Result<Option<Inspected>> {
    inspected(name, process::output(&docker(cx).args(["service", "inspect", name]))?)
}

fn inspected(name: &str, out: process::Output) -> Result<Option<Inspected>> {
    let process::Output { ok, stdout, stderr } = out;
    if !ok {
        if stderr.contains("no such service") || stderr.contains("not found") {
            return Ok(None);
        }
        bail!("cannot inspect the service {name}: {}", process::error_line(&stderr));
    }
    let mut all: Vec<Inspected> =
        serde_json::from_str(&stdout).with_context(|| format!("cannot read `docker service inspect {name}`"))?;
    Ok(all.pop())
}

/// One task of a service, from `docker service ps --format '{{json .}}'`.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskRow {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Image", default)]
    pub image: String,
    #[serde(rename = "Node", default)]
    pub node: String,
    #[serde(rename = "DesiredState", default)]
    pub desired: String,
    #[serde(rename = "CurrentState", default)]
    pub current: String,
    #[serde(rename = "Error", default)]
    pub error: String,
}

impl TaskRow {
    pub fn running(&self) -> bool {
        self.desired == "Running" && self.current.starts_with("Running")
    }

    pub fn failed(&self) -> bool {
        ["Failed", "Rejected"].iter().any(|s| self.current.starts_with(s))
            || (self.desired == "Shutdown" && !self.error.is_empty())
    }

    fn describe(&self) -> String {
        let error = if self.error.is_empty() { String::new() } else { format!(": {}", self.error) };
        format!("task {} ({}) on {}: {}{error}", self.name, self.id, self.node, self.current)
    }
}

pub fn tasks(cx: &Context, service: &str) -> Result<Vec<TaskRow>> {
    let ps = docker(cx).args(["service", "ps", "--no-trunc", "--format", "{{json .}}", service]);
    let out = run(&ps, &format!("cannot list the tasks of {service}"))?;
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("cannot read a task of {service}: {l}")))
        .collect()
}

/// A failed task and its last health check, in one line (`deploy status`).
pub fn failed_line(cx: &Context, task: &TaskRow) -> String {
    let health = last_health_check(cx, &task.id).map(|h| format!("; its last health check: {h}")).unwrap_or_default();
    format!("{}{health}", task.describe())
}

/// A stopped task, its last health check and its last log lines, for an error message.
fn report(cx: &Context, task: &TaskRow) -> String {
    // A container's stderr comes out on the CLI's stderr.
    let logs = docker(cx).args(["service", "logs", "--raw", "--tail", LOG_LINES, &task.id]);
    let logs = process::output(&logs).map(|o| o.stdout + &o.stderr).unwrap_or_default();
    let mut text = task.describe();
    if let Some(health) = last_health_check(cx, &task.id) {
        text += &format!("\n--- its last health check: {health}");
    }
    if !logs.trim().is_empty() {
        text += &format!("\n--- its last {LOG_LINES} log lines\n{}", logs.trim_end());
    }
    text
}

/// The newest task of `service` running `image` that stopped (failed, else ended, else
/// was shut down: a gunicorn stopped as unhealthy ends cleanly), with its logs, for an
/// error message; without one, the states of its tasks.
pub fn failure_report(cx: &Context, service: &str, image: &str) -> String {
    let tasks = match tasks(cx, service) {
        Ok(tasks) => tasks,
        Err(error) => return format!("cannot list its tasks: {error:#}"),
    };
    let stopped: Vec<&TaskRow> = tasks.iter().filter(|t| same_image(&t.image, image) && !t.running()).collect();
    let pick = |wanted: fn(&TaskRow) -> bool| stopped.iter().copied().find(|t| wanted(t));
    let culprit = pick(TaskRow::failed)
        .or_else(|| pick(|t| t.current.starts_with("Complete")))
        .or_else(|| pick(|t| t.desired == "Shutdown"));
    match culprit {
        Some(task) => report(cx, task),
        None => {
            let states: Vec<String> = tasks.iter().map(|t| format!("{} {}", t.name, t.current)).collect();
            format!("no task of {service} on {image} stopped; its tasks: {}", states.join(", "))
        }
    }
}

/// Whether a task's image is `wanted`: the same reference, or the same digest (the Swarm
/// may add the digest it resolved to a tag).
fn same_image(task: &str, wanted: &str) -> bool {
    let digest = |r: &str| r.split_once('@').map(|(_, d)| d.to_owned());
    task == wanted
        || task.starts_with(&format!("{wanted}@"))
        || (digest(task).is_some() && digest(task) == digest(wanted))
}

/// What the last health check of a task's container said, when the container is on the
/// node the CLI talks to and had one.
fn last_health_check(cx: &Context, task: &str) -> Option<String> {
    let id = docker(cx).args(["inspect", "--format", "{{.Status.ContainerStatus.ContainerID}}", task]);
    let container = process::stdout_of(&id)?;
    let container = container.trim();
    if container.is_empty() {
        return None;
    }
    let inspect = docker(cx).args(["inspect", "--format", "{{json .State.Health}}", container]);
    let health: serde_json::Value = serde_json::from_str(&process::stdout_of(&inspect)?).ok()?;
    let status = health.get("Status")?.as_str()?.to_owned();
    let output = health.get("Log")?.as_array()?.last()?.get("Output")?.as_str()?.to_owned();
    // The probe's output can be a whole traceback: its end says what failed.
    let output: Vec<&str> = output.split_whitespace().collect();
    let tail = output[output.len().saturating_sub(40)..].join(" ");
    Some(format!("{status}: {tail}"))
}

/// Runs the one-off job `name` that `create` starts (detached) and waits until its task
/// completed; a failed task fails with its logs. The job is removed whatever happened.
pub fn run_job(cx: &Context, create: &Step, name: &str, what: &str, timeout: Duration) -> Result<()> {
    let remove = docker(cx).args(["service", "rm", name]);
    let _ = process::output(&remove);
    run(create, &format!("cannot start {what}"))?;
    let outcome = wait_job(cx, name, what, timeout);
    if !process::output(&remove).is_ok_and(|o| o.ok) {
        eprintln!("warning: could not remove the job service {name}: run `{remove}`");
    }
    remove_exited(cx, name);
    outcome
}

/// Removes the exited containers a job's tasks leave on this node: removing the service
/// does not (nor does `docker stack rm`), so each deploy would leave one more.
fn remove_exited(cx: &Context, service: &str) {
    let label = format!("label=com.docker.swarm.service.name={service}");
    let ps = docker(cx).args(["ps", "--all", "--quiet", "--filter", &label, "--filter", "status=exited"]);
    let ids: Vec<String> = process::stdout_of(&ps).unwrap_or_default().split_whitespace().map(str::to_owned).collect();
    if !ids.is_empty() {
        let _ = process::output(&docker(cx).args(["rm"]).args(ids));
    }
}

fn wait_job(cx: &Context, name: &str, what: &str, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        stop_if_interrupted()?;
        let tasks = tasks(cx, name)?;
        if tasks.iter().any(|t| t.current.starts_with("Complete")) {
            return Ok(());
        }
        if let Some(failed) = tasks.iter().find(|t| t.failed()) {
            bail!("{what} failed, so nothing was updated: {}", report(cx, failed));
        }
        if started.elapsed() > timeout {
            let state = tasks.first().map(|t| t.current.clone()).unwrap_or_else(|| "no task yet".into());
            bail!(
                "{what} did not finish within {}s ({state}), so nothing was updated: see `docker service ps {name}`",
                timeout.as_secs()
            );
        }
        sleep(POLL);
    }
}

/// Where a service stood before a deploy: its update status and task template, to tell
/// whether the deploy changed it and, if so, its new update from the last one; and the
/// image the deploy wants it to run, to find its tasks when they fail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mark {
    update: Option<UpdateStatus>,
    template: Option<String>,
    wanted: String,
}

/// The marks of (service, image it is to run) before a deploy.
pub fn marks(cx: &Context, services: &[(String, String)]) -> Result<BTreeMap<String, Mark>> {
    services
        .iter()
        .map(|(s, image)| {
            let found = inspect(cx, s)?;
            let (template, update) = found.map(|i| (Some(i.template()), i.update)).unwrap_or_default();
            Ok((s.clone(), Mark { update, template, wanted: image.clone() }))
        })
        .collect()
}

/// How a service's rollout ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Converged,
    /// Swarm rolled the service back (or paused it) after a failed task: what it said, and
    /// the failed task with its logs.
    RolledBack(String),
}

/// Waits until every service marked `before` has settled: its update (if the deploy started
/// one) completed with as many tasks running as it wants, or rolled back. Prints each once
/// it has.
pub fn converge(cx: &Context, before: &BTreeMap<String, Mark>, timeout: Duration) -> Result<BTreeMap<String, Outcome>> {
    let started = Instant::now();
    let mut done: BTreeMap<String, Outcome> = BTreeMap::new();
    loop {
        stop_if_interrupted()?;
        for (name, mark) in before {
            if done.contains_key(name) {
                continue;
            }
            if let Some((outcome, changed)) = settled(cx, name, mark)? {
                // A service this deploy left as it was has nothing to report.
                if outcome == Outcome::Converged && changed {
                    println!("{name}: converged, {:.1}s", started.elapsed().as_secs_f64());
                }
                done.insert(name.clone(), outcome);
            }
        }
        if done.len() == before.len() {
            return Ok(done);
        }
        if started.elapsed() > timeout {
            let waiting: Vec<(&String, &Mark)> = before.iter().filter(|(name, _)| !done.contains_key(*name)).collect();
            let names: Vec<&str> = waiting.iter().map(|(name, _)| name.as_str()).collect();
            let reports: Vec<String> =
                waiting.iter().map(|(name, mark)| failure_report(cx, name, &mark.wanted)).collect();
            bail!("{} did not converge within {}s; {}", names.join(", "), timeout.as_secs(), reports.join("\n"));
        }
        sleep(POLL);
    }
}

/// Some outcome once `name` has settled, with whether the deploy changed it; None while it
/// is still on its way.
fn settled(cx: &Context, name: &str, before: &Mark) -> Result<Option<(Outcome, bool)>> {
    let Some(service) = inspect(cx, name)? else {
        bail!("the service {name} is gone: was the stack removed meanwhile?")
    };
    let update = service.update.clone().filter(|u| Some(u) != before.update.as_ref());
    let changed = before.template.as_ref().is_some_and(|t| *t != service.template());
    match update.as_ref().map(|u| u.state.as_str()) {
        // The orchestrator has not started on the new spec yet.
        None if changed => return Ok(None),
        Some("updating" | "rollback_started") => return Ok(None),
        Some(state @ ("rollback_completed" | "rollback_paused" | "paused")) => {
            let message = &update.as_ref().expect("matched above").message;
            let task = failure_report(cx, name, &before.wanted);
            return Ok(Some((
                Outcome::RolledBack(format!("{name}: update {}: {message}; {task}", state.replace('_', " "))),
                true,
            )));
        }
        _ => {}
    }
    let tasks = tasks(cx, name)?;
    let running = tasks.iter().filter(|t| t.running()).count() as u64;
    let enough = match service.replicas() {
        Some(wanted) => running == wanted,
        None => running >= 1 && tasks.iter().filter(|t| t.desired == "Running").all(TaskRow::running),
    };
    let touched = changed || update.is_some() || before.template.is_none();
    Ok(enough.then_some((Outcome::Converged, touched)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_killed_as_unhealthy_counts_as_failed() {
        let row = r#"{"CurrentState":"Failed 21 seconds ago","DesiredState":"Shutdown","Error":"\"task: non-zero exit (137): dockerexec: unhealthy container\"","ID":"tseo7oz7553hzucdhpfrog8z8","Image":"x","Name":"hc.1","Node":"vm","Ports":""}"#;
        let task: TaskRow = serde_json::from_str(row).unwrap();
        assert!(task.failed() && !task.running());
        let running = row
            .replace("Failed 21", "Running 47")
            .replace("\"DesiredState\":\"Shutdown\"", "\"DesiredState\":\"Running\"");
        let task: TaskRow = serde_json::from_str(&running).unwrap();
        assert!(task.running());
    }
}
