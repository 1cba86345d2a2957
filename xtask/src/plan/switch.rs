//! Deploying the web service without a moment where nothing serves: start first, switch,
//! drain. Against a running stack, new web containers of the new image start beside the old
//! ones in the same Compose project; once they are healthy nginx is pointed at them only
//! (the upstream file, then `nginx -s reload`: nginx is never restarted), and only then are
//! the old ones stopped gracefully (SIGTERM; gunicorn finishes its requests within the
//! service's `stop_grace_period`) and removed. A new version that never becomes healthy is
//! removed and the old one keeps serving. With nothing running it is a first start.
//!
//! The new containers are Compose's own (`up --no-deps --no-recreate --scale web=2N web`),
//! not `run` containers: they carry the service's labels, healthcheck, restart policy,
//! networks and volumes exactly as `up` makes them, so `ps`, `logs`, `down` and the next
//! deploy see them as the service's containers.

use std::fmt;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::context::Context;
use crate::plan::health::{self, Target};
use crate::plan::runner::{self, capture};
use crate::plan::{upstream, Step};

const WEB: &str = "web";
const NGINX: &str = "nginx";
/// How long nginx's workers of the old configuration may take to finish the requests they
/// hold (a slow upload still arriving) before the old containers are told to stop anyway;
/// requests already at gunicorn then still get its graceful timeout.
const NGINX_DRAIN: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(250);
/// What nginx calls a worker of a configuration it has replaced (its process title).
const OLD_WORKER: &str = "shutting down";

/// Start the web service of the Compose project `project`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deploy {
    /// The stack's compose command, without a subcommand.
    pub compose: Step,
    pub project: String,
    /// The web image; the one that served before a redeploy is kept as `<image>:previous`.
    pub image: String,
    pub timeout_secs: u64,
}

/// The error of a redeploy that was not switched to: the old version still serves, so the
/// stack is not a failed start with containers to remove.
#[derive(Debug)]
pub struct NotSwitched(String);

impl fmt::Display for NotSwitched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn run(cx: &Context, deploy: &Deploy) -> Result<()> {
    let old = deploy.containers(cx, WEB, Which::Running);
    if old.is_empty() || deploy.containers(cx, NGINX, Which::Running).is_empty() {
        return deploy.first_start(cx);
    }
    deploy.redeploy(cx, &old)
}

/// Whether web and nginx of Compose project `project` run: a deploy is then a redeploy, and
/// one that fails before its switch leaves that version serving.
pub fn serving(cx: &Context, dir: &Path, project: &str) -> bool {
    [WEB, NGINX].iter().all(|service| !containers(cx, dir, project, service, Which::Running).is_empty())
}

/// Names of the project's containers of `service`, sorted; none when Docker cannot say.
fn containers(cx: &Context, dir: &Path, project: &str, service: &str, which: Which) -> Vec<String> {
    let list = capture(cx, &list(dir, project, service, which)).unwrap_or_default();
    let mut names: Vec<String> = list.split_whitespace().map(str::to_owned).collect();
    names.sort();
    names
}

fn list(dir: &Path, project: &str, service: &str, which: Which) -> Step {
    let mut ps = Step::new("docker", dir).arg("ps");
    ps = match which {
        Which::Running => ps.args(["--filter", "status=running"]),
        Which::All => ps.arg("--all"),
    };
    ps.args(["--filter", &format!("label=com.docker.compose.project={project}")])
        .args(["--filter", &format!("label=com.docker.compose.service={service}")])
        .args(["--format", "{{.Names}}"])
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Running,
    All,
}

impl Deploy {
    /// Today's start: nginx names the service (it starts once web is healthy), then `up`.
    fn first_start(&self, cx: &Context) -> Result<()> {
        upstream::write(&cx.root, &[WEB.to_owned()])?;
        runner::run_step(cx, &self.up_all())?;
        health::wait(cx, &self.compose, self.timeout_secs)
    }

    fn redeploy(&self, cx: &Context, old: &[String]) -> Result<()> {
        let stale = self.stale(cx, old);
        if !stale.is_empty() {
            runner::run_step(cx, &self.docker(&["rm", "--force"], &stale))?;
        }
        let old_image = capture(cx, &self.docker(&["inspect", "--format", "{{.Image}}"], &old[..1]));
        let started = runner::run_step(cx, &self.scale_up(&(2 * old.len()).to_string()));
        let new: Vec<String> = self.containers(cx, WEB, Which::All).into_iter().filter(|c| !old.contains(c)).collect();
        if let Err(error) = started.and_then(|()| self.switch_to(cx, &new)) {
            if !new.is_empty() {
                let _ = runner::run_step(cx, &self.docker(&["rm", "--force"], &new));
            }
            let removed =
                if new.is_empty() { "none was started".to_owned() } else { format!("{} removed", new.join(", ")) };
            let why = format!("the new version was not switched to ({removed}); {} still serve(s)", old.join(", "));
            return Err(error.context(NotSwitched(why)));
        }
        self.drain(cx, old)?;
        if let Some(image) = old_image.as_deref().map(str::trim).filter(|id| !id.is_empty()) {
            runner::run_step(cx, &self.docker(&["tag", image], &[self.previous()]))?;
        }
        // nginx's own configuration (a renewed certificate) may have changed; `up` of nginx
        // alone is a no-op otherwise, and never touches web. A recreated nginx is waited for.
        runner::run_step(cx, &self.refresh_nginx())?;
        health::wait(cx, &self.compose, self.timeout_secs)
    }

