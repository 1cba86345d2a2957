//! The Django project the stacks run, as `[workspace.metadata.django]` in the root
//! `Cargo.toml` describes it: where it lives, its settings and application modules, how
//! its dependencies are installed and which Python runs it. Read through
//! `cargo metadata`, checked against the files on disk before anything is built, and
//! handed to Compose (and through it to the Dockerfile) as variables.

pub mod build_context;
mod check;
mod ignore;
pub mod own_env;
pub mod processes;

pub use check::{base_image, is_identifier};

use std::collections::BTreeMap;
use std::env;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

use crate::context::Context;
use crate::process::{self, Step};
use crate::project::processes::Process;

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
    /// Debian packages the dependencies need to build (compilers, `-dev` headers): in the
    /// image's builder stage only.
    pub build_packages: Vec<String>,
    /// Debian packages the project needs at run time (shared libraries, tools): in the image.
    pub run_packages: Vec<String>,
    /// The processes besides web (a worker, a scheduler), by name; read apart from the other
    /// keys, so that an error names the process.
    #[serde(skip)]
    pub processes: BTreeMap<String, Process>,
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
            python: "3.13".into(),
            settings_layer: false,
            build_packages: Vec::new(),
            run_packages: Vec::new(),
            processes: template_processes(),
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
        let mut description = parse(value)?;
        check::on_disk(&description, &cx.root)?;
        if description.processes.is_empty() {
            description.processes = processes::from_procfile(&cx.root, &description.dir)?;
        }
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
            ("DJANGO_DEPENDENCIES", self.dependency_path()),
            ("PYTHON_VERSION", self.python.clone()),
            ("DJANGO_SETTINGS", settings.to_owned()),
            ("DJANGO_PROJECT_SETTINGS", own.clone()),
            ("DJANGO_APP", app.clone()),
            ("DJANGO_WORKER_CLASS", worker.to_owned()),
            ("BUILD_PACKAGES", self.build_packages.join(" ")),
            ("RUN_PACKAGES", self.run_packages.join(" ")),
        ]
    }
}

impl Description {
    /// The dependency file as a path from the repository root (`dir` is `.` for a project at
    /// the root), which is where the build context's `deps/` holds it.
    pub fn dependency_path(&self) -> String {
        let path: std::path::PathBuf = Path::new(&self.dir)
            .join(&self.dependencies)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        path.to_string_lossy().into_owned()
    }
}

/// `workspace.metadata.django` of `cargo metadata`, or None when there is none.
fn read_section(root: &Path) -> Result<Option<serde_json::Value>> {
    if !root.join("Cargo.toml").is_file() {
        return Ok(None);
    }
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = root.join("Cargo.toml");
    let metadata = Step::new(&cargo, root)
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline", "--manifest-path"])
        .arg(manifest.to_string_lossy());
    let out = process::output(&metadata)
        .with_context(|| format!("cannot run `{cargo} metadata` to read {SECTION}: is cargo on PATH?"))?;
    if !out.ok {
        bail!("cannot read {}: {}: fix the file so that `cargo metadata` reads it", manifest.display(), out.why());
    }
    let metadata: serde_json::Value = serde_json::from_str(&out.stdout).context("cargo metadata printed no JSON")?;
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
    let processes = keys.remove("processes").map(processes::parse).transpose()?.unwrap_or_default();
    let mut description: Description =
        serde_json::from_value(serde_json::Value::Object(keys)).map_err(|e| anyhow::anyhow!("{SECTION}: {e}"))?;
    description.processes = processes;
    Ok(description)
}

/// The template's Celery worker and scheduler, as the repository's Cargo.toml describes them.
fn template_processes() -> BTreeMap<String, Process> {
    let worker = Process {
        health: Some("test $(( $(date +%s) - $(stat -c %Y /tmp/celery-worker-alive) )) -lt 10".into()),
        ..Process::of_command("celery -A config worker --loglevel=INFO --concurrency=2")
    };
    let beat = Process {
        singleton: true,
        stop_grace_period: 10,
        ..Process::of_command("celery -A config beat --loglevel=INFO --schedule /tmp/celerybeat-schedule")
    };
    BTreeMap::from([("worker".to_owned(), worker), ("beat".to_owned(), beat)])
}

fn layer_on() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository made by `new` describes the template under its own package name
    /// (`shop.settings.prod`, `celery -A shop`): read back under the template's, it is the same.
    #[test]
    fn the_defaults_are_the_repositorys_own_description_of_the_template() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let section = read_section(root).unwrap().expect("the repository describes its project");
        let package = section["settings"].as_str().and_then(|s| s.split('.').next()).unwrap_or_default().to_owned();
        let text = section.to_string().replace(&format!("\"{package}."), "\"config.");
        let text = text.replace(&format!("-A {package} "), "-A config ");
        assert_eq!(parse(serde_json::from_str(&text).unwrap()).unwrap(), Description::default());
    }
}
