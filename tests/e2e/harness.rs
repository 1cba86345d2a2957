//! What the end-to-end scenarios share: the base images and the package index the
//! stacks are built from, Compose, and `Project`, a scratch copy of the project driven
//! through the real xtask binary and removed with everything it created when dropped.

use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::http::Site;

/// Longest any single xtask command may take (a cold image build included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The scheduler's interval in the production scenarios (`init_prod` sets it).
pub const HEARTBEAT_SECONDS: u64 = 2;
/// How long Redis keeps a task a worker took but never acknowledged before delivering it again.
pub const VISIBILITY_TIMEOUT: u64 = 30;

/// The files of the repository a project is made of.
const PROJECT_PATHS: &[&str] = &["docker", "project-template", ".gitignore"];

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("the repository exists")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Prints one timing line (shown with `--nocapture`).
pub fn timing(what: &str, elapsed: Duration) {
    eprintln!("e2e: {what}: {:.1}s", elapsed.as_secs_f64());
}

/// Set up once per test process: the images, the wheel cache and how to reach Compose v2.
pub struct Suite {
    /// PYTHON_IMAGE, POSTGRES_IMAGE and NGINX_IMAGE.
    pub images: Vec<(String, String)>,
    /// Set for every child when `docker compose` is not Compose v2 already.
    pub docker_config: Option<PathBuf>,
    /// The shared wheel cache (target/e2e-cache/wheelhouse-pyX.Y).
    wheel_cache: PathBuf,
    /// The package index every scenario builds from: one URL for the whole run, so the
    /// images' dependency layers are built once and reused by every scenario after the first.
    wheelhouse: Wheelhouse,
}

pub fn suite() -> &'static Suite {
    static SUITE: OnceLock<Suite> = OnceLock::new();
    SUITE.get_or_init(|| {
        let started = Instant::now();
        let docker_config = compose_v2_config();
        let images = support(&["base-images.sh"]);
        let args = wheelhouse_args(&images);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let built = support(&[&["wheelhouse.sh", "build"], &args[..]].concat());
        let wheel_cache = PathBuf::from(value(&built, "WHEELHOUSE_DIR"));
        let wheelhouse = Wheelhouse::start(&wheel_cache, &args);
        timing("base images and wheels ready", started.elapsed());
        Suite { images, docker_config, wheel_cache, wheelhouse }
    })
}

/// The Python images a project may be built on, by the version it describes.
const PYTHON_IMAGES: [(&str, &str); 2] = [("3.11", "PYTHON_IMAGE_3_11"), ("3.13", "PYTHON_IMAGE_3_13")];

/// Requirements the scenarios' own projects add to the template's (split requirements,
/// dotenv, whitenoise, a driver compiled from source), served from the same index.
const E2E_REQUIREMENTS: &str = "tests/e2e/support/requirements-e2e.txt";
const E2E_SDISTS: &[&str] = &["psycopg2==2.9.13"];

/// The wheelhouse's targets (each Python image's version and glibc) and what it serves.
fn wheelhouse_args(images: &[(String, String)]) -> Vec<String> {
    let probe = "import platform, sys; print('%d.%d' % sys.version_info[:2]); print(platform.libc_ver()[1])";
    let mut args = Vec::new();
    for (_, key) in PYTHON_IMAGES {
        let image = value(images, key);
        let out = docker(&["run", "--rm", "--network", "none", "--entrypoint", "python3", &image, "-c", probe]);
        assert!(out.status.success(), "cannot run python3 in {image}: {}", text(&out.stderr));
        let info = text(&out.stdout);
        let mut lines = info.lines();
        let (version, glibc) = (lines.next().unwrap_or_default(), lines.next().unwrap_or_default());
        assert!(!glibc.is_empty(), "{image} has no glibc python: {info}");
        args.extend(["--target".to_owned(), format!("{version}:{glibc}")]);
    }
    for file in ["project-template/requirements.txt", E2E_REQUIREMENTS] {
        args.extend(["-r".to_owned(), repo().join(file).to_string_lossy().into_owned()]);
    }
    for sdist in E2E_SDISTS {
        args.extend(["--sdist".to_owned(), (*sdist).to_owned()]);
    }
    args
}

