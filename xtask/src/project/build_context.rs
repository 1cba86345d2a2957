//! The web image's build context: a directory of ours (`.stack/build/<stack>`) holding only
//! what the image may receive, refilled before every build so that nothing else of the
//! repository ever reaches the engine, whatever the project's layout (`dir = "."` included)
//! and whichever builder runs (BuildKit or the classic one).
//!
//! It holds the Dockerfile and its `system-packages.sh`, `placeholders.sh` (what collectstatic
//! exports while it imports the settings), the settings layer (`stack_settings/`), the dependency files
//! (`deps/`, at their paths in the repository, requirement files they include with `-r`/`-c`
//! among them) and the project's files (`app/`), less:
//! - secrets, keys, dumps and local databases, wherever they are ([`NEVER`]);
//! - the pipeline's own files and outputs at the repository's root ([`PIPELINE`]);
//! - what the project's own `.dockerignore` leaves out (the repository's, and one in `dir`).
//!
//! A file that passes those rules but holds a private key or a database dump by its content,
//! or (production) the value of one of `.env.prod`'s secrets, stops the build with one line
//! naming it.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use walkdir::WalkDir;

use super::ignore::IgnoreFile;
use super::{own_env, Description};
use crate::context::Context;
use crate::plan::Action;

/// The file the Dockerfile's collectstatic stage sources.
const PLACEHOLDERS: &str = "placeholders.sh";

/// Names (any path component's) of secrets: env files, credentials, keys and dumps. They never
/// enter an image, and the dev stack, which sees the project through a bind mount, hides them.
pub const SECRETS: &[&str] = &[
    ".env*",
    ".envrc",
    ".netrc",
    ".pgpass",
    ".pypirc",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.dump",
    "*.sql.gz",
    "*.sql.bz2",
    "*.sql.xz",
    "*.sql.zst",
    "*.bak",
];

/// Names (any path component's) of what is no part of an application: local databases,
/// version control, caches, virtualenvs, collected static files.
pub const CLUTTER: &[&str] = &[
    "*.sqlite3",
    "*.sqlite3-*",
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    "*.py[cod]",
    ".venv",
    "venv",
    "node_modules",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".DS_Store",
    "staticfiles",
];

/// The pipeline's files and what it writes, at the repository's root: in the context only
/// when the project is the root (`dir = "."`), and then left out.
pub const PIPELINE: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    ".cargo",
    "xtask",
    "docker",
    "target",
    "dist",
    "backups",
    "certs",
    ".stack",
    ".github",
    ".ci",
    "rustfmt.toml",
];

/// Of the pipeline's outputs, those that hold keys and data: hidden from the dev stack too.
const PIPELINE_SECRETS: &[&str] = &["backups", "certs"];

/// Files larger than this are not read for keys (a key is a few kilobytes); their first
/// bytes are still read for a dump's or a database's header.
const SCAN_LIMIT: u64 = 1 << 20;

/// What a build context is made of, as the plan carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct Staging {
    /// The repository root.
    pub root: PathBuf,
    pub description: Description,
    /// The directory filled, `.stack/build/<stack>` under the root.
    pub dest: PathBuf,
    /// Values that must be in no file of the image (the production env file's secrets).
    pub secrets: Vec<String>,
    /// For the dev stack, which bind-mounts the project's directory: the Compose file written
    /// here hides the secrets in it from the containers (see [`hide_secrets`]).
    pub hide: Option<PathBuf>,
}

/// Never printed: `secrets` holds values.
impl std::fmt::Debug for Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Staging({} -> {})", self.description.dir, self.dest.display())
    }
}

impl Action for Staging {
    fn render(&self) -> String {
        Staging::render(self)
    }

    fn run(&self, _: &Context) -> Result<()> {
        Staging::run(self)
    }
}

impl Staging {
    /// The line `--dry-run` prints for it.
    pub fn render(&self) -> String {
        let mut text = format!(
            "# fill the build context {} with the Dockerfile, the settings layer, the dependency files and {}/ less secrets, keys, dumps, the pipeline's files and what .dockerignore leaves out",
            self.dest.display(),
            self.description.dir
        );
        if let Some(hide) = &self.hide {
            text += &format!(
                "\n# write {}: the secrets in {}/ hidden from the dev containers",
                hide.display(),
                self.description.dir
            );
        }
        text
    }

