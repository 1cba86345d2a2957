//! The Django project the stacks run, as `[workspace.metadata.django]` in the root
//! `Cargo.toml` describes it: where it lives, its settings and application modules, how
//! its dependencies are installed and which Python runs it. Read through
//! `cargo metadata`, checked against the files on disk before anything is built, and
//! handed to Compose (and through it to the Dockerfile) as variables.

mod check;

pub use check::is_identifier;

use std::env;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

use crate::context::Context;

/// Where the description lives, as error messages name it.
pub const SECTION: &str = "[workspace.metadata.django] in Cargo.toml";

/// The settings layer's modules: DJANGO_SETTINGS_MODULE when the layer is on.
const LAYER_PROD: &str = "stack_settings.prod";
const LAYER_DEV: &str = "stack_settings.dev";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Description {
    /// The directory holding manage.py, relative to the project root.
    pub dir: String,
    /// The production settings module.
    pub settings: String,
    /// The development settings module.
    pub dev_settings: String,
    /// The WSGI application gunicorn serves, `module` or `module:name`.
    pub wsgi: String,
    /// The ASGI application; when set, gunicorn serves it with uvicorn workers instead.
    pub asgi: Option<String>,
    /// A requirements file, or `pyproject.toml` with `uv.lock` beside it, in `dir`.
    pub dependencies: String,
    /// The Python version of the default base image, `3.N`.
    pub python: String,
    /// Whether the settings layer sets the stack's settings from the environment: on unless
    /// the section turns it off (a project that reads its environment itself).
    #[serde(default = "layer_on")]
    pub settings_layer: bool,
}

impl Default for Description {
    /// The project in `project-template/`, which reads its environment itself; the values
    /// a section leaves out, except the settings layer, which a section turns on.
    fn default() -> Description {
        Description {
            dir: "project-template".into(),
            settings: "config.settings.prod".into(),
            dev_settings: "config.settings.dev".into(),
            wsgi: "config.wsgi".into(),
            asgi: None,
            dependencies: "requirements.txt".into(),
            python: "3.12".into(),
            settings_layer: false,
        }
    }
}

/// Which stack the variables are for: the two differ in their settings module only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Dev,
    Prod,
}

impl Description {
    /// The description in the root `Cargo.toml`, checked; the template's defaults when the
    /// root has no `Cargo.toml` or it has no such section.
    pub fn load(cx: &Context) -> Result<Description> {
        let Some(value) = read_section(&cx.root)? else { return Ok(Description::default()) };
        let description = parse(value)?;
        check::on_disk(&description, &cx.root)?;
        Ok(description)
    }

    /// The variables the compose files and the Dockerfile read, in a fixed order.
    pub fn compose_vars(&self, flavour: Flavour) -> Vec<(&'static str, String)> {
        let own = match flavour {
            Flavour::Dev => &self.dev_settings,
            Flavour::Prod => &self.settings,
        };
        let settings = match (self.settings_layer, flavour) {
            (false, _) => own.as_str(),
            (true, Flavour::Dev) => LAYER_DEV,
            (true, Flavour::Prod) => LAYER_PROD,
        };
        let (app, worker) = match &self.asgi {
            Some(asgi) => (asgi, "uvicorn.workers.UvicornWorker"),
            None => (&self.wsgi, "sync"),
        };
        vec![
            ("DJANGO_DIR", self.dir.clone()),
            ("DJANGO_DEPENDENCIES", self.dependencies.clone()),
            ("PYTHON_VERSION", self.python.clone()),
            ("DJANGO_SETTINGS", settings.to_owned()),
            ("DJANGO_PROJECT_SETTINGS", own.clone()),
            ("DJANGO_APP", app.clone()),
            ("DJANGO_WORKER_CLASS", worker.to_owned()),
        ]
    }
}

/// `workspace.metadata.django` of `cargo metadata`, or None when there is none.
fn read_section(root: &Path) -> Result<Option<serde_json::Value>> {
    if !root.join("Cargo.toml").is_file() {
        return Ok(None);
    }
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = root.join("Cargo.toml");
    let out =
        duct::cmd!(&cargo, "metadata", "--no-deps", "--format-version", "1", "--offline", "--manifest-path", &manifest)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .with_context(|| format!("cannot run `{cargo} metadata` to read {SECTION}: is cargo on PATH?"))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no reason given");
        bail!("cannot read {}: {why}: fix the file so that `cargo metadata` reads it", manifest.display());
    }
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).context("cargo metadata printed no JSON")?;
    Ok(metadata.pointer("/metadata/django").cloned())
}

/// The section's keys, each named in the error when unknown or of the wrong type. A
/// project with one settings module names it once: `dev-settings` defaults to `settings`.
fn parse(value: serde_json::Value) -> Result<Description> {
    let serde_json::Value::Object(mut keys) = value else {
        bail!("{SECTION} is not a table: write it as `[workspace.metadata.django]` with `key = \"value\"` lines");
    };
    if let (Some(settings), false) = (keys.get("settings").cloned(), keys.contains_key("dev-settings")) {
        keys.insert("dev-settings".into(), settings);
    }
    serde_json::from_value(serde_json::Value::Object(keys)).map_err(|e| anyhow::anyhow!("{SECTION}: {e}"))
}

fn layer_on() -> bool {
    true
}