/// None when `docker compose` works as it is, else the DOCKER_CONFIG directory whose
/// cli-plugins hold the Compose v2 the xtask installs.
fn compose_v2_config() -> Option<PathBuf> {
    let works = Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success());
    if works {
        return None;
    }
    Some(xtask::tools::compose_v2().expect("Compose v2 can be installed into target/tools"))
}

/// Runs tests/e2e/support/<script> and returns the KEY=value lines it prints.
pub fn support(args: &[&str]) -> Vec<(String, String)> {
    let script = repo().join("tests/e2e/support").join(args[0]);
    let out = Command::new(&script).args(&args[1..]).stdin(Stdio::null()).output().expect("the support script runs");
    assert!(out.status.success(), "{} failed:\n{}", args.join(" "), text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

pub fn value(pairs: &[(String, String)], key: &str) -> String {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_else(|| panic!("no {key} in {pairs:?}"))
}

/// `docker ARGS`, with the suite's DOCKER_CONFIG when it has one.
pub fn docker(args: &[&str]) -> Output {
    let mut command = Command::new("docker");
    command.args(args).stdin(Stdio::null());
    if let Some(config) = SUITE_CONFIG.lock().unwrap().as_ref() {
        command.env("DOCKER_CONFIG", config);
    }
    command.output().expect("docker runs")
}

/// `docker ARGS`, which must succeed; returns its trimmed stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(out.status.success(), "docker {} failed: {}", args.join(" "), text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// The DOCKER_CONFIG of `docker()`; set when a project is created, so plain docker calls
/// made before the suite is set up do not install anything.
static SUITE_CONFIG: Mutex<Option<PathBuf>> = Mutex::new(None);

/// A package index serving the cached wheels from a directory of this test run's, so that
/// it never stops a server someone else uses. The server ends by itself once this test
/// process has ended (`--owner`), passed or failed: a static has no destructor to stop it.
struct Wheelhouse {
    index_url: String,
}

impl Wheelhouse {
    fn start(wheel_cache: &Path, target: &[&str]) -> Wheelhouse {
        let runs = wheel_cache.with_file_name("wheelhouse-runs");
        remove_finished_runs(&runs);
        let dir = runs.join(std::process::id().to_string());
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for name in ["files", "simple"] {
            std::os::unix::fs::symlink(wheel_cache.join(name), dir.join(name)).unwrap();
        }
        // The stamp says the downloads are current, so `start` only serves them.
        fs::copy(wheel_cache.join(".stamp"), dir.join(".stamp")).unwrap();
        let (dir_arg, owner) = (dir.to_string_lossy().into_owned(), std::process::id().to_string());
        let mut args = vec!["wheelhouse.sh", "start", "--dir", &dir_arg, "--owner", &owner];
        args.extend(target.iter().copied());
        let started = support(&args);
        Wheelhouse { index_url: value(&started, "PIP_INDEX_URL") }
    }
}

/// The directories of earlier runs whose server has ended (it removes its pid file then).
fn remove_finished_runs(runs: &Path) {
    let Ok(entries) = fs::read_dir(runs) else { return };
    for entry in entries.flatten() {
        if !entry.path().join("server.pid").exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A scratch copy of the project (a git repository with one commit), its own Compose
/// project names `<name>-dev` and `<name>-prod` (the package index is the run's, see `Suite`). Dropping it
/// removes the containers, networks, volumes and image tags of both stacks.
pub struct Project {
    pub name: String,
    /// The scenario's short name, which timings start with.
    pub scenario: String,
    created: Instant,
    /// `XTASK_COMPOSE` for the xtask, when the scenario picks a Compose.
    compose: Option<String>,
    /// Images (ids or names) the scenario made besides the stacks' own tags.
    images: Mutex<Vec<String>>,
    dir: tempfile::TempDir,
    /// Dropped last, once everything the project made is removed.
    _on_engine: OnEngine,
}

/// What the engine holds now: the projects of the scenarios running, and whether one of them
/// is leaving a Swarm. Docker 20.10's `swarm leave` drops the DNS records of every container
/// that exists meanwhile, on every network (a Compose stack's web no longer finds `db`, for
/// good), so a Swarm is left only while no other scenario has a project, and no project is
/// made until it is done.
struct Engine {
    projects: usize,
    leaving: bool,
}

static ENGINE: Mutex<Engine> = Mutex::new(Engine { projects: 0, leaving: false });
static ENGINE_CHANGED: Condvar = Condvar::new();

fn engine() -> MutexGuard<'static, Engine> {
    ENGINE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A project counted in [`ENGINE`] while it lives.
struct OnEngine;

impl OnEngine {
    fn enter() -> OnEngine {
        let mut engine = engine();
        while engine.leaving {
            engine = ENGINE_CHANGED.wait(engine).unwrap_or_else(PoisonError::into_inner);
        }
        engine.projects += 1;
        OnEngine
    }
}

impl Drop for OnEngine {
    fn drop(&mut self) {
        engine().projects -= 1;
        ENGINE_CHANGED.notify_all();
    }
}

/// Runs `leave` once the caller's own `own` projects are the only ones (or `limit` has passed,
/// which it says), holding back new projects until it returns.
pub fn alone_on_the_engine<T>(own: usize, limit: Duration, leave: impl FnOnce() -> T) -> T {
    struct Leaving;
    impl Drop for Leaving {
        fn drop(&mut self) {
            engine().leaving = false;
            ENGINE_CHANGED.notify_all();
        }
    }
    let deadline = Instant::now() + limit;
    let mut state = engine();
    while state.leaving {
        state = ENGINE_CHANGED.wait(state).unwrap_or_else(PoisonError::into_inner);
    }
    state.leaving = true;
    let _leaving = Leaving;
    let started = Instant::now();
    while state.projects > own {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            eprintln!("e2e: {} other project(s) still on the engine after {limit:?}: going on", state.projects - own);
            break;
        };
        state = ENGINE_CHANGED.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
    }
    drop(state);
    if started.elapsed() > Duration::from_secs(1) {
        timing("waited for the other scenarios' projects", started.elapsed());
    }
    leave()
}

impl Project {
    pub fn new(scenario: &str) -> Project {
        Project::with_compose(scenario, None)
    }

    pub fn with_compose(scenario: &str, compose: Option<&str>) -> Project {
        Project::create(scenario, compose, copy_project)
    }

    /// A project whose files `fill` writes into the (not yet existing) root, instead of a
    /// copy of this one's; committed like the copy.
    pub fn made_by(scenario: &str, fill: impl FnOnce(&Path)) -> Project {
        Project::create(scenario, None, fill)
    }

    fn create(scenario: &str, compose: Option<&str>, fill: impl FnOnce(&Path)) -> Project {
        let on_engine = OnEngine::enter();
        let suite = suite();
        *SUITE_CONFIG.lock().unwrap() = suite.docker_config.clone();
        let dir = tempfile::Builder::new().prefix("xtask-e2e-").tempdir().unwrap();
        let root = dir.path().join("site");
        fill(&root);
        git(&root, &["init", "-q"]);
        git(&root, &["add", "-A"]);
        git(&root, &["commit", "-q", "--allow-empty", "-m", "Scratch copy of the project"]);
        let name = format!("e2e-{}-{scenario}", std::process::id());
        let images = Mutex::new(Vec::new());
        let (scenario, compose) = (scenario.to_owned(), compose.map(str::to_owned));
        Project { name, scenario, created: Instant::now(), compose, images, dir, _on_engine: on_engine }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("site")
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root().join(relative)
    }

    /// The production web image (`WEB_IMAGE` of the prod plans).
    pub fn web_image(&self) -> String {
        format!("{}-web", self.name)
    }

    /// Removes this image too when the project is dropped.
    pub fn remove_later(&self, image: &str) {
        self.images.lock().unwrap().push(image.to_owned());
    }

    fn command(&self, args: &[&str]) -> Command {
        let suite = suite();
        let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("XTASK_ROOT", self.root())
            .env("XTASK_PROJECT_NAME", &self.name)
            .env("PIP_INDEX_URL", &suite.wheelhouse.index_url)
            .env("BUILD_NETWORK", "host")
            .stdin(Stdio::null());
        for (key, value) in &suite.images {
            command.env(key, value);
        }
        // A project describing another Python than the template's builds on that image.
        let python = self.described_python();
        if let Some((_, key)) = PYTHON_IMAGES.iter().find(|(version, _)| Some(*version) == python.as_deref()) {
            command.env("PYTHON_IMAGE", value(&suite.images, key));
        }
        if let Some(config) = &suite.docker_config {
            command.env("DOCKER_CONFIG", config);
        }
        if let Some(compose) = &self.compose {
            command.env("XTASK_COMPOSE", compose);
        }
        command
    }

    /// `python` of the project's description in Cargo.toml, when it has one.
    fn described_python(&self) -> Option<String> {
        let manifest = fs::read_to_string(self.path("Cargo.toml")).ok()?;
        let section = manifest.split_once("[workspace.metadata.django]")?.1;
        let section = section.split("\n[").next().unwrap_or_default();
        let line = section.lines().find_map(|l| l.trim().strip_prefix("python"))?;
        Some(line.trim_start().strip_prefix('=')?.trim().trim_matches('"').to_owned())
    }

    /// The package index serving the cached wheels to this project's builds.
    pub fn index_url(&self) -> &str {
        &suite().wheelhouse.index_url
    }

    /// Runs `cargo xtask ARGS` (the built binary) and returns what it did.
    pub fn xtask(&self, args: &[&str]) -> Output {
        run_bounded(self.command(args), COMMAND_TIMEOUT)
    }

    /// Like [`Project::xtask`], with `env` set on top of the suite's variables.
    pub fn xtask_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        run_bounded(command, COMMAND_TIMEOUT)
    }

    /// Runs `cargo xtask ARGS`, which must succeed.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.xtask(args);
        assert!(
            out.status.success(),
            "cargo xtask {} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            args.join(" "),
            out.status,
            tail(&text(&out.stdout)),
            tail(&text(&out.stderr))
        );
        out
    }

    /// Sets `key=value` in an env file of the project: the existing statement is replaced,
    /// or one is added.
    pub fn set_env(&self, file: &str, key: &str, value: &str) {
        let path = self.path(file);
        let old = fs::read_to_string(&path).unwrap();
        let prefix = format!("{key}=");
        let mut found = false;
        let mut lines: Vec<String> = old
            .lines()
            .map(|line| {
                if line.starts_with(&prefix) && !found {
                    found = true;
                    format!("{key}={value}")
                } else {
                    line.to_owned()
                }
            })
            .collect();
        if !found {
            lines.push(format!("{key}={value}"));
        }
        fs::write(&path, lines.join("\n") + "\n").unwrap();
    }

    /// Replaces `old` by `new` in a file of the project, which must contain it.
    pub fn edit(&self, file: &str, old: &str, new: &str) {
        let path = self.path(file);
        let content = fs::read_to_string(&path).unwrap();
        assert!(content.contains(old), "{file} changed: update this test");
        fs::write(&path, content.replace(old, new)).unwrap();
    }

    pub fn env_value(&self, file: &str, key: &str) -> String {
        let content = fs::read_to_string(self.path(file)).unwrap();
        let prefix = format!("{key}=");
        content.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {key} in {file}")).to_owned()
    }

    /// `cargo xtask ARGS` (a stack start), timed as `<scenario>: <what>`.
    pub fn timed(&self, what: &str, args: &[&str]) -> Output {
        let started = Instant::now();
        let out = self.ok(args);
        timing(&format!("{}: {what}", self.scenario), started.elapsed());
        out
    }

    /// `init` for the dev stack on a free host port; returns the port.
    pub fn init_dev(&self) -> u16 {
        self.ok(&["init"]);
        let port = free_port();
        self.set_env(".env", "DEV_PORT", &port.to_string());
        port
    }

    /// `init --prod --host localhost` (TLS_MODE=local), answering on 127.0.0.1 too, with
    /// free host ports for HTTP and HTTPS; returns the HTTPS site, trusting the project's CA.
    pub fn init_prod(&self) -> Site {
        self.ok(&["init", "--prod", "--host", "localhost"]);
        let (http, https) = (free_port(), free_port());
        self.set_env(".env.prod", "ALLOWED_HOSTS", "localhost,127.0.0.1");
        self.set_env(".env.prod", "HTTP_PORT", &http.to_string());
        self.set_env(".env.prod", "HTTPS_PORT", &https.to_string());
        self.set_env(".env.prod", "GUNICORN_WORKERS", "2");
        // The scheduler ticks often enough to be watched, and a task a killed worker held is
        // delivered again after 30 s rather than an hour.
        self.set_env(".env.prod", "HEARTBEAT_SECONDS", &HEARTBEAT_SECONDS.to_string());
        self.set_env(".env.prod", "CELERY_VISIBILITY_TIMEOUT", &VISIBILITY_TIMEOUT.to_string());
        Site::tls(https, &self.path("certs/ca.pem"))
    }

    /// The production stack's plain HTTP port.
    pub fn http_port(&self) -> u16 {
        self.env_value(".env.prod", "HTTP_PORT").parse().expect("HTTP_PORT is a port")
    }

    /// The Compose project name of a stack ("dev" or "prod").
    pub fn compose_project(&self, stack: &str) -> String {
        format!("{}-{stack}", self.name)
    }

    /// Ids of the stack's containers, running or not, of `service` (all when None).
    pub fn containers(&self, stack: &str, service: Option<&str>) -> Vec<String> {
        let project = format!("label=com.docker.compose.project={}", self.compose_project(stack));
        let mut args = vec!["ps", "-aq", "--no-trunc", "--filter", &project];
        let service_filter = service.map(|s| format!("label=com.docker.compose.service={s}"));
        if let Some(filter) = &service_filter {
            args.extend(["--filter", filter]);
        }
        docker_ok(&args).lines().map(str::to_owned).collect()
    }

    /// The one container of `service` in the stack.
    pub fn container(&self, stack: &str, service: &str) -> String {
        let ids: Vec<String> = self
            .containers(stack, Some(service))
            .into_iter()
            .filter(|id| {
                docker_ok(&["inspect", "--format", "{{index .Config.Labels \"com.docker.compose.oneoff\"}}", id])
                    != "True"
            })
            .collect();
        assert_eq!(ids.len(), 1, "expected one {service} container in {}, found {ids:?}", self.compose_project(stack));
        ids[0].clone()
    }

    /// `query` in the stack's bundled database (`container`, with the user and database of
    /// `env_file`): its rows, one per line, columns separated by `|`.
    pub fn psql(&self, container: &str, env_file: &str, query: &str) -> String {
        let user = self.env_value(env_file, "POSTGRES_USER");
        let database = self.env_value(env_file, "POSTGRES_DB");
        docker_ok(&["exec", container, "psql", "-U", &user, "-d", &database, "-tAF", "|", "-c", query])
    }

    /// Names of the stack's networks and volumes.
    pub fn networks(&self, stack: &str) -> Vec<String> {
        self.labelled("network", stack)
    }

    pub fn volumes(&self, stack: &str) -> Vec<String> {
        self.labelled("volume", stack)
    }

    fn labelled(&self, kind: &str, stack: &str) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.compose_project(stack));
        let mut names: Vec<String> =
            docker_ok(&[kind, "ls", "-q", "--filter", &filter]).lines().map(str::to_owned).collect();
        names.sort();
        names
    }

    fn clean_up(&self) {
        for (stack, file, down) in
            [("dev", ".env", &["down", "--volumes"][..]), ("prod", ".env.prod", &["down", "--prod", "--volumes"][..])]
        {
            if self.path(file).is_file() && !self.containers(stack, None).is_empty() {
                let out = run_bounded(self.command(down), Duration::from_secs(180));
                if !out.status.success() {
                    eprintln!("e2e: cleanup: cargo xtask {} failed: {}", down.join(" "), tail(&text(&out.stderr)));
                }
            }
            // Whatever `down` did not reach: one-off containers, a stack whose env file is gone.
            let containers = self.containers(stack, None);
            if !containers.is_empty() {
                let mut args = vec!["rm", "--force", "--volumes"];
                args.extend(containers.iter().map(String::as_str));
                quietly(&args);
            }
            for kind in ["network", "volume"] {
                let names = self.labelled(kind, stack);
                if !names.is_empty() {
                    let mut args = vec![kind, "rm"];
                    args.extend(names.iter().map(String::as_str));
                    quietly(&args);
                }
            }
        }
        // The production image, the dev image (Compose v2 and v1 names), then the rest.
        let mut images = vec![self.web_image(), format!("{}-dev-web", self.name), format!("{}-dev_web", self.name)];
        images.extend(self.images.lock().unwrap().iter().cloned());
        images.extend(self.build_leftovers());
        for image in images {
            if docker(&["image", "inspect", &image]).status.success() {
                quietly(&["rmi", &image]);
            }
        }
        for (kind, names) in [
            ("container", self.containers("dev", None).len() + self.containers("prod", None).len()),
            ("volume", self.volumes("dev").len() + self.volumes("prod").len()),
            ("network", self.networks("dev").len() + self.networks("prod").len()),
        ] {
            if names > 0 {
                eprintln!("e2e: cleanup of {} left {names} {kind}(s)", self.name);
            }
        }
    }
}

