//! The stack commands: dev, prod, migrate, collectstatic, manage, down, logs and ps.
//! Each builds a plan of Compose invocations and hands it to the runner.

mod backing;
mod changes;
pub mod compose;
pub mod ports;
pub mod processes;
pub mod redeploy;
pub mod released;
pub mod scheduled_backup;
mod start;
pub mod test;
mod upstream;

use std::io::IsTerminal;

use anyhow::{bail, Result};

use crate::certs;
use crate::cli::{DevArgs, DownArgs, LogsArgs, ManageArgs, ProdArgs, StackArgs};
use crate::context::{unique_tag, Context};
use crate::envfile::{self, EnvFile};
use crate::plan::health::WaitHealthy;
use crate::plan::one_off::OneOff as OneOffRun;
use crate::plan::runner;
use crate::plan::{Plan, Step, Task};
use crate::preflight;
use crate::project::build_context::Staging;
use crate::project::{self, Description};
use crate::redis;
use crate::stack::backing::StartBacking;
use crate::stack::changes::UnlessUnchanged;
use crate::stack::compose::{Compose, Stack};
use crate::stack::redeploy::Deploy;
use crate::stack::released::ReleaseOnce;
use crate::stack::start::{AllGone, Start};

/// The host name the bundled database answers to inside the production network.
const BUNDLED_DB_HOST: &str = "db";

/// Django's deployment checks against the production settings; warnings fail too.
pub(crate) const DEPLOY_CHECK: &[&str] = &["check", "--deploy", "--fail-level", "WARNING"];

pub fn dev(cx: &Context, args: DevArgs) -> Result<()> {
    let env = load_env(cx, Stack::Dev)?;
    let (base, plan, description) = prepare_build_of(cx, Stack::Dev)?;
    let ports = ports::require_free(cx, Stack::Dev, &env);
    // The processes run web's image, which `up` would try to pull, not build, for them:
    // build it first (then `--build` has nothing left to do).
    let build_first = !description.processes.is_empty();
    let plan = if build_first { plan.run(build_web(&base)) } else { plan };
    let mut up = base.clone().arg("up");
    if args.build && !build_first {
        up = up.arg("--build");
    }
    if !args.detach {
        return start(cx, Stack::Dev, ports, plan.run(up));
    }
    // Compose's exit 0 only says the containers were created: wait until web answers its
    // healthcheck, or name the container that exited, with its last log lines.
    let wait = Task::act(WaitHealthy { compose: base, timeout_secs: args.wait_timeout });
    let plan =
        plan.run(up.arg("--detach")).then(wait).then(Task::Say(format!("the dev stack is up at {}", dev_url(&env))));
    start(cx, Stack::Dev, ports, plan)
}

/// The dev server's address on the host: `DEV_PORT` on loopback, 8000 unless set.
fn dev_url(env: &EnvFile) -> String {
    let port = env.get("DEV_PORT").map(|e| e.value.trim()).filter(|p| !p.is_empty()).unwrap_or("8000");
    format!("http://localhost:{port}/")
}

