//! Scenario swarm: `cargo xtask deploy` of pushed releases to a single-node Docker Swarm
//! made for the test (`docker swarm init`, left again when the test ends, also on failure),
//! pulling from the push scenario's registry, with the bundled database on the labelled
//! node. Checked over the edge's published HTTPS port under a bounded request loop: a
//! code change, a version whose healthcheck fails (Swarm rolls back by itself), a failing
//! migration (nothing replaced), `deploy --rollback`, and a web task killed. From 1.2.4 on,
//! BACKUP_SCHEDULE adds the backup service, whose snapshots reach the SFTP host of
//! tests/e2e/sftp.rs and pass `backup verify`; the deploy after the schedule is unset
//! removes it.
//!
//! It continues from the push scenario, in its project (tests/e2e/chain.rs): the first release
//! deployed is the one pushed there, and later versions reuse its cached image layers.

use std::fs;
use std::time::{Duration, Instant};

use super::chain::{self, Released};
use super::harness::{self, docker, docker_ok, git, repo, suite, text, timing, value, wait_for, Project};
use super::http::{self, Site};
use super::load::{failures, Load, CLIENTS};
use super::node::{self, Node};
use super::push::{self, Registry};
use super::sftp::SftpHost;
use super::tasks::{self, Db};

/// The Swarm of this test: initialised on this engine, and on drop the stacks removed (their
/// containers at once: nothing in them is kept), their volumes too, and the swarm left.
struct Swarm {
    stacks: Vec<String>,
}

impl Swarm {
    /// A Swarm whose manager advertises `address` to the nodes that join.
    fn init(stacks: Vec<String>, address: &str) -> Swarm {
        let state = docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        assert_eq!(state, "inactive", "the engine is in a Swarm already: `docker swarm leave --force` first");
        docker_ok(&["swarm", "init", "--advertise-addr", address]);
        Swarm { stacks }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for stack in &self.stacks {
            let _ = docker(&["stack", "rm", stack]);
        }
        let label = |s: &String| format!("label=com.docker.stack.namespace={s}");
        for stack in &self.stacks {
            let containers = text(&docker(&["ps", "-aq", "--filter", &label(stack)]).stdout);
            for container in containers.split_whitespace() {
                let _ = docker(&["rm", "--force", container]);
            }
        }
        for stack in &self.stacks {
            let volumes = text(&docker(&["volume", "ls", "-q", "--filter", &label(stack)]).stdout);
            for volume in volumes.split_whitespace() {
                let _ = docker(&["volume", "rm", volume]);
            }
        }
        // The swarm scenario's own project is the one left on the engine.
        let left =
            harness::alone_on_the_engine(1, Duration::from_secs(20 * 60), || docker(&["swarm", "leave", "--force"]));
        if !left.status.success() {
            eprintln!("e2e: swarm: could not leave the swarm: {}", text(&left.stderr));
        }
    }
}

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn deploy_rolls_pushed_releases_out_to_swarm_without_a_failed_request() {
    let _load = harness::under_load();
    // The last scenario of the chain: the project is removed when this test ends.
    let Released { project, registry } = chain::pushed().take();
    deploys(&project, registry.as_ref().expect("the push stage ran"), chain::VERSION);
}

