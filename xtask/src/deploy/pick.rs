//! Which release a deploy runs: one of dist/manifest.json's records that `release --push`
//! pinned to the registry, so that every node pulls the same bytes by digest.

use std::cmp::Ordering;
use std::path::Path;

use anyhow::{bail, Context as _, Result};

use crate::manifest::{self, Release};
use crate::registry;

/// A pushed release: its version and the pinned reference of each image kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub version: String,
    pub web: String,
    pub static_files: String,
    /// The backup service's image: this release's, else that of the newest release that
    /// pushed one (it depends on the database's Postgres, not on the release), if any.
    pub backup: Option<String>,
}

/// `version` from the manifest in `dist`, or without one the newest pushed release there.
pub fn pick(dist: &Path, version: Option<&str>) -> Result<Pushed> {
    let manifest = manifest::read(dist)?.with_context(|| {
        format!("{} has no {}: run `cargo xtask release --push` first", dist.display(), manifest::FILE_NAME)
    })?;
    let releases: Vec<&Release> = std::iter::once(&manifest.latest).chain(&manifest.earlier).collect();
    let chosen = match version {
        Some(wanted) => {
            let wanted = wanted.strip_prefix('v').unwrap_or(wanted);
            releases.into_iter().find(|r| r.version == wanted).with_context(|| {
                format!("{} has no release {wanted}: release it with `cargo xtask release --push --version {wanted}`, or pick one it has", dist.display())
            })?
        }
        None => releases
            .into_iter()
            .filter(|r| !r.images.is_empty())
            .max_by(|a, b| newer(&a.version, &b.version))
            .with_context(|| {
                format!("no release in {} was pushed: run `cargo xtask release --push`", dist.display())
            })?,
    };
    let mut pushed = pushed(chosen)?;
    if pushed.backup.is_none() {
        let with_backup =
            std::iter::once(&manifest.latest).chain(&manifest.earlier).filter(|r| r.images.contains_key(BACKUP));
        if let Some(newest) = with_backup.max_by(|a, b| newer(&a.version, &b.version)) {
            pushed.backup = Some(pinned(newest, BACKUP)?);
        }
    }
    Ok(pushed)
}

/// The image kind of the backup service.
const BACKUP: &str = "backup";

fn pushed(release: &Release) -> Result<Pushed> {
    let image = |kind: &str| pinned(release, kind);
    let backup = release.images.contains_key(BACKUP).then(|| image(BACKUP)).transpose()?;
    Ok(Pushed { version: release.version.clone(), web: image("web")?, static_files: image("static")?, backup })
}

/// `release`'s pushed image of `kind`, checked to be pinned by digest.
fn pinned(release: &Release, kind: &str) -> Result<String> {
    let Some(reference) = release.images.get(kind) else {
        bail!(
            "release {} has no pushed {kind} image in manifest.json: push it with `cargo xtask release --push --version {}`",
            release.version,
            release.version
        );
    };
    registry::check_pinned(reference).map_err(|why| {
        anyhow::anyhow!(
            "the {kind} image of release {} in manifest.json is not pinned ({why}): push it again",
            release.version
        )
    })?;
    Ok(reference.to_string())
}

/// Orders versions by their dot-separated numbers (1.10.0 after 1.9.2), then as text.
fn newer(a: &str, b: &str) -> Ordering {
    let numbers = |v: &str| -> Vec<u64> {
        v.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).map(|p| p.parse().unwrap_or(0)).collect()
    };
    numbers(a).cmp(&numbers(b)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_their_numbers() {
        assert_eq!(newer("1.10.0", "1.9.2"), Ordering::Greater);
        assert_eq!(newer("v2.0.0", "1.99.99"), Ordering::Greater);
        assert_eq!(newer("0.1.0", "0.1.0"), Ordering::Equal);
    }
}