    /// Fills `dest` with exactly the context's files: copies what changed, removes the rest.
    pub fn run(&self) -> Result<()> {
        let files = self.files()?;
        for file in &files {
            self.scan(file)?;
        }
        let placeholders = self.placeholders()?;
        let generated = [(PathBuf::from(PLACEHOLDERS), placeholders)];
        sync(&files, &generated, &self.dest)
            .with_context(|| format!("cannot fill the build context {}", self.dest.display()))?;
        match &self.hide {
            Some(path) => {
                // Web and every process bind-mount the project's directory.
                let services = ["web".to_owned()].into_iter().chain(self.description.processes.keys().cloned());
                hide_secrets(&self.root, &self.description.dir, path, &services.collect::<Vec<_>>())
            }
            None => Ok(()),
        }
    }

    /// The build-time exports of collectstatic (see [`own_env::placeholders`]), next to the
    /// variables of the stack's own production example.
    fn placeholders(&self) -> Result<String> {
        let example = self.root.join("docker/prod.env.example");
        let ours = fs::read_to_string(&example).with_context(|| format!("cannot read {}", example.display()))?;
        own_env::placeholders(&self.root, &self.description.dir, &ours)
    }

    /// Every file of the context: (source, path inside the context).
    fn files(&self) -> Result<Vec<Entry>> {
        let docker = self.root.join("docker");
        let mut files = vec![
            Entry::new(docker.join("Dockerfile"), "Dockerfile"),
            Entry::new(docker.join("system-packages.sh"), "system-packages.sh"),
        ];
        files.extend(walk(&docker.join("stack_settings"), "stack_settings", &|_| true)?);
        for dependency in dependency_files(&self.root, &self.description)? {
            files.push(Entry::new(self.root.join(&dependency), Path::new("deps").join(&dependency)));
        }
        let dir = self.root.join(&self.description.dir);
        let rules = Rules::read(&self.root, &self.description.dir)?;
        files.extend(walk(&dir, "app", &|relative| rules.verdict(relative) == Verdict::In)?);
        Ok(files)
    }

    /// Refuses a project file that is a key, a dump or a database by its content, or holds a secret's value.
    fn scan(&self, file: &Entry) -> Result<()> {
        if !file.inside.starts_with("app") || !file.source.is_file() {
            return Ok(());
        }
        let shown = file.source.strip_prefix(&self.root).unwrap_or(&file.source).display().to_string();
        if let Some(what) = sniff(&file.source)? {
            bail!("{shown} is {what} and would enter the web image: move it out of the repository, or list it in .dockerignore");
        }
        let size = file.source.metadata().map(|m| m.len()).unwrap_or(0);
        if self.secrets.is_empty() || size > SCAN_LIMIT {
            return Ok(());
        }
        let bytes = fs::read(&file.source).with_context(|| format!("cannot read {shown}"))?;
        if self.secrets.iter().any(|secret| contains(&bytes, secret.as_bytes())) {
            bail!("{shown} holds the value of a secret of .env.prod and would enter the web image: remove the value from the file (read it from the environment), then change the secret");
        }
        Ok(())
    }
}

/// The secrets in the project's directory (files, or directories taken whole), as paths
/// relative to it: what the dev stack hides from its containers.
pub fn secrets_in(root: &Path, dir: &str) -> Result<Vec<PathBuf>> {
    let rules = Rules::read(root, dir)?;
    let top = root.join(dir);
    let mut found = Vec::new();
    let mut walker = WalkDir::new(&top).follow_links(false).sort_by_file_name().into_iter();
    while let Some(entry) = walker.next() {
        let entry = entry.map_err(walk_error).with_context(|| format!("cannot read {}", top.display()))?;
        let relative = entry.path().strip_prefix(&top).unwrap_or(entry.path()).to_owned();
        if entry.depth() == 0 {
            continue;
        }
        match rules.verdict(&relative) {
            Verdict::Secret => found.push(relative),
            Verdict::Out if entry.file_type().is_dir() => {}
            _ => continue,
        }
        if entry.file_type().is_dir() {
            walker.skip_current_dir();
        }
    }
    Ok(found)
}