pub fn prod(cx: &Context, args: ProdArgs) -> Result<()> {
    let (stack, env) = safe_prod(cx, args.with_db)?;
    certs::ensure_local(cx, &env)?;
    let (base, plan, description) = match args.rollback || args.no_build {
        true => {
            let (base, description, _) = prepared(cx, stack)?;
            (base, Plan::default(), description)
        }
        false => prepare_build_of(cx, stack)?,
    };
    let ports = ports::require_free(cx, stack, &env);
    let project = stack.project(cx);
    let image = compose::web_image(cx);
    let web_services = std::iter::once("web".to_owned()).chain(description.processes.keys().cloned()).collect();
    let backing = backing_services(stack, &env);
    let start_backing = Task::act(StartBacking {
        compose: base.clone(),
        project: project.clone(),
        services: backing.clone(),
        timeout_secs: args.wait_timeout,
    });
    let deploy = Deploy {
        compose: base.clone(),
        project: project.clone(),
        image: image.clone(),
        timeout_secs: args.wait_timeout,
        processes: description.processes.into_iter().collect(),
        backing,
    };
    let plan = match args.rollback {
        true => rollback_steps(cx, plan, &base)
            .then(start_backing)
            .then(one_off_command(&base, &project, OneOff::NoDeps, &[], &COPY_STATIC)?)
            .then(Task::act(deploy)),
        false => {
            let plan = plan.run(built(&base, &image, args.no_build));
            let steps = release_steps(&base, &project)?;
            let steps = match args.force {
                true => steps,
                false => Task::act(ReleaseOnce {
                    steps,
                    dir: cx.root.clone(),
                    image: image.clone(),
                    database: database_of(&env),
                    static_volume: format!("{project}_static"),
                    db_volume: (stack == Stack::Prod { with_db: true }).then(|| format!("{project}_pgdata")),
                }),
            };
            let release = Plan::default().then(start_backing).then(steps).then(Task::act(deploy));
            match args.force {
                true => plan.and(release),
                false => {
                    let compose = base.clone();
                    plan.then(Task::act(UnlessUnchanged { compose, project, image, web_services, then: release }))
                }
            }
        }
    };
    start(cx, stack, ports, plan.then(Task::Say(format!("the production stack is up at {}", prod_url(&env)))))
}

/// The services the stack bundles for web and its processes: the database (with_db) and
/// Redis (REDIS_URL names it), started first (see [`StartBacking`]).
fn backing_services(stack: Stack, env: &EnvFile) -> Vec<String> {
    let db = (stack == Stack::Prod { with_db: true }).then(|| BUNDLED_DB_HOST.to_owned());
    let redis = redis::bundled(env).then(|| redis::BUNDLED_HOST.to_owned());
    db.into_iter().chain(redis).collect()
}

/// The database `.env.prod` points web at, as `HOST:PORT/NAME`.
fn database_of(env: &EnvFile) -> String {
    let value = |key: &str, default: &str| env.get(key).map_or(default.to_owned(), |e| e.value.trim().to_owned());
    format!("{}:{}/{}", value("POSTGRES_HOST", ""), value("POSTGRES_PORT", "5432"), value("POSTGRES_DB", ""))
}

/// The new image, built, or with `--no-build` confirmed to exist.
fn built(base: &Step, image: &str, no_build: bool) -> Step {
    match no_build {
        true => confirm_image(
            base,
            image,
            &format!("the web image {image} is not built: run `cargo xtask prod` without --no-build"),
        ),
        false => base.clone().arg("build").fails_as("cannot build the production images").explained_by_output(),
    }
}

/// The new image's release steps, once per deploy and before it takes traffic, in one
/// one-off container: Django's deployment checks, the migrations, then the static files
/// copied into their volume.
fn release_steps(base: &Step, project: &str) -> Result<Task> {
    let script = format!(
        "python manage.py {} && python manage.py migrate --noinput && {}",
        DEPLOY_CHECK.join(" "),
        COPY_STATIC.join(" ")
    );
    // The services it needs are up already (see [`StartBacking`]).
    one_off_command(base, project, OneOff::NoDeps, &[], &["sh", "-c", &script])
}

/// Copies the static files the web image collected when it was built (docker/Dockerfile puts
/// them in /opt/static, outside the `static` volume's mount point) into that volume, over
/// what is there: the previous version's hashed files stay, for pages its containers still
/// render during the switch.
const COPY_STATIC: [&str; 4] = ["cp", "-R", "/opt/static/.", "/app/staticfiles/"];

/// `--rollback`: the image tagged `<web image>:previous` becomes the web image again, then
/// deploys like a new version. Migrations are not undone (see docs/src/redeploys.md: expand, then contract).
fn rollback_steps(cx: &Context, plan: Plan, base: &Step) -> Plan {
    let image = compose::web_image(cx);
    let previous = format!("{image}:previous");
    let missing = format!("there is no {previous} to roll back to: a redeploy of the running stack keeps the image it replaces under that tag");
    plan.run(confirm_image(base, &previous, &missing))
        .run(Step::new("docker", &base.dir).args(["tag", &previous, &image]))
}

