//! The stack commands: dev, prod, migrate, collectstatic, manage, down, logs and ps.
//! Each builds a plan of Compose invocations and hands it to the runner.

pub mod compose;
pub mod ports;

use std::io::IsTerminal;

use anyhow::{bail, Result};
use xshell::cmd;

use crate::cli::{DevArgs, DownArgs, LogsArgs, ManageArgs, ProdArgs, StackArgs};
use crate::config::envfile::{self, EnvFile};
use crate::config::preflight;
use crate::context::{unique_tag, Context};
use crate::plan::run_error::Interrupted;
use crate::plan::runner;
use crate::plan::switch::{self, Deploy, NotSwitched};
use crate::plan::{Plan, Step, Task};
use crate::project::Description;
use crate::stack::compose::{Compose, Stack};
use crate::tls;

/// The host name the bundled database answers to inside the production network.
const BUNDLED_DB_HOST: &str = "db";

/// Django's deployment checks against the production settings; warnings fail too.
pub(crate) const DEPLOY_CHECK: &[&str] = &["check", "--deploy", "--fail-level", "WARNING"];

pub fn dev(cx: &Context, args: DevArgs) -> Result<()> {
    let env = load_env(cx, Stack::Dev)?;
    let base = prepare(cx, Stack::Dev)?;
    ports::require_free(cx, Stack::Dev, &env)?;
    let mut up = base.arg("up");
    if args.build {
        up = up.arg("--build");
    }
    if args.detach {
        up = up.arg("--detach");
    }
    start(cx, Stack::Dev, Plan::default().run(up))
}

pub fn prod(cx: &Context, args: ProdArgs) -> Result<()> {
    let (stack, env) = safe_prod(cx, args.with_db)?;
    tls::ensure_local(cx, &env)?;
    let base = prepare(cx, stack)?;
    ports::require_free(cx, stack, &env)?;
    let project = stack.project(cx);
    let plan =
        if args.rollback { rollback_steps(cx, &base) } else { release_steps(cx, &base, &project, args.no_build)? };
    let deploy = Deploy {
        compose: base.clone(),
        project: project.clone(),
        image: compose::web_image(cx),
        timeout_secs: args.wait_timeout,
    };
    let plan = plan
        .then(one_off_command(&base, &project, OneOff::NoDeps, &[], &COPY_STATIC)?)
        .then(Task::Deploy(deploy))
        .then(Task::Say(format!("the production stack is up at {}", prod_url(&env))));
    start(cx, stack, plan)
}

/// The new image, built (or confirmed with `--no-build`), then its release steps, once per
/// deploy and before it takes traffic: Django's deployment checks, then the migrations.
fn release_steps(cx: &Context, base: &Step, project: &str, no_build: bool) -> Result<Plan> {
    let image = compose::web_image(cx);
    let built = if no_build {
        confirm_image(
            base,
            &image,
            &format!("the web image {image} is not built: run `cargo xtask prod` without --no-build"),
        )
    } else {
        base.clone().arg("build").fails_as("cannot build the production images")
    };
    Ok(Plan::default().run(built).then(one_off(base, project, OneOff::NoDeps, &[], DEPLOY_CHECK)?).then(one_off(
        base,
        project,
        OneOff::WithDeps,
        &[],
        &["migrate", "--noinput"],
    )?))
}

/// Copies the static files the web image collected when it was built (docker/Dockerfile puts
/// them in /opt/static, outside the `static` volume's mount point) into that volume, over
/// what is there: the previous version's hashed files stay, for pages its containers still
/// render during the switch.
const COPY_STATIC: [&str; 4] = ["cp", "-R", "/opt/static/.", "/app/staticfiles/"];

/// `--rollback`: the image tagged `<web image>:previous` becomes the web image again, then
/// deploys like a new version. Migrations are not undone (see README: expand, then contract).
fn rollback_steps(cx: &Context, base: &Step) -> Plan {
    let image = compose::web_image(cx);
    let previous = format!("{image}:previous");
    let missing = format!("there is no {previous} to roll back to: a redeploy of the running stack keeps the image it replaces under that tag");
    Plan::default()
        .run(confirm_image(base, &previous, &missing))
        .run(Step::new("docker", &base.dir).args(["tag", &previous, &image]))
}

/// Runs a plan that starts `stack`. When it fails with containers of the stack in place
/// (an engine error half-way, a service that never became healthy), the error names them
/// and the command that removes them; unless the stack was serving before, and still is.
fn start(cx: &Context, stack: Stack, plan: Plan) -> Result<()> {
    let serving =
        !cx.dry_run && matches!(stack, Stack::Prod { .. }) && switch::serving(cx, &cx.root, &stack.project(cx));
    let Err(error) = runner::execute(cx, plan) else { return Ok(()) };
    // Ctrl-C is the user stopping the stack on purpose, not a failed start.
    // A redeploy that was not switched to left the old version serving, not a failed start.
    if error.downcast_ref::<Interrupted>().is_some() || error.downcast_ref::<NotSwitched>().is_some() {
        return Err(error);
    }
    // Neither is a redeploy stopped by a release step (a failing migration).
    if serving {
        return Err(error.context("the deploy stopped before its switch and the running version still serves"));
    }
    let left = containers_of(cx, stack);
    if left.is_empty() {
        return Err(error);
    }
    let down = match stack {
        Stack::Dev => "cargo xtask down",
        Stack::Prod { .. } => "cargo xtask down --prod",
    };
    Err(error.context(format!(
        "the {} stack did not start and left container(s) {}: remove them with `{down}`",
        stack.suffix(),
        left.join(", ")
    )))
}

