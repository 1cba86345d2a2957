//! Zero-downtime redeploys on one host, on one running production stack shared by every
//! case: a code-only change, a version whose web container never becomes healthy, a
//! failing migration and a rollback, each under a bounded loop of concurrent clients over
//! HTTPS, and a slow request in flight while the old container is told to stop. The
//! template's worker and scheduler go through the same redeploys: a batch of tasks
//! enqueued before the code change all run exactly once across it, tasks enqueued after
//! it run the new code, two schedulers never tick at once, and a task whose worker is
//! killed mid-run is delivered again.

use std::fs;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::harness::{self, docker, docker_ok, text, timing, wait_for, Project};
use super::http::{self, Site};
use super::load::{failures, Load, CLIENTS};
use super::tasks::{self, Db};

/// How long the slow view takes: longer than the xtask's wait for nginx's old workers
/// (10 s) after the health wait, so the old container is told to stop while the request is
/// still at gunicorn.
const SLOW_SECS: u64 = 25;

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn redeploys_switch_without_a_failed_request_and_roll_back() {
    let _load = harness::under_load();
    let project = Project::new("redeploy");
    project.remove_later(&format!("{}:previous", project.web_image()));
    add_slow_view(&project);
    let site = project.init_prod();
    project.timed("cold start to healthy", &["prod", "--with-db"]);
    let db = Db { project: &project, container: project.container("prod", "db"), env_file: ".env.prod" };
    no_op_throughput(&project, &db, site);
    nothing_changed_replaces_nothing(&project);
    let home = super::get_ok(site, "/").text();
    let css = http::between(&home, "<link rel=\"stylesheet\" href=\"", "\"").expect("a stylesheet link").to_owned();
    let load = Load::start(site, vec!["/".into(), css.clone()]);

    // A code-only change, with a slow request sent to the old version once the new one is starting.
    project.edit("project-template/core/templates/core/home.html", "<h1>It works</h1>", "<h1>It works, v2</h1>");
    project.edit("project-template/core/tasks.py", "VERSION = \"1\"", "VERSION = \"2\"");
    let old = web_containers(&project);
    let old_workers = hostnames(&project, "worker");
    let slow = SlowRequest::when_new_web_starts(&project, site, &old);
    // Tasks still queued and running while the redeploy replaces the worker.
    let across = tasks::enqueue(site, ACROSS_TASKS, 0.1);
    let redeploy_started = SystemTime::now();
    let phase = load.mark();
    project.timed("redeploy of a code-only change under load", &["prod", "--with-db"]);
    load.assert_no_failure_since(phase, "the code-only redeploy");
    assert!(super::get_ok(site, "/").text().contains("It works, v2"), "the new version is not served");
    assert!(super::get_ok(site, &css).status == 200, "the previous version's stylesheet is gone");
    let new = web_containers(&project);
    assert!(new.iter().all(|c| !old.contains(c)) && new.len() == 1, "old {old:?}, now {new:?}");
    slow.assert_completed_across_the_stop();
    tasks_survive_the_redeploy(&project, &db, site, &across, &old_workers);
    let started = redeploy_started.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let consuming = db.first_run_of("2").expect("the new code ran a task") - started;
    eprintln!("e2e: tasks: from `prod` to the new worker's first task done: {consuming:.1}s");
    killed_worker_task_is_delivered_again(&project, &db, site);

    // A version whose web container never becomes healthy is never switched to.
    let wsgi = "project-template/config/wsgi.py";
    let good_wsgi = fs::read_to_string(project.path(wsgi)).unwrap();
    fs::write(project.path(wsgi), format!("{good_wsgi}\nraise RuntimeError(\"this release is broken\")\n")).unwrap();
    let phase = load.mark();
    let failed = project.xtask(&["prod", "--with-db", "--wait-timeout", "20"]);
    let err = text(&failed.stderr);
    assert!(!failed.status.success(), "an unhealthy version was deployed:\n{err}");
    let prefix = format!("{}-web-", project.compose_project("prod"));
    assert!(err.contains("not healthy after 20s") && err.contains(&prefix), "{err}");
    assert!(err.contains("this release is broken"), "the container's logs were not shown:\n{err}");
    assert!(err.contains(&format!("{} still serve(s)", new[0])), "{err}");
    assert_eq!(web_containers(&project), new, "the unhealthy container was not removed");
    let workers = hostnames(&project, "worker");
    assert!(super::get_ok(site, "/").text().contains("It works, v2"), "the old version stopped serving");
    load.assert_no_failure_since(phase, "the unhealthy version");
    assert_eq!(hostnames(&project, "worker"), workers, "the old worker was not kept, alone");
    fs::write(project.path(wsgi), good_wsgi).unwrap();

    // A failing migration stops the deploy before any new container starts.
    let migration = project.path("project-template/core/migrations/0003_broken.py");
    fs::write(&migration, BROKEN_MIGRATION).unwrap();
    let phase = load.mark();
    let failed = project.xtask(&["prod", "--with-db"]);
    let err = text(&failed.stderr);
    assert!(!failed.status.success(), "a failing migration was deployed:\n{err}");
    assert!(err.contains("this migration fails") && err.contains("manage.py migrate --noinput"), "{err}");
    assert_eq!(web_containers(&project), new, "a web container started after a failed migration");
    assert!(super::get_ok(site, "/").text().contains("It works, v2"), "the old version stopped serving");
    load.assert_no_failure_since(phase, "the failing migration");
    fs::remove_file(&migration).unwrap();

    // Back to the version before the last redeploy, the same way.
    let phase = load.mark();
    project.timed("rollback under load", &["prod", "--rollback"]);
    load.assert_no_failure_since(phase, "the rollback");
    let page = super::get_ok(site, "/").text();
    assert!(page.contains("<h1>It works</h1>"), "the rollback does not serve the previous version:\n{page}");
    let outcomes = load.stop();
    eprintln!("e2e: redeploy: {} requests by {CLIENTS} clients, {} failed", outcomes.len(), failures(&outcomes).len());
}

