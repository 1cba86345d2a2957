//! `cargo xtask release`: archive the static files (and optionally the production image)
//! reproducibly, then record them in SHA256SUMS and manifest.json. Every artifact is complete
//! before any is published, so a failed release leaves the output directory as it was. With
//! `--push` the images are pushed between the two, so manifest.json can name their digests.
//!
//! Paths given on the command line are relative to the current directory, like any
//! command's; the default output directory is `dist/` under the project root.

mod archive;
mod checksums;
mod collect;
mod gzip;
mod image;
mod lock;
mod push;
mod staging;
mod tree;
pub mod verify;
mod version;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

use self::staging::Staged;
use self::tree::Entry;
use self::version::Source;
use crate::cli::ReleaseArgs;
use crate::context::Context;
use crate::manifest::{self, Artifact, Manifest, Release};
use crate::plan::{runner, Action, Plan, Task};
use crate::sha256::{self, HashingWriter};
use crate::stack::compose;

/// The images `--push` pushes, by the names manifest.json records them under.
pub const IMAGE_KINDS: [&str; 3] = ["backup", "static", "web"];

/// What the command line asks for, checked and with paths made absolute.
struct Options {
    out: PathBuf,
    static_dir: Option<PathBuf>,
    image: bool,
    level: u32,
    jobs: usize,
    wait: lock::Wait,
    push: Option<push::Push>,
}

impl Options {
    fn new(cx: &Context, args: &ReleaseArgs) -> Result<Options> {
        if !(1..=9).contains(&args.level) {
            bail!("--level {}: use 1 (fastest) to 9 (smallest)", args.level);
        }
        let jobs = match args.jobs {
            Some(0) => bail!("--jobs 0: use at least 1 thread"),
            Some(jobs) => jobs,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        let out = match &args.out {
            Some(out) => user_path(out)?,
            None => cx.path("dist"),
        };
        let static_dir = args.static_dir.as_deref().map(user_path).transpose()?;
        let wait = if args.no_wait { lock::Wait::No } else { lock::Wait::Yes };
        let push = push::Push::from_args(cx, args)?;
        Ok(Options { out, static_dir, image: args.image, level: args.level, jobs, wait, push })
    }
}

/// A path from the command line, made absolute against the current directory.
fn user_path(path: &Path) -> Result<PathBuf> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    // Collecting the components drops `.` and trailing slashes, so prefixes stay comparable
    // (`./dist/` is `dist`) and `{out}/{file}` in messages has one slash.
    Ok(cwd.join(path).components().collect())
}

pub fn release(cx: &Context, args: ReleaseArgs) -> Result<()> {
    let started = Instant::now();
    let options = Options::new(cx, &args)?;
    let scratch_parent = cx.path("target");
    let source = version::read(&cx.root, args.version.as_deref(), args.allow_dirty, &[&options.out, &scratch_parent])?;
    // Without --static-dir: collectstatic into a scratch directory, archived then removed.
    let (static_dir, collect) = match &options.static_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let dir = collect::scratch_path(cx)?;
            let plan = collect::plan(cx, &dir)?;
            (dir, Some(plan))
        }
    };
    let release = Releasing { cx: cx.clone(), options, source, static_dir, collect, started };
    runner::execute(cx, Plan::default().then(Task::act(release)))
}

/// One release: the static files collected (unless given), then the artifacts built.
struct Releasing {
    /// What it describes itself with (names, paths); it runs with the runner's.
    cx: Context,
    options: Options,
    source: Source,
    static_dir: PathBuf,
    /// The collectstatic plan, which fills `static_dir`, a scratch directory of ours.
    collect: Option<Plan>,
    started: Instant,
}

impl std::fmt::Debug for Releasing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Releasing({} {})", self.cx.name, self.source.version)
    }
}

impl Action for Releasing {
    fn render(&self) -> String {
        let collect = self.collect.as_ref().map(Plan::render).unwrap_or_default();
        let text = collect + &describe(&self.cx, &self.options, &self.source, &self.static_dir);
        text.trim_end().to_owned()
    }

    fn run(&self, cx: &Context) -> Result<()> {
        let out = OutDir::open(&self.options.out, self.options.wait)?;
        // Dropped on every way out, Ctrl-C included (the runner then returns an error).
        let _scratch = match &self.collect {
            Some(plan) => {
                let scratch = collect::Scratch::create(self.static_dir.clone())?;
                runner::run(cx, plan.clone())?;
                Some(scratch)
            }
            None => None,
        };
        let entries = tree::collect(&self.static_dir)?;
        build(cx, &self.options, &self.source, &entries, out, self.started)
    }
}