    /// Waits for the new containers, then points nginx at them; the upstream file is put
    /// back when nginx refuses the new one.
    fn switch_to(&self, cx: &Context, new: &[String]) -> Result<()> {
        if new.is_empty() {
            bail!("`{}` started no new web container", self.scale_up("N"));
        }
        health::wait_for(cx, Target::Containers(new), self.timeout_secs)?;
        runner::stop_if_interrupted()?;
        let before = upstream::read(&cx.root);
        upstream::write(&cx.root, new)?;
        let reloaded = runner::run_step(cx, &self.nginx(&["nginx", "-t", "-q"]))
            .and_then(|()| runner::run_step(cx, &self.nginx(&["nginx", "-s", "reload"])));
        if reloaded.is_err() {
            if let Some(text) = before {
                let _ = upstream::write_text(&cx.root, &text);
            }
        }
        reloaded
    }

    /// Lets nginx's old workers finish what they hold, then stops and removes the old containers.
    fn drain(&self, cx: &Context, old: &[String]) -> Result<()> {
        let deadline = Instant::now() + NGINX_DRAIN;
        while Instant::now() < deadline {
            let titles = capture(cx, &self.nginx_workers()).unwrap_or_default();
            if !titles.contains(OLD_WORKER) {
                break;
            }
            sleep(POLL);
        }
        runner::run_step(cx, &self.docker(&["stop"], old))?;
        runner::run_step(cx, &self.docker(&["rm"], old))
    }

    /// Web containers that exist but do not run: left by an interrupted deploy, they would
    /// count towards the scale and be started again with their old image.
    fn stale(&self, cx: &Context, running: &[String]) -> Vec<String> {
        self.containers(cx, WEB, Which::All).into_iter().filter(|c| !running.contains(c)).collect()
    }

    fn containers(&self, cx: &Context, service: &str, which: Which) -> Vec<String> {
        containers(cx, &self.compose.dir, &self.project, service, which)
    }

    fn up_all(&self) -> Step {
        self.compose.clone().args(["up", "--detach", "--no-build"])
    }

    fn scale_up(&self, count: &str) -> Step {
        let scale = format!("{WEB}={count}");
        self.compose.clone().args([
            "up",
            "--detach",
            "--no-deps",
            "--no-build",
            "--no-recreate",
            "--scale",
            &scale,
            WEB,
        ])
    }

    fn refresh_nginx(&self) -> Step {
        self.compose.clone().args(["up", "--detach", "--no-build", "--no-deps", NGINX])
    }

    fn nginx(&self, command: &[&str]) -> Step {
        self.compose.clone().args(["exec", "-T", NGINX]).args(command.iter().copied())
    }

    /// The process titles inside the nginx container, NUL-separated.
    fn nginx_workers(&self) -> Step {
        self.nginx(&["sh", "-c", "cat /proc/[0-9]*/cmdline"])
    }

    fn docker(&self, command: &[&str], names: &[String]) -> Step {
        Step::new("docker", &self.compose.dir).args(command.iter().copied()).args(names.iter().cloned())
    }

    fn previous(&self) -> String {
        format!("{}:previous", self.image)
    }

    /// The whole sequence, both branches, as `--dry-run` prints it.
    pub fn render(&self) -> String {
        let old = ["OLD...".to_owned()];
        let file = upstream::path(&self.compose.dir);
        let lines = [
            format!(
                "# if web and nginx of project {} are running (`{}`), redeploy beside them:",
                self.project,
                list(&self.compose.dir, &self.project, WEB, Which::Running)
            ),
            format!("# remove web containers that are not running: `{}`", self.docker(&["rm", "--force"], &["STALE...".into()])),
            self.docker(&["inspect", "--format", "{{.Image}}"], &["OLD".into()]).to_string(),
            self.scale_up("<2 x running>").to_string(),
            format!(
                "# wait up to {}s until the new web container(s) NEW... are healthy; else `{}`, and the old ones keep serving",
                self.timeout_secs,
                self.docker(&["rm", "--force"], &["NEW...".into()])
            ),
            format!("# write {} naming NEW..., then:", display(&file)),
            self.nginx(&["nginx", "-t", "-q"]).to_string(),
            self.nginx(&["nginx", "-s", "reload"]).to_string(),
            format!(
                "# wait up to {}s while nginx has workers of the old configuration: {}",
                NGINX_DRAIN.as_secs(),
                self.nginx_workers()
            ),
            self.docker(&["stop"], &old).to_string(),
            self.docker(&["rm"], &old).to_string(),
            self.docker(&["tag", "OLD-IMAGE"], &[self.previous()]).to_string(),
            self.refresh_nginx().to_string(),
            self.wait_line(),
            format!("# else (first start): write {} naming the web service, then:", display(&file)),
            self.up_all().to_string(),
            self.wait_line(),
        ];
        lines.join("\n")
    }

    fn wait_line(&self) -> String {
        format!("# wait up to {}s until every healthcheck passes, polling: {} ps -q", self.timeout_secs, self.compose)
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
