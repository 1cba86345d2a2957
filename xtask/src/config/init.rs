//! `cargo xtask init`: write `.env` (or `.env.prod`) from the committed example file with
//! fresh secrets from the OS random generator. The file is created with mode 0600 and swapped
//! in by a rename, so a reader never sees half of it; `--force` keeps the old one as
//! `<file>.bak-<UTC time>`.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context as _, Result};

use crate::cli::InitArgs;
use crate::clock;
use crate::config::envfile;
use crate::context::Context;
use crate::stack::compose::Stack;
use crate::tls;

/// Characters Compose reads unquoted and unchanged: no `$`, `#`, quote, backslash or blank.
const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+";
const KEY_LEN: usize = 64;
/// Letters and digits only: a password often ends up in a database URL, where others need escaping.
const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const PASSWORD_LEN: usize = 32;

/// The file init writes and the values it sets in the example's text, secrets aside.
struct Target {
    stack: Stack,
    example: &'static str,
    settings: Vec<(&'static str, String)>,
}

impl Target {
    fn with_secrets(&self, key: String, password: String) -> Vec<(&'static str, String)> {
        let secrets = [("SECRET_KEY", key), ("POSTGRES_PASSWORD", password)];
        secrets.into_iter().chain(self.settings.iter().cloned()).collect()
    }
}

pub fn init(cx: &Context, args: InitArgs) -> Result<()> {
    let target = target(&args)?;
    let file = target.stack.env_file();
    let path = cx.path(file);
    let replacing = path.symlink_metadata().is_ok();
    if replacing && !args.force {
        bail!("{file} already exists: pass --force to replace it (the old file is kept as {file}.bak-<UTC time>)");
    }
    let example = read_example(cx, &target)?;
    let render =
        |settings: Vec<_>| fill(&example, &settings).with_context(|| format!("{} is malformed", target.example));
    if cx.dry_run {
        let masked = target.with_secrets(format!("<{KEY_LEN} random characters>"), "<random password>".into());
        let text = render(masked)?;
        show(&path, &text, replacing)?;
        return local_certificates(cx, &target, &text);
    }
    let text = render(target.with_secrets(random(KEY_ALPHABET, KEY_LEN)?, random(PASSWORD_ALPHABET, PASSWORD_LEN)?))?;
    let backup = if replacing { Some(back_up(&path)?) } else { None };
    write_atomically(&path, &text)?;
    local_certificates(cx, &target, &text)?;
    report(target.stack, backup.as_deref());
    Ok(())
}

/// `.env.prod` with `TLS_MODE=local` gets its certificates now, so `check --prod` and a
/// browser import of the CA work before the first `prod`.
fn local_certificates(cx: &Context, target: &Target, text: &str) -> Result<()> {
    if target.stack == Stack::Dev {
        return Ok(());
    }
    let env = envfile::parse(text, &|_| None);
    let public: Vec<String> = tls::hosts(&env).into_iter().filter(|h| !tls::is_local_name(h)).collect();
    match tls::Mode::of(&env) {
        Some(tls::Mode::Files) => {
            println!("TLS_MODE=files: set TLS_CERT_FILE and TLS_KEY_FILE in .env.prod to the site's certificate chain and key")
        }
        Some(tls::Mode::Acme) => println!(
            "TLS_MODE=acme: set ACME_EMAIL in .env.prod; the site's DNS name must point at this server with port 80 open for the CA's http-01 check"
        ),
        Some(tls::Mode::Local) if !public.is_empty() => println!(
            "TLS_MODE=local: browsers trust the certificate for {} only where the local CA is imported; for a public site set TLS_MODE=acme (or files with its certificate)",
            public.join(", ")
        ),
        _ => {}
    }
    tls::ensure_local(cx, &env)
}

/// Clap would print a usage block for a missing `--host`; one line says more.
fn target(args: &InitArgs) -> Result<Target> {
    if args.tls.is_some() && !args.prod {
        bail!("--tls only applies to .env.prod: add --prod");
    }
    match (&args.host, &args.db_host, args.prod) {
        (None, _, true) => {
            bail!("init --prod needs --host HOST, the site's public host name (e.g. --host example.com)")
        }
        (Some(_), _, false) => bail!("--host only applies to .env.prod: add --prod"),
        (_, Some(_), false) => bail!("--db-host only applies to .env.prod: add --prod"),
        (None, _, false) => Ok(dev_target()),
        (Some(host), db_host, true) => prod_target(host, db_host.as_deref(), args.tls.as_deref()),
    }
}

fn dev_target() -> Target {
    let settings = [("DEBUG", "1"), ("ALLOWED_HOSTS", "localhost,127.0.0.1"), ("POSTGRES_HOST", "db")];
    let settings = settings.into_iter().map(|(key, value)| (key, value.to_owned())).collect();
    Target { stack: Stack::Dev, example: ".env.example", settings }
}

fn prod_target(host: &str, db_host: Option<&str>, tls: Option<&str>) -> Result<Target> {
    let host = host_name("--host", host, "example.com")?;
    let mode = match tls {
        None => tls::Mode::Local,
        Some(raw) => tls::Mode::parse(raw)
            .ok_or_else(|| anyhow!("--tls {raw:?} is not a TLS mode: use {}", tls::Mode::CHOICES))?,
    };
    let mut settings = vec![
        ("DEBUG", "0".to_owned()),
        ("CSRF_TRUSTED_ORIGINS", format!("https://{host}")),
        ("ALLOWED_HOSTS", host),
        ("TLS_MODE", mode.name().to_owned()),
    ];
    if let Some(db_host) = db_host {
        settings.push(("POSTGRES_HOST", host_name("--db-host", db_host, "db.example.com")?));
    }
    Ok(Target { stack: Stack::PROD, example: ".env.prod.example", settings })
}

/// A bare DNS name or IPv4 address, lower-cased: what both ALLOWED_HOSTS and an https origin take.
fn host_name(flag: &str, raw: &str, example: &str) -> Result<String> {
    let host = raw.trim().to_ascii_lowercase();
    let why = if host.is_empty() {
        "is empty"
    } else if host.contains("://") {
        "has a scheme"
    } else if host.contains('/') {
        "has a path"
    } else if host.contains('*') {
        "is a wildcard, which would accept any Host header"
    } else if host.contains(':') {
        "has a port"
    } else if !is_dns_name(&host) {
        "is not a host name (letters, digits, - and . only)"
    } else {
        return Ok(host);
    };
    bail!("{flag} {raw:?} {why}: pass a bare host name, e.g. {flag} {example}")
}

fn is_dns_name(host: &str) -> bool {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    host.len() <= 253 && host.split('.').all(label_ok)
}

fn read_example(cx: &Context, target: &Target) -> Result<String> {
    let path = cx.path(target.example);
    fs::read_to_string(&path).with_context(|| format!("cannot read {}, the template init fills", path.display()))
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

/// `--dry-run`: the file as it would be written, secrets masked.
fn show(path: &Path, text: &str, replacing: bool) -> Result<()> {
    let keep = if replacing { ", keeping the old file as a backup" } else { "" };
    println!("# would write {} (mode 0600){keep}:", path.display());
    print!("{text}");
    Ok(())
}

fn report(stack: Stack, backup: Option<&Path>) {
    println!("wrote {} (mode 0600) with a new SECRET_KEY and POSTGRES_PASSWORD", stack.env_file());
    if let Some(backup) = backup {
        println!("the old file is kept as {}", backup.display());
        // The bundled Postgres sets its password only when its volume is created.
        eprintln!("note: a database created with the old POSTGRES_PASSWORD still expects it: copy it over from the backup to keep that database");
    }
    let next = match stack {
        Stack::Dev => "cargo xtask dev",
        Stack::Prod { .. } => "cargo xtask check --prod, then cargo xtask prod",
    };
    println!("next: {next}");
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

/// Copies `path` to `<path>.bak-<UTC time>` (`-2`, `-3`, ... when that exists), private like the original.
fn back_up(path: &Path) -> Result<PathBuf> {
    let old = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let stem = format!("{}.bak-{}", path.display(), clock::stamp(SystemTime::now()));
    for n in 1..=100 {
        let backup = PathBuf::from(if n == 1 { stem.clone() } else { format!("{stem}-{n}") });
        match write_new(&backup, &old) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            result => {
                return result.map(|()| backup.clone()).with_context(|| format!("cannot write {}", backup.display()))
            }
        }
    }
    bail!("cannot find a free backup name beside {}: remove old backups", path.display())
}

/// Writes a private temporary file beside `path`, then renames it over `path`.
pub(crate) fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
    // Only a run of ours that died with this process id can have left it.
    let _ = fs::remove_file(&tmp);
    let result = write_new(&tmp, text.as_bytes()).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))?;
    // Makes the rename itself durable; a failure here leaves a correct file, so it is not one.
    if let Some(dir) = path.parent() {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// A new file with mode 0600 whatever the umask, holding `bytes`, flushed to disk.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn hosts_must_be_bare_names() {
        assert_eq!(host_name("--host", "Example.COM", "e").unwrap(), "example.com");
        assert_eq!(host_name("--host", "10.0.0.7", "e").unwrap(), "10.0.0.7");
        for bad in [
            "",
            "https://example.com",
            "example.com/app",
            "*",
            "*.example.com",
            "example.com:8443",
            "a_b.com",
            "-a.com",
            "a..com",
        ] {
            assert!(host_name("--host", bad, "e").is_err(), "{bad:?}");
        }
    }
}
