//! `TLS_MODE=acme`: certbot (the `certbot` service of `docker/compose.acme.yml`) obtains
//! the certificate over http-01 and renews it; nginx reloads on each new one. This module
//! holds what the xtask does for it: the self-signed bootstrap pair nginx serves until
//! certbot's certificate exists, the variables the overlay reads, and the preflight of
//! the ACME settings.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{anyhow, Result};
use rcgen::KeyPair;

use crate::certs::local;
use crate::certs::Findings;
use crate::envfile::EnvFile;
use crate::files::write_atomically;
use crate::plan::Step;

/// The Compose overlay that adds the certbot service and its volumes.
pub const OVERLAY: &str = "docker/compose.acme.yml";
/// Let's Encrypt's production directory, used when `ACME_DIRECTORY_URL` is unset.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
pub const EMAIL_VAR: &str = "ACME_EMAIL";
pub const DIRECTORY_VAR: &str = "ACME_DIRECTORY_URL";
/// A PEM file of CA certificates certbot trusts for the ACME server's own HTTPS, for a
/// private ACME CA; unset, certbot trusts the usual public roots.
pub const CA_BUNDLE_VAR: &str = "ACME_CA_BUNDLE";
/// The names to request, comma-separated, as the overlay passes them to certbot.
const DOMAINS_VAR: &str = "ACME_DOMAINS";

/// The bootstrap pair, self-signed, under `certs/` (mode 0600 like the local keys).
pub fn bootstrap(root: &Path) -> (PathBuf, PathBuf) {
    let dir = root.join(local::DIR);
    (dir.join("acme-bootstrap.pem"), dir.join("acme-bootstrap-key.pem"))
}

/// Makes the bootstrap pair for `hosts` unless a usable one is there; returns why it was
/// (or, with `write` false, would be) made.
pub fn ensure_bootstrap(root: &Path, hosts: &[String], now: SystemTime, write: bool) -> Result<Option<String>> {
    let (cert, key) = bootstrap(root);
    let why = match local::renewal(&cert, &key, now).and_then(|c| local::uncovered(&cert, &c, hosts)) {
        Ok(()) => return Ok(None),
        Err(why) => why,
    };
    if write {
        local::private_dir(cert.parent().expect("the bootstrap pair has a directory"))?;
        let pair = KeyPair::generate().map_err(|e| anyhow!("cannot generate the bootstrap key: {e}"))?;
        let signed = local::leaf_params(hosts, now)?
            .self_signed(&pair)
            .map_err(|e| anyhow!("cannot sign the bootstrap certificate: {e}"))?;
        write_atomically(&key, &pair.serialize_pem())?;
        write_atomically(&cert, &signed.pem())?;
    }
    Ok(Some(why))
}

/// `step` with the variables of the overlay: the names to request and the CA bundle's
/// absolute path, empty when there is none (the overlay then mounts /dev/null).
pub fn pass_to(root: &Path, env: &EnvFile, step: Step) -> Step {
    let bundle = value(env, CA_BUNDLE_VAR).map(|v| root.join(v).display().to_string()).unwrap_or_default();
    step.env(DOMAINS_VAR, crate::certs::hosts(env).join(",")).env(CA_BUNDLE_VAR, bundle)
}

/// Whether a public CA (Let's Encrypt and the like) issues certificates for `host`: not
/// for local names, IP addresses, mDNS (`.local`) or other private names.
pub fn public_ca_issues_for(host: &str) -> bool {
    let private = [".local", ".internal", ".lan", ".home.arpa", ".invalid", ".example"];
    !(crate::certs::is_local_name(host)
        || host.parse::<IpAddr>().is_ok()
        || !host.contains('.')
        || private.iter().any(|suffix| host.ends_with(suffix)))
}

