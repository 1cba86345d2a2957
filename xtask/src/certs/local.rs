//! `TLS_MODE=local`: a CA of the project's own and a leaf certificate it signs for every
//! ALLOWED_HOSTS name, under `certs/` (git-ignored, keys mode 0600). `init` and `prod`
//! call [`ensure`], which creates what is missing and renews a leaf that expires within
//! 30 days or no longer covers every host; a valid leaf is kept, so a browser that trusts
//! the CA keeps trusting the site.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use crate::certs::inspect::{self, Cert};
use crate::files::write_atomically;

/// The directory, relative to the project root.
pub const DIR: &str = "certs";
const DAY: u64 = 24 * 60 * 60;
/// A leaf this close to its end is replaced.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * DAY);
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * DAY);
const LEAF_LIFETIME: Duration = Duration::from_secs(365 * DAY);

/// The files of the local certificates.
pub struct Paths {
    pub ca: PathBuf,
    pub ca_key: PathBuf,
    /// The leaf, then the CA: what nginx sends.
    pub chain: PathBuf,
    pub key: PathBuf,
}

impl Paths {
    pub fn under(root: &Path) -> Paths {
        let dir = root.join(DIR);
        Paths {
            ca: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            chain: dir.join("site.pem"),
            key: dir.join("site-key.pem"),
        }
    }
}

/// What [`ensure`] did or, in a dry run, would do.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Kept,
    /// A new leaf, and why; `new_ca` when the CA was made too.
    Issued {
        why: String,
        new_ca: bool,
    },
}

/// Makes sure `certs/` holds a CA and a leaf for `hosts` valid for 30 more days at `now`.
/// With `write` false nothing is written and the outcome says what would be.
pub fn ensure(root: &Path, hosts: &[String], now: SystemTime, write: bool) -> Result<Outcome> {
    let paths = Paths::under(root);
    let ca_why = renewal(&paths.ca, &paths.ca_key, now).err();
    // A new CA needs a new leaf; its own reason is the one to tell.
    let leaf_why = match &ca_why {
        Some(why) => Some(why.clone()),
        None => renewal(&paths.chain, &paths.key, now).and_then(|leaf| uncovered(&paths.chain, &leaf, hosts)).err(),
    };
    let Some(why) = leaf_why else { return Ok(Outcome::Kept) };
    let new_ca = ca_why.is_some();
    if write {
        issue(&paths, hosts, now, new_ca)?;
    }
    Ok(Outcome::Issued { why, new_ca })
}

/// The certificate at `path` when it can stay: readable, with its key beside it, and
/// valid for longer than [`RENEW_BEFORE`]; else why it must be made again.
pub(super) fn renewal(path: &Path, key: &Path, now: SystemTime) -> Result<Cert, String> {
    let chain = match inspect::read_chain(path) {
        Ok(chain) => chain,
        Err(_) if !path.exists() => return Err(format!("{} does not exist", path.display())),
        Err(e) => return Err(format!("{e:#}")),
    };
    let cert = chain.into_iter().next().expect("read_chain returns at least one");
    let left = cert.not_after - seconds(now);
    if left < RENEW_BEFORE.as_secs() as i64 {
        return Err(format!("{} expires in {} days", path.display(), left.max(0) / DAY as i64));
    }
    if inspect::key_public(key).ok().as_deref() != Some(&cert.public_key[..]) {
        return Err(format!("{} is missing or not the key of {}", key.display(), path.display()));
    }
    Ok(cert)
}

pub(super) fn uncovered(path: &Path, leaf: &Cert, hosts: &[String]) -> Result<(), String> {
    let missing: Vec<&str> = hosts.iter().map(String::as_str).filter(|h| !covers(leaf, h)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!("{} does not cover {}", path.display(), missing.join(", ")))
}

/// Django's `.example.com` means the domain and its subdomains.
pub fn covers(cert: &Cert, host: &str) -> bool {
    match host.strip_prefix('.') {
        Some(domain) => cert.covers(domain) && cert.covers(&format!("sub.{domain}")),
        None => cert.covers(host),
    }
}

