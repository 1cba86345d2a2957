//! Without `--static-dir`, the files to release come from collectstatic run in the freshly
//! built production image, into a scratch directory of ours that is removed afterwards.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};

use crate::context::Context;
use crate::plan::Plan;
use crate::stack::{self, compose::Stack};

/// Where collectstatic writes inside the container (STATIC_ROOT).
const STATIC_ROOT: &str = "/app/staticfiles";

/// A fresh name under `target/`, which git ignores, so the collected files never make the
/// work tree dirty or land next to the artifacts.
pub fn scratch_path(cx: &Context) -> Result<PathBuf> {
    let tag = getrandom::u64().map_err(|e| anyhow!("cannot read the OS random generator: {e}"))?;
    Ok(cx.path("target").join(format!("release-static-{tag:016x}")))
}

/// Builds the production web image, then runs collectstatic in it as the current user (so
/// the files are ours to read and remove) with `dir` mounted over STATIC_ROOT.
pub fn plan(cx: &Context, dir: &Path) -> Result<Plan> {
    let stack = Stack::Prod { with_db: false };
    let env_file = cx.path(stack.env_file());
    if !env_file.is_file() {
        bail!("{} not found: run `{}` to create it, or pass --static-dir DIR", env_file.display(), stack.init_hint());
    }
    let base = stack::prepare(cx, stack)?;
    let user = format!("{}:{}", rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw());
    let run = base
        .clone()
        .args(["run", "--rm", "-T", "--no-deps", "--user", &user, "-v"])
        .arg(format!("{}:{STATIC_ROOT}", dir.display()))
        .args(["web", "python", "manage.py", "collectstatic", "--noinput"]);
    Ok(Plan::default().run(base.args(["build", "web"])).run(run))
}

/// A directory removed with everything in it when dropped, on success or failure alike.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn create(path: PathBuf) -> Result<Scratch> {
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Scratch(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
