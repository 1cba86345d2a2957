//! A plan is the list of things a command will do, built before anything runs,
//! so that `--dry-run` prints exactly what a real run executes.

pub mod health;
pub mod leftovers;
pub mod one_off;
pub mod run_error;
pub mod runner;
pub mod sink;
pub mod switch;
pub mod upstream;

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
    /// Names of the `env` variables whose values are secrets: passed to the child, masked when printed.
    pub secrets: Vec<String>,
    /// A file the child reads as its standard input, instead of the terminal.
    pub stdin: Option<PathBuf>,
    /// Where the child's standard output goes, instead of the terminal.
    pub stdout: Option<Sink>,
    /// What failed, said before the command line when the child fails
    /// (`cannot build the web image`), so the error names the step, not only its argv.
    pub failure: Option<String>,
}

/// A file that receives a child's standard output. It appears only once the child has
/// succeeded (written under a temporary name, then renamed); with `checksum`, its SHA-256
/// is written beside it as `<file>.sha256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sink {
    pub path: PathBuf,
    pub checksum: bool,
}

impl Step {
    pub fn new(program: impl Into<String>, dir: impl Into<PathBuf>) -> Step {
        Step {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            dir: dir.into(),
            secrets: Vec::new(),
            stdin: None,
            stdout: None,
            failure: None,
        }
    }

    /// Names what failed when this child fails.
    pub fn fails_as(mut self, what: impl Into<String>) -> Step {
        self.failure = Some(what.into());
        self
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

    /// Like [`Step::env`], for a value that must never be printed (a password).
    pub fn secret_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Step {
        let key = key.into();
        self.secrets.push(key.clone());
        self.env(key, value)
    }

    pub fn stdin(mut self, path: impl Into<PathBuf>) -> Step {
        self.stdin = Some(path.into());
        self
    }

    pub fn stdout(mut self, sink: Sink) -> Step {
        self.stdout = Some(sink);
        self
    }
}

/// The command line as a shell would take it: `cd DIR && KEY=value program args < in > out`,
/// with secret values shown as `***`.
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cd {} &&", quote(&self.dir.to_string_lossy()))?;
        for (key, value) in &self.env {
            if self.secrets.contains(key) {
                write!(f, " {key}=***")?;
            } else {
                write!(f, " {key}={}", quote(value))?;
            }
        }
        write!(f, " {}", quote(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", quote(arg))?;
        }
        if let Some(path) = &self.stdin {
            write!(f, " < {}", quote(&path.to_string_lossy()))?;
        }
        if let Some(sink) = &self.stdout {
            write!(f, " > {}", quote(&sink.path.to_string_lossy()))?;
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
    /// Run a one-off container named `name` (`compose run --name NAME`, without `--rm`) and
    /// trust its outcome only once the engine reports that container's own exit code;
    /// the container is removed afterwards, whatever happened.
    OneOff { run: Step, name: String },
    /// Run `tasks`, then remove the containers, networks and volumes of Compose project
    /// `project` that were not there before, whatever happened: a command that must change
    /// nothing (`check`) leaves nothing behind.
    Tidy { project: String, dir: PathBuf, tasks: Vec<Task> },
    /// Start the web service: beside a running version, switching nginx over once the new
    /// containers are healthy and then draining the old ones; or, with nothing running, a
    /// first start of the whole stack (see [`switch`]).
    Deploy(switch::Deploy),
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
        self.tasks.iter().map(|task| render_task(task) + "\n").collect()
    }
}

fn render_task(task: &Task) -> String {
    match task {
        Task::Run(step) => step.to_string() + &checksum_note(step),
        Task::WaitHealthy { compose, timeout_secs } => {
            format!("# wait up to {timeout_secs}s until every healthcheck passes, polling: {compose} ps -q")
        }
        Task::OneOff { run, name } => one_off::render(run, name),
        Task::Tidy { project, tasks, .. } => {
            let inner: Vec<String> = tasks.iter().map(render_task).collect();
            format!(
                "# note the containers, networks and volumes of project {project}\n{}\n# then, whatever happened: remove those of project {project} that were not there before",
                inner.join("\n")
            )
        }
        Task::Deploy(deploy) => deploy.render(),
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
    fn a_step_prints_as_a_shell_line_with_quoting() {
        let step = Step::new("docker", "/srv/my app").env("WEB_IMAGE", "a b").args(["compose", "it's"]);
        assert_eq!(step.to_string(), r#"cd '/srv/my app' && WEB_IMAGE='a b' docker compose "it's""#);
    }

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