/// The file writes a run would make, as `--dry-run` prints them.
fn describe(cx: &Context, options: &Options, source: &Source, static_dir: &Path) -> String {
    let out = options.out.display();
    let mut text = format!("# then: archive {} into {out}/{}\n", static_dir.display(), file_name(cx, source, "static"));
    if options.image {
        let image = compose::web_image(cx);
        text += &format!("# then: docker save {image}, compressed into {out}/{}\n", file_name(cx, source, "image"));
    }
    if let Some(push) = &options.push {
        text += &push.describe(cx, &source.version, &options.out.join(file_name(cx, source, "static")));
    }
    text + &format!("# then: add them to {out}/{} and {out}/{}\n", checksums::FILE_NAME, manifest::FILE_NAME)
}

fn file_name(cx: &Context, source: &Source, kind: &str) -> String {
    format!("{}-{}-{kind}.tar.gz", cx.name, source.version)
}

/// An artifact written under no name yet, with its record for the manifest.
struct Built {
    staged: Staged,
    artifact: Artifact,
    bytes_in: u64,
}

fn build(
    cx: &Context,
    options: &Options,
    source: &Source,
    entries: &[Entry],
    out: OutDir,
    started: Instant,
) -> Result<()> {
    let sums = checksums::read(&options.out)?;
    let previous = manifest::read(&options.out)?;
    let mut built = vec![build_static(cx, options, source, entries)?];
    if options.image {
        built.push(build_image(cx, options, source)?);
    }
    // After collectstatic the runner has taken over Ctrl-C, which then only sets a flag.
    if crate::process::interrupted() {
        bail!("interrupted: nothing was published");
    }
    let fresh = unpublished(&options.out, &built)?;
    let images = match &options.push {
        Some(push) => {
            let tarball = &mut built[0];
            push.run(cx, &source.version, tarball.staged.file(), &tarball.artifact.sha256)?
        }
        None => BTreeMap::new(),
    };
    let release = Release {
        name: cx.name.clone(),
        version: source.version.clone(),
        git_commit: source.commit.clone(),
        source_date_epoch: source.epoch,
        artifacts: built.iter().map(|b| b.artifact.clone()).collect(),
        images,
    };
    let bytes_in = built.iter().map(|b| b.bytes_in).sum();
    let manifest = Manifest::merge(previous, release);
    publish(&options.out, built, &fresh, sums, &manifest)?;
    out.keep();
    println!("{}", summary(&options.out, &manifest.latest, bytes_in, started));
    Ok(())
}

fn build_static(cx: &Context, options: &Options, source: &Source, entries: &[Entry]) -> Result<Built> {
    let total = entries.iter().map(|e| if let tree::Kind::File { size, .. } = e.kind { size } else { 0 }).sum();
    let mut files = 0;
    let mut built = compressed(cx, options, source, "static", Some(total), |w, progress| {
        files = archive::write(entries, source.epoch, w, progress)?;
        Ok(())
    })?;
    built.artifact.files = Some(files);
    built.artifact.uncompressed_bytes = Some(built.bytes_in);
    Ok(built)
}

fn build_image(cx: &Context, options: &Options, source: &Source) -> Result<Built> {
    let image = compose::web_image(cx);
    compressed(cx, options, source, "image", None, |w, progress| image::save(&image, w, progress))
}

/// The artifact of `kind`: what `produce` writes, compressed into a staged file and hashed
/// on its way out, with a progress bar of `total` input bytes (a counter when unknown).
fn compressed(
    cx: &Context,
    options: &Options,
    source: &Source,
    kind: &str,
    total: Option<u64>,
    produce: impl FnOnce(&mut dyn io::Write, &ProgressBar) -> Result<()>,
) -> Result<Built> {
    let file = file_name(cx, source, kind);
    let mut staged = Staged::create(&options.out, &file)?;
    let mut sink = HashingWriter::new(staged.file());
    let progress = progress_bar(total, &file);
    let totals = gzip::compress(&mut sink, options.level, options.jobs, |w| produce(w, &progress));
    progress.finish_and_clear();
    let totals = totals?;
    let (size, sha256) = sink.finish();
    debug_assert_eq!(size, totals.bytes_out);
    let artifact = Artifact { file, kind: kind.to_owned(), size, sha256, files: None, uncompressed_bytes: None };
    Ok(Built { staged, artifact, bytes_in: totals.bytes_in })
}

