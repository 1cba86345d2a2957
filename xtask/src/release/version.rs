//! What a release is of: its version, git commit and timestamp, read from git, and the
//! refusal to release a work tree with uncommitted changes.

use std::path::Path;

use crate::process::{self, Step};
use anyhow::{bail, Context as _, Result};

/// The largest mtime an ustar header holds in its 11 octal digits (the year 2242).
const MAX_EPOCH: u64 = 0o77777777777;

/// The facts about HEAD that a release records.
#[derive(Debug, Clone)]
pub struct Source {
    pub version: String,
    pub commit: String,
    pub epoch: u64,
}

/// Reads HEAD in `root`. `outputs` are the release's own directories (inside the tree or
/// not): files there never count as uncommitted changes.
pub fn read(root: &Path, version: Option<&str>, allow_dirty: bool, outputs: &[&Path]) -> Result<Source> {
    let sh = root;
    let commit = git(sh, &["rev-parse", "--verify", "HEAD^{commit}"]).with_context(|| {
        format!(
            "cannot read the git commit of {}: release from a git checkout with at least one commit",
            root.display()
        )
    })?;
    let dirty = dirty_paths(
        &git(sh, &["status", "--porcelain", "-z", "--untracked-files=all"])?,
        &relative_prefixes(root, outputs),
    );
    if !dirty.is_empty() && !allow_dirty {
        let shown: Vec<&str> = dirty.iter().take(3).map(String::as_str).collect();
        let more = if dirty.len() > 3 { format!(" and {} more", dirty.len() - 3) } else { String::new() };
        bail!(
            "the work tree has uncommitted changes ({}{more}): commit or stash them, or pass --allow-dirty",
            shown.join(", ")
        );
    }
    let version = match version {
        Some(v) => v.to_owned(),
        None => from_git(sh, !dirty.is_empty())?,
    };
    check_version(&version)?;
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(raw) => parse_epoch(&raw)?,
        Err(_) => parse_epoch(&git(sh, &["log", "-1", "--format=%ct", "HEAD"])?)
            .context("cannot read the HEAD commit time")?,
    };
    Ok(Source { version, commit, epoch })
}

/// `git ARGS` in `root`, which must succeed; its output without the last newline.
fn git(root: &Path, args: &[&str]) -> Result<String> {
    let out =
        process::output(&Step::new("git", root).args(args.iter().copied())).context("cannot run `git`: install git")?;
    if !out.ok {
        bail!("`git {}` failed: {}", args.join(" "), out.why());
    }
    Ok(out.stdout.trim_end_matches('\n').to_owned())
}

/// The exact `vX.Y.Z` tag on HEAD, else `git describe` (with `-dirty` when it is).
fn from_git(sh: &Path, dirty: bool) -> Result<String> {
    let tags = git(sh, &["tag", "--points-at", "HEAD"])?;
    if let Some(version) = version_from_tags(tags.lines()) {
        return Ok(if dirty { format!("{version}-dirty") } else { version });
    }
    let mut args = vec!["describe", "--tags", "--always", "--abbrev=12"];
    if dirty {
        args.push("--dirty");
    }
    git(sh, &args)
}

/// Among the tags on HEAD, the highest release tag `vX.Y.Z[-suffix]`, without its `v`.
pub fn version_from_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<String> {
    tags.into_iter()
        .filter_map(|tag| tag.trim().strip_prefix('v'))
        .filter_map(|v| release_numbers(v).map(|numbers| (numbers, v)))
        .max()
        .map(|(_, v)| v.to_owned())
}

/// `X.Y.Z` at the start of `version`, followed by nothing or a `-`/`+` suffix.
fn release_numbers(version: &str) -> Option<[u64; 3]> {
    let end = version.find(['-', '+']).unwrap_or(version.len());
    let parts: Vec<&str> = version[..end].split('.').collect();
    let [x, y, z] = parts.as_slice() else { return None };
    let number = |s: &str| if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) { None } else { s.parse().ok() };
    Some([number(x)?, number(y)?, number(z)?])
}

/// A version names files, so it is limited to characters that need no quoting anywhere.
pub fn check_version(version: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-');
    if version.is_empty() || !version.chars().all(allowed) || version.starts_with(['.', '-']) {
        bail!("version {version:?} cannot name a file: use letters, digits, `.`, `_`, `+` and `-`, not starting with `.` or `-`");
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH` as the reproducible-builds spec defines it: a whole number of seconds.
pub fn parse_epoch(raw: &str) -> Result<u64> {
    let valid = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit());
    match raw.parse::<u64>() {
        Ok(epoch) if valid && epoch <= MAX_EPOCH => Ok(epoch),
        _ => bail!("SOURCE_DATE_EPOCH={raw:?} is not a whole number of seconds since 1970 (at most {MAX_EPOCH}): unset it or set it to e.g. `git log -1 --format=%ct`"),
    }
}

/// The paths `git status --porcelain -z` reports, less those under `ignored` prefixes.
pub fn dirty_paths(porcelain: &str, ignored: &[String]) -> Vec<String> {
    let mut paths = Vec::new();
    let mut records = porcelain.split('\0').filter(|r| !r.is_empty());
    while let Some(record) = records.next() {
        let (status, path) = record.split_at(record.len().min(3));
        if status.starts_with('R') || status.starts_with('C') {
            records.next(); // the rename's source path follows as its own record
        }
        if !ignored.iter().any(|prefix| path == prefix.trim_end_matches('/') || path.starts_with(prefix.as_str())) {
            paths.push(path.to_owned());
        }
    }
    paths
}

/// `outputs` inside `root` as git prints them: relative, with `/` and a trailing `/`.
fn relative_prefixes(root: &Path, outputs: &[&Path]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|dir| dir.strip_prefix(root).ok())
        .filter(|rel| !rel.as_os_str().is_empty())
        .map(|rel| format!("{}/", rel.to_string_lossy()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_release_tag_wins_without_its_v() {
        assert_eq!(version_from_tags(["v1.2.3"]), Some("1.2.3".into()));
        assert_eq!(version_from_tags(["latest", "v1.10.0", "v1.9.9", "v2.0.0-rc.1"]), Some("2.0.0-rc.1".into()));
        assert_eq!(version_from_tags(["v1.2", "release-3", "vx.y.z", "v1.2.3.4"]), None);
        assert_eq!(version_from_tags(Vec::<&str>::new()), None);
    }

    #[test]
    fn versions_must_be_safe_file_name_parts() {
        assert!(check_version("1.2.3-rc.1+build_7").is_ok());
        for bad in ["", "-1", ".hidden", "1/2", "1 2", "v1\n"] {
            assert!(check_version(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn epochs_are_whole_seconds_that_fit_a_tar_header() {
        assert_eq!(parse_epoch("0").unwrap(), 0);
        assert_eq!(parse_epoch("1700000000").unwrap(), 1_700_000_000);
        for bad in ["", " 1", "1.5", "-1", "+1", "1e9", "99999999999999"] {
            let message = parse_epoch(bad).unwrap_err().to_string();
            assert!(message.starts_with("SOURCE_DATE_EPOCH="), "{message}");
        }
    }

    #[test]
    fn dirty_paths_skip_the_release_outputs_and_rename_sources() {
        let porcelain = " M src/a.py\0?? dist/x.tar.gz\0R  new.txt\0old.txt\0?? target/t/\0?? distant.txt\0";
        let ignored = vec!["dist/".to_owned(), "target/".to_owned()];
        assert_eq!(dirty_paths(porcelain, &ignored), ["src/a.py", "new.txt", "distant.txt"]);
        assert!(dirty_paths("", &ignored).is_empty());
    }
}
