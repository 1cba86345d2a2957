//! `cargo xtask deploy status`: what the Swarm runs of this project, from the Swarm itself.

use anyhow::{bail, Result};

use crate::context::Context;
use crate::deploy::stackfile::{PREVIOUS_LABEL, VERSION_LABEL};
use crate::deploy::swarm;
use crate::plan::{runner, Action, Plan, Step, Task};

pub fn show(cx: &Context) -> Result<()> {
    runner::execute(cx, Plan::default().then(Task::act(Status { cx: cx.clone() })))
}

/// The services of the stack and of its database stack, their versions, tasks and images.
#[derive(Debug)]
struct Status {
    cx: Context,
}

impl Action for Status {
    fn render(&self) -> String {
        let stack = &self.cx.name;
        let lists: Vec<String> = stacks(stack).iter().map(|s| list(&self.cx, s).to_string()).collect();
        format!("{}\n# then: docker service inspect and docker service ps of each", lists.join("\n"))
    }

    fn run(&self, cx: &Context) -> Result<()> {
        show_services(cx)
    }
}

/// The site's stack and those of the bundled database and Redis.
fn stacks(stack: &str) -> [String; 3] {
    [stack.to_owned(), format!("{stack}-db"), format!("{stack}-redis")]
}

fn list(cx: &Context, stack: &str) -> Step {
    let filter = format!("label=com.docker.stack.namespace={stack}");
    swarm::docker(cx).args(["service", "ls", "--filter", &filter, "--format", "{{.Name}}"])
}

fn show_services(cx: &Context) -> Result<()> {
    let stack = &cx.name;
    swarm::require_manager(cx)?;
    let mut names = Vec::new();
    for s in stacks(stack) {
        names.extend(swarm::run(&list(cx, &s), "cannot list the services")?.lines().map(str::to_owned));
    }
    if names.is_empty() {
        bail!("the Swarm runs no stack {stack}: deploy a release with `cargo xtask deploy`");
    }
    names.sort();
    println!("{:<24} {:<12} {:<8} IMAGE", "SERVICE", "VERSION", "TASKS");
    let mut failures = Vec::new();
    for name in &names {
        let Some(service) = swarm::inspect(cx, name)? else { continue };
        let tasks = swarm::tasks(cx, name)?;
        let running = tasks.iter().filter(|t| t.running()).count();
        let wanted = service.replicas().map_or_else(|| "global".to_owned(), |n| n.to_string());
        let version = service.labels().get(VERSION_LABEL).cloned().unwrap_or_else(|| "-".into());
        println!("{name:<24} {version:<12} {:<8} {}", format!("{running}/{wanted}"), service.image());
        // Swarm replaces a task that fails (a stale backup's healthcheck, a crash): the
        // count above may look whole while its history says otherwise.
        let failed: Vec<&swarm::TaskRow> = tasks.iter().filter(|t| t.failed()).collect();
        if let Some(latest) = failed.first() {
            failures.push(format!(
                "{name}: {} failed task(s) in its history, one of them: {}",
                failed.len(),
                swarm::failed_line(cx, latest)
            ));
        }
    }
    for failure in failures {
        println!("{failure}");
    }
    if let Some(web) = swarm::inspect(cx, &format!("{stack}_web"))? {
        let labels = web.labels();
        let version = labels.get(VERSION_LABEL).map_or("unknown", |v| v.as_str());
        let previous = labels.get(PREVIOUS_LABEL).map_or(String::new(), |p| format!(" (previous: {p})"));
        let state = web.update.map(|u| format!(", last update {}", u.state.replace('_', " "))).unwrap_or_default();
        println!("serving: {version}{previous}{state}");
    }
    Ok(())
}
