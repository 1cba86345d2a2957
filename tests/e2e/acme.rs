//! The ACME CA of the acme scenario, on the host: Debian's `pebble` (an ACME test CA) and
//! `pebble-challtestsrv` as its DNS server, answering 127.0.0.1 for every name, so that
//! pebble's http-01 check of any host name reaches the stack's published HTTP port. The
//! certbot container reaches pebble's API on the Docker bridge's gateway address, over
//! HTTPS with a certificate made here (rcgen) and handed to certbot as ACME_CA_BUNDLE.
//! Also: what certificate the site serves (openssl s_client), and a bounded request loop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};

use super::harness::{free_port, support, text, value, wait_for};

/// The site's host name: not one the local CA is for, so the preflight's ACME rules apply.
pub const HOST: &str = "shop.example.com";

/// pebble and its DNS server, stopped when dropped.
pub struct Pebble {
    children: Vec<Child>,
    /// ACME_DIRECTORY_URL for certbot.
    pub directory_url: String,
    /// ACME_CA_BUNDLE for certbot: the CA of pebble's own HTTPS.
    pub api_ca: PathBuf,
    management: u16,
    dir: tempfile::TempDir,
}

impl Pebble {
    /// Starts pebble with its http-01 checks dialling `http_port` (the stack's HTTP_PORT).
    pub fn start(http_port: u16) -> Pebble {
        for tool in ["pebble", "pebble-challtestsrv", "openssl", "curl"] {
            let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap();
            assert!(found.status.success(), "{tool} is not installed (apt-get install pebble openssl curl)");
        }
        let dir = tempfile::Builder::new().prefix("xtask-e2e-pebble-").tempdir().unwrap();
        let gateway = bridge_gateway();
        let api_ca = dir.path().join("api-ca.pem");
        api_certificate(dir.path(), &api_ca, &gateway);
        let (dns, dns_management, api, management) = (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("{gateway}:{api}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("api.pem"),
            "privateKey": dir.path().join("api-key.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        let log = |name: &str| fs::File::create(dir.path().join(name)).unwrap();
        let mut children = Vec::new();
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-management", &format!("127.0.0.1:{dns_management}"), "-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("pebble-challtestsrv starts");
        children.push(dns_server);
        // No random sleeps before validations, no nonces refused on purpose: the test is
        // about the stack, not certbot's retries.
        let ca = Command::new("pebble")
            .args([
                "-config",
                &dir.path().join("pebble.json").to_string_lossy(),
                "-dnsserver",
                &format!("127.0.0.1:{dns}"),
            ])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("pebble starts");
        children.push(ca);
        let pebble =
            Pebble { children, directory_url: format!("https://{gateway}:{api}/dir"), api_ca, management, dir };
        let up = wait_for(Duration::from_secs(30), Duration::from_millis(200), || {
            pebble.curl(&pebble.directory_url).filter(|d| d.contains("newOrder"))
        });
        assert!(up.is_some(), "pebble did not answer on {}:\n{}", pebble.directory_url, pebble.logs());
        pebble
    }

    /// pebble's root CA, written to a file: what every certificate it issues chains to.
    pub fn root(&self) -> PathBuf {
        let pem = self.curl(&format!("https://127.0.0.1:{}/roots/0", self.management)).expect("pebble's root");
        assert!(pem.contains("BEGIN CERTIFICATE"), "pebble's root: {pem}");
        let path = self.dir.path().join("root.pem");
        fs::write(&path, pem).unwrap();
        path
    }

    fn curl(&self, url: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["--silent", "--fail", "--max-time", "5", "--noproxy", "*", "--cacert"])
            .arg(&self.api_ca)
            .arg(url)
            .output()
            .ok()?;
        out.status.success().then(|| text(&out.stdout))
    }

    /// pebble's and the DNS server's output, for a failure message.
    pub fn logs(&self) -> String {
        ["pebble.log", "pebble.err", "challtestsrv.err"]
            .iter()
            .map(|name| format!("--- {name}\n{}", fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()))
            .collect()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "{}",
                self.logs().lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The address of docker0, which containers on any Compose network reach the host at.
fn bridge_gateway() -> String {
    let out = Command::new("ip").args(["-4", "-o", "addr", "show", "dev", "docker0"]).output().expect("ip runs");
    let listing = text(&out.stdout);
    let address = listing.split_whitespace().skip_while(|w| *w != "inet").nth(1).and_then(|a| a.split('/').next());
    address.unwrap_or_else(|| panic!("docker0 has no IPv4 address: {listing}")).to_owned()
}

/// A CA (written to `ca_path`) and pebble's API certificate for `gateway` and 127.0.0.1.
fn api_certificate(dir: &Path, ca_path: &Path, gateway: &str) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "xtask e2e pebble API CA");
    fs::write(ca_path, ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    for ip in [gateway, "127.0.0.1"] {
        leaf.subject_alt_names.push(SanType::IpAddress(ip.parse().unwrap()));
    }
    fs::write(dir.join("api.pem"), leaf.signed_by(&key, &issuer).unwrap().pem()).unwrap();
    fs::write(dir.join("api-key.pem"), key.serialize_pem()).unwrap();
}

/// CERTBOT_IMAGE: the official image when it is there, else the local stand-in.
pub fn certbot_image() -> String {
    value(&support(&["certbot-image.sh"]), "CERTBOT_IMAGE")
}

/// The certificate the site serves for [`HOST`] when it verifies against `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub serial: String,
    pub issuer: String,
}

pub fn served(https_port: u16, root: &Path) -> Option<Served> {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{https_port}"), "-servername", HOST])
        .args(["-verify_hostname", HOST, "-verify_return_error", "-CAfile"])
        .arg(root)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let said = text(&out.stdout);
    if !said.contains("Verify return code: 0 (ok)") {
        return None;
    }
    let begin = said.find("-----BEGIN CERTIFICATE-----")?;
    let end = said.find("-----END CERTIFICATE-----")? + "-----END CERTIFICATE-----".len();
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-issuer", "-nameopt", "oneline"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    std::io::Write::write_all(&mut x509.stdin.take()?, &said.as_bytes()[begin..end]).ok()?;
    let fields = text(&x509.wait_with_output().ok()?.stdout);
    let field = |name: &str| fields.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned());
    Some(Served { serial: field("serial=")?, issuer: field("issuer=")? })
}

/// GET / over a new TLS connection each time, trusting `root`, until stopped or at most
/// `max` requests or `limit` of time. HTTP/1.1: over HTTP/2 an old worker may answer a
/// connection opened in the instant of a reload with GOAWAY before reading its request,
/// which tells the client that the request was not processed and may be retried; browsers
/// retry, curl reports error 16 instead (docs/src/https.md, "Renewal").
pub struct RequestLoop {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(u32, Vec<String>)>,
}

impl RequestLoop {
    pub fn start(https_port: u16, root: &Path, max: u32, limit: Duration) -> RequestLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, root) = (stop.clone(), root.to_path_buf());
        let url = format!("https://{HOST}:{https_port}/");
        let resolve = format!("{HOST}:{https_port}:127.0.0.1");
        let handle = thread::spawn(move || {
            let (started, mut ok, mut failed) = (Instant::now(), 0, Vec::new());
            while !flag.load(Ordering::Relaxed) && ok + (failed.len() as u32) < max && started.elapsed() < limit {
                let out = Command::new("curl")
                    .args(["--silent", "--show-error", "--http1.1", "--max-time", "10", "--output", "/dev/null"])
                    .args(["--write-out", "%{http_code}", "--resolve", &resolve, "--cacert"])
                    .arg(&root)
                    .arg(&url)
                    .output()
                    .expect("curl runs");
                let code = text(&out.stdout);
                if out.status.success() && code == "200" {
                    ok += 1;
                } else {
                    failed.push(format!("{code} {}", text(&out.stderr).trim()));
                }
            }
            (ok, failed)
        });
        RequestLoop { stop, handle }
    }

    /// The requests that answered 200, and how each other one failed.
    pub fn stop(self) -> (u32, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}
