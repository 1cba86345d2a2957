//! A throwaway project root beside a bin/ directory, and the real xtask binary run against
//! it (`XTASK_ROOT`) with bin/ as its PATH, alone or before the test's own: with bin/ alone,
//! a test sees it if the xtask runs a program the test did not put there. What differs from
//! one test file to the next (the root's name and files, the environment, the PATH) is set
//! with the `with_` methods; tests/support/fake_docker.rs adds the recording fake `docker`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt as _};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use super::{repo_file, text};

pub struct Sandbox {
    dir: tempfile::TempDir,
    name: String,
    /// Variables every run gets, on top of the environment below.
    env: Vec<(String, String)>,
    /// Every run starts from an empty environment instead of the test's own.
    clean_env: bool,
    /// bin/ comes before the test's own PATH (git, tar) instead of being all of it.
    host_path: bool,
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

/// Variables of the shell running the tests that would change what the xtask does.
const XTASK_VARIABLES: [&str; 4] = ["XTASK_COMPOSE", "XTASK_PROJECT_NAME", "REGISTRY", "NGINX_IMAGE"];

impl Sandbox {
    /// An empty project root named `name`, which names its Compose projects (`<name>-prod`).
    pub fn named(name: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Sandbox { dir, name: name.to_owned(), env: Vec::new(), clean_env: false, host_path: false };
        fs::create_dir(sandbox.root()).unwrap();
        fs::create_dir(sandbox.bin()).unwrap();
        sandbox
    }

    /// Named like a project so the plans show a readable Compose project name.
    pub fn empty() -> Sandbox {
        Sandbox::named("site")
    }

    /// A project root with the committed example files, as `init` needs them.
    pub fn with_examples() -> Sandbox {
        Sandbox::empty().with_repo_files(&["docker/dev.env.example", "docker/prod.env.example"])
    }

    /// `key=value` for every run.
    pub fn with_env(mut self, key: &str, value: &str) -> Sandbox {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs start from an empty environment: only PATH and what `with_env` sets.
    pub fn with_clean_env(mut self) -> Sandbox {
        self.clean_env = true;
        self
    }

    /// bin/ first on the test's own PATH, for commands that run git.
    pub fn with_host_path(mut self) -> Sandbox {
        self.host_path = true;
        self
    }

    pub fn with_file(self, name: &str, text: &str) -> Sandbox {
        self.write(name, text);
        self
    }

    /// Copies of these files of the repository, at the same paths in the root.
    pub fn with_repo_files(self, paths: &[&str]) -> Sandbox {
        for path in paths {
            let to = self.root().join(path);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(repo_file(path), to).unwrap();
        }
        self
    }

    /// The host's /bin/`program` in bin/.
    pub fn with_program(self, program: &str) -> Sandbox {
        symlink(format!("/bin/{program}"), self.bin().join(program)).unwrap();
        self
    }

    /// The root as a git repository on `main` with one commit of everything in it.
    pub fn committed(self) -> Sandbox {
        self.git(&["init", "-q", "-b", "main"]);
        self.git(&["add", "."]);
        self.git(&["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "first"]);
        self
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join(&self.name)
    }

    /// A path beside the root.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn bin(&self) -> PathBuf {
        self.path("bin")
    }

    /// Writes a file of the root, making its directories.
    pub fn write(&self, name: &str, text: &str) {
        let path = self.root().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
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

    /// `git ARGS` in the root, which must succeed; returns its stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git").args(args).current_dir(self.root()).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// `program` run beside the root with the xtask's environment, e.g. to wrap the xtask.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        command.current_dir(self.dir.path()).stdin(Stdio::null());
        if self.clean_env {
            command.env_clear();
        }
        for key in XTASK_VARIABLES {
            command.env_remove(key);
        }
        command.env("PATH", self.search_path()).env("XTASK_ROOT", self.root());
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn search_path(&self) -> std::ffi::OsString {
        let host = std::env::var_os("PATH").filter(|_| self.host_path);
        let dirs = [self.bin()].into_iter().chain(host.iter().flat_map(std::env::split_paths));
        std::env::join_paths(dirs).unwrap()
    }

    /// The xtask with `args`, ready to run.
    pub fn xtask_command(&self, args: &[&str]) -> Command {
        let mut command = self.command(env!("CARGO_BIN_EXE_xtask"));
        command.args(args);
        command
    }

    /// Runs the xtask with `args` and `env` on top of the sandbox's variables.
    pub fn output(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.xtask_command(args).envs(env.iter().copied()).output().unwrap()
    }

    pub fn xtask(&self, args: &[&str]) -> Run {
        let output = self.output(args, &[]);
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}
