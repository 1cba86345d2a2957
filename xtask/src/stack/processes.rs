//! The project's processes (a worker, a scheduler: see [`crate::project::processes`]) as
//! Compose services of a stack: one renderer writes `.stack/processes/<stack>.yml`, which
//! every Compose command of that stack then reads after the stack's own files. Each service
//! runs its command in the web image, with web's settings, database and volumes; in dev
//! under Django's autoreloader (it restarts when a `.py` file changes, as runserver does),
//! in production with web's hardening, its stop signal and grace period, and its
//! healthcheck.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde_json::{json, Map, Value};

use crate::context::Context;
use crate::plan::Action;
use crate::project::processes::Process;
use crate::project::Description;
use crate::stack::compose::Stack;

/// Where the file of a stack's processes is written, under the project root.
const DIR: &str = ".stack/processes";

/// The file of `stack`'s processes, with what it holds; None when the project has none.
pub fn overlay(cx: &Context, stack: Stack, description: &Description, redis: bool) -> Option<Overlay> {
    if description.processes.is_empty() {
        return None;
    }
    let path = cx.path(DIR).join(format!("{}.yml", stack.suffix()));
    let text = render(cx, stack, description, redis);
    Some(Overlay { path, text, names: description.processes.keys().cloned().collect() })
}

/// A stack's process services, as a file to write before Compose reads it.
#[derive(Debug, Clone)]
pub struct Overlay {
    pub path: PathBuf,
    pub text: String,
    pub names: Vec<String>,
}

impl Action for Overlay {
    fn render(&self) -> String {
        format!("# write {}: the services {} of the project's processes", self.path.display(), self.names.join(", "))
    }

    fn run(&self, _: &Context) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        // Unchanged, it is left alone: Compose reads it, it does not watch it.
        if fs::read_to_string(&self.path).ok().as_deref() == Some(self.text.as_str()) {
            return Ok(());
        }
        fs::write(&self.path, &self.text).with_context(|| format!("cannot write {}", self.path.display()))
    }
}

fn render(cx: &Context, stack: Stack, description: &Description, redis: bool) -> String {
    let services: Map<String, Value> = description
        .processes
        .iter()
        .map(|(name, process)| (name.clone(), service(cx, stack, description, process, redis)))
        .collect();
    let yaml = serde_yaml::to_string(&json!({ "services": services })).expect("a JSON value is YAML");
    format!(
        "# Written by cargo xtask from [workspace.metadata.django.processes] (or the Procfile):\n# the project's processes as services of the {} stack.\n{yaml}",
        stack.suffix()
    )
}

fn service(cx: &Context, stack: Stack, description: &Description, process: &Process, redis: bool) -> Value {
    // `exec`: the command, not a shell, gets the stop signal (Celery's warm shutdown).
    let shell = vec!["sh".to_owned(), "-c".to_owned(), format!("exec {}", literal(process.command.trim()))];
    let mut service = json!({
        "stop_signal": process.stop_signal,
        "stop_grace_period": format!("{}s", process.stop_grace_period),
        "environment": {
            "DJANGO_SETTINGS_MODULE": "${DJANGO_SETTINGS}",
            "DJANGO_PROJECT_SETTINGS": "${DJANGO_PROJECT_SETTINGS}",
        },
        "restart": "unless-stopped",
    });
    let mut depends = Map::new();
    match stack {
        Stack::Dev => {
            service["image"] = json!(dev_image(cx));
            // Django's autoreloader restarts the command when a .py file changes.
            let reloaded: Vec<String> =
                ["python", "-m", "stack_settings.autoreload"].iter().map(|s| (*s).to_owned()).chain(shell).collect();
            service["command"] = json!(reloaded);
            service["env_file"] = json!(".env");
            service["environment"]["POSTGRES_HOST"] = json!("db");
            service["environment"]["POSTGRES_PORT"] = json!("5432");
            let code = format!("./{}:/app", description.dir);
            service["volumes"] = json!([code, "media:/app/media"]);
            depends.insert("db".into(), json!({ "condition": "service_healthy" }));
        }
        Stack::Prod { with_db } => {
            // As web's: a redeploy that puts a singleton back on the previous image sets it.
            service["image"] = json!(format!("${{WEB_IMAGE:-{}}}", crate::stack::compose::web_image(cx)));
            service["command"] = json!(shell);
            service["env_file"] = json!("${STACK_ENV_FILE:-.env.prod}");
            // As web withholds them (docker/compose.prod.yml): the backup service's alone.
            for withheld in ["BACKUP_PASSWORD", "BACKUP_REPOSITORY"] {
                service["environment"][withheld] = json!("");
            }
            service["volumes"] = json!(["media:/app/media"]);
            service["deploy"] = json!({ "replicas": process.replicas });
            service["cap_drop"] = json!(["ALL"]);
            service["security_opt"] = json!(["no-new-privileges:true"]);
            if with_db {
                service["environment"]["POSTGRES_HOST"] = json!("db");
                service["environment"]["POSTGRES_PORT"] = json!("5432");
                depends.insert("db".into(), json!({ "condition": "service_healthy" }));
            }
        }
    }
    if redis {
        depends.insert("redis".into(), json!({ "condition": "service_healthy" }));
    }
    if !depends.is_empty() {
        service["depends_on"] = Value::Object(depends);
    }
    if let Some(health) = &process.health {
        service["healthcheck"] = json!({
            "test": ["CMD-SHELL", literal(health)],
            "interval": "10s",
            "timeout": "15s",
            "retries": 3,
            "start_period": "30s",
        });
    }
    service
}

