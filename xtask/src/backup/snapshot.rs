//! Taking a snapshot: the database dumped and the media volume copied into one private
//! staging directory with their manifest, stored by restic as one snapshot, then the
//! retention policy applied. A snapshot that fails is never stored, and nothing is pruned
//! unless the new one was; the staging directory (a dump of the database) is always removed.

use std::fs;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{bail, Context as _, Result};

use super::contents::{self, Manifest, DUMP, MEDIA};
use super::lock;
use super::repository::{Repository, TAG};
use crate::context::Context;
use crate::db::human;
use crate::plan::{Action, Step};
use crate::process;

#[derive(Debug)]
pub struct Snapshot {
    pub repository: Repository,
    /// restic's `--host`: the production stack's Compose project.
    pub host: String,
    /// Tags besides [`TAG`] and the release's (`before-restore`).
    pub tags: Vec<String>,
    pub staging: PathBuf,
    /// `docker volume inspect` of the media volume: a copy from a volume that does not exist
    /// would create it empty.
    pub volume: Step,
    /// pg_dump, its output into the staging directory's dump.
    pub dump: Step,
    /// pg_restore writing the dump's data as text (see [`contents::dump_counts`]).
    pub counts: Step,
    /// `tar -c` of the media volume, in a container of the web image.
    pub media: Step,
    /// The web image's id: the release the snapshot was taken of.
    pub release: Step,
}

/// What restic said of a stored snapshot.
struct Stored {
    id: String,
    added: u64,
}

impl Action for Snapshot {
    fn render(&self) -> String {
        [
            format!(
                "# stage the site's data in {} (mode 0700, replacing what an interrupted snapshot left):",
                self.staging.display()
            ),
            self.volume.to_string(),
            self.dump.to_string(),
            format!("{} | count each table's rows", self.counts),
            format!("{} | unpack into {}/{MEDIA}", self.media, self.staging.display()),
            self.release.to_string(),
            format!(
                "# write {}/{} (tables with row counts, media files with size and SHA-256)",
                self.staging.display(),
                contents::MANIFEST
            ),
            format!(
                "# unless `{}` opens the repository: {}",
                self.repository.restic(&["cat", "config"]),
                self.repository.restic(&["init"])
            ),
            self.store_step("RELEASE", 0).to_string(),
            format!("# then remove {}; once stored: {}", self.staging.display(), self.repository.forget(&self.host)),
        ]
        .join("\n")
    }

    fn run(&self, _: &Context) -> Result<()> {
        Repository::require_restic()?;
        let _lock = lock::acquire(self.staging.parent().unwrap_or(&self.staging))?;
        let taken = self.stage().and_then(|manifest| self.store(&manifest).map(|stored| (manifest, stored)));
        let removed = contents::remove(&self.staging);
        let (manifest, stored) = taken?;
        removed?;
        self.repository.captured(&self.repository.forget(&self.host), "apply the retention policy")?;
        println!(
            "snapshot {} of {}: {} added to {}",
            stored.id,
            manifest.describe(),
            human::size(stored.added),
            self.repository.shown()
        );
        Ok(())
    }
}

impl Snapshot {
    /// Fills the staging directory and returns its manifest.
    fn stage(&self) -> Result<Manifest> {
        contents::fresh_dir(&self.staging)?;
        if !process::output(&self.volume)?.ok {
            bail!(
                "the production stack has no media volume yet (`{}` failed): start it with `cargo xtask prod` first",
                self.volume
            );
        }
        process::run(&self.dump)?;
        let dump_format = contents::dump_format(&self.staging.join(DUMP))?;
        let (out, counted) = process::read_stdout(&self.counts, contents::dump_counts)?;
        if !out.ok {
            bail!("cannot read the dump's data: `{}` failed: {}", self.counts, out.why());
        }
        let (postgres, tables) = counted?;
        let media_dir = self.staging.join(MEDIA);
        let (out, unpacked) = process::read_stdout(&self.media, |stream| contents::unpack(stream, &media_dir))?;
        if !out.ok {
            bail!("cannot copy the media volume's files: `{}` failed: {}", self.media, out.why());
        }
        unpacked?;
        let release = process::captured(&self.release, "read the web image's id")?.trim().to_owned();
        let manifest = Manifest {
            taken: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            release,
            postgres,
            dump_format,
            tables,
            media: contents::media_files(&media_dir)?,
        };
        manifest.write(&self.staging)?;
        Ok(manifest)
    }

    /// Opens the repository (creating it the first time), then stores the staging directory.
    fn store(&self, manifest: &Manifest) -> Result<Stored> {
        self.repository.open_or_create()?;
        let bytes = fs::metadata(self.staging.join(DUMP)).map(|m| m.len()).unwrap_or(0) + manifest.media_bytes();
        let release = manifest.release.trim_start_matches("sha256:").chars().take(12).collect::<String>();
        let out = self.repository.captured(&self.store_step(&release, bytes), "store the snapshot")?;
        summary(&out).with_context(|| format!("restic stored the snapshot but did not say its id:\n{out}"))
    }

    fn store_step(&self, release: &str, bytes: u64) -> Step {
        let (release, bytes) = (format!("release={release}"), format!("bytes={bytes}"));
        let mut args = vec!["backup", "--json", "--host", &self.host, "--tag", TAG, "--tag", &release, "--tag", &bytes];
        for tag in &self.tags {
            args.extend(["--tag", tag]);
        }
        args.push(".");
        self.repository.restic_in(&self.staging, &args)
    }
}

/// The id and the bytes added, from the summary line of `restic backup --json`.
fn summary(out: &str) -> Option<Stored> {
    let line = out.lines().rev().find(|l| l.contains("\"summary\""))?;
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let id = value.get("snapshot_id")?.as_str()?.chars().take(8).collect();
    Some(Stored { id, added: value.get("data_added").and_then(|v| v.as_u64()).unwrap_or(0) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_summary_line_gives_the_id_and_the_bytes_added() {
        let out = "{\"message_type\":\"status\",\"percent_done\":1}\n{\"message_type\":\"summary\",\"files_new\":2,\"data_added\":1234,\"snapshot_id\":\"0123456789abcdef\"}\n";
        let stored = super::summary(out).unwrap();
        assert_eq!((stored.id.as_str(), stored.added), ("01234567", 1234));
        assert!(super::summary("{\"message_type\":\"status\"}").is_none());
    }
}