impl Project {
    /// Untagged images the classic builder (Compose v1) keeps of the builder stage: the
    /// ones whose history names this run's package index. Only a scenario that ran Compose
    /// v1 looks for them: the others build with BuildKit, which leaves none, and removing
    /// them from there could take the stage of a v1 build still running beside it.
    fn build_leftovers(&self) -> Vec<String> {
        if self.compose.as_deref() != Some("docker-compose") {
            return Vec::new();
        }
        let dangling = docker_ok(&["images", "--quiet", "--no-trunc", "--filter", "dangling=true"]);
        dangling
            .lines()
            .filter(|id| {
                let history = docker(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", id]);
                text(&history.stdout).contains(&suite().wheelhouse.index_url)
            })
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if thread::panicking() {
            for stack in ["dev", "prod"] {
                for id in self.containers(stack, None) {
                    let out = docker(&["logs", "--tail", "40", &id]);
                    let name = docker_ok(&["inspect", "--format", "{{.Name}}", &id]);
                    eprintln!("--- last log lines of {name}\n{}{}", text(&out.stdout), text(&out.stderr));
                }
            }
        }
        let ran = self.created.elapsed();
        let cleaning = Instant::now();
        self.clean_up();
        let outcome = if thread::panicking() { "failed" } else { "passed" };
        let cleanup = cleaning.elapsed().as_secs_f64();
        eprintln!(
            "e2e: {}: scenario wall time: {:.1}s ({outcome}; cleanup {cleanup:.1}s)",
            self.scenario,
            ran.as_secs_f64()
        );
    }
}

fn quietly(args: &[&str]) {
    let out = docker(args);
    if !out.status.success() {
        eprintln!("e2e: cleanup: docker {} failed: {}", args.join(" "), text(&out.stderr).trim());
    }
}

/// The last lines of a command's output, enough to see why it failed.
fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Copies the project's files (those git tracks or would track) into `root`.
fn copy_project(root: &Path) {
    copy_paths(PROJECT_PATHS, root);
}

/// Copies the files under `paths` of this repository (those git tracks or would track)
/// into `root`.
pub fn copy_paths(paths: &[&str], root: &Path) {
    let repo = repo();
    let mut ls = Command::new("git");
    ls.current_dir(&repo).args(["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--"]);
    ls.args(paths);
    let out = ls.output().expect("git runs");
    assert!(out.status.success(), "git ls-files failed: {}", text(&out.stderr));
    let listing = text(&out.stdout);
    let mut copied = 0;
    for relative in listing.split('\0').filter(|p| !p.is_empty()) {
        let from = repo.join(relative);
        if !from.is_file() {
            continue; // deleted in the work tree
        }
        let to = root.join(relative);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(&from, &to).unwrap();
        copied += 1;
    }
    assert!(copied > paths.len(), "only {copied} files of {paths:?} found in {}", repo.display());
}

pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {} failed: {}", args.join(" "), text(&out.stderr));
}

