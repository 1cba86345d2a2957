//! Finding Docker Compose and building its command lines for the dev and prod stacks.

use std::env;

use anyhow::{bail, Result};

use crate::context::Context;
use crate::envfile;
use crate::plan::{runner, Step};
use crate::process;
use crate::project::{Description, Flavour};

/// Which stack a command talks to. Each has its own Compose project name, so the
/// two never share containers, networks or volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    Dev,
    Prod { with_db: bool },
}

impl Stack {
    /// The production stack before `.env.prod` is read: enough to name its env file, but
    /// whether it runs the bundled database is that file's to say (`stack::stack_for`).
    pub const PROD: Stack = Stack::Prod { with_db: false };

    pub fn env_file(self) -> &'static str {
        match self {
            Stack::Dev => envfile::DEV_FILE,
            Stack::Prod { .. } => envfile::PROD_FILE,
        }
    }

    /// What to run when the env file is missing.
    pub fn init_hint(self) -> &'static str {
        match self {
            Stack::Dev => "cargo xtask init",
            Stack::Prod { .. } => "cargo xtask init --prod --host HOST",
        }
    }

    /// The Compose project name: `<name>-dev` or `<name>-prod`.
    pub fn project(self, cx: &Context) -> String {
        format!("{}-{}", cx.name, self.suffix())
    }

    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Stack::Dev => "dev",
            Stack::Prod { .. } => "prod",
        }
    }

    fn files(self) -> &'static [&'static str] {
        match self {
            Stack::Dev => &["docker/compose.yml"],
            Stack::Prod { with_db: false } => &["docker/compose.prod.yml"],
            Stack::Prod { with_db: true } => PROD_WITH_DB,
        }
    }
}

/// The production stack with its bundled database.
pub const PROD_WITH_DB: &[&str] = &["docker/compose.prod.yml", "docker/compose.db.yml"];

impl Stack {}

/// How Compose is invoked: `docker compose` (v2 plugin) or `docker-compose` (v1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compose {
    program: String,
    prefix: Vec<String>,
}

impl Compose {
    fn v2() -> Compose {
        Compose { program: "docker".into(), prefix: vec!["compose".into()] }
    }

    fn v1() -> Compose {
        Compose { program: "docker-compose".into(), prefix: Vec::new() }
    }

    /// `XTASK_COMPOSE`, else the v2 plugin, else standalone v1. A dry run probes
    /// nothing (it must not run any program), so it assumes v2 unless told otherwise.
    pub fn detect(cx: &Context) -> Result<Compose> {
        if let Some(chosen) = from_env()? {
            return Ok(chosen);
        }
        let answers = |program: &str, args: &[&str]| -> Result<Option<bool>> {
            let probe = Step::new(program, &cx.root).args(args.iter().copied());
            Ok(runner::probe(cx, &probe).unwrap_or_default().map(|out| out.ok))
        };
        match answers("docker", &["compose", "version"])? {
            None | Some(true) => return Ok(Compose::v2()),
            Some(false) => {}
        }
        if answers("docker-compose", &["version"])? == Some(true) {
            return Ok(Compose::v1());
        }
        bail!("Docker Compose not found: install the Compose v2 plugin (Debian/Ubuntu: `apt-get install docker-compose-plugin`, or see https://docs.docker.com/compose/install/), or set XTASK_COMPOSE")
    }

    /// The start of every command for `stack`: explicit project name, project directory,
    /// env file and compose files, so it works the same from any working directory; the
    /// Django project's description reaches the compose files as variables.
    pub fn step(&self, cx: &Context, stack: Stack, project: &Description) -> Step {
        let flavour = if stack == Stack::Dev { Flavour::Dev } else { Flavour::Prod };
        let files = Files { project: stack.project(cx), env_file: stack.env_file(), compose_files: stack.files() };
        self.step_for(cx, &files, flavour, project)
    }

    /// Like [`Compose::step`], for a Compose project of the production image that is no
    /// stack of the user's (the throwaway one of `cargo xtask test`).
    pub fn step_for(&self, cx: &Context, files: &Files, flavour: Flavour, project: &Description) -> Step {
        let mut step = Step::new(&self.program, &cx.root)
            .args(self.prefix.iter().cloned())
            .arg("--project-name")
            .arg(&files.project)
            .arg("--project-directory")
            .arg(cx.root.to_string_lossy())
            .arg("--env-file")
            .arg(cx.path(files.env_file).to_string_lossy());
        for file in files.compose_files {
            step = step.arg("-f").arg(cx.path(file).to_string_lossy());
        }
        if flavour == Flavour::Prod {
            step = step.env("WEB_IMAGE", web_image(cx));
        }
        for (key, value) in project.compose_vars(flavour) {
            step = step.env(key, value);
        }
        step
    }
}

/// What a Compose command is about: its project name, env file and compose files.
pub struct Files {
    pub project: String,
    pub env_file: &'static str,
    pub compose_files: &'static [&'static str],
}

/// `step` with more compose files after the stack's own (an overlay its env file selects).
pub fn add_files(cx: &Context, step: Step, files: &[&str]) -> Step {
    files.iter().fold(step, |step, file| step.arg("-f").arg(cx.path(file).to_string_lossy()))
}

/// Whether `docker compose version` answers: the v2 plugin is installed where docker finds it.
pub fn v2_plugin_works(cx: &Context) -> bool {
    process::output(&Step::new("docker", &cx.root).args(["compose", "version"])).is_ok_and(|out| out.ok)
}

/// The production web image's name, known so releases can save it.
pub fn web_image(cx: &Context) -> String {
    format!("{}-web", cx.name)
}

fn from_env() -> Result<Option<Compose>> {
    let Ok(value) = env::var("XTASK_COMPOSE") else { return Ok(None) };
    let words: Vec<&str> = value.split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(None),
        [program, rest @ ..] => {
            Ok(Some(Compose { program: (*program).to_owned(), prefix: rest.iter().map(|w| (*w).to_owned()).collect() }))
        }
    }
}

/// Stops with a clear line when the Docker engine does not answer, rather than letting
/// Compose fail later with a connection trace.
pub fn require_engine(cx: &Context) -> Result<()> {
    let info = Step::new("docker", &cx.root).args(["info", "--format", "{{.ServerVersion}}"]);
    match runner::probe(cx, &info) {
        Ok(None) => Ok(()),
        Ok(Some(out)) if out.ok => Ok(()),
        Ok(Some(out)) => {
            bail!("cannot reach the Docker engine ({}): start the Docker daemon or set DOCKER_HOST", out.why())
        }
        Err(_) => bail!("`docker` not found on PATH: install Docker Engine (https://docs.docker.com/engine/install/)"),
    }
}