/// Tasks of 0.1 s enqueued just before the code-only redeploy: with the template's two
/// worker processes, about half a minute of work, so the old worker is still busy when the
/// redeploy replaces it.
const ACROSS_TASKS: usize = 600;

/// Every task enqueued before the redeploy ran exactly once, by the old code or the new;
/// tasks enqueued after it run the new code on the new worker; the old scheduler stopped
/// before the new one started.
fn tasks_survive_the_redeploy(project: &Project, db: &Db, site: Site, across: &str, old_workers: &[String]) {
    let runs = db.wait_for_batch(across, ACROSS_TASKS, Duration::from_secs(300));
    tasks::assert_exactly_once(across, ACROSS_TASKS, &runs);
    let by_new = runs.iter().filter(|r| r.version == "2").count();
    eprintln!("e2e: tasks: across the redeploy: {} by the old code, {by_new} by the new", runs.len() - by_new);
    let after = tasks::enqueue(site, 20, 0.0);
    let runs = db.wait_for_batch(&after, 20, Duration::from_secs(120));
    tasks::assert_exactly_once(&after, 20, &runs);
    let stale: Vec<&tasks::Run> = runs.iter().filter(|r| r.version != "2" || old_workers.contains(&r.worker)).collect();
    assert!(stale.is_empty(), "tasks enqueued after the redeploy ran the old code or on the old worker: {stale:?}");
    let beats = db.beats();
    tasks::assert_one_scheduler_at_a_time(&beats, tasks::HEARTBEAT_SECONDS as f64);
    let schedulers: std::collections::BTreeSet<&str> = beats.iter().map(|b| b.sent_by.as_str()).collect();
    assert!(schedulers.len() >= 2, "the scheduler was not replaced: {schedulers:?}");
    assert!(beats.iter().any(|b| b.version == "2"), "no heartbeat ran on the new code: {beats:?}");
    let worker = project.container("prod", "worker");
    eprintln!(
        "e2e: tasks: worker memory {}, {} heartbeats by {} schedulers",
        tasks::memory(&worker),
        beats.len(),
        schedulers.len()
    );
}

