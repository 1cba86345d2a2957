//! What a stack's start and stop leave, read from the engine rather than from Compose's exit
//! code: a start that fails half-way names the containers it left (unless the stack was
//! serving before, and still is), and a `down` that leaves containers says which.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::context::Context;
use crate::plan::{runner, Action, Plan, Step};
use crate::process::{self, error::Interrupted};
use crate::stack::compose::Stack;
use crate::stack::redeploy::{self, NotSwitched};

/// Runs `plan`, which starts `stack`; a failure with containers of the stack in place (an
/// engine error half-way, a service that never became healthy) names them and the command
/// that removes them.
#[derive(Debug)]
pub struct Start {
    pub stack: Stack,
    pub project: String,
    pub dir: PathBuf,
    pub plan: Plan,
}

impl Action for Start {
    fn render(&self) -> String {
        self.plan.render().trim_end().to_owned()
    }

    fn run(&self, cx: &Context) -> Result<()> {
        let serving = matches!(self.stack, Stack::Prod { .. }) && redeploy::serving(&self.dir, &self.project);
        let Err(error) = runner::run(cx, self.plan.clone()) else { return Ok(()) };
        // Ctrl-C is the user stopping the stack on purpose, not a failed start.
        // A redeploy that was not switched to left the old version serving, not a failed start.
        if error.downcast_ref::<Interrupted>().is_some() || error.downcast_ref::<NotSwitched>().is_some() {
            return Err(error);
        }
        // Neither is a redeploy stopped by a release step (a failing migration).
        if serving {
            return Err(error.context("the deploy stopped before its switch and the running version still serves"));
        }
        let left = containers_of(&self.dir, &self.project);
        if left.is_empty() {
            return Err(error);
        }
        let down = match self.stack {
            Stack::Dev => "cargo xtask down",
            Stack::Prod { .. } => "cargo xtask down --prod",
        };
        Err(error.context(format!(
            "the {} stack did not start and left container(s) {}: remove them with `{down}`",
            self.stack.suffix(),
            left.join(", ")
        )))
    }
}

/// Fails naming any container of `project` still there: Compose removes only the services
/// its files name now, so one started with other files (the bundled db before POSTGRES_HOST
/// changed) stays, and Compose still exits 0.
#[derive(Debug)]
pub struct AllGone {
    pub project: String,
    pub dir: PathBuf,
}

impl Action for AllGone {
    fn render(&self) -> String {
        format!("# then: fail naming any container still there: {}", list(&self.dir, &self.project))
    }

    fn run(&self, _: &Context) -> Result<()> {
        let left = containers_of(&self.dir, &self.project);
        if !left.is_empty() {
            bail!(
                "`down` left container(s) {} of project {}, from services the compose files no longer name: remove them with `docker rm --force {}`",
                left.join(", "),
                self.project,
                left.join(" ")
            );
        }
        Ok(())
    }
}

fn list(dir: &std::path::Path, project: &str) -> Step {
    let filter = format!("label=com.docker.compose.project={project}");
    Step::new("docker", dir).args(["ps", "--all", "--filter", &filter, "--format", "{{.Names}}"])
}

/// Names of the project's containers, running or not; none when Docker cannot say.
fn containers_of(dir: &std::path::Path, project: &str) -> Vec<String> {
    let names = process::stdout_of(&list(dir, project)).unwrap_or_default();
    let mut names: Vec<String> = names.split_whitespace().map(str::to_owned).collect();
    names.sort();
    names
}