/// Writes the Compose file that hides the secrets of the project's directory from the dev
/// stack's web containers, which see that directory at /app through a bind mount: a secret
/// file is covered by /dev/null (so a settings module that reads `.env` finds it empty and
/// takes its values from the environment, as the stack sets them), a directory by an empty tmpfs.
fn hide_secrets(root: &Path, dir: &str, path: &Path, services: &[String]) -> Result<()> {
    #[derive(serde::Serialize)]
    struct Mount {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<&'static str>,
        target: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        read_only: Option<bool>,
    }
    let mounts: Vec<Mount> = secrets_in(root, dir)?
        .into_iter()
        .map(|relative| {
            let target = format!("/app/{}", relative.display());
            match root.join(dir).join(&relative).is_dir() {
                true => Mount { kind: "tmpfs", source: None, target, read_only: None },
                false => Mount { kind: "bind", source: Some("/dev/null"), target, read_only: Some(true) },
            }
        })
        .collect();
    let services: serde_json::Map<String, serde_json::Value> =
        services.iter().map(|name| (name.clone(), serde_json::json!({ "volumes": mounts }))).collect();
    let services = serde_json::json!({ "services": services });
    let yaml = serde_yaml::to_string(&services).context("cannot write the dev stack's Compose file")?;
    let text = format!("# Written by cargo xtask before the dev stack starts: the secrets of the project's directory,\n# hidden from the containers that bind-mount it.\n{yaml}");
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// A file or symlink of the context.
#[derive(Debug, Clone)]
struct Entry {
    source: PathBuf,
    inside: PathBuf,
}

impl Entry {
    fn new(source: PathBuf, inside: impl Into<PathBuf>) -> Entry {
        Entry { source, inside: inside.into() }
    }
}

/// The files and symlinks under `dir` whose path relative to it `keep` accepts, as entries
/// under `prefix`; a directory `keep` refuses is not entered.
fn walk(dir: &Path, prefix: &str, keep: &dyn Fn(&Path) -> bool) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let walker = WalkDir::new(dir).follow_links(false).sort_by_file_name().into_iter();
    for entry in walker.filter_entry(|e| e.depth() == 0 || keep(e.path().strip_prefix(dir).unwrap_or(e.path()))) {
        let entry = entry.map_err(walk_error).with_context(|| format!("cannot read {}", dir.display()))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let relative = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        entries.push(Entry::new(entry.path().to_owned(), Path::new(prefix).join(relative)));
    }
    Ok(entries)
}

/// What decides whether a project file enters the context.
struct Rules {
    /// The project directory relative to the root, `""` for the root itself.
    dir: PathBuf,
    /// The repository's `.dockerignore` (paths from the root) and the project directory's (paths from it).
    root_ignore: IgnoreFile,
    dir_ignore: IgnoreFile,
}

impl Rules {
    fn read(root: &Path, dir: &str) -> Result<Rules> {
        let dir: PathBuf = Path::new(dir).components().filter(|c| matches!(c, Component::Normal(_))).collect();
        let root_ignore = IgnoreFile::read(&root.join(".dockerignore"))?;
        let dir_ignore = if dir.as_os_str().is_empty() {
            IgnoreFile::default()
        } else {
            IgnoreFile::read(&root.join(&dir).join(".dockerignore"))?
        };
        Ok(Rules { dir, root_ignore, dir_ignore })
    }

