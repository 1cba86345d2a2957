//! A plan is the list of things a command will do, built before anything runs,
//! so that `--dry-run` prints exactly what a real run executes.

pub mod health;
pub mod leftovers;
pub mod one_off;
pub mod runner;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use crate::context::Context;
pub use crate::process::{Sink, Step};

/// What a plan does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Run a child to completion; its exit code is the command's if it fails.
    Run(Step),
    /// An action of the command's own (a wait, a decision on what the engine says, a file
    /// written), which says what it will do and does it.
    Act(Act),
    /// Run `tasks`, then remove the containers, networks and volumes of Compose project
    /// `project` that were not there before, whatever happened: a command that must change
    /// nothing (`check`) leaves nothing behind.
    Tidy { project: String, dir: PathBuf, tasks: Vec<Task> },
    /// Tell the user something once the steps before it have succeeded.
    Say(String),
}

impl Task {
    pub fn act(action: impl Action + 'static) -> Task {
        Task::Act(Act(Arc::new(action)))
    }
}

/// What a command does besides running a child to completion. `render` is what `--dry-run`
/// prints for it (`#` comments and the commands it would run, one a line), `run` does it:
/// written side by side, so the two cannot drift, and only the runner chooses between them.
pub trait Action: fmt::Debug {
    fn render(&self) -> String;
    fn run(&self, cx: &Context) -> Result<()>;
}

/// An [`Action`] in a plan. Two are the same when they print the same.
#[derive(Debug, Clone)]
pub struct Act(pub Arc<dyn Action>);

impl PartialEq for Act {
    fn eq(&self, other: &Act) -> bool {
        self.0.render() == other.0.render()
    }
}

impl Eq for Act {}

/// Writes a private file (mode 0600) whole, replacing what is there: an env file of
/// generated secrets, which `--dry-run` does not print.
pub struct WriteFile {
    pub path: PathBuf,
    pub text: String,
}

/// Never prints the text.
impl fmt::Debug for WriteFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WriteFile({})", self.path.display())
    }
}

impl Action for WriteFile {
    fn render(&self) -> String {
        format!("# write {} (mode 0600)", self.path.display())
    }

    fn run(&self, _: &Context) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        crate::files::write_atomically(&self.path, &self.text)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub tasks: Vec<Task>,
}

impl Plan {
    pub fn run(mut self, step: Step) -> Plan {
        self.tasks.push(Task::Run(step));
        self
    }

    pub fn then(mut self, task: Task) -> Plan {
        self.tasks.push(task);
        self
    }

    /// This plan's tasks, then `more`'s.
    pub fn and(mut self, more: Plan) -> Plan {
        self.tasks.extend(more.tasks);
        self
    }

    /// The plan as `--dry-run` prints it: one command a line, other tasks as `#` comments.
    pub fn render(&self) -> String {
        // An action with nothing to do here (a restore confirmed with --yes) prints nothing.
        self.tasks.iter().map(render_task).filter(|text| !text.is_empty()).map(|text| text + "\n").collect()
    }
}

fn render_task(task: &Task) -> String {
    match task {
        Task::Run(step) => step.to_string() + &checksum_note(step),
        Task::Act(act) => act.0.render(),
        Task::Tidy { project, tasks, .. } => {
            let inner: Vec<String> = tasks.iter().map(render_task).collect();
            format!(
                "# note the containers, networks and volumes of project {project}\n{}\n# then, whatever happened: remove those of project {project} that were not there before",
                inner.join("\n")
            )
        }
        Task::Say(message) => format!("# then: {message}"),
    }
}

/// The line that says a step's output file also gets a checksum file, else nothing.
fn checksum_note(step: &Step) -> String {
    match &step.stdout {
        Some(Sink { path, checksum: true }) => format!("\n# then: write its SHA-256 to {}.sha256", path.display()),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_renders_one_line_per_task() {
        let plan = Plan::default().run(Step::new("true", "/")).then(Task::Say("done".into()));
        assert_eq!(plan.render(), "cd / && true\n# then: done\n");
    }

    #[test]
    fn redirections_show_and_secrets_are_masked() {
        let sink = Sink { path: "/b/x.dump".into(), checksum: true };
        let step = Step::new("docker", "/").secret_env("PGPASSWORD", "s3cret").arg("run").stdin("/in").stdout(sink);
        let plan = Plan::default().run(step);
        assert_eq!(
            plan.render(),
            "cd / && PGPASSWORD=*** docker run < /in > /b/x.dump\n# then: write its SHA-256 to /b/x.dump.sha256\n"
        );
    }
}