/// A worker that dies mid-task (killed by the kernel, as when out of memory) is restarted,
/// and the tasks it held are delivered again once their visibility timeout ends: each runs
/// exactly once.
fn killed_worker_task_is_delivered_again(project: &Project, db: &Db, site: Site) {
    let worker = project.container("prod", "worker");
    let restarts = |id: &str| docker_ok(&["inspect", "--format", "{{.RestartCount}}", id]);
    let before = restarts(&worker);
    let batch = tasks::enqueue(site, 2, 8.0);
    thread::sleep(Duration::from_secs(3));
    assert!(db.runs(&batch).is_empty(), "the slow tasks finished before the worker was killed");
    let pid = docker_ok(&["inspect", "--format", "{{.State.Pid}}", &worker]);
    let killed = std::process::Command::new("kill").args(["-9", &pid]).status().expect("kill runs");
    assert!(killed.success(), "cannot kill the worker's process {pid}");
    let started = Instant::now();
    let runs = db.wait_for_batch(&batch, 2, Duration::from_secs(tasks::VISIBILITY_TIMEOUT * 10));
    tasks::assert_exactly_once(&batch, 2, &runs);
    timing("tasks: killed worker's tasks delivered again and run", started.elapsed());
    assert_ne!(restarts(&worker), before, "the killed worker was not restarted");
}

/// Tasks that do nothing, enqueued at once: how many the worker runs per second (printed;
/// each writes a row, so this is the queue and the database, not the task, at work).
fn no_op_throughput(project: &Project, db: &Db, site: Site) {
    let started = Instant::now();
    let batch = tasks::enqueue(site, 300, 0.0);
    let runs = db.wait_for_batch(&batch, 300, Duration::from_secs(180));
    let elapsed = started.elapsed().as_secs_f64() - 2.0;
    tasks::assert_exactly_once(&batch, 300, &runs);
    let worker = project.container("prod", "worker");
    eprintln!(
        "e2e: tasks: 300 no-op tasks in {elapsed:.1}s, {:.0} tasks/s; worker memory {}",
        300.0 / elapsed,
        tasks::memory(&worker)
    );
}

/// The host names of the running containers of a process (what a task records as its worker).
fn hostnames(project: &Project, service: &str) -> Vec<String> {
    let mut names: Vec<String> = project
        .containers("prod", Some(service))
        .iter()
        .filter(|id| docker_ok(&["inspect", "--format", "{{.State.Running}}", id]) == "true")
        .map(|id| docker_ok(&["inspect", "--format", "{{.Config.Hostname}}", id]))
        .collect();
    names.sort();
    names
}

pub const BROKEN_MIGRATION: &str = "from django.db import migrations\n\n\ndef fail(apps, schema_editor):\n    raise RuntimeError(\"this migration fails\")\n\n\nclass Migration(migrations.Migration):\n    dependencies = [(\"core\", \"0002_tasks\")]\n    operations = [migrations.RunPython(fail)]\n";

/// A view that answers after SLOW_SECS (`/slow/`), in this scratch copy only.
fn add_slow_view(project: &Project) {
    let views = project.path("project-template/core/views.py");
    let code = fs::read_to_string(&views).unwrap();
    let slow = format!(
        "\n\ndef slow(request):\n    import time\n\n    from django.http import HttpResponse\n\n    time.sleep({SLOW_SECS})\n    return HttpResponse(\"slow done\")\n"
    );
    fs::write(&views, code + &slow).unwrap();
    let urls = "project-template/core/urls.py";
    project.edit(
        urls,
        "    path(\"uploads/\", views.uploads, name=\"uploads\"),",
        "    path(\"uploads/\", views.uploads, name=\"uploads\"),\n    path(\"slow/\", views.slow),",
    );
}

