//! `cargo xtask verify [DIR]`: re-hashes every artifact that SHA256SUMS or manifest.json
//! lists, checks that the two lists agree, and names each mismatching, missing or unlisted
//! file, and each pushed image not recorded as `repository@sha256:digest`. Any problem
//! makes the command fail.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};

use crate::cli::VerifyArgs;
use crate::context::Context;
use crate::manifest::{self, Artifact, Manifest};
use crate::registry;
use crate::release::checksums::{self, Sums};
use crate::release::{user_path, IMAGE_KINDS};
use crate::sha256;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    /// The file's bytes are not the ones listed.
    Mismatch {
        file: String,
        detail: String,
    },
    Missing {
        file: String,
    },
    /// A file in the directory that neither list mentions.
    Unlisted {
        file: String,
    },
    /// SHA256SUMS and manifest.json say different things about the file.
    Disagree {
        file: String,
        detail: String,
    },
    /// A pushed image recorded as something other than `repository@sha256:digest`.
    BadImage {
        version: String,
        kind: String,
        detail: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Mismatch { file, detail } => write!(f, "mismatch: {file} ({detail})"),
            Problem::Missing { file } => write!(f, "missing: {file}"),
            Problem::Unlisted { file } => write!(f, "unlisted: {file}"),
            Problem::Disagree { file, detail } => write!(f, "disagree: {file} ({detail})"),
            Problem::BadImage { version, kind, detail } => write!(f, "bad image: {kind} of {version} ({detail})"),
        }
    }
}

pub fn verify(cx: &Context, args: VerifyArgs) -> Result<()> {
    let dir = match &args.dir {
        Some(dir) => user_path(dir)?,
        None => cx.path("dist"),
    };
    let not_found = |list: &str| {
        anyhow!("{} not found: pass the directory `cargo xtask release` wrote to", dir.join(list).display())
    };
    // An absent SHA256SUMS reads as an empty list, which a release directory never has.
    if !dir.join(checksums::FILE_NAME).is_file() {
        return Err(not_found(checksums::FILE_NAME));
    }
    let sums = checksums::read(&dir)?;
    let manifest = manifest::read(&dir)?.ok_or_else(|| not_found(manifest::FILE_NAME))?;
    let problems = problems(&dir, &sums, &manifest)?;
    for problem in &problems {
        println!("{problem}");
    }
    if !problems.is_empty() {
        bail!("{} problem(s) in {}: the artifacts there are not the ones released", problems.len(), dir.display());
    }
    println!("ok: {} artifacts in {} match SHA256SUMS and manifest.json", sums.len(), dir.display());
    Ok(())
}

/// Every problem in `dir`, listed files in name order, then unlisted ones.
fn problems(dir: &Path, sums: &Sums, manifest: &Manifest) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    let mut described: BTreeMap<&str, &Artifact> = BTreeMap::new();
    for artifact in manifest.artifacts() {
        if described.insert(&artifact.file, artifact).is_some() {
            problems.push(disagree(&artifact.file, "listed twice in manifest.json"));
        }
    }
    let listed: BTreeSet<&str> = sums.keys().map(String::as_str).chain(described.keys().copied()).collect();
    for &file in &listed {
        problems.extend(check(dir, file, sums.get(file), described.get(file).copied()));
    }
    problems.extend(image_problems(manifest));
    for file in files_in(dir)? {
        let known = listed.contains(file.as_str()) || file == checksums::FILE_NAME || file == manifest::FILE_NAME;
        if !known {
            problems.push(Problem::Unlisted { file });
        }
    }
    Ok(problems)
}

/// The problems of one listed file: the lists disagreeing, then the file itself.
fn check(dir: &Path, file: &str, sum: Option<&String>, artifact: Option<&Artifact>) -> Vec<Problem> {
    if !checksums::is_plain_name(file) {
        return vec![disagree(file, "not a plain file name: the lists must only name files in this directory")];
    }
    let mut problems = Vec::new();
    match (sum, artifact) {
        (Some(_), None) => problems.push(disagree(file, "in SHA256SUMS but not in manifest.json")),
        (None, Some(_)) => problems.push(disagree(file, "in manifest.json but not in SHA256SUMS")),
        (Some(sum), Some(a)) if *sum != a.sha256 => {
            problems.push(disagree(file, "the two lists give different sha256"))
        }
        _ => {}
    }
    let expected = sum.or(artifact.map(|a| &a.sha256)).expect("a listed file is in one list at least");
    let mismatch = |detail: String| Problem::Mismatch { file: file.to_owned(), detail };
    match sha256::hash_file(&dir.join(file)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => problems.push(Problem::Missing { file: file.to_owned() }),
        Err(e) => problems.push(mismatch(format!("cannot read it: {e}"))),
        Ok((_, actual)) if actual != *expected => {
            problems.push(mismatch(format!("sha256 is {actual}, listed {expected}")))
        }
        Ok((size, _)) => match artifact {
            Some(a) if a.size != size => {
                problems.push(mismatch(format!("{size} bytes, manifest.json says {}", a.size)))
            }
            _ => {}
        },
    }
    problems
}

/// The pushed images of every release that are not one of ours pinned by digest.
fn image_problems(manifest: &Manifest) -> Vec<Problem> {
    let releases = std::iter::once(&manifest.latest).chain(&manifest.earlier);
    let images = releases.flat_map(|r| r.images.iter().map(move |(kind, reference)| (&r.version, kind, reference)));
    let problem = |version: &str, kind: &str, detail: String| Problem::BadImage {
        version: version.to_owned(),
        kind: kind.to_owned(),
        detail,
    };
    images
        .filter_map(|(version, kind, reference)| {
            if !IMAGE_KINDS.contains(&kind.as_str()) {
                return Some(problem(version, kind, format!("not one of {}", IMAGE_KINDS.join(", "))));
            }
            let why = registry::check_pinned(reference).err()?;
            Some(problem(version, kind, format!("{reference:?}: {why}")))
        })
        .collect()
}

fn disagree(file: &str, detail: &str) -> Problem {
    Problem::Disagree { file: file.to_owned(), detail: detail.to_owned() }
}

/// Names of everything in `dir`, sorted.
fn files_in(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}
