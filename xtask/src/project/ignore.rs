//! A `.dockerignore` file read as Docker reads it: one pattern a line (`#` comments), paths
//! from the context's root with `*`, `?`, `[...]` and `**`, `!` re-including, the last
//! matching line deciding, and a pattern that matches a directory leaving out what is in it.

use std::fs;
use std::io;
use std::path::{Component, Path};

use anyhow::{Context as _, Result};
use glob::{MatchOptions, Pattern};

#[derive(Debug, Default)]
pub struct IgnoreFile {
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    pattern: Pattern,
    /// A `!` line: what it matches is kept.
    keep: bool,
    /// The number of path components the pattern spans, to match it against a file's parents.
    depth: usize,
    /// `**` inside a name (`**.pyc`): its `*` crosses `/`, as Docker's `**` does.
    crosses: bool,
}

/// `*` stops at `/`, as Go's filepath.Match does; dot files are not special.
const OPTIONS: MatchOptions =
    MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };

impl IgnoreFile {
    /// The file's rules; no file, no rules.
    pub fn read(path: &Path) -> Result<IgnoreFile> {
        match fs::read_to_string(path) {
            Ok(text) => Ok(IgnoreFile::parse(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(IgnoreFile::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn parse(text: &str) -> IgnoreFile {
        let rules = text.lines().filter_map(rule).collect();
        IgnoreFile { rules }
    }

    /// Whether `path` (relative to the context's root) is left out.
    pub fn excludes(&self, path: &Path) -> bool {
        let parts: Vec<String> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let whole = parts.join("/");
        let mut excluded = false;
        for rule in &self.rules {
            let parent = (rule.depth < parts.len()).then(|| parts[..rule.depth].join("/"));
            let options = MatchOptions { require_literal_separator: !rule.crosses, ..OPTIONS };
            let matched = rule.pattern.matches_with(&whole, options)
                || parent.is_some_and(|p| rule.pattern.matches_with(&p, options));
            if matched {
                excluded = !rule.keep;
            }
        }
        excluded
    }
}

fn rule(line: &str) -> Option<Rule> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (keep, text) = match line.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, line),
    };
    let cleaned: Vec<&str> = text.split('/').filter(|part| !part.is_empty() && *part != ".").collect();
    if cleaned.is_empty() {
        return None;
    }
    let text = cleaned.join("/");
    // Docker allows `**` inside a name (`**.pyc`); the glob crate only as a whole component.
    let (pattern, crosses) = match Pattern::new(&text) {
        Ok(pattern) => (pattern, false),
        Err(_) => (Pattern::new(&text.replace("**", "*")).ok()?, true),
    };
    Some(Rule { pattern, keep, depth: cleaned.len(), crosses })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(rules: &str, path: &str) -> bool {
        IgnoreFile::parse(rules).excludes(Path::new(path))
    }

    #[test]
    fn patterns_are_anchored_at_the_root_and_cover_what_a_directory_holds() {
        let rules = "# comment\n/node_modules\ndocs/\n*.log\n";
        assert!(excluded(rules, "node_modules/a/b.js"));
        assert!(excluded(rules, "docs/index.md"));
        assert!(excluded(rules, "debug.log"));
        assert!(!excluded(rules, "app/debug.log"), "* does not cross /");
        assert!(!excluded(rules, "app/node_modules/x"), "patterns are anchored at the root");
    }

    #[test]
    fn double_stars_span_directories_and_the_last_matching_line_wins() {
        let rules = "**/*.md\n!README.md\nsecret?.txt\n[ab].txt\n";
        assert!(excluded(rules, "a/b/c.md") && excluded(rules, "c.md"));
        assert!(!excluded(rules, "README.md"));
        assert!(excluded(rules, "secret1.txt") && excluded(rules, "a.txt") && !excluded(rules, "c.txt"));
        assert!(excluded("**.pyc\n", "pkg/mod.pyc"));
    }
}
