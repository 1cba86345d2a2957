//! The TLS part of the production preflight: the mode and ports, in `files` mode the
//! certificate and key as nginx will load them, in `acme` mode the ACME settings. `crate::preflight` reports these with
//! its own problems, one line each; a certificate that expires within 14 days is a
//! warning only.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::certs::inspect::{self, Cert};
use crate::certs::{local, Findings, Mode, CERT_VAR, KEY_VAR};
use crate::envfile::EnvFile;

/// A certificate this close to its end gets a warning.
pub const WARN_BEFORE: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// Everything wrong with the TLS settings of `env` at `now`; paths are relative to `root`.
pub fn check(root: &Path, env: &EnvFile, now: SystemTime) -> Findings {
    let mut found = Findings::default();
    let port = |key: &str, default: &str| {
        let value = env.get(key).map_or("", |e| e.value.trim()).to_owned();
        if value.is_empty() {
            default.to_owned()
        } else {
            value
        }
    };
    let (http, https) = (port("HTTP_PORT", "80"), port("HTTPS_PORT", "443"));
    if http == https {
        let message = format!(
            "HTTP_PORT and HTTPS_PORT are both {http}: give each its own port, e.g. HTTP_PORT=80 and HTTPS_PORT=443"
        );
        found.problem(env, "HTTPS_PORT", message);
    }
    match Mode::of(env) {
        None => {
            let value = env.get("TLS_MODE").map_or("", |e| e.value.as_str());
            found.problem(env, "TLS_MODE", format!("TLS_MODE={value:?} is not a TLS mode: use {}", Mode::CHOICES));
        }
        Some(Mode::Files) => check_files(root, env, now, &mut found),
        Some(Mode::Acme) => crate::certs::acme::check(root, env, &mut found),
        // The xtask makes and renews these itself before the stack starts.
        Some(Mode::Local) => {}
    }
    found
}

fn check_files(root: &Path, env: &EnvFile, now: SystemTime, found: &mut Findings) {
    let set = |key: &str| env.get(key).map(|e| e.value.trim().to_owned()).filter(|v| !v.is_empty());
    let (cert_value, key_value) = (set(CERT_VAR), set(KEY_VAR));
    let wanted = [
        (CERT_VAR, &cert_value, "the certificate chain (PEM, the site's certificate first)"),
        (KEY_VAR, &key_value, "its private key (PEM)"),
    ];
    for (key, value, what) in wanted {
        if value.is_none() {
            let how = if env.get(key).is_some() { "is empty" } else { "is missing" };
            let fix = format!("set it to the path of {what}, or set TLS_MODE=local");
            found.problem(env, key, format!("{key} {how} (TLS_MODE=files): {fix}"));
        }
    }
    let (Some(cert_value), Some(key_value)) = (cert_value, key_value) else { return };
    let cert_name = format!("{CERT_VAR}={cert_value}");
    let chain = match inspect::read_chain(&root.join(&cert_value)) {
        Ok(chain) => chain,
        Err(e) => {
            let fix = "point it at a readable PEM file holding the certificate chain";
            return found.problem(env, CERT_VAR, format!("{cert_name}: {e:#}: {fix}"));
        }
    };
    match inspect::key_public(&root.join(&key_value)) {
        // The first certificate is not the site's: what it covers or when it ends says nothing.
        Ok(public) if !leaf_first(env, &chain, &public, &cert_name, &key_value, found) => return,
        Ok(_) => {}
        Err(e) => {
            let fix = "point it at the unencrypted key (`openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pkcs8` converts an older format)";
            found.problem(env, KEY_VAR, format!("{KEY_VAR}={key_value}: {e:#}: {fix}"));
        }
    }
    validity(env, &chain[0], now, &cert_name, found);
    for host in crate::certs::hosts(env) {
        if !local::covers(&chain[0], &host) {
            let message = format!("the certificate in {cert_name} does not cover ALLOWED_HOSTS name {host}: use one issued for it, or remove the name");
            found.problem(env, "ALLOWED_HOSTS", message);
        }
    }
}

/// Whether the chain starts with the key's certificate, as nginx requires; when the key
/// belongs to none of them the first is still taken for the site's.
fn leaf_first(
    env: &EnvFile,
    chain: &[Cert],
    public: &[u8],
    cert_name: &str,
    key_value: &str,
    found: &mut Findings,
) -> bool {
    if chain[0].public_key == public {
        return true;
    }
    if chain[1..].iter().any(|c| c.public_key == public) {
        let message = format!("{cert_name} does not start with the certificate of {KEY_VAR}={key_value}: put the site's certificate first, then its intermediates");
        found.problem(env, KEY_VAR, message);
        return false;
    }
    let message = format!("{KEY_VAR}={key_value} is not the key of the certificate in {cert_name}: use the key the certificate was issued for");
    found.problem(env, KEY_VAR, message);
    true
}

fn validity(env: &EnvFile, leaf: &Cert, now: SystemTime, cert_name: &str, found: &mut Findings) {
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let when = |t: i64| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t.max(0) as u64));
    if now > leaf.not_after {
        let message = format!(
            "the certificate in {cert_name} expired at {}: renew it and point {CERT_VAR} at the new one",
            when(leaf.not_after)
        );
        found.problem(env, CERT_VAR, message);
    } else if now < leaf.not_before {
        let message = format!(
            "the certificate in {cert_name} is valid only from {}: check this machine's clock, or use a certificate valid now",
            when(leaf.not_before)
        );
        found.problem(env, CERT_VAR, message);
    } else if leaf.not_after - now < WARN_BEFORE.as_secs() as i64 {
        let days = (leaf.not_after - now) / (24 * 60 * 60);
        found.warnings.push(format!(
            "the certificate in {cert_name} expires at {} (in {days} days): renew it soon",
            when(leaf.not_after)
        ));
    }
}
