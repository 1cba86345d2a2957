//! Without `--static-dir`, the files to release come from collectstatic run in the freshly
//! built production image, into a scratch directory of ours that is removed afterwards.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::context::{unique_tag, Context};
use crate::plan::Plan;
use crate::stack::{self, compose::Stack, OneOff};

/// Where collectstatic writes inside the container (STATIC_ROOT).
const STATIC_ROOT: &str = "/app/staticfiles";

/// A fresh name under `target/`, which git ignores, so the collected files never make the
/// work tree dirty or land next to the artifacts.
pub fn scratch_path(cx: &Context) -> Result<PathBuf> {
    Ok(cx.path("target").join(format!("release-static-{}", unique_tag()?)))
}

/// Builds the production web image, then runs collectstatic in it as the current user (so
/// the files are ours to read and remove) with `dir` mounted over STATIC_ROOT.
pub fn plan(cx: &Context, dir: &Path) -> Result<Plan> {
    let stack = Stack::Prod { with_db: false };
    let env_file = cx.path(stack.env_file());
    if !env_file.is_file() {
        bail!("{} not found: run `{}` to create it, or pass --static-dir DIR", env_file.display(), stack.init_hint());
    }
    let (base, stage) = stack::prepare_build(cx, stack)?;
    let user = format!("{}:{}", rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw());
    let mount = format!("{}:{STATIC_ROOT}", dir.display());
    let options = ["--user", user.as_str(), "-v", mount.as_str()];
    stack::built_one_off(stage, &base, &stack.project(cx), OneOff::NoDeps, &options, &["collectstatic", "--noinput"])
}

/// A directory removed with everything in it when dropped, on success or failure alike.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn create(path: PathBuf) -> Result<Scratch> {
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