/// The ACME settings' problems: the email, the directory URL, the CA bundle, and every
/// ALLOWED_HOSTS name the CA cannot issue for over http-01.
pub fn check(root: &Path, env: &EnvFile, found: &mut Findings) {
    check_email(env, found);
    let directory = value(env, DIRECTORY_VAR);
    if let Some(url) = directory.as_ref().filter(|url| !url.starts_with("https://")) {
        let fix = format!("use the CA's https:// directory URL, or unset it for Let's Encrypt ({LETS_ENCRYPT})");
        found.problem(env, DIRECTORY_VAR, format!("{DIRECTORY_VAR}={url} is not an https:// URL: {fix}"));
    }
    if let Some(bundle) = value(env, CA_BUNDLE_VAR) {
        if let Err(e) = std::fs::File::open(root.join(&bundle)) {
            let fix = "point it at a readable PEM file of the ACME server's CA certificates, or unset it";
            found.problem(env, CA_BUNDLE_VAR, format!("{CA_BUNDLE_VAR}={bundle}: {e}: {fix}"));
        }
    }
    check_hosts(env, directory.is_some(), found);
}

fn check_email(env: &EnvFile, found: &mut Findings) {
    let how = match env.get(EMAIL_VAR).map(|e| e.value.trim()) {
        None => "is missing".to_owned(),
        Some("") => "is empty".to_owned(),
        Some(v) if !v.contains('@') => format!("is {v:?}, not an email address"),
        Some(_) => return,
    };
    let fix = "set it to the address the CA sends expiry notices to, e.g. ACME_EMAIL=admin@example.com";
    found.problem(env, EMAIL_VAR, format!("{EMAIL_VAR} {how} (TLS_MODE=acme): {fix}"));
}

/// http-01 proves one name at a time; a public CA issues only for public names, while a
/// CA of one's own (`own_ca`) may issue for any.
fn check_hosts(env: &EnvFile, own_ca: bool, found: &mut Findings) {
    for host in crate::certs::hosts(env) {
        let message = if let Some(domain) = host.strip_prefix('.') {
            format!("ALLOWED_HOSTS name {host} stands for every subdomain, which http-01 cannot prove (TLS_MODE=acme): list each name, e.g. {domain},www{host}, or use TLS_MODE=files with a wildcard certificate")
        } else if !own_ca && !public_ca_issues_for(&host) {
            format!("no public CA issues a certificate for ALLOWED_HOSTS name {host} (TLS_MODE=acme): use TLS_MODE=local for it, or set {DIRECTORY_VAR} to a CA that does")
        } else {
            continue;
        };
        found.problem(env, "ALLOWED_HOSTS", message);
    }
}

/// A variable's trimmed value, None when unset or blank.
fn value(env: &EnvFile, key: &str) -> Option<String> {
    env.get(key).map(|e| e.value.trim().to_owned()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_cas_issue_for_public_names_only() {
        for host in ["example.com", "www.shop.example.org", "xn--bcher-kva.de"] {
            assert!(public_ca_issues_for(host), "{host}");
        }
        for host in ["localhost", "127.0.0.1", "10.0.0.7", "::1", "printer.local", "shop.test", "intranet", "a.example"]
        {
            assert!(!public_ca_issues_for(host), "{host}");
        }
    }

    #[test]
    fn the_bootstrap_pair_is_made_once_for_the_hosts_and_never_in_a_dry_run() {
        let root = tempfile::tempdir().unwrap();
        let hosts = vec!["shop.example.com".to_owned()];
        let now = SystemTime::now();
        assert!(ensure_bootstrap(root.path(), &hosts, now, false).unwrap().is_some());
        assert!(!bootstrap(root.path()).0.exists(), "a dry run wrote the bootstrap certificate");
        assert!(ensure_bootstrap(root.path(), &hosts, now, true).unwrap().is_some());
        assert_eq!(ensure_bootstrap(root.path(), &hosts, now, true).unwrap(), None);
        let (cert, key) = bootstrap(root.path());
        let leaf = crate::certs::inspect::read_chain(&cert).unwrap().remove(0);
        assert!(leaf.covers("shop.example.com"));
        assert_eq!(crate::certs::inspect::key_public(&key).unwrap(), leaf.public_key);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let more = vec!["shop.example.com".to_owned(), "www.example.com".to_owned()];
        assert!(ensure_bootstrap(root.path(), &more, now, true).unwrap().is_some(), "a new host keeps the old pair");
    }
}