    /// What becomes of `relative` (a path inside the project directory).
    fn verdict(&self, relative: &Path) -> Verdict {
        let name = relative.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let named = |patterns: &[&str]| patterns.iter().any(|pattern| name_matches(pattern, &name));
        let from_root = self.dir.join(relative);
        let at_root = from_root.components().count() == 1;
        if named(SECRETS) || at_root && PIPELINE_SECRETS.contains(&name.as_ref()) {
            return Verdict::Secret;
        }
        if named(CLUTTER) || at_root && PIPELINE.contains(&name.as_ref()) {
            return Verdict::Out;
        }
        match self.root_ignore.excludes(&from_root) || self.dir_ignore.excludes(relative) {
            true => Verdict::Out,
            false => Verdict::In,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    In,
    Out,
    /// Out, and hidden from the dev stack's bind mount.
    Secret,
}

/// walkdir's error without its own wording, which repeats the path and the cause.
fn walk_error(error: walkdir::Error) -> anyhow::Error {
    match error.into_io_error() {
        Some(io) => io.into(),
        None => anyhow::anyhow!("a symbolic link loops"),
    }
}

fn name_matches(pattern: &str, name: &str) -> bool {
    glob::Pattern::new(pattern).is_ok_and(|p| p.matches(name))
}

/// What a file is by its first bytes or its text, when it must not enter an image.
fn sniff(path: &Path) -> Result<Option<&'static str>> {
    use std::io::Read as _;
    let mut head = Vec::new();
    let size = path.metadata().map(|m| m.len()).unwrap_or(0);
    let file = fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let limit = if size <= SCAN_LIMIT { SCAN_LIMIT } else { 512 };
    file.take(limit).read_to_end(&mut head).with_context(|| format!("cannot read {}", path.display()))?;
    let start = &head[..head.len().min(512)];
    Ok(if start.starts_with(b"PGDMP") {
        Some("a pg_dump archive")
    } else if contains(start, b"-- PostgreSQL database dump") {
        Some("a PostgreSQL dump")
    } else if start.starts_with(b"SQLite format 3\0") {
        Some("an SQLite database")
    } else if size <= SCAN_LIMIT && is_code(path) {
        None
    } else if size <= SCAN_LIMIT && contains(&head, b"-----BEGIN ") && contains(&head, b"PRIVATE KEY-----") {
        Some("a private key")
    } else {
        None
    })
}

/// Python source: a key in it is a test's fixture, not a stray key file (the name rules and
/// the secret values still apply).
fn is_code(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "py")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The dependency files to install from, as paths from the root: the requirements file and
/// every file it includes (`-r`, `-c`), or pyproject.toml with uv.lock.
pub fn dependency_files(root: &Path, d: &Description) -> Result<Vec<PathBuf>> {
    let first = PathBuf::from(d.dependency_path());
    if d.dependencies.ends_with("pyproject.toml") {
        return Ok(vec![first.clone(), first.with_file_name("uv.lock")]);
    }
    let mut found = BTreeSet::new();
    let mut pending = vec![first];
    while let Some(file) = pending.pop() {
        if !found.insert(file.clone()) {
            continue;
        }
        let text = fs::read_to_string(root.join(&file)).with_context(|| format!("cannot read {}", file.display()))?;
        for (number, include) in requirement_includes(&text) {
            pending.push(resolve_include(root, &file, number, &include)?);
        }
    }
    Ok(found.into_iter().collect())
}

/// `-r FILE`, `-c FILE` and their long forms, with their line numbers; URLs are pip's to fetch.
fn requirement_includes(text: &str) -> Vec<(usize, String)> {
    let mut includes = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split(" #").next().unwrap_or_default().trim();
        let rest = ["--requirement", "--constraint", "-r", "-c"].iter().find_map(|flag| line.strip_prefix(flag));
        let Some(rest) = rest else { continue };
        let target = rest.trim_start_matches('=').trim();
        if !target.is_empty()
            && !target.contains("://")
            && (rest.starts_with([' ', '\t', '=']) || !line.starts_with("--"))
        {
            includes.push((index + 1, target.to_owned()));
        }
    }
    includes
}

/// An included file, relative to the file that names it, as a path from the root.
fn resolve_include(root: &Path, file: &Path, line: usize, include: &str) -> Result<PathBuf> {
    let joined = file.parent().unwrap_or(Path::new("")).join(include);
    let mut path = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::ParentDir if path.pop() => {}
            Component::CurDir => {}
            _ => bail!(
                "{} line {line}: {include:?} is outside the repository: keep the requirement files the image installs inside it",
                file.display()
            ),
        }
    }
    if !root.join(&path).is_file() {
        bail!(
            "{} line {line}: includes {include:?}, and {} does not exist: fix the path (it is relative to {})",
            file.display(),
            path.display(),
            file.display()
        );
    }
    Ok(path)
}

