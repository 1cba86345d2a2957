//! `cargo xtask test [-- ARGS]`: the project's own test suite (`manage.py test ARGS`) in the
//! image `prod` and `release` build, against a throwaway PostgreSQL of the production stack's
//! image (and the bundled Redis, when `REDIS_URL` names it), with the production settings
//! less what only makes sense behind nginx's HTTPS (`stack_settings.test`). Everything it
//! starts (Compose project `<name>-test`: the database, Redis, their volumes, the network) is
//! removed afterwards, passed or failed; the exit code is the suite's.

use anyhow::Result;

use crate::cli::TestArgs;
use crate::context::Context;
use crate::env_template;
use crate::envfile;
use crate::plan::{runner, Task, WriteFile};
use crate::project::build_context::Staging;
use crate::project::{Description, Flavour};
use crate::redis;
use crate::stack::compose::{self, Compose, Files, Stack, PROD_WITH_DB};
use crate::stack::{self, build_web, load_env, one_off, OneOff, BUILD_CONTEXT, REDIS_OVERLAY};

/// Where the throwaway stack's env file is written.
const ENV_FILE: &str = ".stack/test/env";

/// What the throwaway stack takes from `.env.prod`, when there is one: the images it builds
/// and runs, and how it reaches a package index, so it tests the image `prod` would build.
const FROM_PROD: &[&str] = &["PYTHON_IMAGE", "POSTGRES_IMAGE", "REDIS_IMAGE", "PIP_INDEX_URL", "BUILD_NETWORK"];

pub fn test(cx: &Context, args: TestArgs) -> Result<()> {
    let description = Description::load(cx)?;
    let text = env_template::throwaway_prod(cx, from_prod(cx)?)?;
    let env = envfile::parse(&text, &|_| None);
    stack::require_base_image(&description, &env)?;
    let compose = Compose::detect(cx)?;
    compose::require_engine(cx)?;
    let files = Files { project: format!("{}-test", cx.name), env_file: ENV_FILE, compose_files: PROD_WITH_DB };
    // The production file names nginx's certificate, which this stack never starts.
    let base = compose
        .step_for(cx, &files, Flavour::Prod, &description)
        .env("TLS_CERT_FILE", "/dev/null")
        .env("TLS_KEY_FILE", "/dev/null")
        .env("STACK_ENV_FILE", ENV_FILE);
    let base = if redis::bundled(&env) { compose::add_files(cx, base, &[REDIS_OVERLAY]) } else { base };
    let base_settings = description.compose_vars(Flavour::Prod).into_iter().find(|(k, _)| *k == "DJANGO_SETTINGS");
    let base_settings = base_settings.map(|(_, v)| v).unwrap_or_default();
    let staging = Staging {
        root: cx.root.clone(),
        description,
        dest: cx.path(BUILD_CONTEXT).join(Stack::PROD.suffix()),
        secrets: Vec::new(),
        hide: None,
    };
    let (base, stage) = stack::staged(base, staging);
    let settings = ["-e", "DJANGO_SETTINGS_MODULE=stack_settings.test", "-e"];
    let base_module = format!("DJANGO_TEST_BASE_SETTINGS={base_settings}");
    let options: Vec<&str> = settings.iter().copied().chain([base_module.as_str()]).collect();
    let words: Vec<&str> = ["test"].into_iter().chain(args.args.iter().map(String::as_str)).collect();
    let suite = one_off(&base, &files.project, OneOff::WithDeps, &options, &words)?;
    let tidy = Task::Tidy { project: files.project.clone(), dir: cx.root.clone(), tasks: vec![suite] };
    let write = Task::act(WriteFile { path: cx.path(ENV_FILE), text });
    runner::execute(cx, stage.then(write).run(build_web(&base)).then(tidy))
}

/// The variables of [`FROM_PROD`] that `.env.prod` sets.
fn from_prod(cx: &Context) -> Result<Vec<(&'static str, String)>> {
    if !cx.path(Stack::PROD.env_file()).is_file() {
        return Ok(Vec::new());
    }
    let env = load_env(cx, Stack::PROD)?;
    Ok(FROM_PROD.iter().filter_map(|key| Some((*key, env.get(key)?.value.clone()))).collect())
}
