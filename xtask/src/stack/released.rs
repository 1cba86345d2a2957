//! The release steps (check, migrate, static copy) of an image run once per database: `prod`
//! records for which image and database they last succeeded in `.stack/prod/released`, and
//! skips them when both are the same again, as on a restart of the stopped stack on its kept
//! volumes. The `static` volume is written by the release steps alone, so the time Docker
//! gives for it changes with each run of them and with a volume made anew (`down --volumes`,
//! which also makes a new bundled database, whose volume must exist). `db restore` forgets
//! the record, and `prod --force` runs the steps anyway.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::context::Context;
use crate::plan::{runner, Action, Plan, Step, Task};
use crate::process;

/// Where the record is kept, under the project root.
pub const RECORD: &str = ".stack/prod/released";

/// Runs `steps` unless the record says they ran for what the stack has now.
#[derive(Debug)]
pub struct ReleaseOnce {
    pub steps: Task,
    pub dir: PathBuf,
    pub image: String,
    /// The database the migrations ran on, as `.env.prod` names it (`HOST:PORT/NAME`).
    pub database: String,
    /// The volume the static files are copied into.
    pub static_volume: String,
    /// The bundled database's volume, when the stack has one.
    pub db_volume: Option<String>,
}

impl Action for ReleaseOnce {
    fn render(&self) -> String {
        format!(
            "# unless {} records that they ran for the id of image {}, database {} and the volumes as `{}` shows them:\n{}\n# then: record them there",
            self.record().display(),
            self.image,
            self.database,
            self.inspect_volumes(),
            runner_text(&self.steps)
        )
    }

    fn run(&self, cx: &Context) -> Result<()> {
        let before = self.current();
        let recorded = std::fs::read_to_string(self.record()).ok();
        if before.is_some() && before == recorded {
            println!("release steps skipped: they ran for this image on this database (`cargo xtask prod --force` runs them again)");
            return Ok(());
        }
        runner::run(cx, Plan::default().then(self.steps.clone()))?;
        match self.current() {
            Some(now) => write(&self.record(), &now),
            None => Ok(()),
        }
    }
}

impl ReleaseOnce {
    fn record(&self) -> PathBuf {
        self.dir.join(RECORD)
    }

    /// The record's text for the stack as it is; None when the image or a volume is missing.
    fn current(&self) -> Option<String> {
        let image = process::stdout_of(&self.inspect_image())?;
        if image.trim().is_empty() {
            return None;
        }
        let volumes = process::stdout_of(&self.inspect_volumes())?;
        let volumes: Vec<&str> = volumes.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        if volumes.len() != self.volumes().len() {
            return None;
        }
        Some(record(image.trim(), &self.database, &volumes))
    }

    /// The static volume first, then the database's.
    fn volumes(&self) -> Vec<String> {
        std::iter::once(self.static_volume.clone()).chain(self.db_volume.clone()).collect()
    }

    fn inspect_image(&self) -> Step {
        Step::new("docker", &self.dir).args(["image", "inspect", "--format", "{{.Id}}", &self.image])
    }

    fn inspect_volumes(&self) -> Step {
        Step::new("docker", &self.dir)
            .args(["volume", "inspect", "--format", "{{.Name}} {{.CreatedAt}}"])
            .args(self.volumes())
    }
}

/// What the record holds, one `KEY VALUE` line each: the image, the database, the static
/// volume with its time (`NAME TIME` as `volumes` lists it first) and the names of the others
/// (the database's: Postgres writes into its root, which moves the time Docker reports).
fn record(image: &str, database: &str, volumes: &[&str]) -> String {
    let mut text = format!("image {image}\ndatabase {database}\n");
    for (i, line) in volumes.iter().enumerate() {
        let name = line.split_whitespace().next().unwrap_or_default();
        text.push_str(&format!("volume {}\n", if i == 0 { line } else { name }));
    }
    text
}

fn write(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    crate::files::write_atomically(path, text)?;
    // The backup service, another user, reads the image's id from it; it holds no secret.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot make {} readable", path.display()))
}

fn runner_text(task: &Task) -> String {
    Plan::default().then(task.clone()).render().trim_end().to_owned()
}

/// Forgets the record: the next `prod` runs the release steps again (the database now holds
/// other data than they last ran on).
#[derive(Debug)]
pub struct Forget {
    pub dir: PathBuf,
}

impl Action for Forget {
    fn render(&self) -> String {
        format!("# then: remove {} (the next prod runs its release steps again)", self.dir.join(RECORD).display())
    }

    fn run(&self, _: &Context) -> Result<()> {
        let path = self.dir.join(RECORD);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_names_the_image_the_database_the_static_volume_with_its_time_and_the_others() {
        let volumes = ["site-prod_static 2026-12-07T06:00:01Z", "site-prod_pgdata 2026-12-07T06:00:00Z"];
        let text = record("sha256:1", "db:5432/django", &volumes);
        assert_eq!(
            text,
            "image sha256:1\ndatabase db:5432/django\nvolume site-prod_static 2026-12-07T06:00:01Z\nvolume site-prod_pgdata\n"
        );
        assert_ne!(text, record("sha256:2", "db:5432/django", &volumes));
        let written = ["site-prod_static 2026-12-07T07:00:00Z", volumes[1]];
        assert_ne!(text, record("sha256:1", "db:5432/django", &written));
        let postgres_ran = [volumes[0], "site-prod_pgdata 2026-12-07T08:00:00Z"];
        assert_eq!(text, record("sha256:1", "db:5432/django", &postgres_ran));
    }
}
