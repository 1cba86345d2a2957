//! The project's processes besides web: a Celery worker, a scheduler, any command of the web
//! image. Described under `[workspace.metadata.django.processes.NAME]`, or, when the
//! description names none, taken from a Procfile's lines (`web:` and `release:` are the
//! pipeline's own: gunicorn and the release steps).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

/// Names the stacks use for services of their own, which no process may take.
const RESERVED: &[&str] = &["web", "release", "db", "nginx", "redis", "certbot", "static", "edge", "migrate", "backup"];

/// One process: what runs, how many, and how it stops.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Process {
    /// A shell command run in the web image, e.g. `celery -A config worker`.
    pub command: String,
    /// How many containers (or Swarm tasks) run it.
    #[serde(default = "one")]
    pub replicas: u32,
    /// Never two at once, not even during a redeploy (a scheduler such as `celery beat`):
    /// the old one stops before the new one starts.
    #[serde(default)]
    pub singleton: bool,
    /// The signal that asks it to finish what it holds and stop (Celery's warm shutdown).
    #[serde(default = "sigterm")]
    pub stop_signal: String,
    /// Seconds it gets to do so before it is killed.
    #[serde(default = "grace")]
    pub stop_grace_period: u64,
    /// A shell command that succeeds while the process is well, its healthcheck.
    #[serde(default)]
    pub health: Option<String>,
}

impl Process {
    /// A Procfile line's process: its command, and the defaults.
    pub fn of_command(command: &str) -> Process {
        Process {
            command: command.trim().to_owned(),
            replicas: one(),
            singleton: false,
            stop_signal: sigterm(),
            stop_grace_period: grace(),
            health: None,
        }
    }
}

fn one() -> u32 {
    1
}

fn sigterm() -> String {
    "SIGTERM".to_owned()
}

/// Long enough for a task of a few seconds to finish; a project with longer ones says so.
fn grace() -> u64 {
    60
}

/// The processes of the description's `processes` table, each checked, with its key named
/// in the error (`[workspace.metadata.django.processes.worker]`).
pub fn parse(value: serde_json::Value) -> Result<BTreeMap<String, Process>> {
    let serde_json::Value::Object(table) = value else {
        bail!("[workspace.metadata.django.processes] in Cargo.toml is not a table: write one `[workspace.metadata.django.processes.NAME]` table a process");
    };
    let mut processes = BTreeMap::new();
    for (name, value) in table {
        let section = format!("[workspace.metadata.django.processes.{name}] in Cargo.toml");
        let process: Process = serde_json::from_value(value).map_err(|e| anyhow::anyhow!("{section}: {e}"))?;
        check(&name, &process).map_err(|e| anyhow::anyhow!("{section}: {e}"))?;
        processes.insert(name, process);
    }
    Ok(processes)
}

/// One line naming what is wrong with a process, and the fix.
fn check(name: &str, process: &Process) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!("{name:?} cannot name a process: use lower-case letters, digits, `-` and `_`, starting with a letter, e.g. worker");
    }
    if RESERVED.contains(&name) {
        bail!("a process cannot be named {name:?}, the name of a service of the stacks' own ({}): choose another, e.g. worker", RESERVED.join(", "));
    }
    if process.command.trim().is_empty() {
        bail!(
            "command is empty: set the command the web image runs for it, e.g. command = \"celery -A mysite worker\""
        );
    }
    if process.replicas == 0 {
        bail!("replicas = 0: run at least one, or remove the process");
    }
    if !process.singleton && runs_celery_beat(&process.command) {
        bail!("its command runs Celery's scheduler (beat), of which two at once would send every task twice: set singleton = true (and run beat as a process of its own, not with a worker's -B)");
    }
    if process.singleton && process.replicas > 1 {
        bail!(
            "singleton = true with replicas = {}: a singleton runs once; set replicas = 1 or drop singleton",
            process.replicas
        );
    }
    let signal = process.stop_signal.strip_prefix("SIG").unwrap_or_default();
    if signal.is_empty() || !signal.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        bail!("stop-signal = {:?} is not a signal name: write it as SIGTERM, SIGINT or SIGQUIT", process.stop_signal);
    }
    if process.health.as_deref().is_some_and(|h| h.trim().is_empty()) {
        bail!("health is empty: set a command that succeeds while the process is well, or remove the key");
    }
    Ok(())
}

/// Whether `command` runs `celery beat`, or a worker with its embedded scheduler (`-B`).
fn runs_celery_beat(command: &str) -> bool {
    let words: Vec<&str> = command.split_whitespace().collect();
    let celery = words.iter().any(|w| *w == "celery" || w.ends_with("/celery"));
    celery && words.iter().any(|w| matches!(*w, "beat" | "-B" | "--beat"))
}