/// Makes `dest` hold exactly `files` and the `generated` ones: copies those whose size or
/// modification time differ (keeping the source's), writes those whose text differs, removes
/// what is not listed.
fn sync(files: &[Entry], generated: &[(PathBuf, String)], dest: &Path) -> Result<()> {
    fs::create_dir_all(dest)?;
    let mut wanted = BTreeSet::new();
    for (inside, text) in generated {
        let target = dest.join(inside);
        if fs::read_to_string(&target).ok().as_ref() != Some(text) {
            fs::write(&target, text).with_context(|| format!("cannot write {}", target.display()))?;
        }
        wanted.insert(inside.clone());
    }
    for file in files {
        let target = dest.join(&file.inside);
        for ancestor in file.inside.ancestors().skip(1) {
            wanted.insert(ancestor.to_owned());
        }
        wanted.insert(file.inside.clone());
        copy_if_changed(&file.source, &target)
            .with_context(|| format!("cannot copy {} into the build context", file.source.display()))?;
    }
    let stale: Vec<PathBuf> = WalkDir::new(dest)
        .min_depth(1)
        .contents_first(true)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| !wanted.contains(e.path().strip_prefix(dest).unwrap_or(e.path())))
        .map(|e| e.into_path())
        .collect();
    for path in stale {
        if path.is_dir() && !path.is_symlink() { fs::remove_dir(&path) } else { fs::remove_file(&path) }
            .with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

fn copy_if_changed(source: &Path, target: &Path) -> Result<()> {
    let meta = source.symlink_metadata()?;
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    if meta.is_symlink() {
        let link = fs::read_link(source)?;
        if fs::read_link(target).ok().as_ref() != Some(&link) {
            let _ = fs::remove_file(target);
            symlink(&link, target)?;
        }
        return Ok(());
    }
    let same = target.symlink_metadata().is_ok_and(|t| {
        t.is_file()
            && t.len() == meta.len()
            && t.modified().ok() == meta.modified().ok()
            && t.permissions() == meta.permissions()
    });
    if !same {
        let _ = fs::remove_file(target);
        fs::copy(source, target)?;
        let file = fs::File::options().write(true).open(target)?;
        file.set_modified(meta.modified()?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn staging(root: &Path, dir: &str) -> Staging {
        write(root, "docker/Dockerfile", "FROM scratch\n");
        write(root, "docker/system-packages.sh", "");
        write(root, "docker/prod.env.example", "SECRET_KEY=change-me\n");
        write(root, "docker/stack_settings/__init__.py", "");
        let description = Description {
            dir: dir.into(),
            settings: "mysite.settings".into(),
            dev_settings: "mysite.settings".into(),
            wsgi: "mysite.wsgi".into(),
            ..Description::default()
        };
        Staging {
            root: root.to_owned(),
            description,
            dest: root.join(".stack/build/prod"),
            secrets: Vec::new(),
            hide: Some(root.join(".stack/dev/hide-secrets.yml")),
        }
    }

    fn listed(dest: &Path) -> Vec<String> {
        let mut files: Vec<String> = WalkDir::new(dest)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_type().is_dir())
            .map(|e| e.path().strip_prefix(dest).unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn a_root_project_enters_without_secrets_or_the_pipeline() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        for file in [
            "manage.py",
            "mysite/settings.py",
            "requirements.txt",
            ".env",
            ".env.prod",
            ".envrc",
            "certs/ca-key.pem",
            "backups/site.dump",
            "dist/x.tar.gz",
            ".stack/nginx/a.conf",
            "target/debug/x",
            "xtask/src/main.rs",
            "Cargo.toml",
            "keys/deploy.key",
            "mysite/__pycache__/a.pyc",
            ".git/config",
            "id_ed25519",
            "mysite/certs/ok.txt",
            "notes/db.sqlite3",
        ] {
            write(root, file, "x\n");
        }
        let staging = staging(root, ".");
        staging.run().unwrap();
        assert_eq!(
            listed(&staging.dest),
            [
                "Dockerfile",
                "app/manage.py",
                "app/mysite/certs/ok.txt",
                "app/mysite/settings.py",
                "app/requirements.txt",
                "deps/requirements.txt",
                "placeholders.sh",
                "stack_settings/__init__.py",
                "system-packages.sh",
            ]
        );
        let hidden = fs::read_to_string(root.join(".stack/dev/hide-secrets.yml")).unwrap();
        let hidden: serde_yaml::Value = serde_yaml::from_str(&hidden).unwrap();
        let targets: Vec<&str> = hidden["services"]["web"]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|m| m["target"].as_str().unwrap())
            .collect();
        assert_eq!(
            targets,
            [
                "/app/.env",
                "/app/.env.prod",
                "/app/.envrc",
                "/app/backups",
                "/app/certs",
                "/app/id_ed25519",
                "/app/keys/deploy.key"
            ]
        );
    }

    #[test]
    fn the_projects_own_dockerignore_applies_and_changes_are_synced() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        for file in ["site/manage.py", "site/requirements.txt", "site/docs/a.md", "site/media/up.png", "site/keep.md"] {
            write(root, file, "x\n");
        }
        write(root, ".dockerignore", "site/media\n**/*.md\n!site/keep.md\n");
        write(root, "site/.dockerignore", "docs/\n");
        let staging = staging(root, "site");
        staging.run().unwrap();
        let expected = ["Dockerfile", "app/.dockerignore", "app/keep.md", "app/manage.py", "app/requirements.txt"];
        assert_eq!(listed(&staging.dest)[..5], expected);
        fs::remove_file(root.join("site/keep.md")).unwrap();
        write(root, "site/manage.py", "changed\n");
        staging.run().unwrap();
        assert!(!staging.dest.join("app/keep.md").exists());
        assert_eq!(fs::read_to_string(staging.dest.join("app/manage.py")).unwrap(), "changed\n");
    }

    #[test]
    fn split_requirements_come_along_and_a_missing_include_is_named() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        write(root, "manage.py", "");
        write(root, "requirements.txt", "-r requirements/production.txt  # the deployed set\n");
        write(root, "requirements/production.txt", "-r base.txt\n--constraint=constraints.txt\ngunicorn==23\n");
        write(root, "requirements/base.txt", "Django==5.2\n-r https://example.com/r.txt\n");
        write(root, "requirements/constraints.txt", "");
        let staging = staging(root, ".");
        let deps = dependency_files(root, &staging.description).unwrap();
        let names: Vec<String> = deps.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        assert_eq!(
            names,
            [
                "requirements/base.txt",
                "requirements/constraints.txt",
                "requirements/production.txt",
                "requirements.txt"
            ]
        );
        fs::remove_file(root.join("requirements/base.txt")).unwrap();
        let error = format!("{:#}", dependency_files(root, &staging.description).unwrap_err());
        assert_eq!(
            error,
            "requirements/production.txt line 1: includes \"base.txt\", and requirements/base.txt does not exist: fix the path (it is relative to requirements/production.txt)"
        );
    }

    #[test]
    fn keys_dumps_and_secret_values_are_refused_by_content() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        write(root, "manage.py", "");
        write(root, "requirements.txt", "");
        let staging = staging(root, ".");
        write(root, "notes/signing.txt", "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n");
        let error = format!("{:#}", staging.run().unwrap_err());
        assert!(error.starts_with("notes/signing.txt is a private key and would enter the web image"), "{error}");
        fs::remove_file(root.join("notes/signing.txt")).unwrap();
        write(root, "notes/old", "PGDMP\x01\x0e");
        assert!(format!("{:#}", staging.run().unwrap_err()).contains("notes/old is a pg_dump archive"));
        fs::remove_file(root.join("notes/old")).unwrap();
        write(root, "mysite/settings.py", "SECRET_KEY = 'Zq8vK2mN5pR7tW9yB3dF6hJ1'\n");
        let with_secret = Staging { secrets: vec!["Zq8vK2mN5pR7tW9yB3dF6hJ1".into()], ..staging.clone() };
        let error = format!("{:#}", with_secret.run().unwrap_err());
        assert!(error.starts_with("mysite/settings.py holds the value of a secret of .env.prod"), "{error}");
        staging.run().unwrap();
    }
}
