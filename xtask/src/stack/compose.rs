//! Finding Docker Compose and building its command lines for the dev and prod stacks.

use std::env;

use anyhow::{bail, Result};
use xshell::cmd;

use crate::context::Context;
use crate::plan::Step;
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
            Stack::Dev => ".env",
            Stack::Prod { .. } => ".env.prod",
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
            Stack::Prod { with_db: true } => &["docker/compose.prod.yml", "docker/compose.db.yml"],
        }
    }
}

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
        if cx.dry_run {
            return Ok(Compose::v2());
        }
        if v2_plugin_works(cx) {
            return Ok(Compose::v2());
        }
        let sh = cx.shell()?;
        if cmd!(sh, "docker-compose version").quiet().ignore_stdout().ignore_stderr().run().is_ok() {
            return Ok(Compose::v1());
        }
        bail!("Docker Compose not found: install the Compose v2 plugin (Debian/Ubuntu: `apt-get install docker-compose-plugin`, or see https://docs.docker.com/compose/install/), or set XTASK_COMPOSE")
    }

    /// The start of every command for `stack`: explicit project name, project directory,
    /// env file and compose files, so it works the same from any working directory; the
    /// Django project's description reaches the compose files as variables.
    pub fn step(&self, cx: &Context, stack: Stack, project: &Description) -> Step {
        let mut step = Step::new(&self.program, &cx.root)
            .args(self.prefix.iter().cloned())
            .arg("--project-name")
            .arg(stack.project(cx))
            .arg("--project-directory")
            .arg(cx.root.to_string_lossy())
            .arg("--env-file")
            .arg(cx.path(stack.env_file()).to_string_lossy());
        for file in stack.files() {
            step = step.arg("-f").arg(cx.path(file).to_string_lossy());
        }
        if let Stack::Prod { .. } = stack {
            step = step.env("WEB_IMAGE", web_image(cx));
        }
        let flavour = if stack == Stack::Dev { Flavour::Dev } else { Flavour::Prod };
        for (key, value) in project.compose_vars(flavour) {
            step = step.env(key, value);
        }
        step
    }
}

/// `step` with more compose files after the stack's own (an overlay its env file selects).
pub fn add_files(cx: &Context, step: Step, files: &[&str]) -> Step {
    files.iter().fold(step, |step, file| step.arg("-f").arg(cx.path(file).to_string_lossy()))
}

/// Whether `docker compose version` answers: the v2 plugin is installed where docker finds it.
pub fn v2_plugin_works(cx: &Context) -> bool {
    let Ok(sh) = cx.shell() else { return false };
    cmd!(sh, "docker compose version").quiet().ignore_stdout().ignore_stderr().run().is_ok()
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
    if cx.dry_run {
        return Ok(());
    }
    let sh = cx.shell()?;
    let format = "{{.ServerVersion}}";
    let output = cmd!(sh, "docker info --format {format}").quiet().ignore_status().output();
    match output {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            let why = String::from_utf8_lossy(&out.stderr);
            let why = why.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no answer");
            bail!("cannot reach the Docker engine ({why}): start the Docker daemon or set DOCKER_HOST")
        }
        Err(_) => bail!("`docker` not found on PATH: install Docker Engine (https://docs.docker.com/engine/install/)"),
    }
}
