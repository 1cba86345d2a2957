//! `cargo xtask init`: write `.env` (or `.env.prod`) from the committed example file with
//! fresh secrets from the OS random generator. The file is created with mode 0600 and swapped
//! in by a rename, so a reader never sees half of it; `--force` keeps the old one as
//! `<file>.bak-<UTC time>`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context as _, Result};

use crate::certs;
use crate::cli::InitArgs;
use crate::clock;
use crate::context::Context;
use crate::env_template::{self, Template};
use crate::envfile::{self, EnvFile};
use crate::files::{write_atomically, write_new};
use crate::plan::{runner, Action, Plan, Task};
use crate::stack::compose::Stack;

/// The file init writes, and the example it fills with the values to set.
struct Target {
    stack: Stack,
    template: Template,
}

pub fn init(cx: &Context, args: InitArgs) -> Result<()> {
    let target = target(&args)?;
    let file = target.stack.env_file();
    let path = cx.path(file);
    let replacing = path.symlink_metadata().is_ok();
    if replacing && !args.force {
        bail!("{file} already exists: pass --force to replace it (the old file is kept as {file}.bak-<UTC time>)");
    }
    let (text, masked) = target.template.render(cx)?;
    let env = envfile::parse(&text, &|_| None);
    let write = EnvWrite { path, text, masked, replacing, stack: target.stack };
    let mut plan = Plan::default().then(Task::act(write));
    if target.stack != Stack::Dev {
        plan = hints(&env).into_iter().fold(plan, |plan, hint| plan.then(Task::Say(hint)));
        // Made now, so `check --prod` and a browser import of the CA work before the first `prod`.
        plan = plan.then(Task::act(certs::Certificates::of(cx, &env)));
    }
    let next = match target.stack {
        Stack::Dev => "cargo xtask dev",
        Stack::Prod { .. } => "cargo xtask check --prod, then cargo xtask prod",
    };
    runner::execute(cx, plan.then(Task::Say(format!("next: {next}"))))
}

/// The env file init writes: under `--dry-run`, shown with its secrets masked; else written
/// whole (mode 0600), the file it replaces kept as a backup.
struct EnvWrite {
    path: PathBuf,
    text: String,
    masked: String,
    replacing: bool,
    stack: Stack,
}

/// Never prints the secrets.
impl std::fmt::Debug for EnvWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnvWrite({})", self.path.display())
    }
}

impl Action for EnvWrite {
    fn render(&self) -> String {
        let keep = if self.replacing { ", keeping the old file as a backup" } else { "" };
        format!("# would write {} (mode 0600){keep}:\n{}", self.path.display(), self.masked.trim_end())
    }

    fn run(&self, _: &Context) -> Result<()> {
        let backup = if self.replacing { Some(back_up(&self.path)?) } else { None };
        write_atomically(&self.path, &self.text)?;
        println!("wrote {} (mode 0600) with a new SECRET_KEY and POSTGRES_PASSWORD", self.stack.env_file());
        if let Some(backup) = backup {
            println!("the old file is kept as {}", backup.display());
            // The bundled Postgres sets its password only when its volume is created.
            eprintln!("note: a database created with the old POSTGRES_PASSWORD still expects it: copy it over from the backup to keep that database");
        }
        Ok(())
    }
}

/// What the user has to do next for `.env.prod`'s TLS mode.
fn hints(env: &EnvFile) -> Vec<String> {
    let public: Vec<String> = certs::hosts(env).into_iter().filter(|h| !certs::is_local_name(h)).collect();
    let hint = match certs::Mode::of(env) {
        Some(certs::Mode::Files) => {
            "TLS_MODE=files: set TLS_CERT_FILE and TLS_KEY_FILE in .env.prod to the site's certificate chain and key".to_owned()
        }
        Some(certs::Mode::Acme) => "TLS_MODE=acme: set ACME_EMAIL in .env.prod; the site's DNS name must point at this server with port 80 open for the CA's http-01 check".to_owned(),
        Some(certs::Mode::Local) if !public.is_empty() => format!(
            "TLS_MODE=local: browsers trust the certificate for {} only where the local CA is imported; for a public site set TLS_MODE=acme (or files with its certificate)",
            public.join(", ")
        ),
        _ => return Vec::new(),
    };
    vec![hint]
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
    Target { stack: Stack::Dev, template: Template { example: env_template::DEV, settings } }
}

fn prod_target(host: &str, db_host: Option<&str>, tls: Option<&str>) -> Result<Target> {
    let host = host_name("--host", host, "example.com")?;
    let mode = match tls {
        None => certs::Mode::Local,
        Some(raw) => certs::Mode::parse(raw)
            .ok_or_else(|| anyhow!("--tls {raw:?} is not a TLS mode: use {}", certs::Mode::CHOICES))?,
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
    Ok(Target { stack: Stack::PROD, template: Template { example: env_template::PROD, settings } })
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

#[cfg(test)]
mod tests {
    use super::*;

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
