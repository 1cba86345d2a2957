//! An off-host backup target for the end-to-end scenarios: OpenSSH's sshd serving SFTP in a
//! network namespace of its own, joined to this machine's namespace by a veth pair.
//!
//! Backups that only ever go to a directory on the same machine prove little about the
//! off-host path: the restic repository URL, the ssh command restic runs, host key checking
//! and key-only logins. This host answers on an address of its own and takes one client key
//! only, with no password login, so a scenario pointed at it exercises all of that for real.
//! Its keys, configuration and stored data live in a temporary directory, and everything is
//! undone when it is dropped, also when the test fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::harness::{text, wait_for};
use super::netns;
use crate::support::skip::skip;

/// The addresses of the `n`th host of this process: 10.232.n.0/24, a range of their own, so
/// that the second Docker host of tests/e2e/node.rs can exist at the same time, and so can
/// the hosts of scenarios that run side by side (persist and swarm).
fn address(n: u32, last: u8) -> String {
    format!("10.232.{n}.{last}")
}

/// The number of the next host this process starts.
static STARTED: AtomicU32 = AtomicU32::new(0);

/// The account restic logs in as: the tests run as root.
const USER: &str = "root";

/// An SFTP server reached only by key, until dropped.
pub struct SftpHost {
    /// Its number in this process, which makes its names and addresses.
    n: u32,
    netns: String,
    host_veth: String,
    dir: tempfile::TempDir,
    sshd: Option<Child>,
}

impl SftpHost {
    /// Starts sshd in its namespace and waits until it takes a login with [`SftpHost::key`];
    /// the error says what failed (a missing tool, the network, or sshd's own last words).
    pub fn start() -> Result<SftpHost, String> {
        for tool in ["ip", "/usr/sbin/sshd", "ssh", "ssh-keygen"] {
            let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status();
            if !found.is_ok_and(|s| s.success()) {
                return Err(format!("{tool} is not installed"));
            }
        }
        let id = std::process::id() % 100_000;
        let n = STARTED.fetch_add(1, Ordering::SeqCst) % 250;
        let dir = tempfile::Builder::new().prefix("xtask-e2e-sftp-").tempdir().map_err(|e| e.to_string())?;
        // Built before anything exists, so that Drop undoes whatever a failed start left.
        let (netns, host_veth) = (format!("xtask-e2e-sftp-{id}-{n}"), format!("xsftp{id}x{n}"));
        let mut host = SftpHost { n, netns, host_veth, dir, sshd: None };
        host.files()?;
        host.network()?;
        host.daemon()?;
        Ok(host)
    }

    /// The restic repository on it, in a directory that does not exist yet (`restic init`
    /// creates it) under one that does.
    pub fn repository(&self) -> String {
        format!("sftp:{USER}@{}:{}", self.server_address(), self.repository_dir().display())
    }

    /// The server's address, where sshd listens.
    pub fn server_address(&self) -> String {
        address(self.n, 2)
    }

    /// An address of its network where nothing answers.
    pub fn unused_address(&self) -> String {
        address(self.n, 3)
    }

    /// The client's private key (ed25519, no passphrase, mode 0600), the only one it accepts.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("client_ed25519")
    }

    /// A known_hosts file naming the server's key for its address, so that the client can
    /// check it strictly (`StrictHostKeyChecking=yes`).
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// Total size in bytes of the files under the repository, to report what a backup sent.
    pub fn stored_bytes(&self) -> u64 {
        walkdir::WalkDir::new(self.repository_dir())
            .into_iter()
            .filter_map(Result::ok)
            .filter_map(|entry| entry.metadata().ok())
            .filter(|metadata| metadata.is_file())
            .map(|metadata| metadata.len())
            .sum()
    }

    /// Cuts (false) or restores (true) this machine's link to the host, as an outage would.
    pub fn set_reachable(&self, reachable: bool) {
        let state = if reachable { "up" } else { "down" };
        let out = Command::new("ip").args(["link", "set", "dev", &self.host_veth, state]).output();
        let out = out.unwrap_or_else(|e| panic!("cannot run ip: {e}"));
        assert!(out.status.success(), "ip link set {} {state}: {}", self.host_veth, text(&out.stderr));
    }

    pub fn repository_dir(&self) -> PathBuf {
        self.dir.path().join("srv").join("site")
    }

    /// Keys, known_hosts, authorized_keys, sshd_config and the repository's parent.
    fn files(&self) -> Result<(), String> {
        let root = self.dir.path();
        keygen(&root.join("host_ed25519"))?;
        keygen(&self.key())?;
        let host_key = read(&root.join("host_ed25519.pub"))?;
        // The key type and the key itself; the comment names this machine, not the server.
        let host_key = host_key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        write(&self.known_hosts(), &format!("{} {host_key}\n", self.server_address()))?;
        write(&root.join("authorized_keys"), &read(&root.join("client_ed25519.pub"))?)?;
        write(&root.join("sshd_config"), &self.config())?;
        fs::create_dir_all(root.join("srv")).map_err(|e| e.to_string())?;
        // Privilege separation wants this directory, which only an installed service makes.
        fs::create_dir_all("/run/sshd").map_err(|e| format!("cannot create /run/sshd: {e}"))
    }

    fn config(&self) -> String {
        let root = self.dir.path().display();
        // StrictModes off: the files sit in a temporary directory, whatever its modes.
        let server = self.server_address();
        format!(
            "ListenAddress {server}\n\
             Port 22\n\
             HostKey {root}/host_ed25519\n\
             PidFile {root}/sshd.pid\n\
             AuthorizedKeysFile {root}/authorized_keys\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\n\
             StrictModes no\n\
             UsePAM no\n\
             Subsystem sftp internal-sftp\n"
        )
    }

    fn network(&self) -> Result<(), String> {
        netns::create(&self.netns, &self.host_veth, &address(self.n, 1), &self.server_address())
    }

    /// sshd in the foreground (`-D`), so that it is the child to kill, logging to a file.
    fn daemon(&mut self) -> Result<(), String> {
        let root = self.dir.path();
        let log = fs::File::create(root.join("sshd.log")).map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, "/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(root.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run sshd: {e}"))?;
        self.sshd = Some(child);
        self.wait_until_it_answers()
    }

    /// A real login with the key, as restic will make: a listening socket alone would not
    /// show that the keys and the configuration are right.
    fn wait_until_it_answers(&mut self) -> Result<(), String> {
        let mut last = String::new();
        let answer = wait_for(Duration::from_secs(20), Duration::from_millis(250), || {
            if let Some(status) = self.sshd.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Some(Err(format!("sshd exited ({status})")));
            }
            let out = self.login(&self.key());
            last = text(&out.stderr).trim().to_owned();
            out.status.success().then_some(Ok(()))
        });
        let failure = match answer {
            Some(result) => result,
            None => Err(format!("no login within 20 s: {last}")),
        };
        failure.map_err(|why| format!("{why}; sshd's log ends with: {}", self.log_tail()))
    }

    /// `ssh … true` with `key` only and the server's key checked.
    fn login(&self, key: &Path) -> Output {
        Command::new("ssh")
            .arg("-i")
            .arg(key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts().display()))
            .args(["-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            .args(["-o", "ConnectTimeout=2", &format!("{USER}@{}", self.server_address()), "true"])
            .stdin(Stdio::null())
            .output()
            .expect("ssh runs")
    }

    /// The last lines sshd logged, to show beside a failure that involves the host.
    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }
}

