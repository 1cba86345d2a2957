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
pub mod settings;
pub mod stackfile;
mod status;
pub mod swarm;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use crate::certs;
use crate::cli::{DeployArgs, DeployCommand};
use crate::context::Context;
use crate::deploy::pick::Pushed;
use crate::deploy::settings::Settings;
use crate::deploy::stackfile::{Service, Site, PREVIOUS_LABEL, VERSION_LABEL};
use crate::deploy::swarm::{Object, Outcome};
use crate::plan::{runner, Action, Plan, Step, Task};
use crate::preflight;
use crate::project::Description;
use crate::stack::compose::Stack;
use crate::stack::{load_env, prod_stack};

/// Where the rendered stack files are written, under the project root (git-ignored).
const RENDERED: &str = ".stack/swarm";

pub fn deploy(cx: &Context, args: DeployArgs) -> Result<()> {
    if let Some(DeployCommand::Status) = args.command {
        return status::show(cx);
    }
    let env = load_env(cx, Stack::PROD)?;
    settings::refuse_unsupported(&env)?;
    preflight::refuse_unsafe_prod(&env, &cx.root)?;
    // Before anything asks the Swarm: an engine in no Swarm gets our line, not Docker's.
    swarm::require_manager(cx)?;
    certs::ensure_local(cx, &env)?;
    let bundled_db = prod_stack(cx, &env, false)? == Stack::Prod { with_db: true };
    let mut settings = Settings::read(cx, &env, bundled_db)?;
    settings.processes = Description::load(cx)?.processes;
    let rollout = Arc::new(Rollout::new(cx, &args, settings)?);
    runner::execute(cx, rollout.plan())
}