/// A command as the container's shell gets it: Compose would read `$HOSTNAME` as one of its
/// own variables, so every `$` is doubled.
fn literal(command: &str) -> String {
    command.replace('$', "$$")
}

/// The dev stack's web image, which its processes run too (docker/compose.yml names it
/// from `DEV_WEB_IMAGE`).
pub fn dev_image(cx: &Context) -> String {
    format!("{}-dev-web", cx.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::processes;

    fn description() -> Description {
        let processes = processes::parse(json!({
            "worker": { "command": "celery -A config worker", "replicas": 2, "health": "celery -A config inspect ping -d celery@$HOSTNAME" },
            "beat": { "command": "celery -A config beat", "singleton": true, "stop-grace-period": 10 },
        }))
        .unwrap();
        Description { processes, ..Description::default() }
    }

    fn cx() -> Context {
        Context { root: "/srv/shop".into(), name: "shop".into(), dry_run: false, verbose: false }
    }

    fn parsed(stack: Stack, redis: bool) -> serde_yaml::Value {
        let overlay = overlay(&cx(), stack, &description(), redis).unwrap();
        serde_yaml::from_str(&overlay.text).unwrap()
    }

    #[test]
    fn production_runs_each_process_in_the_web_image_hardened_with_its_stop_and_health() {
        let file = parsed(Stack::Prod { with_db: true }, true);
        let worker = &file["services"]["worker"];
        assert_eq!(worker["image"], "${WEB_IMAGE:-shop-web}");
        assert_eq!(worker["command"][2], "exec celery -A config worker");
        assert_eq!(worker["deploy"]["replicas"], 2);
        assert_eq!(worker["stop_grace_period"], "60s");
        assert_eq!(worker["healthcheck"]["test"][1], "celery -A config inspect ping -d celery@$$HOSTNAME");
        assert_eq!(worker["environment"]["POSTGRES_HOST"], "db");
        assert_eq!(worker["depends_on"]["redis"]["condition"], "service_healthy");
        assert_eq!(worker["cap_drop"][0], "ALL");
        assert!(worker.get("ports").is_none(), "a process is published");
        let beat = &file["services"]["beat"];
        assert_eq!(beat["stop_grace_period"], "10s");
        assert!(beat.get("healthcheck").is_none());
    }

    #[test]
    fn dev_reloads_each_process_from_the_mounted_code() {
        let file = parsed(Stack::Dev, false);
        let worker = &file["services"]["worker"];
        assert_eq!(worker["image"], "shop-dev-web");
        assert_eq!(worker["command"][2], "stack_settings.autoreload");
        assert_eq!(worker["volumes"][0], "./project-template:/app");
        assert!(worker["depends_on"].get("redis").is_none());
        assert_eq!(worker["env_file"], ".env");
    }

    #[test]
    fn a_project_without_processes_has_no_file() {
        let none = Description { processes: Default::default(), ..Description::default() };
        assert!(overlay(&cx(), Stack::Dev, &none, true).is_none());
    }
}
