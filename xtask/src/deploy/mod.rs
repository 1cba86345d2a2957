//! Running releases past one machine: `release --push` fills the image registry every node
//! pulls from by digest, and `cargo xtask deploy` runs a pushed release on the Docker Swarm
//! the Docker CLI points at, with `docker stack deploy`.
//!
//! A deploy, in order: the Swarm is a manager's; the network and the versioned secrets
//! exist; the bundled database (if any) runs; the migrations ran once, as a job of the new
//! web image; web is updated (start-first, rolled back by Swarm when a new task fails) while
//! the static service keeps what it serves; then it follows. Each step is waited for until
//! the Swarm says it happened.

pub mod pick;
pub mod registry;
pub mod settings;
pub mod stackfile;
mod status;
pub mod swarm;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use crate::cli::{DeployArgs, DeployCommand};
use crate::config::preflight;
use crate::context::Context;
use crate::deploy::pick::Pushed;
use crate::deploy::settings::Settings;
use crate::deploy::stackfile::{Service, Site, PREVIOUS_LABEL, VERSION_LABEL};
use crate::deploy::swarm::{Object, Outcome};
use crate::plan::Step;
use crate::stack::compose::Stack;
use crate::stack::{load_env, prod_stack};
use crate::tls;

/// Where the rendered stack files are written, under the project root (git-ignored).
const RENDERED: &str = ".stack/swarm";

pub fn deploy(cx: &Context, args: DeployArgs) -> Result<()> {
    if let Some(DeployCommand::Status) = args.command {
        return status::show(cx);
    }
    let env = load_env(cx, Stack::PROD)?;
    settings::refuse_unsupported(&env)?;
    preflight::refuse_unsafe_prod(&env, &cx.root)?;
    tls::ensure_local(cx, &env)?;
    let bundled_db = prod_stack(cx, &env, false)? == Stack::Prod { with_db: true };
    let settings = Settings::read(cx, &env, bundled_db)?;
    let rollout = Rollout::new(cx, &args, settings)?;
    if cx.dry_run {
        print!("{}", rollout.render(cx)?);
        return Ok(());
    }
    rollout.run(cx)
}

/// One deploy of one release.
struct Rollout {
    stack: String,
    release: Pushed,
    /// The version serving now.
    serving: Option<String>,
    /// What web's previous-version label says after this deploy: the version serving now,
    /// or, when the same version is deployed again, what it said before.
    previous: Option<String>,
    settings: Settings,
    migrate: bool,
    timeout: Duration,
}

impl Rollout {
    fn new(cx: &Context, args: &DeployArgs, settings: Settings) -> Result<Rollout> {
        let stack = cx.name.clone();
        let dist = cx.path("dist");
        let web = format!("{stack}_web");
        let labels = if cx.dry_run && !args.rollback {
            Default::default()
        } else {
            swarm::inspect(cx, &web)?.map(|s| s.labels()).unwrap_or_default()
        };
        let serving = labels.get(VERSION_LABEL).cloned();
        let release = if args.rollback {
            let Some(previous) = labels.get(PREVIOUS_LABEL) else {
                bail!("{web} names no previous version to roll back to (label {PREVIOUS_LABEL}): deploy a version by name, `cargo xtask deploy VERSION`");
            };
            pick::pick(&dist, Some(previous))?
        } else {
            pick::pick(&dist, args.version.as_deref())?
        };
        let previous = match &serving {
            Some(now) if *now == release.version => labels.get(PREVIOUS_LABEL).cloned(),
            now => now.clone(),
        };
        let timeout = Duration::from_secs(args.wait_timeout);
        Ok(Rollout { stack, release, serving, previous, settings, migrate: !args.rollback, timeout })
    }

    fn service(&self, name: &str) -> String {
        format!("{}_{name}", self.stack)
    }

    fn db_stack(&self) -> String {
        format!("{}-db", self.stack)
    }

    /// The site as this release runs it.
    fn site(&self) -> Site {
        let version = &self.release.version;
        Site {
            web: Service::of(&self.release.web, version, self.previous.as_deref()),
            static_files: Service::of(&self.release.static_files, version, None),
            edge: BTreeMap::from([(VERSION_LABEL.to_owned(), version.clone())]),
        }
    }

    fn rendered(&self, cx: &Context, stack: &str) -> PathBuf {
        cx.path(RENDERED).join(format!("{stack}.yml"))
    }

