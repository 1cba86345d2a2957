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
//!
//! The project's processes follow web. A worker's new containers start beside the old ones
//! with web's, and must come up with them (healthy, or running without a restart) or the
//! redeploy stops there with nothing switched; once web has switched, the old workers get
//! their stop signal and finish the tasks they hold within their grace period. A singleton
//! (a scheduler) is stopped before its successor starts, so two never run at once; one that
//! does not come up is put back on the image that ran before.

use std::fmt;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::context::Context;
use crate::plan::health::{self, Target};
use crate::plan::{Action, Step};
use crate::process::{self, stop_if_interrupted};
use crate::project::processes::Process;
use crate::stack::upstream;

const WEB: &str = "web";
const NGINX: &str = "nginx";
/// How long nginx's workers of the old configuration may take to finish the requests they
/// hold (a slow upload still arriving) before the old containers are told to stop anyway:
/// gunicorn's own timeout, beyond which it would not finish such a request either.
const NGINX_DRAIN: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(250);
/// Lists nginx's worker processes, one `PID/cmdline` line each, by their process title (the
/// pattern's anchor keeps sh and grep themselves out); a process that ends meanwhile is
/// skipped.
const WORKER_PIDS: &str = "cd /proc && for f in [0-9]*/cmdline; do grep -qs ^nginx:.worker $f && echo $f; done; exit 0";
/// How long a process without a healthcheck must keep running, unrestarted, to count as up.
const SETTLE: Duration = Duration::from_secs(3);
/// `NAME STATUS RESTARTS checked|unchecked` of a container (whether it has a healthcheck).
const STATE_FORMAT: &str =
    "{{.Name}} {{.State.Status}} {{.RestartCount}} {{if .Config.Healthcheck}}checked{{else}}unchecked{{end}}";

/// Start the web service of the Compose project `project`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deploy {
    /// The stack's compose command, without a subcommand.
    pub compose: Step,
    pub project: String,
    /// The web image; the one that served before a redeploy is kept as `<image>:previous`.
    pub image: String,
    pub timeout_secs: u64,
    /// The project's processes, by service name.
    pub processes: Vec<(String, Process)>,
    /// The services started before the deploy (see [`crate::stack::backing`]).
    pub backing: Vec<String>,
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

impl Action for Deploy {
    fn render(&self) -> String {
        self.sequence()
    }

    fn run(&self, cx: &Context) -> Result<()> {
        let old = self.containers(WEB, Which::Running);
        if old.is_empty() || self.containers(NGINX, Which::Running).is_empty() {
            return self.first_start(cx);
        }
        self.redeploy(cx, &old)
    }
}

/// Whether web and nginx of Compose project `project` run: a deploy is then a redeploy, and
/// one that fails before its switch leaves that version serving.
pub fn serving(dir: &Path, project: &str) -> bool {
    [WEB, NGINX].iter().all(|service| !containers(dir, project, service, Which::Running).is_empty())
}