impl Drop for SftpHost {
    fn drop(&mut self) {
        // sshd keeps nothing worth a graceful stop: its pid file is in the directory.
        if let Some(mut sshd) = self.sshd.take() {
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
        netns::remove(&self.netns, &self.host_veth);
    }
}

fn keygen(file: &Path) -> Result<(), String> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
    if !out.status.success() {
        return Err(format!("ssh-keygen {}: {}", file.display(), text(&out.stderr).trim()));
    }
    Ok(())
}

fn read(file: &Path) -> Result<String, String> {
    fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))
}

fn write(file: &Path, contents: &str) -> Result<(), String> {
    fs::write(file, contents).map_err(|e| format!("{}: {e}", file.display()))
}

#[test]
#[ignore = "needs root and ip netns; run with --ignored"]
fn sftp_host_takes_a_restic_repository_by_key_only() {
    if !Command::new("restic").arg("version").output().is_ok_and(|o| o.status.success()) {
        return skip("restic is not installed");
    }
    let host = match SftpHost::start() {
        Ok(host) => host,
        Err(why) => return skip(&format!("no SFTP host: {why}")),
    };
    let netns = host.netns.clone();

    restic(&host, &["init"]);
    let data = tempfile::tempdir().unwrap();
    fs::write(data.path().join("dump.sql"), "CREATE TABLE site (id integer);\n".repeat(100)).unwrap();
    restic(&host, &["backup", &data.path().display().to_string()]);
    let listed = restic(&host, &["snapshots", "--json"]);
    let snapshots: Vec<serde_json::Value> = serde_json::from_str(&listed).expect("snapshots --json");
    assert_eq!(snapshots.len(), 1, "{listed}");
    let stored = host.stored_bytes();
    assert!(stored > 0, "nothing stored under {}", host.repository());
    eprintln!("e2e: sftp: {} holds {stored} bytes", host.repository());

    let other = tempfile::tempdir().unwrap();
    let other_key = other.path().join("other_ed25519");
    keygen(&other_key).unwrap();
    let refused = host.login(&other_key);
    assert!(!refused.status.success(), "a key it does not know logged in");
    eprintln!("e2e: sftp: another key is refused: {}", text(&refused.stderr).trim());

    // Two at once, as the persist and swarm scenarios run side by side: each its own.
    let second = SftpHost::start().unwrap_or_else(|why| panic!("a second SFTP host did not start: {why}"));
    assert_ne!(second.server_address(), host.server_address());
    assert!(second.login(&second.key()).status.success(), "the second host takes no login");

    drop(host);
    let namespaces = text(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout);
    assert!(!namespaces.contains(&netns), "{netns} outlived the host: {namespaces}");
}

/// `restic ARGS` against the host over ssh with its key only; its stdout.
fn restic(host: &SftpHost, args: &[&str]) -> String {
    let ssh = format!(
        "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
         -o UserKnownHostsFile={} {USER}@{} -s sftp",
        host.key().display(),
        host.known_hosts().display(),
        host.server_address()
    );
    let out = Command::new("restic")
        .args(["--no-cache", "-r", &host.repository(), "-o", &format!("sftp.command={ssh}")])
        .args(args)
        .env("RESTIC_PASSWORD", "e2e-sftp")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "restic {}: {}", args.join(" "), text(&out.stderr));
    text(&out.stdout)
}
