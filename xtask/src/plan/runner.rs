//! Carries out a plan: prints it under `--dry-run`, otherwise runs each task in order
//! and stops at the first failure.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use anyhow::{Context as _, Result};

use crate::context::Context;
use crate::plan::leftovers::{self, Kind, KINDS};
use crate::plan::run_error::{status_code, ChildFailed, Interrupted};
use crate::plan::{health, one_off, sink, switch};
use crate::plan::{Plan, Step, Task};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// True once the user pressed Ctrl-C while a plan was running.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fails with [`Interrupted`] once the user has pressed Ctrl-C, so the command unwinds
/// (its guards clean up) and exits with 130.
pub fn stop_if_interrupted() -> Result<()> {
    if interrupted() {
        return Err(Interrupted.into());
    }
    Ok(())
}

pub fn execute(cx: &Context, plan: Plan) -> Result<()> {
    if cx.dry_run {
        print!("{}", plan.render());
        return Ok(());
    }
    plan.tasks.into_iter().try_for_each(|task| run_task(cx, task))
}

fn run_task(cx: &Context, task: Task) -> Result<()> {
    match task {
        Task::Run(step) => run_step(cx, &step),
        Task::WaitHealthy { compose, timeout_secs } => health::wait(cx, &compose, timeout_secs),
        Task::OneOff { run, name } => run_one_off(cx, &run, &name),
        Task::Deploy(deploy) => switch::run(cx, &deploy),
        Task::Tidy { project, dir, tasks } => {
            let before = KINDS.map(|kind| capture(cx, &kind.list(&dir, &project)).unwrap_or_default());
            let result = tasks.into_iter().try_for_each(|task| run_task(cx, task));
            for (kind, before) in KINDS.into_iter().zip(before) {
                remove_created(cx, kind, &dir, &project, &before);
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
fn remove_created(cx: &Context, kind: Kind, dir: &Path, project: &str, before: &str) {
    let Some(after) = capture(cx, &kind.list(dir, project)) else { return };
    let created = leftovers::created(before, &after);
    if created.is_empty() {
        return;
    }
    let remove = kind.remove(dir, &created);
    if capture(cx, &remove).is_none() {
        eprintln!(
            "warning: could not remove the {} {} this command created: run `{remove}`",
            kind.noun(),
            created.join(" ")
        );
    }
}

/// Runs a child with the terminal passed through. Ctrl-C reaches the child through the
/// terminal's process group; we only note it, so the child can stop its containers
/// cleanly and we return when it has.
pub fn run_step(cx: &Context, step: &Step) -> Result<()> {
    let status = status_of(cx, step)?;
    if status.success() {
        return Ok(());
    }
    stop_if_interrupted()?;
    Err(ChildFailed { command: step.to_string(), code: status_code(status), what: step.failure.clone() }.into())
}

/// Runs a one-off container, reads back what the engine recorded of it, then removes it;
/// also after Ctrl-C, which only returns once the container is gone.
fn run_one_off(cx: &Context, run: &Step, name: &str) -> Result<()> {
    let status = status_of(cx, run);
    let recorded = capture(cx, &one_off::inspect(run, name));
    let remove = one_off::remove(run, name);
    if capture(cx, &remove).is_none() && recorded.is_some() {
        eprintln!("warning: could not remove the one-off container {name}: run `{remove}`");
    }
    stop_if_interrupted()?;
    one_off::judge(run, name, status_code(status?), recorded.as_deref())
}

/// A short probe's standard output, or None when it fails.
pub(crate) fn capture(cx: &Context, step: &Step) -> Option<String> {
    if cx.verbose {
        eprintln!("+ {step}");
    }
    let mut expression = duct::cmd(&step.program, &step.args).dir(&step.dir);
    for (key, value) in &step.env {
        expression = expression.env(key, value);
    }
    let out = expression.stdout_capture().stderr_capture().unchecked().run().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs the child to completion and returns its status, whatever it is.
fn status_of(cx: &Context, step: &Step) -> Result<std::process::ExitStatus> {
    catch_ctrl_c();
    if cx.verbose {
        eprintln!("+ {step}");
    }
    let mut expression = duct::cmd(&step.program, &step.args).dir(&step.dir).unchecked();
    for (key, value) in &step.env {
        expression = expression.env(key, value);
    }
    if let Some(path) = &step.stdin {
        expression = expression.stdin_path(path);
    }
    let not_found = || format!("cannot run `{}`: is it installed and on PATH?", step.program);
    Ok(match &step.stdout {
        Some(sink) => sink::run(sink, || expression.reader().with_context(not_found))?,
        None => expression.run().with_context(not_found)?.status,
    })
}

fn catch_ctrl_c() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Failing to install the handler only means Ctrl-C kills us along with the child.
        let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    });
}