/// Checks that the stack's ports are free, then runs a plan that starts `stack` (see [`Start`]).
fn start(cx: &Context, stack: Stack, ports: ports::Free, plan: Plan) -> Result<()> {
    let start = Start { stack, project: stack.project(cx), dir: cx.root.clone(), plan };
    runner::execute(cx, Plan::default().then(Task::act(ports)).then(Task::act(start)))
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
    let (base, _, _, backup_left_out) = prepared_with(cx, stack, Backups::IfTheyCheck)?;
    let mut down = base.arg("down");
    if backup_left_out {
        // Its overlay is not in the command: the service's container would be an orphan.
        down = down.arg("--remove-orphans");
    }
    if args.volumes {
        down = down.arg("--volumes");
    }
    let gone = AllGone { project: stack.project(cx), dir: cx.root.clone() };
    runner::execute(cx, Plan::default().run(down).then(Task::act(gone)))
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
    let (base, plan) = prepare_build(cx, stack)?;
    runner::execute(cx, built_one_off(plan, &base, &stack.project(cx), OneOff::WithDeps, &[], args)?)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OneOff {
    /// Start the services web depends on (the database) first.
    WithDeps,
    /// Run web alone, for commands that need no database.
    NoDeps,
}

/// After `plan` (which fills the build context, see [`prepare_build`]), builds the web image
/// in a step of its own, then runs `manage.py ARGS` in it as a one-off: a failed build is
/// reported as such, never left to `compose run` to trigger.
pub(crate) fn built_one_off(
    plan: Plan,
    base: &Step,
    project: &str,
    deps: OneOff,
    options: &[&str],
    args: &[&str],
) -> Result<Plan> {
    Ok(plan.run(build_web(base)).then(one_off(base, project, deps, options, args)?))
}

/// `build web`, whose failure names itself.
pub(crate) fn build_web(base: &Step) -> Step {
    base.clone().args(["build", "web"]).fails_as("cannot build the web image").explained_by_output()
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
    Ok(Task::act(OneOffRun { run, name }))
}

/// Everything a stack command checks before it plans: the project's description holds,
/// the env file exists, Compose is installed and the engine answers. Returns the stack's
/// compose command.
pub(crate) fn prepare(cx: &Context, stack: Stack) -> Result<Step> {
    Ok(prepared(cx, stack)?.0)
}

/// Like [`prepare`], for a command that may build the web image: the compose command reads
/// the build context from `.stack/build/<stack>`, and the plan begins by filling it.
pub(crate) fn prepare_build(cx: &Context, stack: Stack) -> Result<(Step, Plan)> {
    let (base, plan, _) = prepare_build_of(cx, stack)?;
    Ok((base, plan))
}

/// Like [`prepare_build`], with the project's description.
fn prepare_build_of(cx: &Context, stack: Stack) -> Result<(Step, Plan, Description)> {
    let (base, description, env) = prepared(cx, stack)?;
    // Short values (a dev placeholder) would be found everywhere; real secrets are long.
    let secrets = match stack {
        Stack::Prod { .. } => env.secret_values().into_iter().filter(|v| v.len() >= 12).collect(),
        Stack::Dev => Vec::new(),
    };
    let hide = (stack == Stack::Dev).then(|| cx.path(DEV_HIDDEN_SECRETS));
    let base = match &hide {
        Some(file) => base.arg("-f").arg(file.to_string_lossy()),
        None => base,
    };
    let staging = Staging {
        root: cx.root.clone(),
        description: description.clone(),
        dest: cx.path(BUILD_CONTEXT).join(stack.suffix()),
        secrets,
        hide,
    };
    let (base, plan) = staged(base, staging);
    Ok((base, plan, description))
}

/// `base` building from the context `staging` fills, and a plan that begins by filling it.
pub(crate) fn staged(base: Step, staging: Staging) -> (Step, Plan) {
    let base = base.env("DJANGO_BUILD_CONTEXT", staging.dest.to_string_lossy());
    (base, Plan::default().then(Task::act(staging)))
}

/// The Compose file that hides the project's secrets from the dev containers' bind mount.
const DEV_HIDDEN_SECRETS: &str = ".stack/dev/hide-secrets.yml";

/// Where the web image's build contexts are filled, one directory a stack.
pub(crate) const BUILD_CONTEXT: &str = ".stack/build";

fn prepared(cx: &Context, stack: Stack) -> Result<(Step, Description, EnvFile)> {
    let (base, description, env, _) = prepared_with(cx, stack, Backups::Checked)?;
    Ok((base, description, env))
}

/// How a command treats the backup service's settings in `.env.prod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backups {
    /// They must check: a command that starts the service refuses broken ones.
    Checked,
    /// A command that only stops the stack: broken settings (a key file since deleted)
    /// must not keep the user from taking it down.
    IfTheyCheck,
}