/// Deploys `first` (pushed to `registry`), then the later cases, under load.
fn deploys(project: &Project, registry: &Registry, first: &str) {
    let stack = project.name.clone();
    // A second node, when this machine can make one: joined at the end.
    let second = match Node::start(registry.port) {
        Ok(node) => Some(node),
        Err(why) => {
            eprintln!("e2e: swarm: one node only, no second one here: {why}");
            None
        }
    };
    let address = if second.is_some() { node::HOST_ADDRESS } else { "127.0.0.1" };
    let _swarm = Swarm::init(vec![stack.clone(), format!("{stack}-db"), format!("{stack}-redis")], address);
    let node = docker_ok(&["info", "--format", "{{.Swarm.NodeID}}"]);
    docker_ok(&["node", "update", "--label-add", &format!("{stack}.db=true"), &node]);
    let site = Site::tls(project.env_value(".env.prod", "HTTPS_PORT").parse().unwrap(), &project.path("certs/ca.pem"));
    let prefix = format!("127.0.0.1:{}/{}", registry.port, project.name);

    // The first deploy: pages and static files through the edge, images by digest, no secret in a spec.
    describe_two_workers(project);
    let started = Instant::now();
    let out = project.ok(&["deploy"]);
    timing("swarm: first deploy (database, migrations, site) to converged", started.elapsed());
    assert!(text(&out.stdout).contains(&format!("release {first} of {stack} is serving")), "{}", text(&out.stdout));
    let home = super::get_ok(site, "/");
    assert!(home.text().contains("<h1>It works</h1>"), "{home}");
    let css =
        http::between(&home.text(), "<link rel=\"stylesheet\" href=\"", "\"").expect("a stylesheet link").to_owned();
    let styles = super::get_ok(site, &css);
    let cache = styles.header("cache-control").unwrap_or_default().to_owned();
    assert!(cache.contains("immutable"), "{css}: Cache-Control {cache}");
    assert_images_are_the_manifests(project, &stack);
    assert_no_secret_in_a_spec(project, &stack);
    let db = tasks_run_once_on_the_swarm(project, &stack, site);

    let load = Load::start(site, vec!["/".into(), css.clone()]);

    // A code change, rebuilt on the cached dependency layers.
    let first_image = pinned(project, "web");
    project.edit("project-template/core/templates/core/home.html", "<h1>It works</h1>", "<h1>It works, v2</h1>");
    project.edit("project-template/core/tasks.py", "VERSION = \"1\"", "VERSION = \"2\"");
    // Released with a backup schedule, which pushes the backup service's image too; the
    // schedule is then left out of the code change's deploy, and the service joins later.
    let backup_host = SftpHost::start().unwrap_or_else(|e| panic!("the SFTP backup host did not start: {e}"));
    super::backup::configure(project, &backup_host);
    // Not tighter: a snapshot every few seconds would load the machine the loops measure.
    project.set_env(".env.prod", "BACKUP_SCHEDULE", "60s");
    release(project, &prefix, "1.2.4");
    project.set_env(".env.prod", "BACKUP_SCHEDULE", "");
    assert_rebuilt_on_the_dependency_layers(&first_image, &project.web_image());
    // Tasks queued and running while Swarm replaces the workers, start-first.
    let across = tasks::enqueue(site, ACROSS_TASKS, 0.1);
    deploy_under_load(project, &load, "a code change", &["deploy", "1.2.4"]);
    let runs = db.wait_for_batch(&across, ACROSS_TASKS, Duration::from_secs(300));
    tasks::assert_exactly_once(&across, ACROSS_TASKS, &runs);
    let by_new = runs.iter().filter(|r| r.version == "2").count();
    eprintln!("e2e: swarm: tasks across the code change: {} by the old code, {by_new} by the new", runs.len() - by_new);
    tasks::assert_one_scheduler_at_a_time(&db.beats(), tasks::HEARTBEAT_SECONDS as f64);
    assert!(super::get_ok(site, "/").text().contains("It works, v2"), "1.2.4 is not served");
    let v2_tasks = web_tasks(&stack);
    assert_eq!(v2_tasks.len(), 2, "{v2_tasks:?}");

    // The backup service joins the running release: with .env.prod scheduling it, the deploy
    // of the same version adds only the service (its first snapshot then does not share the
    // cores with a rollout).
    project.set_env(".env.prod", "BACKUP_SCHEDULE", "60s");
    deploy_under_load(project, &load, "the backup service", &["deploy", "1.2.4"]);
    assert_eq!(web_tasks(&stack), v2_tasks, "adding the backup service replaced web tasks");
    backs_up_on_schedule(project, &stack, "1.2.4");
    // Without the schedule the next deploy removes the service (and no later release builds
    // its image, nor do its snapshots load the machine the loop measures).
    project.set_env(".env.prod", "BACKUP_SCHEDULE", "");

    // A version whose healthcheck fails (its /healthz answers 503 while gunicorn runs):
    // Swarm rolls back by itself.
    let health = "docker/stack_settings/health.py";
    let good = fs::read_to_string(project.path(health)).unwrap();
    project.edit(health, "healthy = database_ok()", "healthy = False  # this release is broken");
    release(project, &prefix, "1.2.5");
    let phase = load.mark();
    let started = Instant::now();
    let failed = project.xtask(&["deploy", "1.2.5"]);
    timing("swarm: a failing version rolled back by Swarm", started.elapsed());
    let err = text(&failed.stderr);
    assert!(!failed.status.success(), "a failing version was deployed:\n{err}");
    assert!(err.contains("release 1.2.5 was not deployed: Swarm rolled back to 1.2.4"), "{err}");
    assert!(err.contains(&format!("task {stack}_web.")), "the failed task is not named:\n{err}");
    assert!(err.contains("its last health check: unhealthy"), "the task's health is not shown:\n{err}");
    assert!(err.contains("--- its last 100 log lines"), "the task's logs are not shown:\n{err}");
    load.assert_no_failure_since(phase, "the failing version");
    assert!(super::get_ok(site, "/").text().contains("It works, v2"), "1.2.4 stopped serving");
    fs::write(project.path(health), good).unwrap();
    let backup = docker(&["service", "inspect", &format!("{stack}_backup")]);
    assert!(!backup.status.success(), "the backup service outlived its schedule");

    // A failing migration stops the deploy before any web task is replaced.
    let migration = "project-template/core/migrations/0003_broken.py";
    fs::write(project.path(migration), super::redeploy::BROKEN_MIGRATION).unwrap();
    release(project, &prefix, "1.2.6");
    // Taken now: Swarm's own rollback of 1.2.5 may have replaced a 1.2.4 task with another.
    let serving = web_tasks(&stack);
    let phase = load.mark();
    let failed = project.xtask(&["deploy", "1.2.6"]);
    let err = text(&failed.stderr);
    assert!(!failed.status.success(), "a failing migration was deployed:\n{err}");
    assert!(
        err.contains("the migration job failed, so nothing was updated") && err.contains("this migration fails"),
        "{err}"
    );
    assert_eq!(web_tasks(&stack), serving, "web tasks were replaced after a failed migration");
    load.assert_no_failure_since(phase, "the failing migration");
    fs::remove_file(project.path(migration)).unwrap();

    // Back to the version before 1.2.4.
    deploy_under_load(project, &load, "--rollback", &["deploy", "--rollback"]);
    assert!(super::get_ok(site, "/").text().contains("<h1>It works</h1>"), "the rollback does not serve {first}");

    // A web task killed: Swarm replaces it while the other one serves (on a second node
    // when there is one, see joins_a_second_node).
    match &second {
        Some(node) => joins_a_second_node(node, &stack, site, &load),
        None => {
            let before = web_tasks(&stack);
            let phase = load.mark();
            let started = Instant::now();
            kill_a_web_task(&stack);
            let replaced = wait_for(Duration::from_secs(120), Duration::from_millis(500), || {
                let now = web_tasks(&stack);
                (now.len() == 2 && now != before).then_some(now)
            });
            assert!(replaced.is_some(), "the killed web task was not replaced within 120s");
            timing("swarm: a killed web task replaced", started.elapsed());
            load.assert_no_failure_since(phase, "a killed web task");
        }
    }

    let status = text(&project.ok(&["deploy", "status"]).stdout);
    assert!(status.contains(&format!("serving: {first} (previous: 1.2.4)")), "{status}");
    assert!(status.contains(&format!("{stack}_web")) && status.contains(" 2/2 "), "{status}");
    // The version that failed its healthcheck and the killed task are in web's history.
    let failed_web = format!("{stack}_web: ");
    let line = status
        .lines()
        .find(|l| l.starts_with(&failed_web))
        .unwrap_or_else(|| panic!("no failed web task shown:\n{status}"));
    assert!(line.contains("failed task(s) in its history, one of them: task "), "{line}");
    let outcomes = load.stop();
    eprintln!("e2e: swarm: {} requests by {CLIENTS} clients, {} failed", outcomes.len(), failures(&outcomes).len());
}