/// One deploy of one release.
#[derive(Debug)]
struct Rollout {
    /// The context it was planned in, for the paths and commands it shows.
    cx: Context,
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
        // What serves now: a rollback cannot be planned without it, so it asks the Swarm even
        // under --dry-run (a read); a deploy asks only when it runs.
        let serving = match args.rollback {
            true => swarm::inspect(cx, &web)?,
            false => swarm::inspect_for_plan(cx, &web)?,
        };
        let labels = serving.map(|s| s.labels()).unwrap_or_default();
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
        if settings.backup.is_some() && release.backup.is_none() {
            bail!("BACKUP_SCHEDULE in .env.prod asks for the backup service and no release in dist/manifest.json pushed its image: release again with `cargo xtask release --push --version {}` (it pushes the backup image when BACKUP_SCHEDULE is set)", release.version);
        }
        let timeout = Duration::from_secs(args.wait_timeout);
        let cx = cx.clone();
        Ok(Rollout { cx, stack, release, serving, previous, settings, migrate: !args.rollback, timeout })
    }

    /// The deploy as a plan: each part an action that prints what it does and does it.
    fn plan(self: &Arc<Rollout>) -> Plan {
        let part = |part: Part| Task::act(Deploying { rollout: Arc::clone(self), part });
        let mut plan = Plan::default();
        if self.settings.bundled_db.is_some() || self.settings.bundled_redis.is_some() {
            plan = plan.then(part(Part::DbNode));
        }
        plan = plan.then(part(Part::Network));
        for index in 0..self.objects().len() {
            plan = plan.then(part(Part::Object(index)));
        }
        if self.settings.bundled_db.is_some() {
            plan = plan.then(part(Part::Db));
        }
        if self.settings.bundled_redis.is_some() {
            plan = plan.then(part(Part::Redis));
        }
        if self.migrate {
            plan = plan.then(part(Part::Migrate));
        }
        plan.then(part(Part::Site))
    }

    fn service(&self, name: &str) -> String {
        format!("{}_{name}", self.stack)
    }

    fn db_stack(&self) -> String {
        format!("{}-db", self.stack)
    }

    fn redis_stack(&self) -> String {
        format!("{}-redis", self.stack)
    }

    /// The site as this release runs it.
    fn site(&self) -> Site {
        let version = &self.release.version;
        let process = |name: &String| (name.clone(), Service::of(&self.release.web, version, None));
        Site {
            web: Service::of(&self.release.web, version, self.previous.as_deref()),
            static_files: Service::of(&self.release.static_files, version, None),
            edge: BTreeMap::from([(VERSION_LABEL.to_owned(), version.clone())]),
            processes: self.settings.processes.keys().map(process).collect(),
            backup: self.release.backup.as_ref().map(|image| Service::of(image, version, None)),
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

    /// What a part does, as `--dry-run` prints it.
    fn render(&self, cx: &Context, part: Part) -> Result<String> {
        Ok(match part {
            Part::DbNode => format!(
                "# a node labelled {}=true must keep the bundled database's data (docker node ls --filter node.label=...)",
                stackfile::db_node_label(&self.stack)
            ),
            Part::Network => {
                let network = stackfile::network(&self.stack);
                format!(
                    "# deploy release {} of {} to the Swarm the Docker CLI points at (docker info: it must be a manager)\n\
                     # unless it exists (docker network inspect {network}):\n{}",
                    self.release.version,
                    self.stack,
                    swarm::network_create(cx, &network)
                )
            }
            Part::Object(index) => {
                let (kind, object) = self.objects()[index];
                format!("# unless it exists: {}", swarm::object_create(cx, kind, &self.stack, object))
            }
            Part::Db => format!(
                "# the bundled database, on the node labelled {}=true (a single point of failure)\n{}\n# wait until {}_db runs",
                stackfile::db_node_label(&self.stack),
                self.stack_deploy(cx, &self.db_stack()),
                self.db_stack()
            ),
            Part::Redis => format!(
                "# the bundled Redis, on the node labelled {}=true (a single point of failure)\n{}\n# wait until {}_redis runs",
                stackfile::db_node_label(&self.stack),
                self.stack_deploy(cx, &self.redis_stack()),
                self.redis_stack()
            ),
            Part::Migrate => format!(
                "{}\n# wait until its task completed (else stop here, showing its logs), then: docker service rm {}, and remove its exited containers",
                self.migrate_job(cx),
                self.service("migrate")
            ),
            Part::Site => {
                let mut text = format!(
                    "# if {web} serves already: first {web} alone, the same file with the image {st} runs now, and wait until {web} converged\n{}\n\
                     # wait up to {}s until every service converged (a rollback by Swarm fails the deploy, naming the task)",
                    self.stack_deploy(cx, &self.stack),
                    self.timeout.as_secs(),
                    web = self.service("web"),
                    st = self.service("static"),
                );
                // Then the stack files the deploy writes, the bundled database's first.
                if let Some(image) = &self.settings.bundled_db {
                    let db = self.db_stack();
                    let file = stackfile::db(&cx.root, &self.stack, &self.settings, image)?;
                    text += &format!("\n# --- {}\n{}", self.rendered(cx, &db).display(), file.trim_end());
                }
                if let Some(image) = &self.settings.bundled_redis {
                    let redis = self.redis_stack();
                    let file = stackfile::redis(&cx.root, &self.stack, &self.settings, image)?;
                    text += &format!("\n# --- {}\n{}", self.rendered(cx, &redis).display(), file.trim_end());
                }
                let file = stackfile::site(&cx.root, &self.stack, &self.settings, &self.site())?;
                text + &format!("\n# --- {}\n{}", self.rendered(cx, &self.stack).display(), file.trim_end())
            }
        })
    }

    /// Does a part.
    fn run(&self, cx: &Context, part: Part) -> Result<()> {
        match part {
            Part::DbNode => self.require_db_node(cx),
            Part::Network => swarm::ensure_network(cx, &stackfile::network(&self.stack)),
            Part::Object(index) => {
                let (kind, object) = self.objects()[index];
                if swarm::ensure_object(cx, kind, &self.stack, object)? {
                    println!("created the Swarm {} {} ({})", kind.noun(), object.name, object.origin);
                }
                Ok(())
            }
            Part::Db => self.deploy_db(cx, self.settings.bundled_db.as_deref().unwrap_or_default()),
            Part::Redis => self.deploy_redis(cx, self.settings.bundled_redis.as_deref().unwrap_or_default()),
            Part::Migrate => {
                println!("running the migrations of {} as the job {}", self.release.version, self.service("migrate"));
                let started = Instant::now();
                swarm::run_job(cx, &self.migrate_job(cx), &self.service("migrate"), "the migration job", self.timeout)?;
                println!("{}: completed, {:.1}s", self.service("migrate"), started.elapsed().as_secs_f64());
                Ok(())
            }
            Part::Site => {
                let started = Instant::now();
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
        }
    }

    /// The bundled database lives on its labelled node, which must exist.
    fn require_db_node(&self, cx: &Context) -> Result<()> {
        let label = stackfile::db_node_label(&self.stack);
        let nodes = swarm::labelled_nodes(cx, &label)?;
        if nodes.is_empty() {
            bail!("the bundled database or Redis (POSTGRES_HOST=db, REDIS_URL naming redis in .env.prod) lives on the node labelled {label}=true and there is none: run `docker node update --label-add {label}=true NODE` for the node that keeps their data, or set POSTGRES_HOST and REDIS_URL to managed services");
        }
        eprintln!("warning: the bundled database or Redis runs on {} alone, a single point of failure: prefer managed ones (POSTGRES_HOST, REDIS_URL)", nodes.join(", "));
        Ok(())
    }

    fn deploy_redis(&self, cx: &Context, image: &str) -> Result<()> {
        let redis = self.redis_stack();
        self.write(cx, &redis, &stackfile::redis(&cx.root, &self.stack, &self.settings, image)?)?;
        let before = swarm::marks(cx, &[(format!("{redis}_redis"), image.to_owned())])?;
        swarm::run(&self.stack_deploy(cx, &redis), "cannot deploy the bundled Redis")?;
        self.settle(cx, &before)
    }

    fn deploy_db(&self, cx: &Context, image: &str) -> Result<()> {
        let db = self.db_stack();
        self.write(cx, &db, &stackfile::db(&cx.root, &self.stack, &self.settings, image)?)?;
        let before = swarm::marks(cx, &[(format!("{db}_db"), image.to_owned())])?;
        swarm::run(&self.stack_deploy(cx, &db), "cannot deploy the bundled database")?;
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
    /// The processes follow web too: a worker of the new version starts with the new
    /// version's pages, not before.
    fn web_first(&self, cx: &Context, wanted: &Site) -> Result<Option<Site>> {
        if swarm::inspect(cx, &self.service("web"))?.is_none() {
            return Ok(None);
        }
        let as_now = |name: &str, want: &Service| -> Result<Service> {
            Ok(match swarm::inspect(cx, &self.service(name))? {
                Some(now) => Service { image: now.image(), labels: release_labels(now.labels()) },
                None => want.clone(),
            })
        };
        let mut first = Site { static_files: as_now("static", &wanted.static_files)?, ..wanted.clone() };
        for (name, want) in &wanted.processes {
            first.processes.insert(name.clone(), as_now(name, want)?);
        }
        let unchanged = first.static_files.image == wanted.static_files.image
            && first.processes.iter().all(|(name, now)| now.image == wanted.processes[name].image);
        Ok((!unchanged).then_some(first))
    }

    fn deploy_site(&self, cx: &Context, site: &Site) -> Result<()> {
        self.write(cx, &self.stack, &stackfile::site(&cx.root, &self.stack, &self.settings, site)?)?;
        let images = [&site.web.image, &site.static_files.image, &self.settings.nginx_image];
        let mut wanted: Vec<(String, String)> =
            ["web", "static", "edge"].iter().zip(images).map(|(s, i)| (self.service(s), i.clone())).collect();
        wanted.extend(site.processes.iter().map(|(name, what)| (self.service(name), what.image.clone())));
        let before = swarm::marks(cx, &wanted)?;
        swarm::run(&self.stack_deploy(cx, &self.stack), "cannot deploy the stack")?;
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

/// The parts of a deploy, in order.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// The node that keeps the bundled database's data exists.
    DbNode,
    /// The stack's overlay network, unless it exists.
    Network,
    /// One of [`Rollout::objects`], unless the Swarm has it.
    Object(usize),
    /// The bundled database, as its own stack on its labelled node.
    Db,
    /// The bundled Redis, as its own stack on the same node.
    Redis,
    /// The migrations, as a job of the new web image.
    Migrate,
    /// Web (first, when static changes too), static and the edge, waited for.
    Site,
}

/// One part of a deploy, as a plan's action.
#[derive(Debug)]
struct Deploying {
    rollout: Arc<Rollout>,
    part: Part,
}

impl Action for Deploying {
    fn render(&self) -> String {
        let rollout = &self.rollout;
        rollout.render(&rollout.cx, self.part).unwrap_or_else(|error| format!("# cannot show this part: {error:#}"))
    }

    fn run(&self, cx: &Context) -> Result<()> {
        self.rollout.run(cx, self.part)
    }
}

/// The labels of ours among a service's (`docker stack deploy` adds its own).
fn release_labels(mut labels: BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels.retain(|k, _| k == VERSION_LABEL || k == PREVIOUS_LABEL);
    labels
}
