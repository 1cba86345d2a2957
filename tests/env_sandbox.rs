//! A throwaway project root for the env file tests, and the real xtask binary run against it
//! (`XTASK_ROOT`) with an empty `PATH`, so a test sees it if the xtask tries to run anything.

// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Sandbox {
    dir: tempfile::TempDir,
}

/// What one run of the xtask did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

/// A file of the repository, by its path from the repository root.
pub fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

impl Sandbox {
    /// A project root with the committed example files, as `init` needs them.
    pub fn with_examples() -> Sandbox {
        let sandbox = Sandbox::empty();
        for example in [".env.example", ".env.prod.example"] {
            fs::copy(repo_file(example), sandbox.root().join(example)).unwrap();
        }
        sandbox
    }

    pub fn empty() -> Sandbox {
        let sandbox = Sandbox { dir: tempfile::tempdir().unwrap() };
        fs::create_dir(sandbox.root()).unwrap();
        fs::create_dir(sandbox.dir.path().join("empty-path")).unwrap();
        sandbox
    }

    /// Named like a project so the plans show a readable Compose project name.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("site")
    }

    pub fn write(&self, name: &str, text: &str) {
        fs::write(self.root().join(name), text).unwrap();
    }

    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.root().join(name)).unwrap()
    }

    pub fn mode(&self, name: &str) -> u32 {
        fs::metadata(self.root().join(name)).unwrap().permissions().mode() & 0o777
    }

    /// Every file in the root with its content, to show a run changed nothing.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let entries = fs::read_dir(self.root()).unwrap().map(|entry| entry.unwrap().path()).filter(|p| p.is_file());
        entries
            .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), fs::read(&path).unwrap()))
            .collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.snapshot().into_keys().collect()
    }

    pub fn xtask(&self, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .env("XTASK_ROOT", self.root())
            .env("PATH", self.dir.path().join("empty-path"))
            .env_remove("XTASK_COMPOSE")
            .env_remove("XTASK_PROJECT_NAME")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

/// What Compose v2 passes to a container whose `env_file` is `path`, or its error.
pub fn compose_env(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let dir = tempfile::tempdir().unwrap();
    let compose_file = dir.path().join("compose.yml");
    let yaml = format!("services:\n  probe:\n    image: busybox\n    env_file: {:?}\n", path.display().to_string());
    fs::write(&compose_file, yaml).unwrap();
    // A clean environment: interpolation must draw on the file alone, as in the parser call below.
    let output = Command::new("docker")
        .args(["compose", "--project-directory"])
        .arg(dir.path())
        .arg("-f")
        .arg(&compose_file)
        .args(["config", "--format", "json"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("DOCKER_CONFIG", xtask::tools::compose_v2().unwrap())
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let environment = config["services"]["probe"]["environment"].as_object().cloned().unwrap_or_default();
    // `config` prints a literal `$` as `$$`, ready for interpolation.
    Ok(environment.into_iter().map(|(k, v)| (k, v.as_str().unwrap_or_default().replace("$$", "$"))).collect())
}
