//! Reading certificate and key files as nginx will: the PEM chain (leaf first), what each
//! certificate covers and when it is valid, and whether a private key belongs to it.

use std::fs;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

/// What the checks need of one certificate.
#[derive(Debug, Clone)]
pub struct Cert {
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// DNS names (wildcards as written, lower-cased) and IP addresses it is issued for.
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    /// The subject's public key, as the key file's public half is compared with it.
    pub public_key: Vec<u8>,
}

impl Cert {
    /// Whether a TLS client asking for `host` accepts this certificate's names. A
    /// wildcard stands for exactly one leftmost label.
    pub fn covers(&self, host: &str) -> bool {
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return self.ips.contains(&ip);
        }
        let host = host.to_ascii_lowercase();
        self.dns.iter().any(|name| match name.strip_prefix("*.") {
            Some(parent) => host.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => *name == host,
        })
    }
}

/// The certificates of a PEM file, in file order.
pub fn read_chain(path: &Path) -> Result<Vec<Cert>> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut chain = Vec::new();
    for block in Pem::iter_from_buffer(&bytes) {
        let block = block.map_err(|e| anyhow!("{} holds a malformed PEM block ({e})", path.display()))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        chain.push(parse(&block).with_context(|| format!("{} holds a malformed certificate", path.display()))?);
    }
    if chain.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(chain)
}

fn parse(block: &Pem) -> Result<Cert> {
    let x509 = block.parse_x509().map_err(|e| anyhow!("{e}"))?;
    let validity = x509.validity();
    let mut cert = Cert {
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        dns: Vec::new(),
        ips: Vec::new(),
        public_key: x509.public_key().subject_public_key.data.to_vec(),
    };
    let names = x509.subject_alternative_name().map_err(|e| anyhow!("{e}"))?;
    for name in names.iter().flat_map(|ext| ext.value.general_names.iter()) {
        match name {
            GeneralName::DNSName(dns) => cert.dns.push(dns.to_ascii_lowercase()),
            GeneralName::IPAddress(bytes) => cert.ips.extend(ip(bytes)),
            _ => {}
        }
    }
    Ok(cert)
}

fn ip(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// The public half of an unencrypted PKCS#8 private key, in the form a certificate holds it.
pub fn key_public(path: &Path) -> Result<Vec<u8>> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // The error of the parser is not shown: it could quote the key.
    let key =
        rcgen::KeyPair::from_pem(&text).map_err(|_| anyhow!("{} is not an unencrypted PKCS#8 key", path.display()))?;
    Ok(key.public_key_raw().to_vec())
}
