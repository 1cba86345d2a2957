//! The production stack's backup service (docker/compose.backup.yml), added when `.env.prod`
//! sets BACKUP_SCHEDULE: its settings are checked like those of `cargo xtask backup`, then
//! handed to the service as Compose variables (see `backup_settings::Service`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::backup_settings::Settings;
use crate::context::Context;
use crate::envfile::{EnvFile, PROD_FILE};
use crate::plan::{runner, Action, Step};
use crate::stack::compose;
use crate::stack::released::RECORD;

/// The overlay of the backup service.
pub(crate) const OVERLAY: &str = "docker/compose.backup.yml";

/// `step` with the backup service when `env` schedules it, for Compose project `project`.
pub(crate) fn add(cx: &Context, env: &EnvFile, project: &str, step: Step) -> Result<Step> {
    let vars = env.vars();
    if !Settings::scheduled(&vars) {
        return Ok(step);
    }
    let file = cx.path(PROD_FILE);
    let settings = Settings::from_vars(&vars, &file, &cx.root)?;
    let service = settings.service(&file)?.expect("scheduled");
    runner::prepare(cx, &RecordDir(cx.path(RECORD).parent().expect("a file has a directory").to_path_buf()))?;
    let secret = |path: Option<&Path>| path.map_or("/dev/null".into(), |p| p.to_string_lossy().into_owned());
    let sftp = settings.sftp.as_ref();
    Ok(compose::add_files(cx, step, &[OVERLAY])
        .env("BACKUP_IMAGE", format!("{}-backup", cx.name))
        .env("BACKUP_HOST", project)
        .env("BACKUP_EVERY", service.every)
        .env("BACKUP_AT", service.at)
        .env("BACKUP_FORGET", service.forget)
        .env("BACKUP_HEALTH_INTERVAL", service.health_interval)
        .env("BACKUP_SSH_KEY_FILE", secret(sftp.map(|s| s.key.as_path())))
        .env("BACKUP_KNOWN_HOSTS_FILE", secret(sftp.and_then(|s| s.known_hosts.as_deref()))))
}

/// The directory of the release record, which the service mounts: made by this user before
/// Compose would make it as the engine's (root), where `prod` could not write the record.
#[derive(Debug)]
struct RecordDir(PathBuf);

impl Action for RecordDir {
    fn render(&self) -> String {
        format!("# create {} (the backup service reads the release record there)", self.0.display())
    }

    fn run(&self, _: &Context) -> Result<()> {
        std::fs::create_dir_all(&self.0).with_context(|| format!("cannot create {}", self.0.display()))
    }
}
