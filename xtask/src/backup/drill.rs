//! Getting a snapshot back. restic restores it into a scratch directory, where it is checked
//! against its manifest before anything uses it. `verify` is the restore drill: the dump goes
//! into a scratch Postgres container whose row counts must be the manifest's, the media files
//! must have their sizes and SHA-256, then `restic check`; everything scratch is removed.
//! `restore` puts a checked snapshot back into the site, after a safety snapshot of what is
//! there now.

use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use super::contents::{self, Manifest, DUMP, MANIFEST, MEDIA};
use super::lock;
use super::repository::Repository;
use super::snapshot::Snapshot;
use crate::context::Context;
use crate::plan::{Action, Step};
use crate::process;
use crate::stack::released::Forget;

/// What a failed `restic check` means.
const CHECK_FAILED: &str =
    "verify the repository: restic found errors in the repository (its lines above name the damaged packs)";

/// How long the scratch Postgres may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// A snapshot restored by restic into `scratch`, its directory moved to `scratch/content`.
#[derive(Debug)]
pub struct Fetch {
    pub repository: Repository,
    pub id: String,
    pub scratch: PathBuf,
}

impl Fetch {
    pub fn content(&self) -> PathBuf {
        self.scratch.join("content")
    }

    /// The lock of the directory the scratch copy is in (see [`lock`]).
    fn lock(&self) -> Result<lock::Lock> {
        lock::acquire(self.scratch.parent().unwrap_or(&self.scratch))
    }

    fn target(&self) -> PathBuf {
        self.scratch.join("restored")
    }

    fn restore(&self) -> Step {
        self.repository.restic(&["restore", &self.id, "--target", &self.target().to_string_lossy()])
    }

    fn render(&self) -> String {
        format!(
            "# into {} (mode 0700), replacing what an interrupted run left:\n{}\n# move the snapshot's directory (the one holding {MANIFEST}) to {}",
            self.scratch.display(),
            self.restore(),
            self.content().display()
        )
    }

    /// Restores the snapshot and returns its manifest, once its files match it.
    fn run(&self) -> Result<Manifest> {
        contents::fresh_dir(&self.scratch)?;
        self.repository.captured(&self.restore(), &format!("restore snapshot {}", self.id))?;
        let found = walkdir::WalkDir::new(self.target())
            .sort_by_file_name()
            .into_iter()
            .filter_map(|e| e.ok())
            .find(|e| e.file_type().is_file() && e.file_name() == MANIFEST);
        let Some(found) = found else {
            bail!("snapshot {} holds no {MANIFEST}: it was not taken by `cargo xtask backup`", self.id)
        };
        let dir = found.path().parent().expect("a file has a directory");
        std::fs::rename(dir, self.content()).with_context(|| format!("cannot move {}", dir.display()))?;
        let manifest = Manifest::read(&self.content())?;
        contents::dump_format(&self.content().join(DUMP))?;
        let media = contents::media_files(&self.content().join(MEDIA))?;
        let wrong = contents::differences(&manifest, &manifest.tables, &media);
        if !wrong.is_empty() {
            bail!("snapshot {}'s media files do not match its manifest:\n  {}", self.id, wrong.join("\n  "));
        }
        Ok(manifest)
    }
}

/// `backup verify`: the restore drill.
#[derive(Debug)]
pub struct Drill {
    pub fetch: Fetch,
    pub counts_sql: PathBuf,
    /// `docker run --detach` of the scratch Postgres.
    pub start: Step,
    /// `pg_isready` over TCP in it: the entrypoint's initialising server listens on its
    /// socket only, so a TCP answer is the server that stays.
    pub ready: Step,
    /// pg_restore of the dump into it.
    pub load: Step,
    /// psql counting the rows of its tables.
    pub counts: Step,
    /// `docker rm --force` of it.
    pub remove: Step,
    /// `restic check --read-data`: every pack of the repository read and verified, so a
    /// damaged one is named, whichever snapshot it belongs to.
    pub check: Step,
}

impl Action for Drill {
    fn render(&self) -> String {
        [
            self.check.to_string(),
            self.fetch.render(),
            "# check the media files' sizes and SHA-256 against the manifest, then a scratch database:".into(),
            self.start.to_string(),
            format!("# wait up to {}s for: {}", READY_WITHIN.as_secs(), self.ready),
            self.load.to_string(),
            format!("# {} reads {}, and its row counts must be the manifest's", self.counts, self.counts_sql.display()),
            format!("# whatever happened: {}, and remove {}", self.remove, self.fetch.scratch.display()),
        ]
        .join("\n")
    }

