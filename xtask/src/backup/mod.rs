//! The `backup` commands: snapshots of the production site's data, the database and the
//! media volume together, in a restic repository off this host (`BACKUP_REPOSITORY` in
//! `.env.prod`): taken now, listed, verified by a restore drill, restored. `db backup` stays
//! for a quick local dump of the database alone.

mod contents;
mod drill;
mod lock;
mod repository;
mod snapshot;

use anyhow::{Context as _, Result};

use crate::cli::{BackupArgs, BackupCommand, BackupRestoreArgs, BackupVerifyArgs};
use crate::context::Context;
use crate::db::target::{Database, Input};
use crate::db::RESTORE;
use crate::envfile::{setting, PROD_FILE};
use crate::plan::runner;
use crate::plan::{Action, Plan, Step, Task};
use crate::stack;
use crate::stack::compose::web_image;
use crate::stack::released::Forget;
use drill::{Drill, Fetch, Restore};
pub use repository::Repository;
use repository::TAG;
use snapshot::Snapshot;

/// Where snapshots are staged and restored (git-ignored, like everything under `.stack/`).
const WORK_DIR: &str = ".stack/backup";
/// The scratch Postgres of a drill when neither the environment nor `.env.prod` names one.
const DEFAULT_POSTGRES_IMAGE: &str = "postgres:17-alpine";
/// Where the media volume is mounted in the containers that copy it.
const MOUNT: &str = "/srv/media";

pub fn backup(cx: &Context, args: BackupArgs) -> Result<()> {
    match args.command.unwrap_or(BackupCommand::Now) {
        BackupCommand::Now => now(cx),
        BackupCommand::List => list(cx),
        BackupCommand::Verify(args) => verify(cx, args),
        BackupCommand::Restore(args) => restore(cx, args),
    }
}

/// The production site whose data is backed up, and where to.
struct Site {
    repository: Repository,
    database: Database,
    /// The Compose project, restic's `--host`.
    project: String,
    /// The media volume.
    volume: String,
    web_image: String,
    postgres_image: String,
}

impl Site {
    /// Reads `.env.prod`; asks nothing of Docker.
    fn locate(cx: &Context) -> Result<Site> {
        let (stack, env) = stack::stack_with_env(cx, true)?;
        let vars = env.vars();
        let repository = Repository::from_vars(&vars, &cx.path(PROD_FILE), &cx.root)?;
        let project = stack.project(cx);
        Ok(Site {
            repository,
            database: Database::of(cx, stack, &env)?,
            volume: format!("{project}_media"),
            project,
            web_image: web_image(cx),
            postgres_image: setting(&vars, "POSTGRES_IMAGE").unwrap_or_else(|| DEFAULT_POSTGRES_IMAGE.to_owned()),
        })
    }