fn issue(paths: &Paths, hosts: &[String], now: SystemTime, new_ca: bool) -> Result<()> {
    private_dir(paths.ca.parent().expect("the certificates have a directory"))?;
    if new_ca {
        let key = KeyPair::generate().map_err(|e| anyhow!("cannot generate the CA key: {e}"))?;
        let cert = ca_params(now)?.self_signed(&key).map_err(|e| anyhow!("cannot sign the CA certificate: {e}"))?;
        write_atomically(&paths.ca_key, &key.serialize_pem())?;
        write_atomically(&paths.ca, &cert.pem())?;
    }
    let ca_pem = fs::read_to_string(&paths.ca).with_context(|| format!("cannot read {}", paths.ca.display()))?;
    let ca_key_pem =
        fs::read_to_string(&paths.ca_key).with_context(|| format!("cannot read {}", paths.ca_key.display()))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|_| anyhow!("{} is not a key", paths.ca_key.display()))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| anyhow!("cannot read the CA: {e}"))?;
    let key = KeyPair::generate().map_err(|e| anyhow!("cannot generate the site key: {e}"))?;
    let leaf = leaf_params(hosts, now)?.signed_by(&key, &issuer).map_err(|e| anyhow!("cannot sign the leaf: {e}"))?;
    write_atomically(&paths.key, &key.serialize_pem())?;
    write_atomically(&paths.chain, &(leaf.pem() + &ca_pem))
}

/// `dir` and its parents, mode 0700: it holds keys.
pub(super) fn private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

fn ca_params(now: SystemTime) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name("xtask local CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, now, CA_LIFETIME)?;
    Ok(params)
}

pub(super) fn leaf_params(hosts: &[String], now: SystemTime) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(hosts.first().map_or("localhost", |h| h.trim_start_matches('.')));
    params.subject_alt_names = hosts.iter().flat_map(|h| san(h)).collect::<Result<_>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, now, LEAF_LIFETIME)?;
    Ok(params)
}

/// The names a host of ALLOWED_HOSTS needs: `.example.com` is the domain and `*.example.com`.
fn san(host: &str) -> Vec<Result<SanType>> {
    let dns = |name: String| {
        name.clone().try_into().map(SanType::DnsName).map_err(|_| anyhow!("{name:?} cannot be a certificate name"))
    };
    if let Ok(ip) = host.parse() {
        return vec![Ok(SanType::IpAddress(ip))];
    }
    match host.strip_prefix('.') {
        Some(domain) => vec![dns(domain.to_owned()), dns(format!("*.{domain}"))],
        None => vec![dns(host.to_owned())],
    }
}

fn name(common: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common);
    name
}

/// From a day before `now` (clocks differ) to `lifetime` after it.
fn validity(params: &mut CertificateParams, now: SystemTime, lifetime: Duration) -> Result<()> {
    let at = |t: SystemTime| OffsetDateTime::from_unix_timestamp(seconds(t)).map_err(|e| anyhow!("bad time: {e}"));
    params.not_before = at(now - Duration::from_secs(DAY))?;
    params.not_after = at(now + lifetime)?;
    Ok(())
}

fn seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|h| (*h).to_owned()).collect()
    }

    #[test]
    fn a_leaf_is_issued_once_then_kept_until_hosts_change_or_it_nears_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let two = hosts(&["localhost", "127.0.0.1"]);
        let first = ensure(dir.path(), &two, now, true).unwrap();
        assert!(matches!(first, Outcome::Issued { new_ca: true, .. }), "{first:?}");
        assert_eq!(ensure(dir.path(), &two, now, true).unwrap(), Outcome::Kept);
        let three = hosts(&["localhost", "127.0.0.1", ".shop.test"]);
        let grown = ensure(dir.path(), &three, now, true).unwrap();
        assert!(matches!(&grown, Outcome::Issued { new_ca: false, why } if why.contains(".shop.test")), "{grown:?}");
        let later = now + LEAF_LIFETIME - RENEW_BEFORE + Duration::from_secs(DAY);
        let renewed = ensure(dir.path(), &three, later, true).unwrap();
        assert!(
            matches!(&renewed, Outcome::Issued { new_ca: false, why } if why.contains("expires in")),
            "{renewed:?}"
        );
    }

    #[test]
    fn the_leaf_covers_every_host_and_belongs_to_its_key() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), &hosts(&["localhost", "127.0.0.1", ".shop.test"]), SystemTime::now(), true).unwrap();
        let paths = Paths::under(dir.path());
        let chain = inspect::read_chain(&paths.chain).unwrap();
        assert_eq!(chain.len(), 2, "leaf then CA");
        for host in ["localhost", "127.0.0.1", "shop.test", "www.shop.test"] {
            assert!(chain[0].covers(host), "{host}");
        }
        assert!(!chain[0].covers("a.b.shop.test") && !chain[0].covers("example.com"));
        assert_eq!(inspect::key_public(&paths.key).unwrap(), chain[0].public_key);
        assert_eq!(inspect::key_public(&paths.ca_key).unwrap(), chain[1].public_key);
        use std::os::unix::fs::PermissionsExt as _;
        for key in [&paths.key, &paths.ca_key] {
            assert_eq!(fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_dry_run_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let outcome = ensure(dir.path(), &hosts(&["localhost"]), SystemTime::now(), false).unwrap();
        assert!(matches!(outcome, Outcome::Issued { new_ca: true, .. }));
        assert!(!dir.path().join(DIR).exists());
    }
}