/// Names of the stack's containers, running or not; none when Docker cannot say.
fn containers_of(cx: &Context, stack: Stack) -> Vec<String> {
    let Ok(sh) = cx.shell() else { return Vec::new() };
    let project = format!("label=com.docker.compose.project={}", stack.project(cx));
    let format = "{{.Names}}";
    let names = cmd!(sh, "docker ps --all --filter {project} --format {format}").quiet().ignore_stderr().read();
    let mut names: Vec<String> = names.unwrap_or_default().split_whitespace().map(str::to_owned).collect();
    names.sort();
    names
}

pub fn migrate(cx: &Context, args: StackArgs) -> Result<()> {
    manage_py(cx, args.prod, &["migrate", "--noinput"])
}

pub fn collectstatic(cx: &Context, args: StackArgs) -> Result<()> {
    manage_py(cx, args.prod, &["collectstatic", "--noinput"])
}

pub fn manage(cx: &Context, args: ManageArgs) -> Result<()> {
    let words: Vec<&str> = args.args.iter().map(String::as_str).collect();
    manage_py(cx, args.prod, &words)
}

pub fn down(cx: &Context, args: DownArgs) -> Result<()> {
    let stack = stack_for(cx, args.prod)?;
    let base = prepare(cx, stack)?;
    let mut down = base.arg("down");
    if args.volumes {
        down = down.arg("--volumes");
    }
    runner::execute(cx, Plan::default().run(down))?;
    // Compose removes only the services its files name now: a container started with other
    // files (the bundled db before POSTGRES_HOST changed) stays, and Compose still exits 0.
    let left = if cx.dry_run { Vec::new() } else { containers_of(cx, stack) };
    if !left.is_empty() {
        bail!(
            "`down` left container(s) {} of project {}, from services the compose files no longer name: remove them with `docker rm --force {}`",
            left.join(", "),
            stack.project(cx),
            left.join(" ")
        );
    }
    Ok(())
}

pub fn logs(cx: &Context, args: LogsArgs) -> Result<()> {
    let base = prepare(cx, stack_for(cx, args.prod)?)?;
    let mut logs = base.arg("logs");
    if args.follow {
        logs = logs.arg("--follow");
    }
    logs = logs.args(args.service);
    runner::execute(cx, Plan::default().run(logs))
}

pub fn ps(cx: &Context, args: StackArgs) -> Result<()> {
    let base = prepare(cx, stack_for(cx, args.prod)?)?;
    runner::execute(cx, Plan::default().run(base.arg("ps")))
}