    fn snapshot(&self, cx: &Context, tags: &[&str]) -> Result<Snapshot> {
        let work = cx.path(WORK_DIR);
        let staging = work.join("staging");
        let sink = crate::plan::Sink { path: staging.join(contents::DUMP), checksum: false };
        Ok(Snapshot {
            repository: self.repository.clone(),
            host: self.project.clone(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            volume: docker(cx).args(["volume", "inspect", "--format", "{{.Name}}", &self.volume]),
            dump: self.database.command(cx, &["pg_dump", "--format=custom"], Input::Nothing)?.stdout(sink),
            counts: docker(cx)
                .args(["run", "--rm", "-i", "--network", "none", &self.postgres_image])
                .args(contents::DATA_AS_TEXT.iter().copied())
                .stdin(staging.join(contents::DUMP)),
            media: self.in_volume(cx, true).args(["tar", "-C", MOUNT, "-cf", "-", "."]),
            release: docker(cx).args(["image", "inspect", "--format", "{{.Id}}", &self.web_image]),
            staging,
        })
    }

    /// `docker run --rm` of the web image (whose user owns the media files) with the media
    /// volume mounted, read-only unless it is to be filled.
    fn in_volume(&self, cx: &Context, read_only: bool) -> Step {
        let mount = format!("{}:{MOUNT}{}", self.volume, if read_only { ":ro" } else { "" });
        let run = docker(cx).args(["run", "--rm"]);
        let run = if read_only { run } else { run.arg("-i") };
        run.args(["--network", "none", "-v", &mount, "--entrypoint", "", &self.web_image])
    }

    fn fetch(&self, cx: &Context, id: &str, purpose: &str) -> Fetch {
        Fetch { repository: self.repository.clone(), id: id.to_owned(), scratch: cx.path(WORK_DIR).join(purpose) }
    }
}

fn docker(cx: &Context) -> Step {
    Step::new("docker", &cx.root)
}

fn now(cx: &Context) -> Result<()> {
    let site = Site::locate(cx)?;
    runner::execute(cx, Plan::default().then(Task::act(site.snapshot(cx, &[])?)))
}

fn list(cx: &Context) -> Result<()> {
    let site = Site::locate(cx)?;
    runner::execute(cx, Plan::default().then(Task::act(List { site_repository: site.repository, host: site.project })))
}

/// `backup list`: the site's snapshots, oldest first.
#[derive(Debug)]
struct List {
    site_repository: Repository,
    host: String,
}

impl List {
    fn step(&self) -> Step {
        self.site_repository.restic(&["snapshots", "--json", "--host", &self.host, "--tag", TAG])
    }
}

impl Action for List {
    fn render(&self) -> String {
        format!("{}\n# print each snapshot's id, time, size and release", self.step())
    }

