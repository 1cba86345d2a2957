//! The recording fake `docker` (tests/fixtures/fake-docker/docker, whose header lists the
//! FAKE_* variables that choose its answers) in a sandbox's bin/, the files a stack command
//! fills the web image's build context from, and the calls the fake recorded, read back with
//! the sandbox's paths and random names replaced by fixed words.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt as _};
use std::path::PathBuf;

use super::repo_file;
use super::sandbox::Sandbox;

/// What a stack command fills the web image's build context from.
pub const CONTEXT_SOURCES: [&str; 5] = [
    "docker/Dockerfile",
    "docker/prod.env.example",
    "docker/system-packages.sh",
    "docker/stack_settings/__init__.py",
    "project-template/requirements.txt",
];

/// Which Compose the machine has, as the fake plays it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compose {
    /// The v2 plugin: `docker compose`.
    V2,
    /// Only the standalone `docker-compose` (v1): `docker compose` is an unknown command.
    V1Only,
    /// Neither.
    Nothing,
}

impl Sandbox {
    /// The fake as `docker` in bin/ (and as `docker-compose` with [`Compose::V1Only`]),
    /// recording its calls into calls.log beside the root.
    pub fn with_fake_docker(self, compose: Compose) -> Sandbox {
        let fake = repo_file("tests/fixtures/fake-docker/docker");
        symlink(&fake, self.bin().join("docker")).unwrap();
        if compose == Compose::V1Only {
            symlink(&fake, self.bin().join("docker-compose")).unwrap();
        }
        let sandbox = if compose == Compose::V2 { self } else { self.with_env("FAKE_COMPOSE_V2", "0") };
        let log = sandbox.log();
        sandbox.with_env("FAKE_DOCKER_LOG", &log.to_string_lossy())
    }

    /// Empty files at the paths of [`CONTEXT_SOURCES`].
    pub fn with_context_sources(self) -> Sandbox {
        for file in CONTEXT_SOURCES {
            self.write(file, "");
        }
        self
    }

    /// Replaces `docker` in bin/ by a shell script (the link to the fake is removed, not
    /// written through).
    pub fn docker_script(&self, script: &str) {
        let docker = self.bin().join("docker");
        let _ = fs::remove_file(&docker);
        fs::write(&docker, format!("#!/bin/sh\n{script}\n")).unwrap();
        fs::set_permissions(&docker, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn log(&self) -> PathBuf {
        self.path("calls.log")
    }

    /// The recorded calls, one a line (`<cwd>|WEB_IMAGE=<value>|<program> <args>`), with
    /// the root shown as `ROOT` and one-off container names as `NAME`.
    pub fn calls(&self) -> Vec<String> {
        let log = fs::read_to_string(self.log()).unwrap_or_default();
        let root = self.root().to_string_lossy().into_owned();
        log.lines().map(|l| anonymous(&l.replace(&root, "ROOT"))).collect()
    }

    /// The calls recorded since the last look, as [`Sandbox::calls`] shows them.
    pub fn take_calls(&self) -> Vec<String> {
        let calls = self.calls();
        let _ = fs::remove_file(self.log());
        calls
    }
}

/// `text` with every one-off container name (`<project>-oneoff-<16 hex digits>`) shown as `NAME`.
pub fn anonymous(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("-oneoff-") {
        let start = rest[..at].rfind([' ', '|']).map_or(0, |i| i + 1);
        let end = (at + 8 + 16).min(rest.len());
        out.push_str(&rest[..start]);
        out.push_str("NAME");
        rest = &rest[end..];
    }
    out + rest
}