/// Names of the running web containers of the production stack.
/// `prod` again with nothing changed says so and replaces no container; `--force` replaces
/// web all the same.
fn nothing_changed_replaces_nothing(project: &Project) {
    let before = project.containers("prod", None);
    let out = project.timed("prod with nothing changed", &["prod", "--with-db"]);
    let said = text(&out.stdout);
    assert!(said.contains("nothing to deploy: the stack already runs image"), "{said}");
    assert_eq!(project.containers("prod", None), before, "a container was replaced or added");
    let web = web_containers(project);
    project.timed("prod --force with nothing changed", &["prod", "--with-db", "--force"]);
    let now = web_containers(project);
    assert!(now.iter().all(|c| !web.contains(c)) && now.len() == web.len(), "--force: before {web:?}, now {now:?}");
}

fn web_containers(project: &Project) -> Vec<String> {
    let mut names: Vec<String> = project
        .containers("prod", Some("web"))
        .iter()
        .filter(|id| docker_ok(&["inspect", "--format", "{{.State.Running}}", id]) == "true")
        .map(|id| docker_ok(&["inspect", "--format", "{{.Name}}", id]).trim_start_matches('/').to_owned())
        .collect();
    names.sort();
    names
}

/// GET /slow/ with curl, allowing it longer than the suite's client does; its status, or 0.
fn slow_get(site: Site) -> u16 {
    let ca = site.ca.expect("an HTTPS site");
    let resolve = format!("localhost:{}:127.0.0.1", site.port);
    let out = std::process::Command::new("curl")
        .args(["--silent", "--max-time", "90", "--output", "/dev/null", "--write-out", "%{http_code}"])
        .arg("--cacert")
        .arg(ca)
        .args(["--resolve", &resolve, &site.url("/slow/")])
        .output()
        .expect("curl runs");
    text(&out.stdout).trim().parse().unwrap_or(0)
}

/// GET /slow/ sent to the old version while the new one starts, and when the old container stopped.
struct SlowRequest {
    request: JoinHandle<(Instant, Instant, u16)>,
    stopped: JoinHandle<Option<Instant>>,
}

impl SlowRequest {
    fn when_new_web_starts(project: &Project, site: Site, old: &[String]) -> SlowRequest {
        let (web_prefix, old) = (format!("{}-web-", project.compose_project("prod")), old.to_vec());
        let old_name = old[0].clone();
        let request = thread::spawn(move || {
            let more = || {
                let names = docker_ok(&["ps", "--format", "{{.Names}}"]);
                (names.lines().filter(|n| n.starts_with(&web_prefix)).count() > old.len()).then_some(())
            };
            wait_for(Duration::from_secs(240), Duration::from_millis(200), more).expect("no new web container started");
            let sent = Instant::now();
            let status = slow_get(site);
            (sent, Instant::now(), status)
        });
        let stopped = thread::spawn(move || {
            let running = || docker(&["inspect", "--format", "{{.State.Running}}", &old_name]).stdout == b"true\n";
            wait_for(Duration::from_secs(300), Duration::from_millis(100), || (!running()).then(Instant::now))
        });
        SlowRequest { request, stopped }
    }

    /// The slow request was sent before the old container stopped and completed with 200.
    fn assert_completed_across_the_stop(self) {
        let (sent, done, status) = self.request.join().unwrap();
        let stopped = self.stopped.join().unwrap().expect("the old web container never stopped");
        timing("redeploy: slow request", done - sent);
        assert_eq!(status, 200, "the slow request in flight during the switch failed");
        assert!(sent < stopped, "the slow request was sent after the old container stopped");
        assert!(done.duration_since(sent) >= Duration::from_secs(SLOW_SECS), "the slow request was not slow");
    }
}