/// A virtualenv on the host with Django and uv from the suite's wheel cache (no index):
/// what a developer has to run `django-admin startproject` and `uv lock`.
pub fn host_venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let suite = suite();
        let venv = suite
            .wheel_cache
            .with_file_name(format!("{}-host-venv", suite.wheel_cache.file_name().unwrap().to_string_lossy()));
        let pin = |file: &str, prefix: &str| -> String {
            let text = fs::read_to_string(repo().join(file)).unwrap();
            let line = text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in {file}"));
            line.trim().to_owned()
        };
        let django = pin("project-template/requirements.txt", "Django==");
        let uv = format!("uv=={}", pin("docker/Dockerfile", "ARG UV_VERSION=").trim_start_matches("ARG UV_VERSION="));
        let python = venv.join("bin/python");
        let ready = Command::new(&python).args(["-c", "import django, uv"]).output().is_ok_and(|o| o.status.success());
        if !ready {
            run_ok(Command::new(std::env::var("PYTHON").unwrap_or("python3".into())).arg("-m").arg("venv").arg(&venv));
            run_ok(
                Command::new(&python)
                    .args(["-m", "pip", "install", "--quiet", "--no-index", "--find-links"])
                    .arg(suite.wheel_cache.join("files"))
                    .args([&django, &uv]),
            );
        }
        venv
    })
}