/// A worker joins: the edge runs on it too (global) and serves the site on its own address;
/// a web task killed on the first node comes back on the second, and the loop (through the
/// first node's edge, to web tasks on both nodes over the overlay network) sees no failure.
fn joins_a_second_node(node: &Node, stack: &str, site: Site, load: &Load) {
    let started = Instant::now();
    node.load(&value(&suite().images, "NGINX_IMAGE"));
    let token = docker_ok(&["swarm", "join-token", "-q", "worker"]);
    node.join(&token, &format!("{}:2377", node::HOST_ADDRESS));
    let edges = wait_for(Duration::from_secs(120), Duration::from_millis(500), || {
        let nodes = running_on(&format!("{stack}_edge"));
        nodes.contains(&node::HOSTNAME.to_owned()).then_some(nodes)
    });
    assert!(edges.is_some(), "no edge task runs on the second node: {:?}", running_on(&format!("{stack}_edge")));
    timing("swarm: second node joined, its edge running", started.elapsed());
    let page = curl_page(site, node::NODE_ADDRESS);
    assert!(page.contains("<h1>It works</h1>"), "the second node's edge does not serve the site:\n{page}");

    let phase = load.mark();
    let started = Instant::now();
    kill_a_web_task(stack);
    let spread = wait_for(Duration::from_secs(180), Duration::from_millis(500), || {
        let nodes = running_on(&format!("{stack}_web"));
        (nodes.len() == 2 && nodes.contains(&node::HOSTNAME.to_owned())).then_some(nodes)
    });
    assert!(spread.is_some(), "web did not come back on the second node: {:?}", running_on(&format!("{stack}_web")));
    timing("swarm: a killed web task back on the second node", started.elapsed());
    for _ in 0..20 {
        assert!(curl_page(site, node::NODE_ADDRESS).contains("<h1>It works</h1>"), "the second node's edge failed");
    }
    load.assert_no_failure_since(phase, "a web task moved to the second node");
}

