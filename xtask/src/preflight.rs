//! The env file checks run before anything starts: `cargo xtask prod` and `check --prod`
//! refuse an unsafe `.env.prod`, `check` refuses a `.env` that is malformed or misread.
//! Each problem is one line naming the variable and the fix; all of them are reported at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::SystemTime;

use anyhow::{bail, Result};

use crate::certs;
use crate::envfile::{self, Entry, EnvFile, EXAMPLE_VALUE};

/// Django's own minimum for a production key (its deploy check security.W009).
const MIN_SECRET_KEY_CHARS: usize = 50;

const NEW_SECRET_KEY: &str = "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'";
const NEW_PASSWORD: &str = "python3 -c 'import secrets; print(secrets.token_hex(16))'";

/// A check of one variable: it passes, or names that variable's problem.
type Verdict = Result<(), Problem>;

/// One reason to refuse a file: where (the statement's first line, when there is one) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    line: Option<usize>,
    message: String,
}

impl Problem {
    fn at(entry: &Entry, message: String) -> Problem {
        Problem { line: Some(entry.first_line), message }
    }

    fn missing(key: &str, fix: &str) -> Problem {
        Problem { line: None, message: format!("{key} is missing: {fix}") }
    }
}

/// Refuses `.env.prod` when it is malformed or unsafe, its TLS settings included (files
/// relative to `root`); prints one line a problem, and the TLS warnings, to stderr.
pub fn refuse_unsafe_prod(file: &EnvFile, root: &Path) -> Result<()> {
    let mut problems = prod_problems(file);
    if file.malformed.is_empty() {
        let tls = certs::preflight::check(root, file, SystemTime::now());
        for warning in &tls.warnings {
            eprintln!("{}: warning: {warning}", envfile::PROD_FILE);
        }
        problems.extend(tls.problems.into_iter().map(|f| Problem { line: f.line, message: f.message }));
    }
    refuse(envfile::PROD_FILE, "is not safe for production", problems)
}

/// Refuses `.env` when Compose would refuse or misread it.
pub fn refuse_invalid_dev(file: &EnvFile) -> Result<()> {
    refuse(envfile::DEV_FILE, "is not valid", dev_problems(file))
}

fn refuse(name: &str, verdict: &str, problems: Vec<Problem>) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    for problem in &problems {
        match problem.line {
            Some(line) => eprintln!("{name}:{line}: {}", problem.message),
            None => eprintln!("{name}: {}", problem.message),
        }
    }
    let count = if problems.len() == 1 { "1 problem".to_owned() } else { format!("{} problems", problems.len()) };
    bail!("{name} {verdict} ({count} above); nothing was started")
}

/// Everything wrong with a production env file, in line order, then what is missing.
fn prod_problems(file: &EnvFile) -> Vec<Problem> {
    in_order(file, |file| [well_formed(file), safe(file), redis(file)].concat())
}

/// `REDIS_URL`'s problems (see [`crate::redis::problems`]), at its line.
fn redis(file: &EnvFile) -> Vec<Problem> {
    let at = |key: &str| file.get(key).map(|e| e.first_line);
    crate::redis::problems(file).into_iter().map(|(key, message)| Problem { line: at(key), message }).collect()
}

/// Everything wrong with a development env file.
fn dev_problems(file: &EnvFile) -> Vec<Problem> {
    in_order(file, well_formed)
}

/// Only the malformed lines when there are any: the values of a file Compose refuses
/// mean nothing yet (an unclosed quote swallows every line after it).
fn in_order(file: &EnvFile, checks: fn(&EnvFile) -> Vec<Problem>) -> Vec<Problem> {
    if !file.malformed.is_empty() {
        return file.malformed.iter().map(|m| Problem { line: Some(m.line), message: m.message.clone() }).collect();
    }
    let mut problems = checks(file);
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    problems
}

const BOOLEAN: &str = "is not a boolean: use one of 0/1/true/false/yes/no";
const PORT: &str = "is not a port number: use one from 1 to 65535";

/// A variable, the test its value must pass, and what to say when it fails.
type Rule = (&'static str, fn(&str) -> bool, &'static str);

/// How a value must look when it is given: the settings, gunicorn and the compose files
/// (`${HTTP_PORT:-80}`) all treat a blank value as unset.
const VALUE_RULES: &[Rule] = &[
    ("DEBUG", is_bool, BOOLEAN),
    ("SECURE_SSL_REDIRECT", is_bool, BOOLEAN),
    ("SECURE_HSTS_INCLUDE_SUBDOMAINS", is_bool, BOOLEAN),
    ("SECURE_HSTS_PRELOAD", is_bool, BOOLEAN),
    ("DEV_PORT", is_port, PORT),
    ("HTTP_PORT", is_port, PORT),
    ("HTTPS_PORT", is_port, PORT),
    ("POSTGRES_PORT", is_port, PORT),
    (
        "GUNICORN_WORKERS",
        is_positive,
        "is not a positive whole number: use e.g. 3, or leave it empty for 2 per CPU + 1",
    ),
    ("SECURE_HSTS_SECONDS", is_whole, "is not a whole number of seconds: use e.g. 31536000 (one year)"),
];

