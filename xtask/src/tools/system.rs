//! The programs that come from Debian packages (nginx, curl, openssl, Chromium, the PostgreSQL server,
//! debootstrap, the image registry, Python's venv): found or reported together with the one
//! `apt-get install` line that adds every missing one.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Result};

/// A program and the Debian package that provides it.
#[derive(Debug, PartialEq, Eq)]
pub struct SystemTool {
    pub name: &'static str,
    pub package: &'static str,
    probe: Probe,
}

#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// An executable on PATH or in one of these directories (sbin is not on every PATH).
    Program(&'static str, &'static [&'static str]),
    /// A Python module importable by `python3`.
    PythonModule(&'static str),
}

const SBIN: &[&str] = &["/usr/sbin", "/sbin"];
/// Debian keeps the server binaries of each major version off PATH.
const POSTGRES_BIN: &[&str] = &["/usr/lib/postgresql/*/bin"];

pub const NGINX: SystemTool = SystemTool { name: "nginx", package: "nginx", probe: Probe::Program("nginx", SBIN) };
pub const POSTGRES: SystemTool =
    SystemTool { name: "postgres", package: "postgresql", probe: Probe::Program("initdb", POSTGRES_BIN) };
/// The Docker CLI, which runs the Compose plugin; Debian's engine package brings it.
pub const DOCKER: SystemTool =
    SystemTool { name: "docker", package: "docker.io", probe: Probe::Program("docker", &[]) };
pub const CURL: SystemTool = SystemTool { name: "curl", package: "curl", probe: Probe::Program("curl", &[]) };
/// The browser of the end-to-end suite, its WebDriver server, and the NSS tool that makes it
/// trust the project's CA.
pub const CHROMIUM: SystemTool =
    SystemTool { name: "chromium", package: "chromium", probe: Probe::Program("chromium", &[]) };
pub const CHROMEDRIVER: SystemTool =
    SystemTool { name: "chromedriver", package: "chromium-driver", probe: Probe::Program("chromedriver", &[]) };
pub const CERTUTIL: SystemTool =
    SystemTool { name: "certutil", package: "libnss3-tools", probe: Probe::Program("certutil", &[]) };
/// The acme scenario's ACME test CA and its DNS server (one Debian package ships both).
pub const PEBBLE: SystemTool = SystemTool { name: "pebble", package: "pebble", probe: Probe::Program("pebble", &[]) };
pub const PEBBLE_CHALLTESTSRV: SystemTool =
    SystemTool { name: "pebble-challtestsrv", package: "pebble", probe: Probe::Program("pebble-challtestsrv", &[]) };
/// Makes the nginx checks' throwaway certificate and inspects TLS handshakes.
pub const OPENSSL: SystemTool =
    SystemTool { name: "openssl", package: "openssl", probe: Probe::Program("openssl", &[]) };
/// The image registry (the distribution project's) that `release --push` is tested against.
pub const DOCKER_REGISTRY: SystemTool =
    SystemTool { name: "docker-registry", package: "docker-registry", probe: Probe::Program("docker-registry", &[]) };
pub const DEBOOTSTRAP: SystemTool =
    SystemTool { name: "debootstrap", package: "debootstrap", probe: Probe::Program("debootstrap", SBIN) };
/// `python3 -m venv` needs ensurepip, which Debian splits out of python3.
pub const PYTHON_VENV: SystemTool =
    SystemTool { name: "python3 venv", package: "python3-venv", probe: Probe::PythonModule("ensurepip") };

impl SystemTool {
    pub fn is_present(&self) -> bool {
        match self.probe {
            Probe::Program(program, dirs) => find_program(program, dirs).is_some(),
            Probe::PythonModule(module) => python_imports(module),
        }
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
    for package in tools.iter().map(|t| t.package) {
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
    let mut probe = Command::new(python());
    probe.args(["-c", &format!("import {module}")]).stdout(Stdio::null()).stderr(Stdio::null());
    probe.status().is_ok_and(|status| status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

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