/// Held by a scenario whose assertions need the host to itself: a request loop that must
/// see no failure while it redeploys, on Compose or on Swarm, while it builds new images.
/// Two such at once starve each other's containers on two cores (a new web container's
/// name not resolved in time, a request timed out); every other scenario runs beside one.
pub fn under_load() -> MutexGuard<'static, ()> {
    static LOAD: Mutex<()> = Mutex::new(());
    LOAD.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `command`, which must succeed; returns its stdout.
pub fn run_ok(command: &mut Command) -> String {
    let out = command.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(out.status.success(), "{command:?} failed:\n{}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// A TCP port nothing listens on at the moment.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Runs `command` to completion, killing its whole process group after `timeout`.
fn run_bounded(mut command: Command, timeout: Duration) -> Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = command.spawn().expect("the command starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            // The child leads its own process group: end Compose and the rest with it.
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let status = child.wait().unwrap();
            eprintln!("e2e: {command:?} killed after {}s", timeout.as_secs());
            break status;
        }
        thread::sleep(Duration::from_millis(100));
    };
    Output { status, stdout: out_reader.join().unwrap(), stderr: err_reader.join().unwrap() }
}

/// Polls `probe` every `every` until it returns Some, for at most `limit`.
pub fn wait_for<T>(limit: Duration, every: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(every);
    }
}