/// `docker kill` of a web container on this node.
fn kill_a_web_task(stack: &str) {
    let containers = docker_ok(&["ps", "-q", "--filter", &format!("label=com.docker.swarm.service.name={stack}_web")]);
    docker_ok(&["kill", containers.lines().next().expect("a web container on this node")]);
}

/// GET / over HTTPS from the edge at `address` (curl, trusting the project's CA): the body.
fn curl_page(site: Site, address: &str) -> String {
    let ca = site.ca.expect("an HTTPS site");
    let out = std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "15", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("localhost:{}:{address}", site.port), &site.url("/")])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "GET / through {address}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The layers of `before` up to the code are those of `after`: a code-only change rebuilt
/// the code and what depends on it, not the dependencies.
fn assert_rebuilt_on_the_dependency_layers(before: &str, after: &str) {
    let layers = |image: &str| -> Vec<String> {
        let json = docker_ok(&["image", "inspect", "--format", "{{json .RootFS.Layers}}", image]);
        serde_json::from_str(&json).unwrap()
    };
    let (before, after) = (layers(before), layers(after));
    assert_eq!(before.len(), after.len(), "the layer count changed");
    let first_change = before.iter().zip(&after).position(|(b, a)| b != a);
    // The last three layers are the code (COPY project-template/), its writable directories
    // and its collected static files.
    assert_eq!(first_change, Some(before.len() - 3), "layers before the code were rebuilt:\n{before:#?}\n{after:#?}");
    eprintln!(
        "e2e: swarm: the code change's image shares {} of its {} layers with the first",
        before.len() - 3,
        after.len()
    );
}

/// The reference manifest.json pins for the latest release's `kind` image.
fn pinned(project: &Project, kind: &str) -> String {
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(project.path("dist/manifest.json")).unwrap()).unwrap();
    manifest["images"][kind].as_str().unwrap().to_owned()
}

