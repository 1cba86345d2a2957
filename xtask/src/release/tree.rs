//! Reads the directory to release into a list of entries sorted by their archive path,
//! refusing what an archive of static files must not hold, before anything is written.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use walkdir::WalkDir;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File { size: u64, executable: bool },
    Symlink { target: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path inside the archive, `/`-separated; directories end with `/`.
    pub name: String,
    pub source: PathBuf,
    pub kind: Kind,
}

/// Every entry below `root` (not `root` itself), sorted by the bytes of its archive path.
pub fn collect(root: &Path) -> Result<Vec<Entry>> {
    let meta = fs::metadata(root)
        .with_context(|| format!("static dir {} not found: pass an existing directory", root.display()))?;
    if !meta.is_dir() {
        bail!("static dir {} is not a directory", root.display());
    }
    let mut entries = Vec::new();
    for item in WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let item = item.with_context(|| format!("cannot read {}", root.display()))?;
        entries.push(entry(root, item.path(), item.file_type())?);
    }
    if !entries.iter().any(|e| e.kind != Kind::Dir) {
        bail!("static dir {} has no files: nothing to release", root.display());
    }
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(entries)
}

fn entry(root: &Path, path: &Path, file_type: fs::FileType) -> Result<Entry> {
    let relative = path.strip_prefix(root).expect("walkdir stays below its root");
    let Some(name) = relative.to_str() else {
        bail!("{} has a name that is not UTF-8: rename it", path.display());
    };
    let source = path.to_path_buf();
    let kind = if file_type.is_dir() {
        return Ok(Entry { name: format!("{name}/"), source, kind: Kind::Dir });
    } else if file_type.is_file() {
        let meta = fs::symlink_metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        Kind::File { size: meta.len(), executable: meta.permissions().mode() & 0o111 != 0 }
    } else if file_type.is_symlink() {
        Kind::Symlink { target: link_target(path, name)? }
    } else {
        bail!(
            "{} is a {}: only files, directories and symlinks can be released",
            path.display(),
            special_kind(file_type)
        );
    };
    Ok(Entry { name: name.to_owned(), source, kind })
}

fn link_target(path: &Path, name: &str) -> Result<String> {
    let target = fs::read_link(path).with_context(|| format!("cannot read the symlink {}", path.display()))?;
    let Some(target) = target.to_str() else {
        bail!("symlink {} points to a name that is not UTF-8: replace it with a copy of its target", path.display());
    };
    if !stays_inside(name, target) {
        bail!(
            "symlink {} points outside the static dir ({target}): replace it with a copy of its target",
            path.display()
        );
    }
    Ok(target.to_owned())
}

/// Whether a link at archive path `name` resolves to a path inside the tree. An absolute
/// target never does (it changes meaning on extraction). `..` is allowed only at the start:
/// after a name it would climb from wherever that name leads if it is itself a link.
pub fn stays_inside(name: &str, target: &str) -> bool {
    if target.is_empty() || target.starts_with('/') {
        return false;
    }
    let mut depth = Path::new(name).components().count() as i64 - 1;
    let mut descended = false;
    for component in Path::new(target).components() {
        match component {
            Component::ParentDir if descended => return false,
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => descended = true,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

fn special_kind(file_type: fs::FileType) -> &'static str {
    if file_type.is_fifo() {
        "fifo"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::stays_inside;

    #[test]
    fn links_may_point_anywhere_inside_the_tree_only() {
        assert!(stays_inside("a.css", "b.css"));
        assert!(stays_inside("css/a.css", "../js/b.js"));
        assert!(stays_inside("css/a.css", "./b.css"));
        assert!(stays_inside("a/b/c", "../../d"));
        assert!(!stays_inside("a/b/c", "../../../d"));
        assert!(!stays_inside("a.css", "../a.css"));
        assert!(!stays_inside("css/a.css", "x/../../../y"));
        assert!(!stays_inside("a/b/c", "s/../d"), "s may itself be a link that climbs");
        assert!(!stays_inside("a.css", "/etc/passwd"));
        assert!(!stays_inside("a.css", ""));
    }
}
