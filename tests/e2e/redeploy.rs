//! Zero-downtime redeploys on one host, on one running production stack shared by every
//! case: a code-only change, a version whose web container never becomes healthy, a
//! failing migration and a rollback, each under a bounded loop of concurrent clients over
//! HTTPS, and a slow request in flight while the old container is told to stop.

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::harness::{docker, docker_ok, text, timing, wait_for, Project};
use crate::http::{self, Site};

/// Clients of the request loop, each sending one request at a time.
const CLIENTS: usize = 4;
/// Bounds of the loop: requests per client, and time.
const MAX_REQUESTS: usize = 4000;
const MAX_LOOP: Duration = Duration::from_secs(420);
/// How long the slow view takes: longer than the xtask's wait for nginx's old workers
/// (10 s) after the health wait, so the old container is told to stop while the request is
/// still at gunicorn.
const SLOW_SECS: u64 = 25;

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn redeploys_switch_without_a_failed_request_and_roll_back() {
    let project = Project::new("redeploy");
    project.remove_later(&format!("{}:previous", project.web_image()));
    add_slow_view(&project);
    let site = project.init_prod();
    project.timed("cold start to healthy", &["prod", "--with-db"]);
    let home = super::get_ok(site, "/").text();
    let css = http::between(&home, "<link rel=\"stylesheet\" href=\"", "\"").expect("a stylesheet link").to_owned();
    let load = Load::start(site, vec!["/".into(), css.clone()]);

    // A code-only change, with a slow request sent to the old version once the new one is starting.
    edit(&project, "project-template/core/templates/core/home.html", "<h1>It works</h1>", "<h1>It works, v2</h1>");
    let old = web_containers(&project);
    let slow = SlowRequest::when_new_web_starts(&project, site, &old);
    let phase = load.mark();
    project.timed("redeploy of a code-only change under load", &["prod", "--with-db"]);
    load.assert_no_failure_since(phase, "the code-only redeploy");
    assert!(super::get_ok(site, "/").text().contains("It works, v2"), "the new version is not served");
    assert!(super::get_ok(site, &css).status == 200, "the previous version's stylesheet is gone");
    let new = web_containers(&project);
    assert!(new.iter().all(|c| !old.contains(c)) && new.len() == 1, "old {old:?}, now {new:?}");
    slow.assert_completed_across_the_stop();

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
    assert!(super::get_ok(site, "/").text().contains("It works, v2"), "the old version stopped serving");
    load.assert_no_failure_since(phase, "the unhealthy version");
    fs::write(project.path(wsgi), good_wsgi).unwrap();

    // A failing migration stops the deploy before any new container starts.
    let migration = project.path("project-template/core/migrations/0002_broken.py");
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

const BROKEN_MIGRATION: &str = "from django.db import migrations\n\n\ndef fail(apps, schema_editor):\n    raise RuntimeError(\"this migration fails\")\n\n\nclass Migration(migrations.Migration):\n    dependencies = [(\"core\", \"0001_initial\")]\n    operations = [migrations.RunPython(fail)]\n";

/// A view that answers after SLOW_SECS (`/slow/`), in this scratch copy only.
fn add_slow_view(project: &Project) {
    let views = project.path("project-template/core/views.py");
    let code = fs::read_to_string(&views).unwrap();
    let slow = format!(
        "\n\ndef slow(request):\n    import time\n\n    from django.http import HttpResponse\n\n    time.sleep({SLOW_SECS})\n    return HttpResponse(\"slow done\")\n"
    );
    fs::write(&views, code + &slow).unwrap();
    let urls = "project-template/core/urls.py";
    edit(
        project,
        urls,
        "    path(\"uploads/\", views.uploads, name=\"uploads\"),",
        "    path(\"uploads/\", views.uploads, name=\"uploads\"),\n    path(\"slow/\", views.slow),",
    );
}

fn edit(project: &Project, file: &str, old: &str, new: &str) {
    let path = project.path(file);
    let content = fs::read_to_string(&path).unwrap();
    assert!(content.contains(old), "{file} changed: update this test");
    fs::write(&path, content.replace(old, new)).unwrap();
}

/// Names of the running web containers of the production stack.
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

/// One answer of the loop.
struct Outcome {
    at: Instant,
    latency: Duration,
    /// None when it was a 200, else what went wrong.
    failure: Option<String>,
}

fn failures(outcomes: &[Outcome]) -> Vec<&String> {
    outcomes.iter().filter_map(|o| o.failure.as_ref()).collect()
}

/// CLIENTS threads requesting `paths` in turn until stopped (or the bounds are reached).
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<std::sync::Mutex<Vec<Outcome>>>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(site: Site, paths: Vec<String>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let started = Instant::now();
        let clients = (0..CLIENTS)
            .map(|client| {
                let (stop, seen, paths) = (stop.clone(), seen.clone(), paths.clone());
                thread::spawn(move || {
                    for n in 0..MAX_REQUESTS {
                        if stop.load(Ordering::SeqCst) || started.elapsed() > MAX_LOOP {
                            break;
                        }
                        let path = &paths[(client + n) % paths.len()];
                        let at = Instant::now();
                        let failure = match http::get(site, path) {
                            Ok(r) if r.status == 200 => None,
                            Ok(r) => Some(format!("GET {path}: {}", r.status)),
                            Err(e) => Some(format!("GET {path}: {e}")),
                        };
                        seen.lock().unwrap().push(Outcome { at, latency: at.elapsed(), failure });
                    }
                })
            })
            .collect();
        Load { stop, seen, clients }
    }

    fn mark(&self) -> Instant {
        Instant::now()
    }

    /// Every request sent since `phase` succeeded, and some were sent.
    fn assert_no_failure_since(&self, phase: Instant, what: &str) {
        let seen = self.seen.lock().unwrap();
        let since: Vec<&Outcome> = seen.iter().filter(|o| o.at >= phase).collect();
        let failed: Vec<&String> = since.iter().filter_map(|o| o.failure.as_ref()).collect();
        let longest = since.iter().map(|o| o.latency).max().unwrap_or_default();
        eprintln!("e2e: redeploy: {what}: {} requests, {} failed, slowest {longest:.1?}", since.len(), failed.len());
        assert!(since.len() >= CLIENTS, "the loop sent almost nothing during {what}");
        assert!(failed.is_empty(), "{} request(s) failed during {what}: {failed:#?}", failed.len());
    }

    fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            client.join().unwrap();
        }
        Arc::try_unwrap(self.seen).ok().unwrap().into_inner().unwrap()
    }
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
