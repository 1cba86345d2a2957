//! The host ports a stack publishes, checked before anything is built or started: a port
//! already bound on the host would otherwise fail the start half-way, after the image build
//! and with some containers already running.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::context::Context;
use crate::envfile::EnvFile;
use crate::plan::{Action, Step};
use crate::process;
use crate::stack::compose::Stack;

/// A host port published from an env file variable, as the compose file reads it
/// (`${HTTP_PORT:-80}`), and the address it is published on.
pub struct Published {
    pub variable: &'static str,
    pub default: u16,
    pub host: Ipv4Addr,
}

/// Every published port of each stack: one line per port.
const DEV: &[Published] = &[Published { variable: "DEV_PORT", default: 8000, host: Ipv4Addr::LOCALHOST }];
const PROD: &[Published] = &[
    Published { variable: "HTTP_PORT", default: 80, host: Ipv4Addr::UNSPECIFIED },
    Published { variable: "HTTPS_PORT", default: 443, host: Ipv4Addr::UNSPECIFIED },
];

pub fn published(stack: Stack) -> &'static [Published] {
    match stack {
        Stack::Dev => DEV,
        Stack::Prod { .. } => PROD,
    }
}

/// The port `published` gets from `env`: its value, or the default when blank or unset.
/// None for a value that is no port (the preflight names it).
pub fn port(published: &Published, env: &EnvFile) -> Option<u16> {
    match env.get(published.variable).map(|e| e.value.trim()) {
        None | Some("") => Some(published.default),
        Some(value) => value.parse().ok().filter(|p| *p != 0),
    }
}

/// Refuses, naming the variable, the port and the fix, a published port that something
/// else on the host holds. The stack's own containers may hold it (a second `prod`).
#[derive(Debug)]
pub struct Free {
    /// (variable, host address, port) of each published port.
    ports: Vec<(&'static str, Ipv4Addr, u16)>,
    env_file: &'static str,
    /// The stack's containers: `docker ps` of its Compose project.
    project: String,
    dir: PathBuf,
}

/// The check that the ports `stack` publishes from `env` are free, as a plan's action.
pub fn require_free(cx: &Context, stack: Stack, env: &EnvFile) -> Free {
    let ports = published(stack).iter().filter_map(|p| Some((p.variable, p.host, port(p, env)?))).collect();
    Free { ports, env_file: stack.env_file(), project: stack.project(cx), dir: cx.root.clone() }
}

impl Action for Free {
    fn render(&self) -> String {
        let ports: Vec<String> = self.ports.iter().map(|(variable, _, port)| format!("{variable}={port}")).collect();
        format!(
            "# check that {} are free on this host, unless the stack's own containers hold them",
            ports.join(" and ")
        )
    }

    fn run(&self, _: &Context) -> Result<()> {
        for (variable, host, port) in &self.ports {
            if !in_use(*host, *port) || self.held_by_stack(*port) {
                continue;
            }
            bail!(
                "{variable}={port} is already in use on this host: stop what listens on port {port}, or set {variable} to a free port in {}",
                self.env_file
            );
        }
        Ok(())
    }
}

impl Free {
    /// Whether a container of the stack's Compose project publishes `port`.
    fn held_by_stack(&self, port: u16) -> bool {
        let project = format!("label=com.docker.compose.project={}", self.project);
        let publish = format!("publish={port}");
        let ps = Step::new("docker", &self.dir).args(["ps", "--quiet", "--filter", &project, "--filter", &publish]);
        process::stdout_of(&ps).is_some_and(|ids| !ids.trim().is_empty())
    }
}

/// Whether binding the port fails because it is taken. A refusal for any other reason
/// (a port under 1024 for a user) says nothing: the engine binds as root.
fn in_use(host: Ipv4Addr, port: u16) -> bool {
    matches!(TcpListener::bind((host, port)), Err(e) if e.kind() == ErrorKind::AddrInUse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envfile;

    #[test]
    fn a_blank_or_missing_value_is_the_default_and_a_bad_one_is_left_to_the_preflight() {
        let port_of = |text: &str| port(&PROD[0], &envfile::parse(text, &|_| None));
        assert_eq!(port_of(""), Some(80));
        assert_eq!(port_of("HTTP_PORT=\n"), Some(80));
        assert_eq!(port_of("HTTP_PORT=8080\n"), Some(8080));
        assert_eq!(port_of("HTTP_PORT=http\n"), None);
    }

    #[test]
    fn a_bound_port_is_in_use_and_a_released_one_is_not() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(in_use(Ipv4Addr::LOCALHOST, port));
        assert!(in_use(Ipv4Addr::UNSPECIFIED, port), "a loopback listener blocks the wildcard address too");
        drop(listener);
        assert!(!in_use(Ipv4Addr::LOCALHOST, port));
    }
}
