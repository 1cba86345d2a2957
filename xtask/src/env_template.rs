//! The stacks' example env files (`docker/dev.env.example`, `docker/prod.env.example`) filled
//! in: fresh secrets from the OS random generator, the values a command sets, and the
//! variables of the project's own example that the stack's does not set. `init` writes the
//! result as `.env` or `.env.prod`; `test` as its throwaway stack's env file.

use std::fs;

use anyhow::{anyhow, bail, Context as _, Result};

use crate::context::Context;
use crate::envfile;
use crate::project::{own_env, Description};

/// The example files, from the project root.
pub const DEV: &str = "docker/dev.env.example";
pub const PROD: &str = "docker/prod.env.example";

/// Characters Compose reads unquoted and unchanged: no `$`, `#`, quote, backslash or blank.
const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+";
const KEY_LEN: usize = 64;
/// Letters and digits only: a password often ends up in a database URL, where others need escaping.
const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const PASSWORD_LEN: usize = 32;

/// An example file and the values to set in it, secrets aside.
#[derive(Debug, Clone)]
pub struct Template {
    pub example: &'static str,
    pub settings: Vec<(&'static str, String)>,
}

impl Template {
    /// The file with fresh secrets, and the same with the secrets masked (for `--dry-run`).
    pub fn render(&self, cx: &Context) -> Result<(String, String)> {
        let example = read_example(cx, self.example)?;
        let fill =
            |settings: Vec<_>| fill(&example, &settings).with_context(|| format!("{} is malformed", self.example));
        let fresh = Secrets {
            key: random(KEY_ALPHABET, KEY_LEN)?,
            database: random(PASSWORD_ALPHABET, PASSWORD_LEN)?,
            redis: random(PASSWORD_ALPHABET, PASSWORD_LEN)?,
        };
        let shown = Secrets {
            key: format!("<{KEY_LEN} random characters>"),
            database: "<random password>".into(),
            redis: "<random password>".into(),
        };
        let text = fill(self.with_secrets(&example, fresh))?;
        let masked = fill(self.with_secrets(&example, shown))?;
        Ok((text, masked))
    }