    fn run(&self, _: &Context) -> Result<()> {
        Repository::require_restic()?;
        let _lock = self.fetch.lock()?;
        self.fetch.repository.captured(&self.check, CHECK_FAILED)?;
        let checked = self.fetch.run().and_then(|manifest| self.compare_database(&manifest).map(|()| manifest));
        let removed = contents::remove(&self.fetch.scratch);
        let manifest = checked?;
        removed?;
        println!(
            "snapshot {} (taken {}, release {}) verified: {} restored and match its manifest; restic check read every pack without an error",
            self.fetch.id,
            manifest.taken,
            manifest.release,
            manifest.describe()
        );
        Ok(())
    }
}

impl Drill {
    /// Restores the dump into the scratch Postgres and compares its row counts; the
    /// container is removed whatever happens.
    fn compare_database(&self, manifest: &Manifest) -> Result<()> {
        process::run(&self.start)?;
        let compared = self.load_and_count().map(|tables| contents::differences(manifest, &tables, &manifest.media));
        let _ = process::output(&self.remove);
        let wrong = compared?;
        if !wrong.is_empty() {
            bail!("snapshot {} does not match its manifest:\n  {}", self.fetch.id, wrong.join("\n  "));
        }
        Ok(())
    }

    fn load_and_count(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        let deadline = Instant::now() + READY_WITHIN;
        while !process::output(&self.ready)?.ok {
            if Instant::now() > deadline {
                bail!(
                    "the scratch database did not accept connections within {}s: `{}`",
                    READY_WITHIN.as_secs(),
                    self.ready
                );
            }
            process::stop_if_interrupted()?;
            sleep(Duration::from_millis(500));
        }
        process::run(&self.load)?;
        std::fs::write(&self.counts_sql, contents::COUNTS_SQL)
            .with_context(|| format!("cannot write {}", self.counts_sql.display()))?;
        contents::parse_counts(&process::captured(&self.counts, "count the rows of the scratch database")?)
    }
}

/// `backup restore ID --yes`: the snapshot, checked, replaces the site's database and media.
#[derive(Debug)]
pub struct Restore {
    pub fetch: Fetch,
    /// The safety snapshot of the data the restore replaces.
    pub safety: Snapshot,
    /// pg_restore of the snapshot's dump into the stack's database, in one transaction.
    pub database: Step,
    /// The media volume emptied and filled from [`Restore::media_tar`].
    pub media: Step,
    pub media_tar: PathBuf,
    pub forget: Forget,
    /// Lists the running containers of the production stack's backup service, which are
    /// stopped while the data is replaced (a scheduled snapshot would catch it half-way) and
    /// started again after, whatever happened.
    pub backup_service: Step,
}

impl Action for Restore {
    fn render(&self) -> String {
        [
            self.fetch.render(),
            "# check the media files' sizes and SHA-256 against the manifest; then a safety snapshot of the data now:"
                .into(),
            self.safety.render(),
            format!(
                "# stop the backup service's containers, if any run (`{}`), until the data is replaced:",
                self.backup_service
            ),
            self.database.to_string(),
            format!("# pack {}/{MEDIA} into {}, then:", self.fetch.content().display(), self.media_tar.display()),
            self.media.to_string(),
            "# start the backup service's containers again".into(),
            self.forget.render(),
            format!("# then remove {}", self.fetch.scratch.display()),
        ]
        .join("\n")
    }

    fn run(&self, cx: &Context) -> Result<()> {
        Repository::require_restic()?;
        let _lock = self.fetch.lock()?;
        let restored = self.fetch.run().and_then(|manifest| self.replace(cx, &manifest).map(|()| manifest));
        let removed = contents::remove(&self.fetch.scratch);
        let manifest = restored?;
        removed?;
        println!(
            "restored snapshot {} (taken {}, release {}): {} are the production stack's now",
            self.fetch.id,
            manifest.taken,
            manifest.release,
            manifest.describe()
        );
        Ok(())
    }
}

impl Restore {
    fn replace(&self, cx: &Context, manifest: &Manifest) -> Result<()> {
        println!(
            "snapshot {} (taken {}, release {}) holds {}; taking a safety snapshot of the data it replaces",
            self.fetch.id,
            manifest.taken,
            manifest.release,
            manifest.describe()
        );
        self.safety.run(cx)?;
        let service = process::stdout_of(&self.backup_service).unwrap_or_default();
        let ids: Vec<&str> = service.split_whitespace().collect();
        let docker = |verb: &str| Step::new("docker", &cx.root).arg(verb).args(ids.iter().copied());
        if !ids.is_empty() {
            println!("stopping the backup service until the data is replaced");
            process::run(&docker("stop"))?;
        }
        let replaced = self.replace_data();
        if !ids.is_empty() {
            process::run(&docker("start")).context("cannot start the backup service again: run `cargo xtask prod`")?;
        }
        replaced?;
        self.forget.run(cx)
    }

    fn replace_data(&self) -> Result<()> {
        process::run(&self.database)?;
        contents::pack(&self.fetch.content().join(MEDIA), &self.media_tar)?;
        process::run(&self.media)
    }
}