/// `cargo xtask ARGS`, which must succeed, timed to converged, with no failed request meanwhile.
fn deploy_under_load(project: &Project, load: &Load, what: &str, args: &[&str]) {
    let phase = load.mark();
    let started = Instant::now();
    let out = project.ok(args);
    timing(&format!("swarm: deploy of {what} to converged"), started.elapsed());
    // Where the time went: the deploy's own figures, per phase.
    for line in text(&out.stdout).lines().filter(|l| l.contains(": converged, ") || l.contains(": completed, ")) {
        eprintln!("e2e: swarm:   {line}");
    }
    load.assert_no_failure_since(phase, &format!("the Swarm deploy of {what}"));
}

/// Commits the scratch copy's changes and releases them as `version`, pushed.
fn release(project: &Project, prefix: &str, version: &str) {
    git(&project.root(), &["add", "-A"]);
    git(&project.root(), &["commit", "-q", "-m", &format!("Version {version}")]);
    // The backup image too, pushed once BACKUP_SCHEDULE is set.
    for kind in push::KINDS.iter().chain(&["backup"]) {
        project.remove_later(&format!("{prefix}/{kind}:{version}"));
    }
    let started = Instant::now();
    let out = project.xtask_env(&["release", "--push", "--version", version], &[("REGISTRY", prefix)]);
    assert!(out.status.success(), "release --push {version} failed:\n{}{}", text(&out.stdout), text(&out.stderr));
    timing(&format!("swarm: release --push {version}"), started.elapsed());
}

/// The backup service, deployed with `version`: a scheduled snapshot of the Swarm's database
/// and media stored off-host, tagged with the release, healthy, drilled by `backup verify`;
/// no secret's value in its spec.
fn backs_up_on_schedule(project: &Project, stack: &str, version: &str) {
    let service = format!("{stack}_backup");
    let logs = || {
        let out = docker(&["service", "logs", "--raw", &service]);
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    };
    let started = Instant::now();
    let stored = wait_for(Duration::from_secs(180), Duration::from_secs(1), || {
        logs().contains(" bytes added in ").then_some(())
    });
    assert!(stored.is_some(), "the backup service stored no snapshot:\n{}", logs());
    let listed = super::backup::list(project);
    eprintln!("e2e: swarm: the backup service's snapshots:\n{listed}");
    assert!(listed.lines().any(|l| l.contains(&format!("release {version}")) && l.contains("scheduled")), "{listed}");
    let healthy = wait_for(Duration::from_secs(60), Duration::from_secs(1), || {
        let filter = format!("label=com.docker.swarm.service.name={service}");
        docker_ok(&["ps", "--filter", &filter, "--format", "{{.Status}}"]).contains("(healthy)").then_some(())
    });
    assert!(healthy.is_some(), "the backup service is not healthy:\n{}", logs());
    let verified = text(&project.ok(&["backup", "verify"]).stdout);
    assert!(verified.contains("verified") && verified.contains(&format!(", release {version}")), "{verified}");
    timing("swarm: backup service: a snapshot stored, listed and drilled", started.elapsed());
    let spec = docker_ok(&["service", "inspect", &service]);
    for secret in ["BACKUP_PASSWORD", "POSTGRES_PASSWORD"] {
        assert!(
            !spec.contains(&project.env_value(".env.prod", secret)),
            "{secret}'s value is in the backup service's spec"
        );
    }
    assert!(spec.contains("RESTIC_PASSWORD_FILE=/run/secrets/RESTIC_PASSWORD"), "{spec}");
}

/// A field (`{{.ID}}`, `{{.Node}}`) of each running task of `service`, sorted.
fn running(service: &str, field: &str) -> Vec<String> {
    let format = format!("{field} {{{{.CurrentState}}}}");
    let ps = docker_ok(&["service", "ps", "--filter", "desired-state=running", "--format", &format, service]);
    let mut values: Vec<String> =
        ps.lines().filter(|l| l.contains(" Running")).map(|l| l.split(' ').next().unwrap().to_owned()).collect();
    values.sort();
    values
}

