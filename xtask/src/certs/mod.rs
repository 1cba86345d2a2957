//! The certificates of the production stack's HTTPS: where the one nginx serves comes from
//! (`TLS_MODE` in `.env.prod`), the files Compose mounts for it, the project's local CA
//! ([`local`]), certbot's certificates ([`acme`]) and the certificate checks of the
//! production preflight ([`preflight`]). `cargo xtask tls` is the command module tls.rs.

pub mod acme;
pub mod inspect;
pub mod local;
pub mod preflight;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Result;

use crate::context::Context;
use crate::envfile::EnvFile;
use crate::plan::{runner, Action, Step};

/// The variables naming the files nginx mounts, in `.env.prod` (`files`) and for Compose.
pub const CERT_VAR: &str = "TLS_CERT_FILE";
pub const KEY_VAR: &str = "TLS_KEY_FILE";
/// The SHA-256 of the certificate chain, in nginx's environment: a new certificate changes
/// the service's configuration, so the next `up` recreates nginx on the new files.
pub const CERT_HASH_VAR: &str = "TLS_CERT_SHA256";

/// Where the certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Made by the xtask, signed by the project's own CA.
    Local,
    /// The user's own files, named by TLS_CERT_FILE and TLS_KEY_FILE.
    Files,
    /// Obtained and renewed from an ACME CA by the stack's certbot service.
    Acme,
}

impl Mode {
    pub const CHOICES: &'static str = "local, files or acme";

    pub fn parse(value: &str) -> Option<Mode> {
        match value.trim().to_ascii_lowercase().as_str() {
            "local" => Some(Mode::Local),
            "files" => Some(Mode::Files),
            "acme" => Some(Mode::Acme),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Local => "local",
            Mode::Files => "files",
            Mode::Acme => "acme",
        }
    }

    /// `TLS_MODE` of `.env.prod`: unset or blank is `local`; None when unknown.
    pub fn of(env: &EnvFile) -> Option<Mode> {
        match env.get("TLS_MODE").map(|e| e.value.trim()) {
            None | Some("") => Some(Mode::Local),
            Some(value) => Mode::parse(value),
        }
    }
}

/// One line to report: the env file's line it is about, when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Findings {
    pub problems: Vec<Finding>,
    pub warnings: Vec<String>,
}

impl Findings {
    pub(crate) fn problem(&mut self, env: &EnvFile, key: &str, message: String) {
        self.problems.push(Finding { line: env.get(key).map(|e| e.first_line), message });
    }
}

/// Names no public CA issues for, where the local CA is the only choice: localhost,
/// loopback addresses, `*.localhost` and `*.test`.
pub fn is_local_name(host: &str) -> bool {
    host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || [".localhost", ".test"].iter().any(|suffix| host.ends_with(suffix))
}

/// The certificate chain and key nginx serves, as host paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Files {
    /// The files of `.env.prod`'s mode; an unknown mode gets the local paths (the preflight
    /// refuses it before anything starts), a `files` path is relative to the project root.
    /// With `acme` nginx starts on the bootstrap pair and serves certbot's certificate
    /// once it exists.
    pub fn of(root: &Path, env: &EnvFile) -> Files {
        match Mode::of(env) {
            Some(Mode::Files) => {
                let path = |var: &str| root.join(env.get(var).map(|e| e.value.trim()).unwrap_or_default());
                Files { cert: path(CERT_VAR), key: path(KEY_VAR) }
            }
            Some(Mode::Acme) => {
                let (cert, key) = acme::bootstrap(root);
                Files { cert, key }
            }
            Some(Mode::Local) | None => {
                let local = local::Paths::under(root);
                Files { cert: local.chain, key: local.key }
            }
        }
    }

    /// `step` with the variables compose.prod.yml mounts the files from, and the chain's
    /// hash (empty while the file does not exist; the key is never read for it).
    pub fn pass_to(&self, step: Step) -> Step {
        let hash = crate::sha256::hash_file(&self.cert).map(|(_, hex)| hex).unwrap_or_default();
        step.env(CERT_VAR, self.cert.to_string_lossy())
            .env(KEY_VAR, self.key.to_string_lossy())
            .env(CERT_HASH_VAR, hash)
    }
}

