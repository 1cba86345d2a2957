//! The host ports a stack publishes, checked before anything is built or started: a port
//! already bound on the host would otherwise fail the start half-way, after the image build
//! and with some containers already running.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};

use anyhow::{bail, Result};
use xshell::cmd;

use crate::config::envfile::EnvFile;
use crate::context::Context;
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
pub fn require_free(cx: &Context, stack: Stack, env: &EnvFile) -> Result<()> {
    if cx.dry_run {
        return Ok(());
    }
    for published in published(stack) {
        let Some(port) = port(published, env) else { continue };
        if !in_use(published.host, port) || held_by_stack(cx, stack, port) {
            continue;
        }
        bail!(
            "{}={port} is already in use on this host: stop what listens on port {port}, or set {} to a free port in {}",
            published.variable,
            published.variable,
            stack.env_file()
        );
    }
    Ok(())
}

/// Whether binding the port fails because it is taken. A refusal for any other reason
/// (a port under 1024 for a user) says nothing: the engine binds as root.
fn in_use(host: Ipv4Addr, port: u16) -> bool {
    matches!(TcpListener::bind((host, port)), Err(e) if e.kind() == ErrorKind::AddrInUse)
}

/// Whether a container of the stack's Compose project publishes `port`.
fn held_by_stack(cx: &Context, stack: Stack, port: u16) -> bool {
    let Ok(sh) = cx.shell() else { return false };
    let project = format!("label=com.docker.compose.project={}", stack.project(cx));
    let publish = format!("publish={port}");
    let ids = cmd!(sh, "docker ps --quiet --filter {project} --filter {publish}").quiet().ignore_stderr().read();
    ids.is_ok_and(|ids| !ids.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::envfile;

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