/// Values a program would refuse or misread, whatever the stack.
fn well_formed(file: &EnvFile) -> Vec<Problem> {
    let mut problems = duplicates(file);
    for &(key, valid, what) in VALUE_RULES {
        let Some(entry) = file.get(key) else { continue };
        let value = entry.value.trim();
        if !value.is_empty() && !valid(value) {
            problems.push(Problem::at(entry, format!("{key}={:?} {what}", entry.value)));
        }
    }
    problems.extend(allowed_host_entries(file));
    problems.extend(trusted_origins(file));
    problems
}

/// What production must never run with.
fn safe(file: &EnvFile) -> Vec<Problem> {
    let database = [
        (
            "POSTGRES_HOST",
            "set db for the bundled database or the managed database's host name (without it Django uses SQLite)",
        ),
        ("POSTGRES_USER", "set the database user, e.g. POSTGRES_USER=django"),
        ("POSTGRES_DB", "set the database name, e.g. POSTGRES_DB=django"),
    ];
    let database = database.into_iter().filter_map(|(key, fix)| required(file, key, fix).err());
    let checks = [debug_off(file), secret_key(file), allowed_hosts(file), postgres_password(file)];
    checks.into_iter().filter_map(Result::err).chain(database).collect()
}

/// Compose keeps the last of several statements for a key; a second one is usually a
/// forgotten edit that silently wins.
fn duplicates(file: &EnvFile) -> Vec<Problem> {
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for entry in &file.entries {
        let Some(line) = first.get(entry.key.as_str()) else {
            first.insert(&entry.key, entry.first_line);
            continue;
        };
        let message =
            format!("{} is set again (first on line {line}); Compose uses this last one: keep only one", entry.key);
        problems.push(Problem::at(entry, message));
    }
    problems
}

/// The statement setting `key`, or the problem when it is unset or blank (the settings
/// treat both alike).
fn required<'f>(file: &'f EnvFile, key: &str, fix: &str) -> Result<&'f Entry, Problem> {
    match file.get(key) {
        None => Err(Problem::missing(key, fix)),
        Some(entry) if entry.value.trim().is_empty() => Err(Problem::at(entry, format!("{key} is empty: {fix}"))),
        Some(entry) => Ok(entry),
    }
}

fn debug_off(file: &EnvFile) -> Verdict {
    match file.get("DEBUG") {
        Some(entry) if parse_bool(&entry.value) == Some(true) => Err(Problem::at(
            entry,
            format!("DEBUG={} shows tracebacks and settings to every visitor: set DEBUG=0", entry.value),
        )),
        _ => Ok(()),
    }
}

fn secret_key(file: &EnvFile) -> Verdict {
    let fix = format!("set {MIN_SECRET_KEY_CHARS} or more random characters, e.g. the output of {NEW_SECRET_KEY}");
    let entry = required(file, "SECRET_KEY", &fix)?;
    // The settings strip the value, so blanks around it do not count.
    let key = entry.value.trim();
    let chars = key.chars().count();
    let why = if key == EXAMPLE_VALUE {
        format!("is the example value {EXAMPLE_VALUE}")
    } else if chars < MIN_SECRET_KEY_CHARS {
        format!("has only {chars} characters")
    } else if key.starts_with("django-insecure-") {
        "starts with django-insecure-, the mark of a development key".to_owned()
    } else if key.chars().collect::<BTreeSet<_>>().len() < 5 {
        "has fewer than 5 different characters".to_owned()
    } else {
        return Ok(());
    };
    Err(Problem::at(entry, format!("SECRET_KEY {why}: {fix}")))
}

fn allowed_hosts(file: &EnvFile) -> Verdict {
    let fix = "set the site's host names, e.g. ALLOWED_HOSTS=example.com";
    let entry = required(file, "ALLOWED_HOSTS", fix)?;
    let message = if list(&entry.value).next().is_none() {
        format!("ALLOWED_HOSTS is empty: {fix}")
    } else if list(&entry.value).any(|host| host == "*") {
        "ALLOWED_HOSTS contains *, which accepts any Host header: list the site's host names".to_owned()
    } else {
        return Ok(());
    };
    Err(Problem::at(entry, message))
}