/// Names of the project's containers of `service`, sorted; none when Docker cannot say.
fn containers(dir: &Path, project: &str, service: &str, which: Which) -> Vec<String> {
    let list = process::stdout_of(&list(dir, project, service, which)).unwrap_or_default();
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
    /// A first start: nginx names the service, then web, the processes and nginx start at
    /// once (`--no-deps`: what they need runs already, and Compose would wait for Docker's
    /// first health poll of it), then any other service the usual way (certbot, which waits
    /// for nginx), then the wait, which runs the healthchecks itself.
    fn first_start(&self, cx: &Context) -> Result<()> {
        upstream::write(&cx.root, &[WEB.to_owned()])?;
        let services = self.listed_services();
        let own: Vec<String> = self.own_services().into_iter().filter(|s| services.contains(s)).collect();
        if own.is_empty() {
            // Compose could not list the services: start them all its way.
            process::run(&self.up_all())?;
            return health::wait_for(cx, Target::Stack(&self.compose), self.timeout_secs);
        }
        process::run(&self.up_own(&own))?;
        if !self.others(&services).is_empty() {
            process::run(&self.up_all())?;
        }
        health::wait_for(cx, Target::Stack(&self.compose), self.timeout_secs)
    }

    /// web, the processes and nginx.
    fn own_services(&self) -> Vec<String> {
        let processes = self.processes.iter().map(|(name, _)| name.clone());
        std::iter::once(WEB.to_owned()).chain(processes).chain([NGINX.to_owned()]).collect()
    }

    fn services(&self) -> Step {
        self.compose.clone().args(["config", "--services"])
    }

    fn up_own(&self, services: &[String]) -> Step {
        self.compose.clone().args(["up", "--detach", "--no-build", "--no-deps"]).args(services.iter().cloned())
    }

    fn redeploy(&self, cx: &Context, old: &[String]) -> Result<()> {
        let stale = self.stale(old);
        if !stale.is_empty() {
            process::run(&self.docker(&["rm", "--force"], &stale))?;
        }
        let old_image = process::stdout_of(&self.docker(&["inspect", "--format", "{{.Image}}"], &old[..1]));
        let old_workers = self.workers_running();
        let started = process::run(&self.scale_up(WEB, &(2 * old.len()).to_string()));
        let new: Vec<String> = self.containers(WEB, Which::All).into_iter().filter(|c| !old.contains(c)).collect();
        let mut new_workers = Vec::new();
        // Web's new containers and the workers' come up together, then web is switched to.
        let switched = started
            .and_then(|()| self.start_workers(&old_workers, &mut new_workers))
            .and_then(|()| self.wait_up(cx, &new_workers.iter().chain(&new).cloned().collect::<Vec<_>>()))
            .and_then(|()| self.switch_to(cx, &new));
        let nginx_workers = match switched {
            Ok(workers) => workers,
            Err(error) => return Err(self.not_switched(error, &new, &new_workers, old)),
        };
        self.drain(old, nginx_workers)?;
        self.stop_old_workers(&old_workers)?;
        self.replace_singletons(cx, old_image.as_deref().map(str::trim).unwrap_or_default())?;
        if let Some(image) = old_image.as_deref().map(str::trim).filter(|id| !id.is_empty()) {
            process::run(&self.docker(&["tag", image], &[self.previous()]))?;
        }
        // nginx's own configuration (a renewed certificate) may have changed, or that of a
        // service besides web's (the backup service's schedule); `up` of them alone is a no-op
        // otherwise, and never touches web. A service no file names any more (the backup
        // service once BACKUP_SCHEDULE is gone) is removed. What it recreated is waited for.
        process::run(&self.refresh(&self.others(&self.listed_services())))?;
        health::wait_for(cx, Target::Stack(&self.compose), self.timeout_secs)
    }

    /// Removes what a redeploy that failed before its switch started: the old version still
    /// serves.
    fn not_switched(
        &self,
        error: anyhow::Error,
        new: &[String],
        new_workers: &[String],
        old: &[String],
    ) -> anyhow::Error {
        let started: Vec<String> = new.iter().chain(new_workers).cloned().collect();
        if !started.is_empty() {
            let _ = process::run(&self.docker(&["rm", "--force"], &started));
        }
        let removed = match started.is_empty() {
            true => "none was started".to_owned(),
            false => format!("{} removed", started.join(", ")),
        };
        let why = format!("the new version was not switched to ({removed}); {} still serve(s)", old.join(", "));
        error.context(NotSwitched(why))
    }

    /// Waits for the new containers, then points nginx at them; the upstream file is put
    /// back when nginx refuses the new one. The pids of nginx's workers before the reload
    /// (None when they could not be listed) are those the drain waits for.
    fn switch_to(&self, cx: &Context, new: &[String]) -> Result<Option<Vec<String>>> {
        if new.is_empty() {
            bail!("`{}` started no new web container", self.scale_up(WEB, "N"));
        }
        health::wait_for(cx, Target::Containers(new), self.timeout_secs)?;
        stop_if_interrupted()?;
        let before = upstream::read(&cx.root);
        let workers = self.nginx_worker_pids();
        upstream::write(&cx.root, new)?;
        let reloaded = process::run(&self.nginx(&["nginx", "-t", "-q"]))
            .and_then(|()| process::run(&self.nginx(&["nginx", "-s", "reload"])));
        if reloaded.is_err() {
            if let Some(text) = before {
                let _ = upstream::write_text(&cx.root, &text);
            }
        }
        reloaded.map(|()| workers)
    }

    /// The pids of nginx's worker processes; None when they cannot be listed (nginx always
    /// has one, so an empty list is one that failed).
    fn nginx_worker_pids(&self) -> Option<Vec<String>> {
        let listing = process::stdout_of(&self.nginx_workers())?;
        let pids: Vec<String> = listing.lines().filter_map(|l| l.split('/').next()).map(str::to_owned).collect();
        (!pids.is_empty()).then_some(pids)
    }

    /// The running containers of each worker (a process that is no singleton), by service.
    fn workers_running(&self) -> Vec<(String, Vec<String>)> {
        let workers = self.processes.iter().filter(|(_, p)| !p.singleton);
        workers.map(|(name, _)| (name.clone(), self.containers(name, Which::Running))).collect()
    }

    /// Starts each worker's new containers beside the old ones (as many again); the ones
    /// started are added to `started` as they are known.
    fn start_workers(&self, old: &[(String, Vec<String>)], started: &mut Vec<String>) -> Result<()> {
        for (name, running) in old {
            let wanted = self.processes.iter().find(|(n, _)| n == name).map_or(1, |(_, p)| p.replicas as usize);
            let stale: Vec<String> =
                self.containers(name, Which::All).into_iter().filter(|c| !running.contains(c)).collect();
            if !stale.is_empty() {
                process::run(&self.docker(&["rm", "--force"], &stale))?;
            }
            let scaled = process::run(&self.scale_up(name, &(running.len() + wanted).to_string()));
            started.extend(self.containers(name, Which::All).into_iter().filter(|c| !running.contains(c)));
            scaled?;
        }
        Ok(())
    }

    /// Waits until the containers are healthy, or, without a healthcheck, running and not
    /// restarted a moment after they started: a process that crashes at once fails here.
    fn wait_up(&self, cx: &Context, containers: &[String]) -> Result<()> {
        if containers.is_empty() {
            return Ok(());
        }
        health::wait_for(cx, Target::Containers(containers), self.timeout_secs)?;
        let state = self.docker(&["inspect", "--format", STATE_FORMAT], containers);
        let mut report = process::stdout_of(&state).unwrap_or_default();
        // A passed healthcheck says the process is up; one without must be seen to stay up.
        if report.lines().any(|l| !l.ends_with(" checked")) {
            sleep(SETTLE);
            report = process::stdout_of(&state).unwrap_or_default();
        }
        let unsteady: Vec<&str> = report
            .lines()
            .filter(|l| !l.split_whitespace().skip(1).take(2).eq(["running", "0"]))
            .filter_map(|l| l.split_whitespace().next().map(|n| n.trim_start_matches('/')))
            .collect();
        if unsteady.is_empty() {
            return Ok(());
        }
        for name in &unsteady {
            let _ = process::run(&self.docker(&["logs", "--tail", "100"], &[(*name).to_owned()]));
        }
        bail!("container(s) {} stopped or restarted after starting: see their logs above", unsteady.join(", "))
    }

    /// Once web has switched: the old workers get their stop signal (Compose's stop_signal)
    /// and finish the tasks they hold within their grace period, then go.
    fn stop_old_workers(&self, old: &[(String, Vec<String>)]) -> Result<()> {
        for (name, containers) in old.iter().filter(|(_, c)| !c.is_empty()) {
            let grace = self.processes.iter().find(|(n, _)| n == name).map_or(60, |(_, p)| p.stop_grace_period);
            process::run(&self.docker(&["stop", "-t", &grace.to_string()], containers))?;
            process::run(&self.docker(&["rm"], containers))?;
        }
        Ok(())
    }

    /// Each singleton: the old one stops (finishing within its grace period) before the new
    /// one starts; a new one that does not come up is replaced by one on `old_image` again.
    fn replace_singletons(&self, cx: &Context, old_image: &str) -> Result<()> {
        for (name, process) in self.processes.iter().filter(|(_, p)| p.singleton) {
            let old = self.containers(name, Which::All);
            if !old.is_empty() {
                process::run(&self.docker(&["stop", "-t", &process.stop_grace_period.to_string()], &old))?;
            }
            process::run(&self.recreate(name, None))?;
            let new = self.containers(name, Which::All);
            if let Err(error) = self.wait_up(cx, &new) {
                if !old_image.is_empty() {
                    let back = self.recreate(name, Some(old_image));
                    let _ = process::run(&back);
                }
                return Err(error.context(format!("the new {name} did not come up: the one of the image that ran before was started again (`cargo xtask prod --rollback` puts web back too)")));
            }
        }
        Ok(())
    }

    /// `up` of service `name` alone, recreated, on `image` instead of the web image's tag.
    fn recreate(&self, name: &str, image: Option<&str>) -> Step {
        let step = self.compose.clone().args(["up", "--detach", "--no-deps", "--no-build", "--force-recreate", name]);
        match image {
            Some(image) => step.env("WEB_IMAGE", image),
            None => step,
        }
    }

    /// Lets nginx's workers of before the reload finish what they hold and exit, then stops
    /// and removes the old containers. Those workers are waited for by pid: `nginx -s reload`
    /// only signals the master, which may not have told them to shut down yet, so their
    /// titles alone could say nothing is draining. Unknown pids mean the whole wait.
    fn drain(&self, old: &[String], workers: Option<Vec<String>>) -> Result<()> {
        let deadline = Instant::now() + NGINX_DRAIN;
        while Instant::now() < deadline {
            let finished = match (&workers, self.nginx_worker_pids()) {
                (Some(before), Some(now)) => !before.iter().any(|pid| now.contains(pid)),
                _ => false,
            };
            if finished {
                break;
            }
            sleep(POLL);
        }
        process::run(&self.docker(&["stop"], old))?;
        process::run(&self.docker(&["rm"], old))
    }

    /// Web containers that exist but do not run: left by an interrupted deploy, they would
    /// count towards the scale and be started again with their old image.
    fn stale(&self, running: &[String]) -> Vec<String> {
        self.containers(WEB, Which::All).into_iter().filter(|c| !running.contains(c)).collect()
    }

    fn containers(&self, service: &str, which: Which) -> Vec<String> {
        containers(&self.compose.dir, &self.project, service, which)
    }

    fn up_all(&self) -> Step {
        self.compose.clone().args(["up", "--detach", "--no-build", "--remove-orphans"])
    }

    fn scale_up(&self, service: &str, count: &str) -> Step {
        let scale = format!("{service}={count}");
        self.compose.clone().args([
            "up",
            "--detach",
            "--no-deps",
            "--no-build",
            "--no-recreate",
            "--scale",
            &scale,
            service,
        ])
    }

    fn refresh(&self, others: &[String]) -> Step {
        let up = self.compose.clone().args(["up", "--detach", "--no-build", "--no-deps", "--remove-orphans", NGINX]);
        up.args(others.iter().cloned())
    }

    /// Of the `listed` services, those besides web, the processes, nginx and the backing ones.
    fn others(&self, listed: &[String]) -> Vec<String> {
        let own = self.own_services();
        listed.iter().filter(|s| !own.contains(s) && !self.backing.contains(s)).cloned().collect()
    }

    /// The services the compose files name; none when Compose cannot list them.
    fn listed_services(&self) -> Vec<String> {
        let listed = process::stdout_of(&self.services()).unwrap_or_default();
        listed.split_whitespace().map(str::to_owned).collect()
    }

    fn nginx(&self, command: &[&str]) -> Step {
        self.compose.clone().args(["exec", "-T", NGINX]).args(command.iter().copied())
    }

    /// nginx's worker processes (see [`WORKER_PIDS`]).
    fn nginx_workers(&self) -> Step {
        self.nginx(&["sh", "-c", WORKER_PIDS])
    }

    fn docker(&self, command: &[&str], names: &[String]) -> Step {
        Step::new("docker", &self.compose.dir).args(command.iter().copied()).args(names.iter().cloned())
    }

    fn previous(&self) -> String {
        format!("{}:previous", self.image)
    }

    /// The whole sequence, both branches, as `--dry-run` prints it.
    fn sequence(&self) -> String {
        let old = ["OLD...".to_owned()];
        let file = upstream::path(&self.compose.dir);
        let mut lines = vec![
            format!(
                "# if web and nginx of project {} are running (`{}`), redeploy beside them:",
                self.project,
                list(&self.compose.dir, &self.project, WEB, Which::Running)
            ),
            format!(
                "# remove web containers that are not running: `{}`",
                self.docker(&["rm", "--force"], &["STALE...".into()])
            ),
            self.docker(&["inspect", "--format", "{{.Image}}"], &["OLD".into()]).to_string(),
            self.scale_up(WEB, "<2 x running>").to_string(),
        ];
        for (name, process) in self.processes.iter().filter(|(_, p)| !p.singleton) {
            lines.push(self.scale_up(name, &format!("<running + {}>", process.replicas)).to_string());
        }
        lines.extend([
            format!(
                "# wait up to {}s until the new web container(s) NEW... and those of the workers are up; else `{}`, and the old ones keep serving",
                self.timeout_secs,
                self.docker(&["rm", "--force"], &["NEW...".into()])
            ),
            format!("# list nginx's workers (PIDS): {}", self.nginx_workers()),
            format!("# write {} naming NEW..., then:", display(&file)),
            self.nginx(&["nginx", "-t", "-q"]).to_string(),
            self.nginx(&["nginx", "-s", "reload"]).to_string(),
            format!("# wait up to {}s until PIDS have finished their requests and exited, listing them again", NGINX_DRAIN.as_secs()),
            self.docker(&["stop"], &old).to_string(),
            self.docker(&["rm"], &old).to_string(),
        ]);
        // As they run: the old workers go first, then each singleton is replaced.
        let (singletons, workers): (Vec<_>, Vec<_>) = self.processes.iter().partition(|(_, p)| p.singleton);
        for (name, process) in workers.into_iter().chain(singletons) {
            let old = [format!("OLD-{name}...")];
            let stop = self.docker(&["stop", "-t", &process.stop_grace_period.to_string()], &old);
            match process.singleton {
                false => lines.push(format!("{stop}\n{}", self.docker(&["rm"], &old))),
                true => lines.push(format!(
                    "{stop}\n{}\n# wait until it is up; else the same with WEB_IMAGE=OLD-IMAGE",
                    self.recreate(name, None)
                )),
            }
        }
        lines.extend([
            self.docker(&["tag", "OLD-IMAGE"], &[self.previous()]).to_string(),
            format!(
                "# OTHERS: the services `{}` lists besides web, the processes, nginx{}",
                self.services(),
                self.backing_text()
            ),
            self.refresh(&["OTHERS...".to_owned()]).to_string(),
            self.wait_line(),
            format!("# else (first start): write {} naming the web service, then:", display(&file)),
            self.up_own(&self.own_services()).to_string(),
            format!(
                "# then, if `{}` lists a service besides those{}: {}",
                self.services(),
                self.backing_text(),
                self.up_all()
            ),
            self.wait_line(),
        ]);
        lines.join("\n")
    }

    /// The services started before the deploy, as the dry run names them.
    fn backing_text(&self) -> String {
        match self.backing.is_empty() {
            true => String::new(),
            false => format!(" and {} (started first)", self.backing.join(", ")),
        }
    }

    fn wait_line(&self) -> String {
        format!("# wait up to {}s until every healthcheck passes, polling: {} ps -q", self.timeout_secs, self.compose)
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