    fn run(&self, _: &Context) -> Result<()> {
        Repository::require_restic()?;
        let out = self.site_repository.captured(&self.step(), "list the snapshots")?;
        let snapshots: Vec<serde_json::Value> =
            serde_json::from_str(out.trim()).with_context(|| format!("restic listed no snapshots as JSON:\n{out}"))?;
        if snapshots.is_empty() {
            println!("no snapshots of {} in {}", self.host, self.site_repository.shown());
        }
        for snapshot in &snapshots {
            println!("{}", row(snapshot));
        }
        Ok(())
    }
}

/// `ID  TIME  SIZE  release=...  [before-restore]` of one snapshot of `restic snapshots --json`.
fn row(snapshot: &serde_json::Value) -> String {
    let text = |key: &str| snapshot.get(key).and_then(|v| v.as_str()).unwrap_or("?").to_owned();
    let tags: Vec<&str> =
        snapshot.get("tags").and_then(|t| t.as_array()).into_iter().flatten().filter_map(|t| t.as_str()).collect();
    let tag = |prefix: &str| tags.iter().find_map(|t| t.strip_prefix(prefix)).unwrap_or("?").to_owned();
    let size = tag("bytes=").parse::<u64>().map_or_else(|_| "?".into(), crate::db::human::size);
    let time = text("time").chars().take(19).collect::<String>().replace('T', " ");
    let others: Vec<&str> = tags.iter().copied().filter(|t| *t != TAG && !t.contains('=')).collect();
    format!("{}  {time} UTC  {size:>10}  release {}  {}", text("short_id"), tag("release="), others.join(" "))
        .trim_end()
        .to_owned()
}

fn verify(cx: &Context, args: BackupVerifyArgs) -> Result<()> {
    let site = Site::locate(cx)?;
    let id = args.id.unwrap_or_else(|| "latest".to_owned());
    let fetch = site.fetch(cx, &id, "verify");
    let dump = fetch.content().join(contents::DUMP);
    let counts_sql = cx.path(WORK_DIR).join("counts.sql");
    let container = format!("{}-backup-verify-{}", site.project, crate::context::unique_tag()?);
    let password = crate::context::unique_tag()?;
    let exec = |input: bool| {
        let exec = docker(cx).arg("exec");
        let exec = if input { exec.arg("-i") } else { exec };
        exec.arg(&container)
    };
    let drill = Drill {
        start: docker(cx).secret_env("POSTGRES_PASSWORD", password).args([
            "run",
            "--detach",
            "--name",
            &container,
            "--network",
            "none",
            "-e",
            "POSTGRES_PASSWORD",
            &site.postgres_image,
        ]),
        ready: exec(false).args(["pg_isready", "--quiet", "--host=127.0.0.1", "--username=postgres"]),
        load: exec(true)
            .args(["pg_restore", "--no-owner", "--exit-on-error", "--username=postgres", "--dbname=postgres"])
            .stdin(dump),
        counts: exec(true)
            .args(contents::COUNTS.iter().copied())
            .args(["--username=postgres", "--dbname=postgres"])
            .stdin(&counts_sql),
        // With its anonymous volume (the image's VOLUME), which holds the restored database.
        remove: docker(cx).args(["rm", "--force", "--volumes", &container]),
        check: site.repository.restic(&["check", "--read-data"]),
        fetch,
        counts_sql,
    };
    runner::execute(cx, Plan::default().then(Task::act(drill)))
}

fn restore(cx: &Context, args: BackupRestoreArgs) -> Result<()> {
    let site = Site::locate(cx)?;
    if !args.yes {
        let consent = Consent {
            site_repository: site.repository.clone(),
            host: site.project.clone(),
            id: args.id.clone(),
            database: site.database.name.clone(),
            volume: site.volume.clone(),
        };
        return runner::execute(cx, Plan::default().then(Task::act(consent)));
    }
    let fetch = site.fetch(cx, &args.id, "restore");
    let media_tar = fetch.scratch.join("media.tar");
    let restore = Restore {
        safety: site.snapshot(cx, &["before-restore"])?,
        database: site.database.command(cx, RESTORE, Input::File(fetch.content().join(contents::DUMP)))?,
        media: site
            .in_volume(cx, false)
            .args(["sh", "-c", &format!("find {MOUNT} -mindepth 1 -delete && tar -C {MOUNT} -xf -")])
            .stdin(&media_tar),
        media_tar,
        forget: Forget { dir: cx.root.clone() },
        backup_service: docker(cx).args([
            "ps",
            "--quiet",
            "--filter",
            &format!("label=com.docker.compose.project={}", site.project),
            "--filter",
            "label=com.docker.compose.service=backup",
        ]),
        fetch,
    };
    runner::execute(cx, Plan::default().then(Task::act(restore)))
}

/// A restore replaces the site's data: without `--yes` it stops before, saying what would be
/// replaced by which snapshot.
#[derive(Debug)]
struct Consent {
    site_repository: Repository,
    host: String,
    id: String,
    database: String,
    volume: String,
}

impl Consent {
    fn step(&self) -> Step {
        self.site_repository.restic(&["snapshots", "--json", "--host", &self.host, &self.id])
    }

    fn refusal(&self) -> String {
        format!(
            "refusing to replace the production site's data without --yes: run `cargo xtask backup restore {} --yes`",
            self.id
        )
    }
}

impl Action for Consent {
    fn render(&self) -> String {
        format!("{}\n# stop here, showing what would be replaced: {}", self.step(), self.refusal())
    }

    fn run(&self, _: &Context) -> Result<()> {
        Repository::require_restic()?;
        let out = self.site_repository.captured(&self.step(), &format!("find snapshot {}", self.id))?;
        let snapshots: Vec<serde_json::Value> = serde_json::from_str(out.trim()).unwrap_or_default();
        let Some(snapshot) = snapshots.last() else {
            anyhow::bail!(
                "no snapshot {} of {} in {}: see `cargo xtask backup list`",
                self.id,
                self.host,
                self.site_repository.shown()
            );
        };
        println!(
            "restoring would replace database {} and the files of volume {} (a safety snapshot of them is taken first) with:\n  {}",
            self.database,
            self.volume,
            row(snapshot)
        );
        anyhow::bail!("{}", self.refusal())
    }
}