/// The ALLOWED_HOSTS names, as the local leaf must cover them.
pub fn hosts(env: &EnvFile) -> Vec<String> {
    let value = env.get("ALLOWED_HOSTS").map(|e| e.value.as_str()).unwrap_or_default();
    value.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty() && h != "*").collect()
}

/// The compose overlays of `.env.prod`'s mode, after the stack's own files.
pub fn overlays(env: &EnvFile) -> &'static [&'static str] {
    match Mode::of(env) {
        Some(Mode::Acme) => &[acme::OVERLAY],
        _ => &[],
    }
}

/// Everything a production Compose command needs of the TLS mode: the overlays, the
/// files nginx mounts and, with `acme`, certbot's variables.
pub fn pass_to(root: &Path, env: &EnvFile, step: Step) -> Step {
    let step = Files::of(root, env).pass_to(step);
    match Mode::of(env) {
        Some(Mode::Acme) => acme::pass_to(root, env, step),
        _ => step,
    }
}

/// In `local` mode, creates or renews the certificates for the hosts of `env`, in `acme`
/// mode the bootstrap pair; `files` has nothing to make. A preparation (see
/// [`runner::prepare`]): what follows reads the files it writes.
pub fn ensure_local(cx: &Context, env: &EnvFile) -> Result<()> {
    runner::prepare(cx, &Certificates::of(cx, env))
}

/// The certificates `ensure_local` makes, as a plan's action.
#[derive(Debug)]
pub struct Certificates {
    root: PathBuf,
    hosts: Vec<String>,
    mode: Option<Mode>,
}

impl Certificates {
    pub fn of(cx: &Context, env: &EnvFile) -> Certificates {
        Certificates { root: cx.root.clone(), hosts: hosts(env), mode: Mode::of(env) }
    }

    /// What it makes and why, writing when `write`; None when the files can stay.
    fn made(&self, write: bool) -> Result<Option<String>> {
        let hosts = self.hosts.join(", ");
        Ok(match self.mode {
            _ if self.hosts.is_empty() => None,
            Some(Mode::Acme) => acme::ensure_bootstrap(&self.root, &self.hosts, SystemTime::now(), write)?.map(|why| {
                format!(
                    "a self-signed certificate for {hosts} under {}/, served until certbot's exists ({why})",
                    local::DIR
                )
            }),
            Some(Mode::Local) => match local::ensure(&self.root, &self.hosts, SystemTime::now(), write)? {
                local::Outcome::Issued { why, new_ca } => {
                    let what = if new_ca { "a local CA and a certificate" } else { "a certificate" };
                    Some(format!("{what} for {hosts} under {}/ ({why})", local::DIR))
                }
                local::Outcome::Kept => None,
            },
            Some(Mode::Files) | None => None,
        })
    }
}

impl Action for Certificates {
    fn render(&self) -> String {
        match self.made(false) {
            Ok(Some(what)) => format!("# would write {what}"),
            Ok(None) => String::new(),
            Err(error) => format!("# cannot tell which certificates to write: {error:#}"),
        }
    }

    fn run(&self, _: &Context) -> Result<()> {
        if let Some(what) = self.made(true)? {
            println!("wrote {what}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_are_the_ones_no_public_ca_issues_for() {
        for host in ["localhost", "127.0.0.1", "shop.localhost", "shop.test"] {
            assert!(is_local_name(host), "{host}");
        }
        for host in ["example.com", "10.0.0.7", "testing.com"] {
            assert!(!is_local_name(host), "{host}");
        }
    }
}
