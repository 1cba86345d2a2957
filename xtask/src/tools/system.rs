//! The programs that come from Debian packages (nginx, curl, openssl, Chromium, the PostgreSQL server,
//! debootstrap, the image registry, Python's venv): found or reported together with the one
//! `apt-get install` line that adds every missing one. Which package brings a tool and how to
//! tell it is installed is .ci/packages, the list .ci/install-packages installs from too.

use std::env;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Result};

use crate::process::{self, Step};

/// One line per tool: its package, how to tell it is installed, its name (see the file's header).
const PACKAGES: &str = include_str!("../../../.ci/packages");

/// A tool of .ci/packages, by its name there.
#[derive(Debug, PartialEq, Eq)]
pub struct SystemTool {
    pub name: &'static str,
}

/// A line of .ci/packages.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    package: &'static str,
    probe: Probe,
    name: &'static str,
}

#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// An executable on PATH.
    Program(&'static str),
    /// An executable on PATH or in /usr/sbin or /sbin (sbin is not on every PATH).
    Sbin(&'static str),
    /// An executable on PATH, or at this path (a `*` matches one directory level): Debian
    /// keeps the PostgreSQL server of each major version off PATH.
    Path(&'static str),
    /// A Python module importable by `python3`.
    PythonModule(&'static str),
}

const SBIN: &[&str] = &["/usr/sbin", "/sbin"];

pub const NGINX: SystemTool = SystemTool { name: "nginx" };
/// The server binaries, for the throwaway database of the Django tests.
pub const POSTGRES: SystemTool = SystemTool { name: "postgres" };
/// The Docker CLI, which runs the Compose plugin; Debian's engine package brings it.
pub const DOCKER: SystemTool = SystemTool { name: "docker" };
/// The standalone Compose v1, which the end-to-end suite runs the dev stack with.
pub const COMPOSE_V1: SystemTool = SystemTool { name: "docker-compose (Compose v1)" };
pub const CURL: SystemTool = SystemTool { name: "curl" };
/// The browser of the end-to-end suite, its WebDriver server, and the NSS tool that makes it
/// trust the project's CA.
pub const CHROMIUM: SystemTool = SystemTool { name: "chromium" };
pub const CHROMEDRIVER: SystemTool = SystemTool { name: "chromedriver" };
pub const CERTUTIL: SystemTool = SystemTool { name: "certutil" };
/// The acme scenario's ACME test CA and its DNS server (one Debian package ships both).
pub const PEBBLE: SystemTool = SystemTool { name: "pebble" };
pub const PEBBLE_CHALLTESTSRV: SystemTool = SystemTool { name: "pebble-challtestsrv" };
/// Makes the nginx checks' throwaway certificate and inspects TLS handshakes.
pub const OPENSSL: SystemTool = SystemTool { name: "openssl" };
/// The image registry (the distribution project's) that `release --push` is tested against.
pub const DOCKER_REGISTRY: SystemTool = SystemTool { name: "docker-registry" };
pub const DEBOOTSTRAP: SystemTool = SystemTool { name: "debootstrap" };
/// Makes the end-to-end suite's second Swarm node (a network namespace and a veth pair);
/// without it the swarm scenario says why and runs on one node.
pub const IP: SystemTool = SystemTool { name: "ip" };
/// Stores the site's snapshots (`cargo xtask backup`): encrypted, deduplicated, checked.
pub const RESTIC: SystemTool = SystemTool { name: "restic" };
/// The backup scenario's SFTP host, and the client restic runs to reach it.
pub const SSHD: SystemTool = SystemTool { name: "sshd" };
pub const SSH: SystemTool = SystemTool { name: "ssh" };
/// `python3 -m venv` needs ensurepip, which Debian splits out of python3.
pub const PYTHON_VENV: SystemTool = SystemTool { name: "python3 venv" };

impl SystemTool {
    /// The Debian package that provides the tool.
    pub fn package(&self) -> &'static str {
        self.entry().package
    }

    pub fn is_present(&self) -> bool {
        match self.entry().probe {
            Probe::Program(program) => find_program(program, &[]).is_some(),
            Probe::Sbin(program) => find_program(program, SBIN).is_some(),
            Probe::Path(path) => {
                let (dir, program) = path.rsplit_once('/').unwrap_or(("", path));
                find_program(program, &[dir]).is_some()
            }
            Probe::PythonModule(module) => python_imports(module),
        }
    }

    fn entry(&self) -> &'static Entry {
        let found = entries().iter().find(|e| e.name == self.name);
        // The unit tests check that every constant above is in the file.
        found.unwrap_or_else(|| panic!("{} is not in .ci/packages: add its line there", self.name))
    }
}

/// The lines of .ci/packages, read once.
fn entries() -> &'static [Entry] {
    static ENTRIES: OnceLock<Vec<Entry>> = OnceLock::new();
    ENTRIES.get_or_init(|| parse(PACKAGES).unwrap_or_else(|e| panic!("{e:#}")))
}

fn parse(text: &'static str) -> Result<Vec<Entry>> {
    let lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    lines.filter(|(_, l)| !l.is_empty() && !l.starts_with('#')).map(|(number, line)| entry(number, line)).collect()
}

/// One line: the package, the probe, then the tool's name (the rest of the line).
fn entry(number: usize, line: &'static str) -> Result<Entry> {
    let (package, rest) = first_field(line);
    let (probe, name) = first_field(rest);
    if probe.is_empty() || name.is_empty() {
        bail!(".ci/packages:{number}: {line:?} is not `PACKAGE PROBE TOOL`");
    }
    Ok(Entry { package, probe: self::probe(probe), name })
}

