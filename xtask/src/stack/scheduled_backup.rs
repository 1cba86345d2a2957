//! The production stack's backup service (docker/compose.backup.yml), added when `.env.prod`
//! sets BACKUP_SCHEDULE: its settings are checked like those of `cargo xtask backup`, then
//! handed to the service as Compose variables, the schedule and retention already parsed so
//! that the agent in the container reads numbers only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

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
    let schedule = settings.schedule.expect("scheduled");
    reachable_from_a_container(&settings, &file)?;
    runner::prepare(cx, &RecordDir(cx.path(RECORD).parent().expect("a file has a directory").to_path_buf()))?;
    let secret = |path: Option<&Path>| path.map_or("/dev/null".into(), |p| p.to_string_lossy().into_owned());
    let sftp = settings.sftp.as_ref();
    Ok(compose::add_files(cx, step, &[OVERLAY])
        .env("BACKUP_IMAGE", format!("{}-backup", cx.name))
        .env("BACKUP_HOST", project)
        .env("BACKUP_EVERY", schedule.every.as_secs().to_string())
        .env("BACKUP_AT", schedule.at.map(|at| at.as_secs().to_string()).unwrap_or_default())
        .env("BACKUP_FORGET", settings.keep_options().join(" "))
        .env("BACKUP_HEALTH_INTERVAL", format!("{}s", health_interval(schedule.every).as_secs()))
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

/// The service runs in a container of its own: it has neither this host's disk nor its
/// `~/.ssh`.
fn reachable_from_a_container(settings: &Settings, file: &Path) -> Result<()> {
    let shown = file.display();
    if settings.url.starts_with("local:") {
        bail!("BACKUP_SCHEDULE in {shown} needs a repository off this host, not {}: the backup service runs in a container without this host's disk (or leave BACKUP_SCHEDULE unset and run `cargo xtask backup` from cron)", settings.url);
    }
    if settings.url.starts_with("sftp:") && settings.sftp.as_ref().is_none_or(|s| s.known_hosts.is_none()) {
        bail!("BACKUP_SCHEDULE in {shown} with an SFTP repository needs BACKUP_SSH_KEY and BACKUP_KNOWN_HOSTS: the backup service has no ~/.ssh of its own (e.g. `ssh-keyscan HOST > certs/backup_known_hosts`)");
    }
    Ok(())
}

/// How often Docker runs the stale-backup check: a few times an interval, at most a minute.
fn health_interval(every: Duration) -> Duration {
    (every / 4).clamp(Duration::from_secs(2), Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_runs_a_few_times_an_interval() {
        assert_eq!(health_interval(Duration::from_secs(20)), Duration::from_secs(5));
        assert_eq!(health_interval(Duration::from_secs(86_400)), Duration::from_secs(60));
        assert_eq!(health_interval(Duration::from_secs(4)), Duration::from_secs(2));
    }
}
