//! Zero-downtime redeploys on one host, on one running production stack shared by every
//! case: a code-only change, a version whose web container never becomes healthy, a
//! failing migration and a rollback, each under a bounded loop of concurrent clients over
//! HTTPS, and a slow request in flight while the old container is told to stop.

use std::fs;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::harness::{docker, docker_ok, text, timing, wait_for, Project};
use crate::http::{self, Site};
use crate::load::{failures, Load, CLIENTS};

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
    project.edit("project-template/core/templates/core/home.html", "<h1>It works</h1>", "<h1>It works, v2</h1>");
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

pub const BROKEN_MIGRATION: &str = "from django.db import migrations\n\n\ndef fail(apps, schema_editor):\n    raise RuntimeError(\"this migration fails\")\n\n\nclass Migration(migrations.Migration):\n    dependencies = [(\"core\", \"0001_initial\")]\n    operations = [migrations.RunPython(fail)]\n";

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