/// The processes of a Procfile at the root or in the project's directory, for a description
/// that names none: every `NAME: command` line but `web` and `release`.
pub fn from_procfile(root: &Path, dir: &str) -> Result<BTreeMap<String, Process>> {
    let candidates = if dir == "." || dir.is_empty() {
        vec!["Procfile".to_owned()]
    } else {
        vec!["Procfile".to_owned(), format!("{dir}/Procfile")]
    };
    for shown in candidates {
        let text = match fs::read_to_string(root.join(&shown)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {shown}")),
        };
        let mut processes = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, command)) = line.split_once(':') else {
                bail!("{shown} line {}: {line:?} is not `NAME: command`: fix the line", number + 1);
            };
            let name = name.trim();
            if matches!(name, "web" | "release") {
                continue;
            }
            // A Procfile says nothing of singletons: a scheduler is one.
            let process = Process { singleton: runs_celery_beat(command), ..Process::of_command(command) };
            check(name, &process).map_err(|e| anyhow::anyhow!("{shown} line {}: {e}", number + 1))?;
            processes.insert(name.to_owned(), process);
        }
        return Ok(processes);
    }
    Ok(BTreeMap::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: serde_json::Value) -> String {
        format!("{:#}", parse(json).unwrap_err())
    }

    #[test]
    fn a_worker_and_a_scheduler_are_read_with_their_defaults() {
        let processes = parse(serde_json::json!({
            "worker": { "command": "celery -A config worker", "replicas": 2, "health": "celery -A config inspect ping" },
            "beat": { "command": "celery -A config beat", "singleton": true, "stop-grace-period": 10 },
        }))
        .unwrap();
        assert_eq!(processes["worker"].replicas, 2);
        assert_eq!(processes["worker"].stop_signal, "SIGTERM");
        assert_eq!(processes["worker"].stop_grace_period, 60);
        assert!(processes["beat"].singleton && processes["beat"].stop_grace_period == 10);
    }

    #[test]
    fn each_bad_process_is_named_with_its_fix() {
        let cases = [
            (
                serde_json::json!({"worker": {"command": "x", "replica": 2}}),
                "[workspace.metadata.django.processes.worker] in Cargo.toml: unknown field `replica`",
            ),
            (
                serde_json::json!({"beat": {"command": "x", "singleton": true, "replicas": 2}}),
                "singleton = true with replicas = 2: a singleton runs once",
            ),
            (serde_json::json!({"worker": {"command": "  "}}), "processes.worker] in Cargo.toml: command is empty"),
            (serde_json::json!({"web": {"command": "gunicorn"}}), "a process cannot be named \"web\""),
            (serde_json::json!({"Worker": {"command": "x"}}), "\"Worker\" cannot name a process"),
            (
                serde_json::json!({"beat": {"command": "celery -A mysite beat -l info"}}),
                "processes.beat] in Cargo.toml: its command runs Celery's scheduler (beat)",
            ),
            (
                serde_json::json!({"worker": {"command": "celery -A mysite worker -B"}}),
                "set singleton = true (and run beat as a process of its own, not with a worker's -B)",
            ),
            (
                serde_json::json!({"worker": {"command": "x", "stop-signal": "TERM"}}),
                "stop-signal = \"TERM\" is not a signal name",
            ),
        ];
        for (json, expected) in cases {
            let message = error(json);
            assert!(message.contains(expected) && !message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn a_procfile_gives_its_processes_but_web_and_release() {
        let root = tempfile::tempdir().unwrap();
        let text = "web: gunicorn mysite.wsgi\nrelease: python manage.py migrate\n# comment\nworker: celery -A mysite worker -l info\nclock: celery -A mysite beat\n";
        fs::write(root.path().join("Procfile"), text).unwrap();
        let processes = from_procfile(root.path(), ".").unwrap();
        assert_eq!(processes.keys().collect::<Vec<_>>(), ["clock", "worker"]);
        assert_eq!(processes["worker"].command, "celery -A mysite worker -l info");
        assert!(processes["clock"].singleton && !processes["worker"].singleton, "a scheduler runs once");
        fs::write(root.path().join("Procfile"), "worker celery\n").unwrap();
        let error = format!("{:#}", from_procfile(root.path(), ".").unwrap_err());
        assert_eq!(error, "Procfile line 1: \"worker celery\" is not `NAME: command`: fix the line");
    }
}