    fn stack_deploy(&self, cx: &Context, stack: &str) -> Step {
        let file = self.rendered(cx, stack);
        swarm::docker(cx)
            .args(["stack", "deploy", "--with-registry-auth", "--prune", "--compose-file"])
            .arg(file.to_string_lossy())
            .arg(stack)
    }

    /// `docker service create` of the migration job: the new web image, its environment
    /// and secrets, once, on the stack's network.
    fn migrate_job(&self, cx: &Context) -> Step {
        let mut step = swarm::docker(cx).args([
            "service",
            "create",
            "--detach",
            "--name",
            &self.service("migrate"),
            "--mode",
            "replicated-job",
            "--restart-condition",
            "none",
            "--with-registry-auth",
            "--network",
            &stackfile::network(&self.stack),
            "--label",
            &format!("{VERSION_LABEL}={}", self.release.version),
            // Its container is the stack's, as those of its services are.
            "--container-label",
            &format!("com.docker.stack.namespace={}", self.stack),
        ]);
        for (key, value) in &self.settings.environment {
            step = step.arg("--env").arg(format!("{key}={value}"));
        }
        for secret in &self.settings.secrets {
            step = step.arg("--secret").arg(format!("source={},target={}", secret.name, secret.key));
        }
        step.arg(&self.release.web).args(["python", "manage.py", "migrate", "--noinput"])
    }

    /// What a run does, as `--dry-run` prints it: every command, then the stack files.
    fn render(&self, cx: &Context) -> Result<String> {
        let mut text = format!(
            "# deploy release {} of {} to the Swarm the Docker CLI points at (docker info: it must be a manager)\n",
            self.release.version, self.stack
        );
        let network = stackfile::network(&self.stack);
        text += &format!(
            "# unless it exists (docker network inspect {network}):\n{}\n",
            swarm::network_create(cx, &network)
        );
        for (kind, object) in self.objects() {
            text += &format!(
                "# unless it exists: {} < ({})\n",
                swarm::object_create(cx, kind, &self.stack, object),
                object.origin
            );
        }
        let mut files = Vec::new();
        if let Some(image) = &self.settings.bundled_db {
            let db = self.db_stack();
            text += &format!(
                "# the bundled database, on the node labelled {}=true (a single point of failure)\n{}\n# wait until {db}_db runs\n",
                stackfile::db_node_label(&self.stack),
                self.stack_deploy(cx, &db)
            );
            files.push((db.clone(), stackfile::db(&cx.root, &self.stack, &self.settings, image)?));
        }
        if self.migrate {
            text += &format!(
                "{}\n# wait until its task completed (else stop here, showing its logs), then: docker service rm {}\n",
                self.migrate_job(cx),
                self.service("migrate")
            );
        }
        text += &format!(
            "# if {web} serves already: first {web} alone, the same file with the image {st} runs now, and wait until {web} converged\n",
            web = self.service("web"),
            st = self.service("static"),
        );
        text += &format!("{}\n", self.stack_deploy(cx, &self.stack));
        text += &format!(
            "# wait up to {}s until every service converged (a rollback by Swarm fails the deploy, naming the task)\n",
            self.timeout.as_secs()
        );
        files.push((self.stack.clone(), stackfile::site(&cx.root, &self.stack, &self.settings, &self.site())?));
        for (stack, content) in files {
            text += &format!("# --- {}\n{content}", self.rendered(cx, &stack).display());
        }
        Ok(text)
    }

