//! What every command needs to know: the project root, its name and the global flags.

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};

use crate::cli::Global;

#[derive(Debug, Clone)]
pub struct Context {
    pub root: PathBuf,
    pub name: String,
    pub dry_run: bool,
    pub verbose: bool,
}

impl Context {
    pub fn new(global: Global) -> Result<Context> {
        let root = project_root()?;
        let name = project_name(&root)?;
        crate::process::set_verbose(global.verbose);
        Ok(Context { root, name, dry_run: global.dry_run, verbose: global.verbose })
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }
}

/// Sixteen hex digits from the OS random generator, for names that must not collide
/// (scratch directories, one-off containers).
pub fn unique_tag() -> Result<String> {
    let tag = getrandom::u64().map_err(|e| anyhow!("cannot read the OS random generator: {e}"))?;
    Ok(format!("{tag:016x}"))
}

/// `XTASK_ROOT`, else the workspace that holds this crate. `cargo run` sets
/// `CARGO_MANIFEST_DIR` at run time; the compile-time value covers a binary run directly.
fn project_root() -> Result<PathBuf> {
    if let Some(root) = env::var_os("XTASK_ROOT") {
        let root = PathBuf::from(root);
        if !root.is_dir() {
            bail!("XTASK_ROOT={} is not a directory: set it to the project root, or unset it", root.display());
        }
        return root.canonicalize().with_context(|| format!("cannot resolve XTASK_ROOT={}", root.display()));
    }
    let manifest = env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let root = manifest.parent().unwrap_or(Path::new(".")).to_path_buf();
    root.canonicalize().with_context(|| format!("cannot find the project root at {}", root.display()))
}

/// The Compose project prefix: `XTASK_PROJECT_NAME`, else the root directory's name,
/// lowered to what Compose accepts (letters, digits, `-` and `_`, starting with a letter or digit).
fn project_name(root: &Path) -> Result<String> {
    if let Ok(name) = env::var("XTASK_PROJECT_NAME") {
        if sanitize(&name) != name || name.is_empty() {
            bail!("XTASK_PROJECT_NAME={name:?} is not a valid project name: use lower-case letters, digits, `-` and `_`, starting with a letter or digit");
        }
        return Ok(name);
    }
    let dir = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let name = sanitize(&dir);
    Ok(if name.is_empty() { "django".to_owned() } else { name })
}

fn sanitize(raw: &str) -> String {
    let lowered: String = raw
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    lowered.trim_start_matches(['-', '_']).to_owned()
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn names_are_lowered_and_stripped_to_what_compose_accepts() {
        assert_eq!(sanitize("My Site.v2"), "mysitev2");
        assert_eq!(sanitize("_-shop_front"), "shop_front");
        assert_eq!(sanitize("..."), "");
    }
}
