//! `cargo xtask new PATH [--name NAME]`: a new repository with this pipeline and a fresh
//! copy of the default Django project whose `config` package is renamed to NAME, in its
//! own git repository with one commit. Everything is checked and rendered in memory
//! before the first file is written.

mod rename;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::cli::NewArgs;
use crate::context::Context;
use crate::plan::runner;
use crate::plan::{Action, Plan, Step, Task};
use crate::process;
use crate::project::is_identifier;

/// A file of the new repository: its path inside it, its bytes and whether it is executable.
struct File {
    path: PathBuf,
    bytes: Vec<u8>,
    executable: bool,
}

pub fn new(cx: &Context, args: NewArgs) -> Result<()> {
    let target = std::path::absolute(&args.path).with_context(|| format!("cannot resolve {}", args.path.display()))?;
    let name = project_name(&target, args.name.as_deref())?;
    refuse_occupied(&target)?;
    let files = render(cx, &name)?;
    let write = Write { target: target.clone(), name: name.clone(), files };
    runner::execute(cx, Plan::default().then(Task::act(write)).and(git_plan(&target, &name)))
}

/// The new repository's files, written into its directory.
struct Write {
    target: PathBuf,
    name: String,
    files: Vec<File>,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Write({} files into {})", self.files.len(), self.target.display())
    }
}

impl Action for Write {
    fn render(&self) -> String {
        format!(
            "# write {} files into {}, the package `config` renamed to `{}`",
            self.files.len(),
            self.target.display(),
            self.name
        )
    }

    fn run(&self, _: &Context) -> Result<()> {
        write(&self.target, &self.files)
    }
}

/// `--name`, else the directory's own name; either must be a Python identifier.
fn project_name(target: &Path, given: Option<&str>) -> Result<String> {
    let (name, flag) = match given {
        Some(name) => (name.to_owned(), true),
        None => (target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), false),
    };
    if let Some(why) = rename::unusable(&name) {
        let fix = if flag { "choose another --name" } else { "pass --name NAME, or name the directory so" };
        bail!("{name:?} cannot name the Django project ({why}): {fix}, e.g. --name {}", rename::suggest(&name));
    }
    debug_assert!(is_identifier(&name));
    Ok(name)
}

fn refuse_occupied(target: &Path) -> Result<()> {
    let Ok(mut entries) = fs::read_dir(target) else {
        if target.symlink_metadata().is_ok() {
            bail!("{} exists and is not a directory: choose a new path", target.display());
        }
        return Ok(());
    };
    if entries.next().is_some() {
        bail!("{} exists and is not empty: choose a new path, or empty it first", target.display());
    }
    Ok(())
}

/// Every file git tracks or would track in this repository, renamed for `name`.
fn render(cx: &Context, name: &str) -> Result<Vec<File>> {
    let ls = Step::new("git", &cx.root).args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"]);
    let out = process::output(&ls).context("cannot list the repository's files with git")?;
    if !out.ok {
        bail!("cannot list the repository's files with git: `{ls}` failed: {}", out.why());
    }
    let listing = out.stdout;
    let mut files = Vec::new();
    for relative in listing.split('\0').filter(|p| !p.is_empty()) {
        let source = cx.root.join(relative);
        let Ok(meta) = fs::metadata(&source) else { continue }; // deleted in the work tree
        let bytes = fs::read(&source).with_context(|| format!("cannot read {}", source.display()))?;
        let (path, bytes) = rename::file(relative, bytes, name);
        files.push(File { path, bytes, executable: meta.permissions().mode() & 0o111 != 0 });
    }
    if files.is_empty() {
        bail!("git lists no files in {}: run `cargo xtask new` from a clone of this repository", cx.root.display());
    }
    Ok(files)
}

fn write(target: &Path, files: &[File]) -> Result<()> {
    for file in files {
        let path = target.join(&file.path);
        fs::create_dir_all(path.parent().unwrap_or(target))
            .with_context(|| format!("cannot create the directory of {}", path.display()))?;
        fs::write(&path, &file.bytes).with_context(|| format!("cannot write {}", path.display()))?;
        if file.executable {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", path.display()))?;
        }
    }
    Ok(())
}

/// A repository of its own with one commit, then the next step.
fn git_plan(target: &Path, name: &str) -> Plan {
    let git = |args: &[&str]| Step::new("git", target).args(args.iter().copied());
    Plan::default()
        .run(git(&["init", "--quiet"]))
        .run(git(&["add", "--all"]))
        .run(git(&["commit", "--quiet", "--message", &format!("Start {name} from the Dockerized Django pipeline")]))
        .then(Task::Say(format!(
            "created {} with the Django project {name}\nnext: cd {} && cargo xtask init && cargo xtask dev",
            target.display(),
            target.display()
        )))
}
