//! A plan is the list of things a command will do, built before anything runs,
//! so that `--dry-run` prints exactly what a real run executes.

use std::fmt;
use std::path::PathBuf;

/// One child process: program, arguments, the variables it adds to the environment
/// and the directory it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub dir: PathBuf,
}

impl Step {
    pub fn new(program: impl Into<String>, dir: impl Into<PathBuf>) -> Step {
        Step { program: program.into(), args: Vec::new(), env: Vec::new(), dir: dir.into() }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Step {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Step
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Step {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// The command line as a shell would take it: `cd DIR && KEY=value program args`.
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cd {} &&", quote(&self.dir.to_string_lossy()))?;
        for (key, value) in &self.env {
            write!(f, " {key}={}", quote(value))?;
        }
        write!(f, " {}", quote(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", quote(arg))?;
        }
        Ok(())
    }
}

fn quote(word: &str) -> String {
    shlex::try_quote(word).map(|q| q.into_owned()).unwrap_or_else(|_| format!("{word:?}"))
}

/// What a plan does between commands, when it is more than running a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Run a child to completion; its exit code is the command's if it fails.
    Run(Step),
    /// Poll until every container of the stack that has a healthcheck is healthy;
    /// `compose` is the stack's compose command without a subcommand.
    WaitHealthy { compose: Step, timeout_secs: u64 },
    /// Tell the user something once the steps before it have succeeded.
    Say(String),
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

    /// The plan as `--dry-run` prints it: one command a line, other tasks as `#` comments.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for task in &self.tasks {
            let line = match task {
                Task::Run(step) => step.to_string(),
                Task::WaitHealthy { compose, timeout_secs } => {
                    format!("# wait up to {timeout_secs}s until every healthcheck passes, polling: {compose} ps -q")
                }
                Task::Say(message) => format!("# then: {message}"),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_prints_as_a_shell_line_with_quoting() {
        let step = Step::new("docker", "/srv/my app").env("WEB_IMAGE", "a b").args(["compose", "it's"]);
        assert_eq!(step.to_string(), r#"cd '/srv/my app' && WEB_IMAGE='a b' docker compose "it's""#);
    }

    #[test]
    fn a_plan_renders_one_line_per_task() {
        let plan = Plan::default().run(Step::new("true", "/")).then(Task::Say("done".into()));
        assert_eq!(plan.render(), "cd / && true\n# then: done\n");
    }
}
