//! Carries out a plan: prints it under `--dry-run`, otherwise runs each task in order and
//! stops at the first failure. The only place that looks at `--dry-run`.

use std::path::Path;

use anyhow::Result;

use crate::context::Context;
use crate::plan::leftovers::{self, Kind, KINDS};
use crate::plan::{Action, Plan, Task};
use crate::process;

pub fn execute(cx: &Context, plan: Plan) -> Result<()> {
    if cx.dry_run {
        print!("{}", plan.render());
        return Ok(());
    }
    run(cx, plan)
}

/// An action whose result the plan depends on (the certificates whose hash the Compose
/// commands carry), done while the command plans: run now, or under `--dry-run` printed
/// (when it has something to say) as the first lines of the plan.
pub fn prepare(cx: &Context, action: &dyn Action) -> Result<()> {
    if !cx.dry_run {
        return action.run(cx);
    }
    let text = action.render();
    if !text.is_empty() {
        println!("{text}");
    }
    Ok(())
}

/// A read-only question a command asks while it plans (which Compose is installed, does the
/// engine answer): what the program printed, or None under `--dry-run`, which runs no
/// program at all, not even a probe.
pub fn probe(cx: &Context, step: &process::Step) -> Result<Option<process::Output>> {
    if cx.dry_run {
        return Ok(None);
    }
    process::output(step).map(Some)
}

/// Runs the plan's tasks in order, stopping at the first failure: for an action that runs a
/// plan of its own (a start whose failure it explains).
pub fn run(cx: &Context, plan: Plan) -> Result<()> {
    plan.tasks.into_iter().try_for_each(|task| run_task(cx, task))
}

fn run_task(cx: &Context, task: Task) -> Result<()> {
    match task {
        Task::Run(step) => process::run(&step),
        Task::Act(act) => act.0.run(cx),
        Task::Tidy { project, dir, tasks } => {
            let before = KINDS.map(|kind| process::stdout_of(&kind.list(&dir, &project)).unwrap_or_default());
            let result = tasks.into_iter().try_for_each(|task| run_task(cx, task));
            for (kind, before) in KINDS.into_iter().zip(before) {
                remove_created(kind, &dir, &project, &before);
            }
            result
        }
        Task::Say(message) => {
            println!("{message}");
            Ok(())
        }
    }
}

/// Removes the objects of `kind` that `project` has now and did not have `before`; says
/// so when one cannot be removed (in use by a container someone else started meanwhile).
fn remove_created(kind: Kind, dir: &Path, project: &str, before: &str) {
    let Some(after) = process::stdout_of(&kind.list(dir, project)) else { return };
    let created = leftovers::created(before, &after);
    if created.is_empty() {
        return;
    }
    let remove = kind.remove(dir, &created);
    if process::stdout_of(&remove).is_none() {
        eprintln!(
            "warning: could not remove the {} {} this command created: run `{remove}`",
            kind.noun(),
            created.join(" ")
        );
    }
}
