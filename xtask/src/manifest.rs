//! manifest.json: what each release in a directory is made of. The top level describes
//! the latest release; `earlier` keeps the records of the releases already there, so that
//! every line of SHA256SUMS is described by one artifact of the manifest.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(flatten)]
    pub latest: Release,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<Release>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub name: String,
    pub version: String,
    pub git_commit: String,
    pub source_date_epoch: u64,
    pub artifacts: Vec<Artifact>,
    /// With `--push`: per image (`web`, `static`) the registry's name for it,
    /// `repository@sha256:digest`, which nodes pull.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub file: String,
    /// `static` or `image`.
    pub kind: String,
    pub size: u64,
    pub sha256: String,
    /// Static archives only: files and symlinks in it, and the size of the tar stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncompressed_bytes: Option<u64>,
}

impl Manifest {
    /// `latest` on top of what `previous` recorded. A record of the same name and version
    /// is replaced, but its artifacts that this run did not make (the image, when a version
    /// is released again without `--image`) stay in it: they stay published, and in
    /// SHA256SUMS. So do its pushed images when this run pushed none. Earlier records are
    /// sorted so the file does not depend on history order.
    pub fn merge(previous: Option<Manifest>, mut latest: Release) -> Manifest {
        let mut earlier: Vec<Release> = previous.map(|m| [vec![m.latest], m.earlier].concat()).unwrap_or_default();
        let same = |r: &Release| (&r.name, &r.version) == (&latest.name, &latest.version);
        let kept: Vec<Artifact> = earlier
            .iter()
            .filter(|r| same(r))
            .flat_map(|r| &r.artifacts)
            .filter(|old| latest.artifacts.iter().all(|new| new.file != old.file))
            .cloned()
            .collect();
        if latest.images.is_empty() {
            latest.images = earlier.iter().filter(|r| same(r)).flat_map(|r| r.images.clone()).collect();
        }
        earlier.retain(|r| !same(r));
        latest.artifacts.extend(kept);
        earlier.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        earlier.dedup_by(|a, b| (&a.name, &a.version) == (&b.name, &b.version));
        Manifest { latest, earlier }
    }

    pub fn artifacts(&self) -> impl Iterator<Item = &Artifact> {
        std::iter::once(&self.latest).chain(&self.earlier).flat_map(|r| &r.artifacts)
    }

    pub fn to_json(&self) -> String {
        let mut json = serde_json::to_string_pretty(self).expect("a manifest always serialises");
        json.push('\n');
        json
    }
}

/// Reads `dir/manifest.json`; `None` when there is none yet.
pub fn read(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(FILE_NAME);
    let Some(text) = crate::files::read_if_present(&path)? else { return Ok(None) };
    let manifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a release manifest: fix or delete it", path.display()))?;
    Ok(Some(manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(version: &str) -> Release {
        let artifact = Artifact {
            file: format!("site-{version}-static.tar.gz"),
            kind: "static".into(),
            size: 10,
            sha256: "ab".repeat(32),
            files: Some(2),
            uncompressed_bytes: Some(3072),
        };
        Release {
            name: "site".into(),
            version: version.into(),
            git_commit: "c0".repeat(20),
            source_date_epoch: 7,
            artifacts: vec![artifact],
            images: BTreeMap::new(),
        }
    }

    #[test]
    fn merging_keeps_other_versions_sorted_and_replaces_the_same_one() {
        let first = Manifest::merge(None, release("1.0.0"));
        let second = Manifest::merge(Some(first), release("2.0.0"));
        let third = Manifest::merge(Some(second.clone()), release("1.1.0"));
        assert_eq!(third.earlier.iter().map(|r| r.version.as_str()).collect::<Vec<_>>(), ["1.0.0", "2.0.0"]);
        let again = Manifest::merge(Some(second), release("1.0.0"));
        assert_eq!(again.earlier.len(), 1);
        assert_eq!(again.artifacts().count(), 2);
    }

    #[test]
    fn pushed_images_stay_recorded_when_the_version_is_released_again_without_push() {
        let mut pushed = release("1.0.0");
        pushed.images.insert("web".into(), format!("r/web@sha256:{}", "0".repeat(64)));
        let first = Manifest::merge(None, pushed.clone());
        assert!(first.to_json().contains("\"images\": {\n    \"web\": \"r/web@sha256:"), "{}", first.to_json());
        let again = Manifest::merge(Some(first), release("1.0.0"));
        assert_eq!(again.latest.images, pushed.images);
        assert!(!Manifest::merge(None, release("1.0.0")).to_json().contains("images"));
    }

    #[test]
    fn the_json_has_the_latest_release_at_the_top_and_round_trips() {
        let manifest = Manifest::merge(None, release("1.0.0"));
        let json = manifest.to_json();
        assert!(json.starts_with("{\n  \"name\": \"site\",\n  \"version\": \"1.0.0\",\n  \"git_commit\""), "{json}");
        assert!(!json.contains("earlier"), "{json}");
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), manifest);
    }
}
