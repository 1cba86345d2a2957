//! Where a stack's database is, and the command lines that reach it: inside the stack's
//! bundled `db` container, or from a one-off Postgres container for a managed database.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::context::Context;
use crate::envfile::EnvFile;
use crate::plan::Step;
use crate::stack;
use crate::stack::compose::{self, Stack};

const DEFAULT_IMAGE: &str = "postgres:17-alpine";
const DEFAULT_PORT: &str = "5432";

/// The database of one stack.
pub struct Database {
    pub stack: Stack,
    /// Its name (`POSTGRES_DB`), for file names and messages.
    pub name: String,
    place: Place,
}

enum Place {
    /// The stack's `db` service: the tools run inside its container.
    Bundled,
    /// A database outside the stack (production with `POSTGRES_HOST` other than `db`).
    Managed(Remote),
}

/// How a one-off container reaches a managed database.
struct Remote {
    image: String,
    host: String,
    port: String,
    user: String,
    password: Option<String>,
}

/// What the tool reads on its standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Nothing,
    File(PathBuf),
    /// The user's terminal, when there is one.
    Terminal,
}

impl Database {
    /// Reads the stack's env file; asks nothing of Docker.
    pub fn locate(cx: &Context, prod: bool) -> Result<Database> {
        let (stack, env) = stack::stack_with_env(cx, prod)?;
        Database::of(cx, stack, &env)
    }

    /// The database of `stack`, whose env file `env` was read already.
    pub fn of(cx: &Context, stack: Stack, env: &EnvFile) -> Result<Database> {
        let path = cx.path(stack.env_file());
        let vars = env.vars();
        let name = require(&vars, "POSTGRES_DB", &path)?;
        let place = match stack {
            Stack::Dev | Stack::Prod { with_db: true } => Place::Bundled,
            Stack::Prod { with_db: false } => Place::Managed(Remote::from_vars(&vars, &path)?),
        };
        Ok(Database { stack, name, place })
    }

    /// The host as the user knows it, e.g. `db (bundled)` or `db.example.net:5432 (managed)`.
    pub fn host(&self) -> String {
        match &self.place {
            Place::Bundled => "db (bundled)".to_owned(),
            Place::Managed(remote) => format!("{}:{} (managed)", remote.host, remote.port),
        }
    }

    /// The stack and its Compose project, e.g. `dev (project shop-dev)`.
    pub fn stack_label(&self, cx: &Context) -> String {
        format!("{} (project {})", self.stack.suffix(), self.stack.project(cx))
    }

    /// The command running `tool` (a Postgres client program and its options) against
    /// this database. Checks that Docker answers, but runs nothing else.
    pub fn command(&self, cx: &Context, tool: &[&str], input: Input) -> Result<Step> {
        let step = match &self.place {
            Place::Bundled => in_container(stack::prepare(cx, self.stack)?, tool, &input),
            Place::Managed(remote) => {
                compose::require_engine(cx)?;
                remote.one_off(&cx.root, tool, &self.name, &input)
            }
        };
        Ok(match input {
            Input::File(path) => step.stdin(path),
            _ => step,
        })
    }
}

/// `compose exec db sh -c 'exec TOOL --username="$POSTGRES_USER" ...'`: the user and
/// database are the container's own, the ones its data directory was created with.
fn in_container(base: Step, tool: &[&str], input: &Input) -> Step {
    let script = format!(r#"exec {} --username="$POSTGRES_USER" --dbname="$POSTGRES_DB""#, tool.join(" "));
    let mut exec = base.arg("exec");
    if !interactive(input) {
        // No terminal: keeps binary streams intact and works without one (CI, pipes).
        exec = exec.arg("-T");
    }
    exec.args(["db", "sh", "-c", &script])
}

impl Remote {
    fn from_vars(vars: &BTreeMap<String, String>, path: &Path) -> Result<Remote> {
        let get = |key: &str, default: &str| vars.get(key).filter(|v| !v.is_empty()).map_or(default, |v| v).to_owned();
        Ok(Remote {
            image: get("POSTGRES_IMAGE", DEFAULT_IMAGE),
            host: require(vars, "POSTGRES_HOST", path)?,
            port: get("POSTGRES_PORT", DEFAULT_PORT),
            user: require(vars, "POSTGRES_USER", path)?,
            password: vars.get("POSTGRES_PASSWORD").filter(|v| !v.is_empty()).cloned(),
        })
    }

    /// `docker run --rm IMAGE TOOL --host=...`. On the host's network, the container
    /// reaches the database as the host does (a tunnel on 127.0.0.1 included). The
    /// password travels in the environment: `-e PGPASSWORD` copies it from ours.
    fn one_off(&self, root: &Path, tool: &[&str], database: &str, input: &Input) -> Step {
        let mut run = Step::new("docker", root).args(["run", "--rm"]);
        if *input != Input::Nothing {
            run = run.arg("-i");
        }
        if interactive(input) {
            run = run.arg("-t");
        }
        run = run.args(["--network", "host"]);
        if let Some(password) = &self.password {
            run = run.secret_env("PGPASSWORD", password).args(["-e", "PGPASSWORD"]);
        }
        run.arg(&self.image).args(tool.iter().copied()).args([
            format!("--host={}", self.host),
            format!("--port={}", self.port),
            format!("--username={}", self.user),
            format!("--dbname={database}"),
        ])
    }
}

/// True when the tool talks to the user's terminal.
fn interactive(input: &Input) -> bool {
    *input == Input::Terminal && std::io::stdin().is_terminal()
}

fn require(vars: &BTreeMap<String, String>, key: &str, path: &Path) -> Result<String> {
    match vars.get(key) {
        Some(value) if !value.is_empty() => Ok(value.clone()),
        _ => bail!("{key} is not set in {}: add it there", path.display()),
    }
}