/// Like [`prepared`]; also says whether the backup service's overlay was left out (its
/// settings did not check, and `backups` let them).
fn prepared_with(cx: &Context, stack: Stack, backups: Backups) -> Result<(Step, Description, EnvFile, bool)> {
    let project = Description::load(cx)?;
    let env = load_env(cx, stack)?;
    require_base_image(&project, &env)?;
    let compose = Compose::detect(cx)?;
    compose::require_engine(cx)?;
    let step = compose.step(cx, stack, &project);
    let mut backup_left_out = false;
    let step = match stack {
        Stack::Prod { .. } => {
            let step = certs::pass_to(&cx.root, &env, compose::add_files(cx, step, certs::overlays(&env)));
            let step = step.env(NGINX_CONF_HASH_VAR, nginx_conf_hash(cx));
            match scheduled_backup::add(cx, &env, &stack.project(cx), step.clone()) {
                Ok(step) => step,
                Err(why) if backups == Backups::IfTheyCheck => {
                    eprintln!("warning: {why:#}; the backup service is stopped as an orphan");
                    backup_left_out = true;
                    step
                }
                Err(why) => return Err(why),
            }
        }
        Stack::Dev => step.env("DEV_WEB_IMAGE", processes::dev_image(cx)),
    };
    Ok((with_services(cx, stack, &project, &env, step)?, project, env, backup_left_out))
}

/// `step` with the services the stack runs besides its own files: the bundled Redis when
/// REDIS_URL names it, then the project's processes (whose file is written first).
fn with_services(cx: &Context, stack: Stack, project: &Description, env: &EnvFile, step: Step) -> Result<Step> {
    let bundled = redis::bundled(env);
    let step = if bundled { compose::add_files(cx, step, &[REDIS_OVERLAY]) } else { step };
    let Some(overlay) = processes::overlay(cx, stack, project, bundled) else { return Ok(step) };
    runner::prepare(cx, &overlay)?;
    Ok(step.arg("-f").arg(overlay.path.to_string_lossy()))
}

/// nginx's environment carries its template's hash, as it carries the certificate's: an
/// edited template is a new configuration, which `up` recreates nginx on.
const NGINX_CONF_HASH_VAR: &str = "NGINX_CONF_SHA256";

/// The hash of the nginx template the production stack mounts; empty when it is missing.
fn nginx_conf_hash(cx: &Context) -> String {
    crate::sha256::hash_file(&cx.path(NGINX_CONF)).map(|(_, hex)| hex).unwrap_or_default()
}

/// The template of nginx's configuration in the production stack (on Swarm, the edge runs it
/// as a Swarm config).
pub(crate) const NGINX_CONF: &str = "docker/nginx/default.conf";

/// The bundled Redis, added to a stack whose REDIS_URL names it.
pub(crate) const REDIS_OVERLAY: &str = "docker/compose.redis.yml";

/// The base image the project's Python needs exists, or PYTHON_IMAGE names one. Compose
/// reads PYTHON_IMAGE from its own environment, then from the env file.
pub(crate) fn require_base_image(project: &Description, env: &EnvFile) -> Result<()> {
    let python_image = std::env::var("PYTHON_IMAGE").ok().or_else(|| env.get("PYTHON_IMAGE").map(|e| e.value.clone()));
    project::base_image(project, python_image.as_deref())
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
    let host = certs::hosts(env).into_iter().next().unwrap_or_else(|| "localhost".to_owned());
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
