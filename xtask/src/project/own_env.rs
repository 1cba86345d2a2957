//! The project's own example env file (`.env.example` and the like, committed, with
//! placeholder values): the variables its settings expect. `init` adds those the stack's
//! example does not set to the env files it writes, and the image build exports them (with
//! their example values) while collectstatic imports the settings.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;

use anyhow::{Context as _, Result};

use crate::envfile::{self, Entry};

/// The names such a file goes by, most common first.
const NAMES: &[&str] = &[".env.example", ".env.sample", ".env.template", ".env.dist", "env.example"];

/// The project's example env file, as its path from the root and its text: at the root, else
/// in the project's directory.
pub fn find(root: &Path, dir: &str) -> Result<Option<(String, String)>> {
    let dirs = if dir == "." || dir.is_empty() { vec![""] } else { vec!["", dir] };
    for dir in dirs {
        for name in NAMES {
            let shown = if dir.is_empty() { (*name).to_owned() } else { format!("{dir}/{name}") };
            match fs::read_to_string(root.join(&shown)) {
                Ok(text) => return Ok(Some((shown, text))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot read {shown}")),
            }
        }
    }
    Ok(None)
}

/// The statements of `theirs` whose variables `ours` does not set, the last of each name, in
/// their order; `Err(line)` when `theirs` is no env file Compose reads.
pub fn extra(ours: &str, theirs: &str) -> std::result::Result<Vec<Entry>, usize> {
    let ours = envfile::parse(ours, &|_| None);
    let parsed = envfile::parse(theirs, &|_| None);
    if let Some(bad) = parsed.malformed.first() {
        return Err(bad.line);
    }
    let mut seen = BTreeSet::new();
    let mut entries: Vec<Entry> = parsed
        .entries
        .into_iter()
        .rev()
        .filter(|entry| ours.get(&entry.key).is_none() && seen.insert(entry.key.clone()))
        .collect();
    entries.reverse();
    Ok(entries)
}

/// What the image build exports while collectstatic imports the settings: the stack's own
/// example (`ours`, placeholders all) with a placeholder key and host, then the project's
/// example variables it does not set, as `export KEY='value'` lines. A malformed example of
/// the project's adds nothing.
pub fn placeholders(root: &Path, dir: &str, ours: &str) -> Result<String> {
    let placeholder = |key: &str| match key {
        "SECRET_KEY" => Some("collectstatic-at-build-time-only-not-a-secret-placeholder-value"),
        "ALLOWED_HOSTS" => Some("localhost"),
        _ => None,
    };
    let stack = envfile::parse(ours, &|_| None).entries;
    let mut vars: Vec<(String, String)> = stack
        .into_iter()
        .filter(|e| !e.value.is_empty())
        .map(|e| (e.key.clone(), placeholder(&e.key).map_or(e.value, str::to_owned)))
        .collect();
    for key in ["SECRET_KEY", "ALLOWED_HOSTS"] {
        if !vars.iter().any(|(k, _)| k == key) {
            vars.push((key.to_owned(), placeholder(key).unwrap_or_default().to_owned()));
        }
    }
    if let Some((_, theirs)) = find(root, dir)? {
        vars.extend(extra(ours, &theirs).unwrap_or_default().into_iter().map(|e| (e.key, e.value)));
    }
    // The image's own settings module and path stay the image's.
    vars.retain(|(key, _)| !matches!(key.as_str(), "DJANGO_SETTINGS_MODULE" | "PYTHONPATH"));
    let quote = |v: &str| shlex::try_quote(v).map(|q| q.into_owned()).unwrap_or_else(|_| "''".to_owned());
    Ok(vars.iter().map(|(k, v)| format!("export {k}={}\n", quote(v))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_carry_the_projects_variables_and_never_its_settings_module() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join(".env.sample"), "DEBUG=1\nGREETING=\"it's here\"\nDJANGO_SETTINGS_MODULE=x.local\n")
            .unwrap();
        let text = placeholders(
            root.path(),
            ".",
            "DEBUG=0\nSECRET_KEY=change-me\nREDIS_URL=redis://:change-me@redis:6379/0\n",
        )
        .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "export DEBUG=0");
        assert!(lines[1].starts_with("export SECRET_KEY=collectstatic-at-build-time-only"), "{text}");
        assert_eq!(lines[2], "export REDIS_URL=redis://:change-me@redis:6379/0");
        assert_eq!(lines[3], "export ALLOWED_HOSTS=localhost");
        assert_eq!(lines[4..], ["export GREETING=\"it's here\""]);
    }
}