/// For each artifact, whether it still has to be published. One already there is left
/// alone if byte-identical, and otherwise the whole release is refused: a published
/// artifact is never replaced.
fn unpublished(dir: &Path, built: &[Built]) -> Result<Vec<bool>> {
    let mut fresh = Vec::new();
    for artifact in built.iter().map(|b| &b.artifact) {
        let path = dir.join(&artifact.file);
        let identical = match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fresh.push(true);
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            Ok(meta) => meta.is_file() && meta.len() == artifact.size && same_hash(&path, &artifact.sha256)?,
        };
        if !identical {
            bail!("{} already exists with other contents: a released artifact is never replaced; pass another --version or move the old file away", path.display());
        }
        fresh.push(false);
    }
    Ok(fresh)
}

fn same_hash(path: &Path, sha256: &str) -> Result<bool> {
    let (_, actual) = sha256::hash_file(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(actual == sha256)
}

/// Names the artifacts, then replaces manifest.json and SHA256SUMS (last, so it never lists
/// an artifact that is not complete). On failure the artifacts named so far are removed.
fn publish(
    dir: &Path,
    built: Vec<Built>,
    fresh: &[bool],
    mut sums: checksums::Sums,
    manifest: &Manifest,
) -> Result<()> {
    for artifact in manifest.latest.artifacts.iter() {
        sums.insert(artifact.file.clone(), artifact.sha256.clone());
    }
    let sums_file = staged_text(dir, checksums::FILE_NAME, &checksums::format(&sums))?;
    let manifest_file = staged_text(dir, manifest::FILE_NAME, &manifest.to_json())?;
    let mut named = Vec::new();
    let result = (|| {
        for (built, fresh) in built.into_iter().zip(fresh) {
            if *fresh {
                let path = dir.join(&built.artifact.file);
                built.staged.publish(&path)?;
                named.push(path);
            }
        }
        manifest_file.replace(&dir.join(manifest::FILE_NAME))?;
        sums_file.replace(&dir.join(checksums::FILE_NAME))
    })();
    if result.is_err() {
        for path in &named {
            let _ = fs::remove_file(path);
        }
    }
    // Make the new names durable too; a file system that cannot sync a directory loses nothing here.
    let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    result
}

fn staged_text(dir: &Path, name: &str, text: &str) -> Result<Staged> {
    let mut staged = Staged::create(dir, name)?;
    io::Write::write_all(staged.file(), text.as_bytes())
        .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
    Ok(staged)
}

fn summary(out: &Path, release: &Release, bytes_in: u64, started: Instant) -> String {
    let files: u64 = release.artifacts.iter().filter_map(|a| a.files).sum();
    let bytes_out: u64 = release.artifacts.iter().map(|a| a.size).sum();
    format!(
        "released {} {} into {}: {files} files, {} in, {} out, {:.1}s",
        release.name,
        release.version,
        out.display(),
        HumanBytes(bytes_in),
        HumanBytes(bytes_out),
        started.elapsed().as_secs_f64()
    )
}

/// A bar on a terminal (a byte counter when the size is unknown), nothing otherwise.
fn progress_bar(total: Option<u64>, file: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(total) => (ProgressBar::new(total), "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}"),
        None => (ProgressBar::new_spinner(), "{msg} {spinner} {bytes} {bytes_per_sec}"),
    };
    let style = ProgressStyle::with_template(template).expect("the template is valid").progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(file.to_owned());
    bar
}

/// The output directory, created if missing and removed again if the release fails then,
/// and locked against other releases into it until dropped.
struct OutDir {
    path: PathBuf,
    created: bool,
    _lock: fs::File,
}

impl OutDir {
    fn open(path: &Path, wait: lock::Wait) -> Result<OutDir> {
        let created = !path.exists();
        fs::create_dir_all(path).with_context(|| {
            format!("cannot create the output directory {}: pass a writable --out DIR", path.display())
        })?;
        let lock = lock::acquire(path, wait)?;
        Ok(OutDir { path: path.to_path_buf(), created, _lock: lock })
    }

    fn keep(mut self) {
        self.created = false;
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if self.created {
            // Only if empty: never take anything that is not ours.
            let _ = fs::remove_dir(&self.path);
        }
    }
}