/// The first word of `text` and the rest, trimmed.
fn first_field(text: &'static str) -> (&'static str, &'static str) {
    let text = text.trim_start();
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    (&text[..end], text[end..].trim())
}

fn probe(text: &'static str) -> Probe {
    if let Some(program) = text.strip_prefix("sbin:") {
        Probe::Sbin(program)
    } else if let Some(module) = text.strip_prefix("python:") {
        Probe::PythonModule(module)
    } else if text.starts_with('/') {
        Probe::Path(text)
    } else {
        Probe::Program(text)
    }
}

/// The Python that makes the virtualenvs: `PYTHON`, else `python3`, as for the scripts
/// in tests/django.
pub fn python() -> String {
    env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// The tools of `wanted` that are not installed, each once.
pub fn missing<'a>(wanted: &[&'a SystemTool]) -> Vec<&'a SystemTool> {
    let mut missing: Vec<&SystemTool> = Vec::new();
    for tool in wanted {
        if !missing.contains(tool) && !tool.is_present() {
            missing.push(tool);
        }
    }
    missing
}

/// The command that installs `tools`.
pub fn apt_line(tools: &[&SystemTool]) -> String {
    // One package can ship several tools (pebble and pebble-challtestsrv).
    let mut packages: Vec<&str> = Vec::new();
    for package in tools.iter().map(|t| t.package()) {
        if !packages.contains(&package) {
            packages.push(package);
        }
    }
    format!("apt-get install -y {}", packages.join(" "))
}

/// One line naming every tool of `missing` and the command that installs them all.
pub fn missing_message(missing: &[&SystemTool]) -> String {
    let names: Vec<&str> = missing.iter().map(|t| t.name).collect();
    format!("missing {}: install with `{}`", names.join(", "), apt_line(missing))
}

/// Fails with [`missing_message`] unless every tool of `wanted` is installed.
pub fn require(wanted: &[&SystemTool]) -> Result<()> {
    let missing = missing(wanted);
    if missing.is_empty() {
        return Ok(());
    }
    bail!("{}", missing_message(&missing))
}

/// `program` on PATH, else in `dirs` (a `*` matches one directory level).
pub fn find_program(program: &str, dirs: &[&str]) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    let on_path = env::split_paths(&path).map(|dir| dir.join(program));
    let extra = dirs.iter().flat_map(|dir| expand(dir)).map(|dir| dir.join(program));
    on_path.chain(extra).find(|candidate| is_executable(candidate))
}

fn expand(pattern: &str) -> Vec<PathBuf> {
    let Some((head, tail)) = pattern.split_once("/*/") else { return vec![PathBuf::from(pattern)] };
    let Ok(entries) = std::fs::read_dir(head) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path().join(tail)).collect();
    dirs.sort();
    dirs
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn python_imports(module: &str) -> bool {
    let probe = Step::new(python(), ".").args(["-c", &format!("import {module}")]);
    process::output(&probe).is_ok_and(|out| out.ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tool this module names.
    const TOOLS: [SystemTool; 18] = [
        NGINX,
        POSTGRES,
        DOCKER,
        COMPOSE_V1,
        CURL,
        CHROMIUM,
        CHROMEDRIVER,
        CERTUTIL,
        PEBBLE,
        PEBBLE_CHALLTESTSRV,
        OPENSSL,
        DOCKER_REGISTRY,
        DEBOOTSTRAP,
        IP,
        RESTIC,
        SSHD,
        SSH,
        PYTHON_VENV,
    ];

    #[test]
    fn the_package_list_parses_and_names_every_tool_once() {
        let entries = parse(PACKAGES).unwrap();
        for tool in &TOOLS {
            assert_eq!(entries.iter().filter(|e| e.name == tool.name).count(), 1, "{} in .ci/packages", tool.name);
        }
        assert_eq!(entries.len(), TOOLS.len(), "a line of .ci/packages names no tool of system.rs");
        assert_eq!(POSTGRES.entry().probe, Probe::Path("/usr/lib/postgresql/*/bin/initdb"));
        assert_eq!((&NGINX.entry().probe, PYTHON_VENV.package()), (&Probe::Sbin("nginx"), "python3-venv"));
    }

    #[test]
    fn a_line_without_its_three_fields_is_refused_with_its_number() {
        let error = parse("# header\n\nnginx  sbin:nginx\n").unwrap_err().to_string();
        assert_eq!(error, r#".ci/packages:3: "nginx  sbin:nginx" is not `PACKAGE PROBE TOOL`"#);
    }

    #[test]
    fn the_apt_line_lists_every_package_once_in_order() {
        assert_eq!(apt_line(&[&NGINX, &POSTGRES, &DEBOOTSTRAP]), "apt-get install -y nginx postgresql debootstrap");
        assert_eq!(apt_line(&[&PEBBLE, &CURL, &PEBBLE_CHALLTESTSRV]), "apt-get install -y pebble curl");
    }

    #[test]
    fn the_message_names_the_tools_and_their_packages() {
        let message = missing_message(&[&POSTGRES, &PYTHON_VENV]);
        assert_eq!(
            message,
            "missing postgres, python3 venv: install with `apt-get install -y postgresql python3-venv`"
        );
    }

    #[test]
    fn a_program_outside_path_is_found_in_the_extra_directories() {
        assert!(find_program("sh", &["/bin", "/usr/bin"]).is_some());
        assert!(find_program("no-such-program-here", &["/usr/lib/*/bin"]).is_none());
    }
}