    fn run(&self, cx: &Context) -> Result<()> {
        let started = Instant::now();
        swarm::require_manager(cx)?;
        if self.settings.bundled_db.is_some() {
            self.require_db_node(cx)?;
        }
        swarm::ensure_network(cx, &stackfile::network(&self.stack))?;
        for (kind, object) in self.objects() {
            if swarm::ensure_object(cx, kind, &self.stack, object)? {
                println!("created the Swarm {} {} ({})", kind.noun(), object.name, object.origin);
            }
        }
        if let Some(image) = &self.settings.bundled_db {
            self.deploy_db(cx, image)?;
        }
        if self.migrate {
            println!("running the migrations of {} as the job {}", self.release.version, self.service("migrate"));
            swarm::run_job(cx, &self.migrate_job(cx), &self.service("migrate"), "the migration job", self.timeout)?;
        }
        let wanted = self.site();
        if let Some(first) = self.web_first(cx, &wanted)? {
            println!("updating {} first", self.service("web"));
            self.deploy_site(cx, &first)?;
        }
        self.deploy_site(cx, &wanted)?;
        println!(
            "release {} of {} is serving (web: {} task(s)), {:.1}s",
            self.release.version,
            self.stack,
            self.settings.replicas,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The bundled database lives on its labelled node, which must exist.
    fn require_db_node(&self, cx: &Context) -> Result<()> {
        let label = stackfile::db_node_label(&self.stack);
        let nodes = swarm::labelled_nodes(cx, &label)?;
        if nodes.is_empty() {
            bail!("POSTGRES_HOST=db in .env.prod runs the bundled database, which lives on the node labelled {label}=true and there is none: run `docker node update --label-add {label}=true NODE` for the node that keeps its data, or set POSTGRES_HOST to a managed database");
        }
        eprintln!("warning: the bundled database runs on {} alone, a single point of failure: prefer a managed database (POSTGRES_HOST)", nodes.join(", "));
        Ok(())
    }

    fn deploy_db(&self, cx: &Context, image: &str) -> Result<()> {
        let db = self.db_stack();
        self.write(cx, &db, &stackfile::db(&cx.root, &self.stack, &self.settings, image)?)?;
        let before = swarm::marks(cx, &[(format!("{db}_db"), image.to_owned())])?;
        swarm::run(cx, &self.stack_deploy(cx, &db), "cannot deploy the bundled database")?;
        self.settle(cx, &before)
    }

    /// The secrets, then the edge's configuration, each made unless the Swarm has it.
    fn objects(&self) -> Vec<(Object, &settings::Secret)> {
        let secrets = self.settings.all_secrets().map(|s| (Object::Secret, s));
        secrets.chain([(Object::Config, &self.settings.nginx_conf)]).collect()
    }

    /// The site with the new web but the static service as it runs now, when it runs and
    /// changes: pages of the new version are served before its static files replace the old
    /// ones, and a web that rolls back leaves static files that match it.
    fn web_first(&self, cx: &Context, wanted: &Site) -> Result<Option<Site>> {
        let Some(static_now) = swarm::inspect(cx, &self.service("static"))? else { return Ok(None) };
        if swarm::inspect(cx, &self.service("web"))?.is_none() || static_now.image() == wanted.static_files.image {
            return Ok(None);
        }
        let static_files = Service { image: static_now.image(), labels: release_labels(static_now.labels()) };
        Ok(Some(Site { static_files, ..wanted.clone() }))
    }

    fn deploy_site(&self, cx: &Context, site: &Site) -> Result<()> {
        self.write(cx, &self.stack, &stackfile::site(&cx.root, &self.stack, &self.settings, site)?)?;
        let images = [&site.web.image, &site.static_files.image, &self.settings.nginx_image];
        let wanted: Vec<(String, String)> =
            ["web", "static", "edge"].iter().zip(images).map(|(s, i)| (self.service(s), i.clone())).collect();
        let before = swarm::marks(cx, &wanted)?;
        swarm::run(cx, &self.stack_deploy(cx, &self.stack), "cannot deploy the stack")?;
        self.settle(cx, &before)
    }

    /// Waits for the services marked `before`; a rollback or a timeout fails the deploy,
    /// naming the task.
    fn settle(&self, cx: &Context, before: &BTreeMap<String, swarm::Mark>) -> Result<()> {
        let outcomes = swarm::converge(cx, before, self.timeout)?;
        let failed: Vec<&String> = outcomes
            .values()
            .filter_map(|o| match o {
                Outcome::RolledBack(why) => Some(why),
                Outcome::Converged => None,
            })
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        let serving = self.serving.as_deref().unwrap_or("the previous version");
        bail!(
            "release {} was not deployed: Swarm rolled back to {serving}, which still serves\n{}",
            self.release.version,
            failed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
        )
    }

    fn write(&self, cx: &Context, stack: &str, content: &str) -> Result<()> {
        let path = self.rendered(cx, stack);
        fs::create_dir_all(cx.path(RENDERED)).with_context(|| format!("cannot create {RENDERED}"))?;
        fs::write(&path, content).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The labels of ours among a service's (`docker stack deploy` adds its own).
fn release_labels(mut labels: BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels.retain(|k, _| k == VERSION_LABEL || k == PREVIOUS_LABEL);
    labels
}
