//! `cargo xtask deploy status`: what the Swarm runs of this project, from the Swarm itself.

use anyhow::{bail, Result};

use crate::context::Context;
use crate::deploy::stackfile::{PREVIOUS_LABEL, VERSION_LABEL};
use crate::deploy::swarm;

pub fn show(cx: &Context) -> Result<()> {
    let stack = &cx.name;
    let filter = |s: &str| format!("label=com.docker.stack.namespace={s}");
    let list = |s: &str| swarm::docker(cx).args(["service", "ls", "--filter", &filter(s), "--format", "{{.Name}}"]);
    if cx.dry_run {
        println!(
            "{}\n{}\n# then: docker service inspect and docker service ps of each",
            list(stack),
            list(&format!("{stack}-db"))
        );
        return Ok(());
    }
    swarm::require_manager(cx)?;
    let mut names = Vec::new();
    for s in [stack.clone(), format!("{stack}-db")] {
        names.extend(swarm::run(cx, &list(&s), "cannot list the services")?.lines().map(str::to_owned));
    }
    if names.is_empty() {
        bail!("the Swarm runs no stack {stack}: deploy a release with `cargo xtask deploy`");
    }
    names.sort();
    println!("{:<24} {:<12} {:<8} IMAGE", "SERVICE", "VERSION", "TASKS");
    for name in &names {
        let Some(service) = swarm::inspect(cx, name)? else { continue };
        let tasks = swarm::tasks(cx, name)?;
        let running = tasks.iter().filter(|t| t.running()).count();
        let wanted = service.replicas().map_or_else(|| "global".to_owned(), |n| n.to_string());
        let version = service.labels().get(VERSION_LABEL).cloned().unwrap_or_else(|| "-".into());
        println!("{name:<24} {version:<12} {:<8} {}", format!("{running}/{wanted}"), service.image());
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