    /// The settings with the secrets first: the key, the database's password and, when the
    /// example has the bundled Redis, its password and the URL that carries it.
    fn with_secrets(&self, example: &str, secrets: Secrets) -> Vec<(&'static str, String)> {
        let mut settings = vec![("SECRET_KEY", secrets.key), ("POSTGRES_PASSWORD", secrets.database)];
        if envfile::parse(example, &|_| None).get("REDIS_PASSWORD").is_some() {
            let url = format!("redis://:{}@{}:6379/0", secrets.redis, crate::redis::BUNDLED_HOST);
            settings.extend([("REDIS_PASSWORD", secrets.redis), ("REDIS_URL", url)]);
        }
        settings.into_iter().chain(self.settings.iter().cloned()).collect()
    }
}

/// The secrets a file is filled with (or what stands for them where it is shown).
struct Secrets {
    key: String,
    database: String,
    redis: String,
}

/// An env file for a throwaway production stack (`cargo xtask test`): the production example
/// with fresh secrets, the bundled database and `settings` on top; written by the caller's plan.
pub fn throwaway_prod(cx: &Context, settings: Vec<(&'static str, String)>) -> Result<String> {
    let mut base = vec![
        ("DEBUG", "0".to_owned()),
        ("ALLOWED_HOSTS", "localhost".to_owned()),
        ("CSRF_TRUSTED_ORIGINS", "https://localhost".to_owned()),
        ("POSTGRES_HOST", "db".to_owned()),
    ];
    base.extend(settings);
    Ok(Template { example: PROD, settings: base }.render(cx)?.0)
}

/// The pipeline's example file, followed by the variables of the project's own example
/// (`.env.example` and the like, at the root or in the project's directory) that it does not
/// set: a project whose settings require a variable of its own gets it in both env files.
fn read_example(cx: &Context, example: &str) -> Result<String> {
    let path = cx.path(example);
    let ours = fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}, the template init fills", path.display()))?;
    let dir = Description::load(cx)?.dir;
    let Some((name, theirs)) = own_env::find(&cx.root, &dir)? else { return Ok(ours) };
    let added = project_variables(&ours, &name, &theirs);
    Ok(ours + &added)
}

/// The statements of `theirs` (the file `name`) whose variables `ours` does not set, as they
/// are written there, under a line saying where they come from; nothing when there are none.
fn project_variables(ours: &str, name: &str, theirs: &str) -> String {
    let extra = match own_env::extra(ours, theirs) {
        Ok(extra) => extra,
        Err(line) => {
            eprintln!("warning: {name} is not an env file Compose reads (line {line}): its variables are not copied");
            return String::new();
        }
    };
    if extra.is_empty() {
        return String::new();
    }
    let lines: Vec<&str> = theirs.lines().collect();
    let statements: Vec<String> = extra.iter().map(|e| lines[e.first_line - 1..e.last_line].join("\n")).collect();
    format!(
        "\n# The project's own variables, from {name} (the stack sets the others above).\n{}\n",
        statements.join("\n")
    )
}

/// The example's text with each setting's statement replaced (or appended when absent),
/// keeping the comments that document every variable.
fn fill(example: &str, settings: &[(&str, String)]) -> Result<String> {
    let parsed = envfile::parse(example, &|_| None);
    if let Some(bad) = parsed.malformed.first() {
        bail!("line {}: {}", bad.line, bad.message);
    }
    let mut lines: Vec<String> = example.lines().map(str::to_owned).collect();
    let mut spans: Vec<_> = settings.iter().filter_map(|(key, value)| Some((parsed.get(key)?, key, value))).collect();
    // Bottom up: replacing a multi-line value shifts only the lines below it, already done.
    spans.sort_by_key(|(entry, ..)| std::cmp::Reverse(entry.first_line));
    for (entry, key, value) in spans {
        lines.splice(entry.first_line - 1..entry.last_line, [format!("{key}={value}")]);
    }
    let missing = settings.iter().filter(|(key, _)| parsed.get(key).is_none());
    lines.extend(missing.map(|(key, value)| format!("{key}={value}")));
    Ok(lines.join("\n") + "\n")
}

/// `len` characters drawn uniformly from `alphabet`: bytes at or above the largest multiple
/// of its size are drawn again rather than folded, which would favour the first characters.
fn random(alphabet: &[u8], len: usize) -> Result<String> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    let mut bytes = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut bytes).map_err(|e| anyhow!("cannot read the OS random generator: {e}"))?;
        let usable = bytes.iter().map(|&b| usize::from(b)).filter(|&b| b < limit);
        out.extend(usable.map(|b| char::from(alphabet[b % alphabet.len()])).take(len - out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projects_own_variables_follow_the_stacks() {
        let ours = "DEBUG=1\nSECRET_KEY=change-me\n";
        let theirs = "# mine\nDEBUG=True\nSTRIPE_KEY=sk_test\nMOTD=\"two\nlines\"\nSTRIPE_KEY=sk_test_2\n";
        let added = project_variables(ours, ".env.example", theirs);
        assert_eq!(
            added,
            "\n# The project's own variables, from .env.example (the stack sets the others above).\nMOTD=\"two\nlines\"\nSTRIPE_KEY=sk_test_2\n"
        );
        assert_eq!(project_variables(ours, ".env.example", "DEBUG=0\n"), "");
    }

    #[test]
    fn secrets_read_back_unchanged_through_the_env_file_rules() {
        let key = random(KEY_ALPHABET, KEY_LEN).unwrap();
        let file = envfile::parse(&format!("SECRET_KEY={key}\n"), &|_| None);
        assert_eq!(file.get("SECRET_KEY").map(|e| e.value.as_str()), Some(key.as_str()));
        assert_eq!(key.len(), KEY_LEN);
    }

    #[test]
    fn every_character_of_the_alphabet_comes_up() {
        let drawn = random(b"ab", 256).unwrap();
        assert!(drawn.contains('a') && drawn.contains('b') && drawn.len() == 256);
    }

    #[test]
    fn filling_replaces_statements_and_appends_what_is_missing() {
        let example = "# doc\nA=old\nB=\"multi\nline\"\nC=keep\n";
        let settings = [("B", "new".to_owned()), ("A", "1".to_owned()), ("D", "x".to_owned())];
        assert_eq!(fill(example, &settings).unwrap(), "# doc\nA=1\nB=new\nC=keep\nD=x\n");
    }
}