fn manage_py(cx: &Context, prod: bool, args: &[&str]) -> Result<()> {
    let stack = stack_for(cx, prod)?;
    let base = prepare(cx, stack)?;
    runner::execute(cx, built_one_off(&base, &stack.project(cx), OneOff::WithDeps, &[], args)?)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OneOff {
    /// Start the services web depends on (the database) first.
    WithDeps,
    /// Run web alone, for commands that need no database.
    NoDeps,
}

/// Builds the web image in a step of its own, then runs `manage.py ARGS` in it as a one-off:
/// a failed build is reported as such, never left to `compose run` to trigger.
pub(crate) fn built_one_off(base: &Step, project: &str, deps: OneOff, options: &[&str], args: &[&str]) -> Result<Plan> {
    Ok(Plan::default().run(build_web(base)).then(one_off(base, project, deps, options, args)?))
}

/// `build web`, whose failure names itself.
pub(crate) fn build_web(base: &Step) -> Step {
    base.clone().args(["build", "web"]).fails_as("cannot build the web image")
}

/// An image the plan starts from must already exist: say so (`missing`) before Compose
/// would try to build it behind our back.
fn confirm_image(base: &Step, image: &str, missing: &str) -> Step {
    Step::new("docker", &base.dir).args(["image", "inspect", "--format", "{{.Id}}", image]).fails_as(missing)
}

/// `run --name NAME [OPTIONS] web python manage.py ARGS` in a container named after the
/// stack's Compose `project`, whose own exit code is read back (see [`Task::OneOff`]).
/// Without a terminal on stdin (CI, pipes) Compose must not try to allocate one, hence `-T`.
pub(crate) fn one_off(base: &Step, project: &str, deps: OneOff, options: &[&str], args: &[&str]) -> Result<Task> {
    let command: Vec<&str> = ["python", "manage.py"].into_iter().chain(args.iter().copied()).collect();
    one_off_command(base, project, deps, options, &command)
}

/// Like [`one_off`], for any command of the web image.
pub(crate) fn one_off_command(
    base: &Step,
    project: &str,
    deps: OneOff,
    options: &[&str],
    command: &[&str],
) -> Result<Task> {
    let name = format!("{project}-oneoff-{}", unique_tag()?);
    let mut run = base.clone().args(["run", "--name", &name]);
    if !std::io::stdin().is_terminal() {
        run = run.arg("-T");
    }
    if deps == OneOff::NoDeps {
        run = run.arg("--no-deps");
    }
    let run = run.args(options.iter().copied()).arg("web").args(command.iter().copied());
    Ok(Task::OneOff { run, name })
}

/// Everything a stack command checks before it plans: the project's description holds,
/// the env file exists, Compose is installed and the engine answers. Returns the stack's
/// compose command.
pub(crate) fn prepare(cx: &Context, stack: Stack) -> Result<Step> {
    let project = Description::load(cx)?;
    let env = load_env(cx, stack)?;
    let compose = Compose::detect(cx)?;
    compose::require_engine(cx)?;
    let step = compose.step(cx, stack, &project);
    Ok(match stack {
        Stack::Prod { .. } => tls::pass_to(&cx.root, &env, compose::add_files(cx, step, tls::overlays(&env))),
        Stack::Dev => step,
    })
}

pub(crate) fn require_env_file(cx: &Context, stack: Stack) -> Result<()> {
    if !cx.path(stack.env_file()).is_file() {
        bail!("{} not found: run `{}` to create it", stack.env_file(), stack.init_hint());
    }
    Ok(())
}

/// The stack's env file, parsed; a missing one names the command that creates it.
pub(crate) fn load_env(cx: &Context, stack: Stack) -> Result<EnvFile> {
    require_env_file(cx, stack)?;
    envfile::load(&cx.path(stack.env_file()))
}

pub(crate) fn stack_for(cx: &Context, prod: bool) -> Result<Stack> {
    if !prod {
        return Ok(Stack::Dev);
    }
    Ok(stack_with_env(cx, prod)?.0)
}

/// The stack a `--prod` flag selects and its env file, read once and well formed.
pub(crate) fn stack_with_env(cx: &Context, prod: bool) -> Result<(Stack, EnvFile)> {
    let stack = if prod { Stack::PROD } else { Stack::Dev };
    let env = load_env(cx, stack)?.well_formed(&cx.path(stack.env_file()))?;
    let stack = if prod { prod_stack(cx, &env, false)? } else { stack };
    Ok((stack, env))
}

/// `.env.prod`, read once and refused when unsafe, with the production stack it selects.
pub(crate) fn safe_prod(cx: &Context, with_db: bool) -> Result<(Stack, EnvFile)> {
    let env = load_env(cx, Stack::PROD)?;
    preflight::refuse_unsafe_prod(&env, &cx.root)?;
    Ok((prod_stack(cx, &env, with_db)?, env))
}

/// The production stack runs the bundled database when `.env.prod` points web at it
/// (`POSTGRES_HOST=db`). Deciding from the env file, not from a flag, keeps every later
/// command (migrate, down --volumes, ...) on the same set of compose files.
pub(crate) fn prod_stack(cx: &Context, env: &EnvFile, with_db: bool) -> Result<Stack> {
    let host = env.get("POSTGRES_HOST").map(|e| e.value.as_str()).unwrap_or_default();
    let bundled = host == BUNDLED_DB_HOST;
    if with_db && !bundled {
        bail!(
            "--with-db starts the bundled database, but {} sets POSTGRES_HOST={host:?}: set POSTGRES_HOST={BUNDLED_DB_HOST} there, or drop --with-db to use that database",
            cx.path(Stack::PROD.env_file()).display()
        );
    }
    Ok(Stack::Prod { with_db: bundled })
}

/// The site on its first host name (a `.example.com` entry names the domain itself) and
/// the HTTPS port: `${HTTPS_PORT:-443}` in the compose file, so a blank value means 443.
fn prod_url(env: &EnvFile) -> String {
    let host = tls::hosts(env).into_iter().next().unwrap_or_else(|| "localhost".to_owned());
    let host = host.trim_start_matches('.');
    let port = env.get("HTTPS_PORT").map(|e| e.value.trim()).unwrap_or_default();
    if port.is_empty() || port == "443" {
        format!("https://{host}/")
    } else {
        format!("https://{host}:{port}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_https_on_the_first_host_with_the_port_unless_443_or_blank() {
        let url = |text: &str| prod_url(&envfile::parse(text, &|_| None));
        assert_eq!(url(""), "https://localhost/");
        assert_eq!(url("HTTPS_PORT=\nALLOWED_HOSTS=shop.test,localhost\n"), "https://shop.test/");
        assert_eq!(url("HTTPS_PORT=443\nHTTP_PORT=8080\n"), "https://localhost/");
        assert_eq!(url("HTTPS_PORT=8443\nALLOWED_HOSTS=.example.com\n"), "https://example.com:8443/");
    }
}