/// Django matches ALLOWED_HOSTS against the bare host: an entry with a scheme, port or path never matches.
fn allowed_host_entries(file: &EnvFile) -> Vec<Problem> {
    let Some(entry) = file.get("ALLOWED_HOSTS") else { return Vec::new() };
    list(&entry.value)
        .filter(|&raw| bare_host(raw) != raw)
        .map(|raw| {
            let message = format!("ALLOWED_HOSTS entry {raw:?} is not a bare host name: write {}", bare_host(raw));
            Problem::at(entry, message)
        })
        .collect()
}

/// Django requires the scheme in each trusted origin (its check 4_0.E001) and compares the
/// whole origin, so a path never matches.
fn trusted_origins(file: &EnvFile) -> Vec<Problem> {
    let Some(entry) = file.get("CSRF_TRUSTED_ORIGINS") else { return Vec::new() };
    list(&entry.value)
        .filter_map(|raw| {
            let rest = raw.strip_prefix("https://").or_else(|| raw.strip_prefix("http://"));
            let why = match rest {
                None => "has no http:// or https:// scheme",
                Some(rest) if rest.contains('/') => "has a path",
                Some(_) => return None,
            };
            let host = raw.split_once("://").map_or(raw, |(_, host)| host);
            let origin = format!("https://{}", host.split('/').next().unwrap_or(host));
            Some(Problem::at(entry, format!("CSRF_TRUSTED_ORIGINS entry {raw:?} {why}: write {origin}")))
        })
        .collect()
}

fn postgres_password(file: &EnvFile) -> Verdict {
    let fix = format!("set a random password, e.g. the output of {NEW_PASSWORD}");
    let entry = required(file, "POSTGRES_PASSWORD", &fix)?;
    if entry.value.trim() != EXAMPLE_VALUE {
        return Ok(());
    }
    Err(Problem::at(entry, format!("POSTGRES_PASSWORD is the example value {EXAMPLE_VALUE}: {fix}")))
}

/// The booleans the settings accept, in any case, blanks around them ignored.
fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

fn is_bool(value: &str) -> bool {
    parse_bool(value).is_some()
}

fn is_port(value: &str) -> bool {
    whole(value).is_some_and(|n| (1..=65535).contains(&n))
}

fn is_positive(value: &str) -> bool {
    whole(value).is_some_and(|n| n >= 1)
}

fn is_whole(value: &str) -> bool {
    whole(value).is_some()
}

/// Digits only: Python's `int()` would also take `+3` or `1_000`, which no one means here.
fn whole(value: &str) -> Option<u64> {
    value.bytes().all(|b| b.is_ascii_digit()).then(|| value.parse().ok()).flatten()
}

/// The entries of a comma list, trimmed, without empty ones.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|item| !item.is_empty())
}

/// `raw` without scheme, path and port (an IPv6 literal in brackets keeps its colons).
fn bare_host(raw: &str) -> &str {
    let host = raw.split_once("://").map_or(raw, |(_, rest)| rest);
    let host = host.split('/').next().unwrap_or(host);
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.split(':').next().unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envfile;

    fn problems(text: &str) -> Vec<String> {
        prod_problems(&envfile::parse(text, &|_| None)).into_iter().map(|p| p.message).collect()
    }

    const GOOD: &str = "SECRET_KEY=Zq3vN8pL2xR7tK4mW9bY6cH1dF5gJ0sA-_.+QwErTyUiOpAsDfGhJkLzXcVbNm\n\
                        ALLOWED_HOSTS=example.com\nPOSTGRES_HOST=db\nPOSTGRES_USER=django\nPOSTGRES_DB=django\n\
                        POSTGRES_PASSWORD=0123456789abcdef\n";

    #[test]
    fn a_complete_file_passes() {
        assert_eq!(problems(GOOD), Vec::<String>::new());
        assert_eq!(
            problems(&format!("{GOOD}DEBUG=No\nSECURE_SSL_REDIRECT=TRUE\nHTTP_PORT=8080\n")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn missing_variables_come_after_the_problems_on_lines() {
        let found = problems("DEBUG=yes\n");
        assert!(found[0].starts_with("DEBUG=yes shows"), "{found:?}");
        assert!(found[1..].iter().all(|m| m.contains(" is missing: ")), "{found:?}");
    }

    #[test]
    fn hosts_lose_scheme_port_and_path() {
        assert_eq!(bare_host("https://example.com:8443/app"), "example.com");
        assert_eq!(bare_host("[::1]:8000"), "[::1]");
        assert_eq!(bare_host(".example.com"), ".example.com");
    }

    #[test]
    fn whole_numbers_are_digits_only() {
        assert_eq!(whole("3"), Some(3));
        assert_eq!(whole("+3"), None);
        assert_eq!(whole(""), None);
        assert_eq!(whole("3s"), None);
    }
}