/// Tasks of 0.1 s enqueued just before the code change is deployed: 20 s of work for the two
/// workers' four processes, still running when Swarm replaces the workers.
const ACROSS_TASKS: usize = 800;

/// The template's description, with two worker replicas: the scratch copy has no Cargo.toml,
/// so this one is the repository's processes and all, and `deploy` reads it.
fn describe_two_workers(project: &Project) {
    let manifest = fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let at = manifest.find("[workspace.metadata.django]").expect("the repository describes its project");
    let worker = "[workspace.metadata.django.processes.worker]\n";
    assert!(manifest[at..].contains(worker), "the template's worker is not described");
    let described = manifest[at..].replacen(worker, &format!("{worker}replicas = 2\n"), 1);
    fs::write(project.path("Cargo.toml"), format!("[workspace]\n\n{described}")).unwrap();
}

/// The workers and the scheduler run as services of the release's image: tasks enqueued from
/// the page run exactly once, and the one scheduler ticks. Returns the database's rows.
fn tasks_run_once_on_the_swarm<'p>(project: &'p Project, stack: &str, site: Site) -> Db<'p> {
    for (process, replicas) in [("worker", 2), ("beat", 1)] {
        let tasks = running(&format!("{stack}_{process}"), "{{.ID}}");
        assert_eq!(tasks.len(), replicas, "{process} does not run {replicas} task(s): {tasks:?}");
    }
    let filter = format!("label=com.docker.swarm.service.name={stack}-db_db");
    let db = Db { project, container: docker_ok(&["ps", "-q", "--filter", &filter]), env_file: ".env.prod" };
    let batch = tasks::enqueue(site, 50, 0.0);
    let runs = db.wait_for_batch(&batch, 50, Duration::from_secs(180));
    tasks::assert_exactly_once(&batch, 50, &runs);
    let ticked = wait_for(Duration::from_secs(60), Duration::from_secs(1), || (db.beats().len() >= 3).then_some(()));
    assert!(ticked.is_some(), "the scheduler did not tick on the swarm: {:?}", db.beats());
    tasks::assert_one_scheduler_at_a_time(&db.beats(), tasks::HEARTBEAT_SECONDS as f64);
    db
}

/// The ids of web's running tasks, sorted.
fn web_tasks(stack: &str) -> Vec<String> {
    running(&format!("{stack}_web"), "{{.ID}}")
}

/// The nodes (host names) of a service's running tasks, sorted.
fn running_on(service: &str) -> Vec<String> {
    running(service, "{{.Node}}")
}

/// web and static run the images manifest.json pinned for the release.
fn assert_images_are_the_manifests(project: &Project, stack: &str) {
    for kind in ["web", "static"] {
        let spec = docker_ok(&[
            "service",
            "inspect",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
            &format!("{stack}_{kind}"),
        ]);
        assert_eq!(spec, pinned(project, kind), "{kind} runs another image");
    }
}

/// No service spec holds a secret's value: web reads SECRET_KEY and POSTGRES_PASSWORD from files.
fn assert_no_secret_in_a_spec(project: &Project, stack: &str) {
    let mut specs = String::new();
    for service in
        ["web", "static", "edge"].map(|s| format!("{stack}_{s}")).into_iter().chain([format!("{stack}-db_db")])
    {
        specs += &docker_ok(&["service", "inspect", &service]);
    }
    let key = fs::read_to_string(project.path("certs/site-key.pem")).unwrap();
    let key_line = key.lines().nth(1).expect("a PEM body").to_owned();
    for (what, value) in [
        ("SECRET_KEY", project.env_value(".env.prod", "SECRET_KEY")),
        ("POSTGRES_PASSWORD", project.env_value(".env.prod", "POSTGRES_PASSWORD")),
        ("the TLS key", key_line),
    ] {
        assert!(!specs.contains(&value), "{what}'s value is in a service spec");
    }
    assert!(specs.contains("SECRET_KEY_FILE=/run/secrets/SECRET_KEY"), "web does not read its key from a secret");
}
