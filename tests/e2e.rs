//! End-to-end scenarios: the real xtask binary drives real Compose stacks on a Docker
//! engine, in a scratch copy of the project (see tests/e2e/harness.rs), and the answers are
//! checked from the host on 127.0.0.1 (the production stack over HTTPS, trusting the
//! project's local CA, or in the acme scenario the root of pebble, the ACME test CA).
//!
//! Ignored by plain `cargo test`. Run with
//! `cargo test -p xtask --test integration -- --ignored --nocapture --test-threads=1 e2e::`;
//! timings are printed to stderr as `e2e: <what>: <seconds>s`.
//!
//! Without a registry, tests/e2e/support/base-images.sh provides local stand-ins for the
//! base images and wheelhouse.sh serves the wheels; the xtask gets them through the
//! PYTHON_IMAGE, POSTGRES_IMAGE, NGINX_IMAGE, PIP_INDEX_URL and BUILD_NETWORK variables,
//! so the compose files and the Dockerfile are the ones users run.

mod acme;
mod adopt;
mod adopt_root;
mod backup;
mod browser;
mod chain;
mod failures;
mod harness;
mod http;
mod load;
mod netns;
mod node;
mod push;
mod redeploy;
mod scheduled_backup;
mod sftp;
mod swarm;
mod tasks;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};
use std::thread::sleep;
use std::time::{Duration, Instant};

use harness::{docker, docker_ok, text, timing, wait_for, Project};
use http::{Response, Site};

use crate::support::skip::skip;

/// The uid the web image runs as.
const APP_UID: &str = "10001";

// --- scenario 1: dev -------------------------------------------------------------------

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn dev_serves_the_app_and_picks_up_template_edits_without_a_rebuild() {
    let project = Project::new("dev");
    let port = Site::plain(project.init_dev());
    start_dev(&project, port, Duration::from_secs(180));
    let health = http::get(port, "/healthz").unwrap();
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"), "{health}");

    let web = project.container("dev", "web");
    let state = |id: &str| docker_ok(&["inspect", "--format", "{{.Image}} {{.State.StartedAt}} {{.RestartCount}}", id]);
    let before = state(&web);
    let template = project.path("project-template/core/templates/core/home.html");
    let html = fs::read_to_string(&template).unwrap();
    fs::write(&template, html.replace("<h1>It works</h1>", "<h1>It works, edited on the host</h1>")).unwrap();
    let edited = Instant::now();
    let page = wait_for(Duration::from_secs(30), Duration::from_millis(250), || {
        http::get(port, "/").ok().filter(|r| r.status == 200 && r.text().contains("edited on the host"))
    });
    assert!(page.is_some(), "the edited template was not served within 30s");
    timing("dev: template edit to new page", edited.elapsed());
    assert_eq!(state(&web), before, "the web container was rebuilt or restarted for a template edit");
    assert_eq!(project.containers("dev", Some("web")), [web], "a new web container was created");
    worker_runs_tasks_and_reloads_on_a_code_edit(&project, port);

    project.ok(&["down", "--volumes"]);
    assert_stack_gone(&project, "dev");
}

/// Tasks enqueued from the page run on the dev worker, and an edit of the tasks' code on the
/// host is picked up by the worker without a rebuild: Django's autoreloader restarts it.
fn worker_runs_tasks_and_reloads_on_a_code_edit(project: &Project, port: Site) {
    let db = tasks::Db { project, container: project.container("dev", "db"), env_file: ".env" };
    let batch = tasks::enqueue(port, 3, 0.0);
    let runs = db.wait_for_batch(&batch, 3, Duration::from_secs(90));
    tasks::assert_exactly_once(&batch, 3, &runs);
    assert!(runs.iter().all(|r| r.version == "1"), "{runs:?}");
    let worker = project.container("dev", "worker");
    let image = |id: &str| docker_ok(&["inspect", "--format", "{{.Image}}", id]);
    let before = image(&worker);
    project.edit("project-template/core/tasks.py", "VERSION = \"1\"", "VERSION = \"2\"");
    let edited = Instant::now();
    // A task enqueued before the reloader noticed runs the old code: enqueue until one does
    // not. runserver restarts for the edit too, and drops connections meanwhile.
    let reloaded = wait_for(Duration::from_secs(60), Duration::from_secs(1), || {
        let batch = tasks::try_enqueue(port, 1, 0.0).ok()?;
        let runs = db.wait_for_batch(&batch, 1, Duration::from_secs(30));
        (runs[0].version == "2").then_some(())
    });
    assert!(reloaded.is_some(), "the worker still runs the old code 60s after the edit");
    timing("dev: task code edit to a task run by the new code", edited.elapsed());
    assert_eq!(project.container("dev", "worker"), worker, "the worker container was replaced for a code edit");
    assert_eq!(image(&worker), before, "the worker's image was rebuilt for a code edit");
}

// --- scenario 2: prod --------------------------------------------------------------------

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn prod_serves_pages_static_and_media_through_nginx_only() {
    let (project, port) = running_prod("prod");
    let secret = project.env_value(".env.prod", "SECRET_KEY");
    // The template's own tests, in the image just built, beside the running stack.
    let tested = project.timed("test", &["test"]);
    let said = text(&tested.stderr);
    assert!(said.contains("\nOK") && said.contains("Ran "), "{said}");
    project.ok(&["migrate", "--prod"]);
    project.ok(&["collectstatic", "--prod"]);

    // The page comes from gunicorn through nginx.
    let home = get_ok(port, "/");
    assert!(home.text().contains("<h1>It works</h1>"), "unexpected home page:\n{home}");
    assert_eq!(home.header("server"), Some("nginx"), "not answered by nginx:\n{home}");

    // A hashed static file: the bytes collectstatic wrote, cached for a year, gzipped on request.
    let css = http::between(&home.text(), "href=\"/static/", "\"").expect("the page links its stylesheet").to_owned();
    assert!(is_hashed(&css), "the stylesheet URL carries no content hash: {css}");
    let web = project.container("prod", "web");
    let on_volume = exec_bytes(&web, &format!("/app/staticfiles/{css}"));
    let plain = get_ok(port, &format!("/static/{css}"));
    assert!(plain.body == on_volume, "/static/{css} differs from the collected file");
    let cache = plain.header("cache-control").unwrap_or_default();
    assert!(cache.contains("max-age=31536000") && cache.contains("immutable"), "Cache-Control: {cache}");
    assert_eq!(plain.header("content-encoding"), None);
    let gzipped = http::request(port, "GET", &format!("/static/{css}"), &[("Accept-Encoding", "gzip")], &[]).unwrap();
    assert_eq!(gzipped.status, 200);
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"), "{gzipped}");
    assert!(gunzip(&gzipped.body) == on_volume, "the gzipped answer does not unpack to the collected file");
    let precompressed = exec_bytes(&web, &format!("/app/staticfiles/{css}.gz"));
    assert!(gzipped.body == precompressed, "nginx did not serve the precompressed .gz sibling");

    // An upload lands in the media volume and nginx serves it.
    let csrf = Csrf::fetch(port);
    let content = format!("uploaded through the app by {}\n", project.name);
    let stored = upload(port, &csrf, "e2e-note.txt", content.as_bytes());
    assert_eq!(stored.status, 302, "upload refused:\n{stored}");
    let url = media_url(port, "e2e-note.txt").expect("the upload is listed");
    assert_eq!(text(&exec_bytes(&web, &format!("/app{url}"))), content, "the upload is not in the media volume");
    let media = get_ok(port, &url);
    assert_eq!(media.text(), content);
    assert_eq!(media.header("content-disposition"), Some("attachment"));
    assert_eq!(media.header("x-content-type-options"), Some("nosniff"));

    // Only nginx is published: the port bindings of every container of the stack, not
    // whether some host port answers (a web that is down would not answer either).
    let nginx = project.container("prod", "nginx");
    let db = project.container("prod", "db");
    assert_eq!(host_ports(&web), Vec::<String>::new(), "web is published");
    assert_eq!(host_ports(&db), Vec::<String>::new(), "db is published");
    let mut ports = [project.http_port().to_string(), port.port.to_string()];
    ports.sort();
    assert_eq!(host_ports(&nginx), ports, "nginx is published elsewhere");
    let published: Vec<String> = project.containers("prod", None).iter().flat_map(|id| host_ports(id)).collect();
    assert_eq!(published, ports, "the stack publishes more than nginx's ports");
    let direct = http::get(Site::plain(project.http_port()), "/nginx-healthz").unwrap();
    assert_eq!(direct.status, 403, "nginx's own probe answers the host:\n{direct}");

    // The web process runs as the app user, and gunicorn starts cleanly.
    let pid = docker_ok(&["inspect", "--format", "{{.State.Pid}}", &web]);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids: Vec<&str> = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().split_whitespace().collect();
    assert_eq!(uids, [APP_UID; 4], "the web process is not the app user");
    assert_eq!(docker_ok(&["exec", &web, "id", "-u"]), APP_UID);
    // The bounding set, not the effective one: a non-root process has no effective
    // capabilities anyway, but could regain bounded ones through a setuid binary.
    let caps = status.lines().find_map(|l| l.strip_prefix("CapBnd:")).unwrap().trim().to_owned();
    assert_eq!(caps, "0000000000000000", "the web container keeps kernel capabilities");
    let no_new_privs = status.lines().find_map(|l| l.strip_prefix("NoNewPrivs:")).unwrap().trim().to_owned();
    assert_eq!(no_new_privs, "1", "the web process may gain privileges through setuid");
    let logs = docker(&["logs", &web]);
    let logs = text(&logs.stdout) + &text(&logs.stderr);
    assert!(logs.contains("Booting worker"), "gunicorn did not start its workers:\n{logs}");
    for bad in ["Permission denied", "Control server error", "Traceback"] {
        assert!(!logs.contains(bad), "the web log says {bad:?}:\n{logs}");
    }

    // The secret reaches the containers at run time only, never an image layer.
    // Nor is the site's TLS key (a line of its PEM body stands for it).
    let key = fs::read_to_string(project.path("certs/site-key.pem")).unwrap();
    let key_line = key.lines().nth(1).expect("a PEM body").to_owned();
    assert_secrets_in_no_layer(&project, &project.web_image(), &[("SECRET_KEY", &secret), ("TLS key", &key_line)]);
}

// --- scenario 3: persistence and faults -------------------------------------------------

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn uploads_survive_restarts_and_database_outages() {
    let (project, port) = running_prod("persist");
    let csrf = Csrf::fetch(port);
    let mut committed = Vec::new();
    for name in ["kept-1.txt", "kept-2.txt"] {
        let stored = upload(port, &csrf, name, name.as_bytes());
        assert_eq!(stored.status, 302, "upload refused:\n{stored}");
        committed.push(name.to_owned());
    }

    // down keeps the volumes; the next start finds the rows and the files.
    project.ok(&["down", "--prod"]);
    assert!(project.containers("prod", None).is_empty(), "down left containers");
    assert_eq!(volume_roles(&project), ["media", "pgdata", "redis", "static"], "down without --volumes lost a volume");
    project.timed("restart on kept volumes to healthy", &["prod"]);
    assert_listed(port, &committed);
    let url = media_url(port, "kept-1.txt").unwrap();
    assert_eq!(get_ok(port, &url).text(), "kept-1.txt");

    // `docker kill` counts as a manual stop: the restart policy leaves the database down.
    let db = project.container("prod", "db");
    let web = project.container("prod", "web");
    let web_started = docker_ok(&["inspect", "--format", "{{.State.StartedAt}}", &web]);
    committed.extend(outage(port, &csrf, &db, Outage::DockerKill));
    assert_listed(port, &committed);
    // A database that dies on its own is restarted by `restart: unless-stopped`.
    committed.extend(outage(port, &csrf, &db, Outage::Crash));
    assert_listed(port, &committed);
    let web_now = docker_ok(&["inspect", "--format", "{{.State.StartedAt}}", &web]);
    assert_eq!(web_now, web_started, "web was restarted to get over the database outages");

    // The same data off the host, and back into a stack whose volumes were wiped.
    backup::survives_the_host(&project, port, &committed);

    project.ok(&["down", "--prod"]);
    assert_eq!(volume_roles(&project), ["media", "pgdata", "redis", "static"], "down without --volumes lost a volume");
    project.ok(&["down", "--prod", "--volumes"]);
    assert_stack_gone(&project, "prod");
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Outage {
    /// `docker kill` of the db container.
    DockerKill,
    /// PostgreSQL stops by itself, as in a crash (`pg_ctl stop -m immediate`).
    Crash,
}

/// Uploads every 0.5s while the database goes down and comes back: the outage must be seen,
/// web must answer again within 30s of the database accepting connections again (`pg_isready`:
/// a loaded machine may take a while to replay the write-ahead log), and the uploads answered
/// with a redirect (committed) are returned.
fn outage(port: Site, csrf: &Csrf, db: &str, kind: Outage) -> Vec<String> {
    let restarts = |id: &str| docker_ok(&["inspect", "--format", "{{.RestartCount}}", id]).parse::<u32>().unwrap();
    let status = |id: &str| docker_ok(&["inspect", "--format", "{{.State.Status}}", id]);
    let started_at = |id: &str| docker_ok(&["inspect", "--format", "{{.State.StartedAt}}", id]);
    let (restarts_before, started_before) = (restarts(db), started_at(db));
    let mut committed = Vec::new();
    let mut failures = 0;
    let mut stopped: Option<Instant> = None;
    let mut back: Option<Instant> = None;
    let mut recovered: Option<Instant> = None;
    let ready = || docker(&["exec", db, "pg_isready", "--quiet"]).status.success();
    let deadline = Instant::now() + OUTAGE_LIMIT;
    for i in 0.. {
        if Instant::now() > deadline || back.is_some_and(|b| b.elapsed() > RECOVERY) {
            break;
        }
        let name = format!("{kind:?}-{i}.txt").to_lowercase();
        let answer = upload_bytes(port, csrf, &name, name.as_bytes());
        match answer {
            Ok(ref r) if r.status == 302 => {
                committed.push(name);
                if back.is_some() {
                    recovered = Some(Instant::now());
                    break;
                }
            }
            _ if stopped.is_some() => failures += 1,
            _ => panic!("upload failed before the database was stopped: {answer:?}"),
        }
        if i == 3 {
            match kind {
                Outage::DockerKill => {
                    docker_ok(&["kill", db]);
                }
                Outage::Crash => {
                    let pgdata = docker_ok(&["exec", db, "sh", "-c", "echo \"$PGDATA\""]);
                    // The exec ends with the container, so its own exit status says nothing.
                    docker(&["exec", "--user", "postgres", db, "pg_ctl", "stop", "-m", "immediate", "-D", &pgdata]);
                }
            }
            stopped = Some(Instant::now());
        }
        if let (Some(since), None) = (stopped, back) {
            match kind {
                Outage::DockerKill => {
                    if since.elapsed() < Duration::from_secs(5) {
                        assert_ne!(status(db), "running", "the database restarted after docker kill");
                    }
                    if since.elapsed() >= Duration::from_secs(5) && status(db) != "running" {
                        assert_eq!(restarts(db), restarts_before, "the restart policy restarted a killed database");
                        docker_ok(&["start", db]);
                    }
                    if status(db) == "running" && ready() {
                        back = Some(Instant::now());
                    }
                }
                Outage::Crash => {
                    if status(db) == "running" && restarts(db) > restarts_before && ready() {
                        back = Some(Instant::now());
                    }
                }
            }
        }
        sleep(Duration::from_millis(500));
    }
    let stopped = stopped.expect("the loop reached the outage");
    let back = back.unwrap_or_else(|| panic!("{kind:?}: the database did not come back (status {})", status(db)));
    let recovered =
        recovered.unwrap_or_else(|| panic!("{kind:?}: web did not accept an upload after the database came back"));
    assert!(
        recovered - back <= RECOVERY,
        "{kind:?}: web took {:?} to recover after the database came back",
        recovered - back
    );
    assert_ne!(started_at(db), started_before, "{kind:?}: the database never stopped");
    if kind == Outage::DockerKill {
        assert!(failures > 0, "no request failed while the database was down");
    }
    timing(&format!("persist: {kind:?}: database down to back"), back - stopped);
    timing(&format!("persist: {kind:?}: database back to web answering"), recovered - back);
    committed
}

/// How long web may take to answer again once the database accepts connections.
const RECOVERY: Duration = Duration::from_secs(30);
/// How long an outage may last in all before the test gives up on the database.
const OUTAGE_LIMIT: Duration = Duration::from_secs(240);

/// The roles (volume names less the project prefix) of the prod stack's volumes.
fn volume_roles(project: &Project) -> Vec<String> {
    let prefix = format!("{}_", project.compose_project("prod"));
    project.volumes("prod").iter().map(|v| v.strip_prefix(&prefix).unwrap_or(v).to_owned()).collect()
}

// --- scenario 4: release; push and swarm continue from it (tests/e2e/chain.rs) ----------

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn a_release_verifies_and_its_image_loads_as_the_one_prod_ran() {
    chain::released();
}

/// The release scenario: prod runs, `release --image` of the tagged HEAD verifies, and its
/// image tarball alone brings back the image prod ran. Returns the project, its stack down.
fn release_and_load() -> Project {
    let (project, _) = running_prod("release");
    let web = project.container("prod", "web");
    let running = docker_ok(&["inspect", "--format", "{{.Image}}", &web]);
    let tag = Command::new("git")
        .current_dir(project.root())
        .args(["tag", &format!("v{}", chain::VERSION)])
        .status()
        .unwrap();
    assert!(tag.success());

    let out = project.timed("release --image", &["release", "--image"]);
    assert!(text(&out.stdout).contains("released"), "{}", text(&out.stdout));
    let dist = project.path("dist");
    let image_tarball = format!("{}-{}-image.tar.gz", project.name, chain::VERSION);
    let static_tarball = format!("{}-{}-static.tar.gz", project.name, chain::VERSION);
    for file in [&image_tarball, &static_tarball, "SHA256SUMS", "manifest.json"] {
        assert!(dist.join(file).is_file(), "dist/{file} is missing");
    }
    let check = Command::new("sha256sum").current_dir(&dist).args(["-c", "SHA256SUMS"]).output().unwrap();
    assert!(check.status.success(), "sha256sum -c failed:\n{}{}", text(&check.stdout), text(&check.stderr));
    assert_eq!(text(&check.stdout).matches(": OK").count(), 2, "{}", text(&check.stdout));
    project.ok(&["verify", &dist.to_string_lossy()]);
    let listing = Command::new("tar").arg("-tzf").arg(dist.join(&static_tarball)).output().unwrap();
    let listing = text(&listing.stdout);
    assert!(listing.lines().any(|l| l.contains("core/site.") && is_hashed(l)), "no hashed stylesheet in:\n{listing}");

    // The tarball alone brings back the image prod ran.
    project.ok(&["down", "--prod", "--volumes"]);
    docker_ok(&["rmi", &project.web_image()]);
    let loaded = docker_ok(&["load", "--input", &dist.join(&image_tarball).to_string_lossy()]);
    let tag = loaded.lines().find_map(|l| l.strip_prefix("Loaded image: ")).unwrap_or_else(|| panic!("{loaded}"));
    project.remove_later(tag);
    assert_eq!(tag, format!("{}:latest", project.web_image()));
    assert_eq!(docker_ok(&["image", "inspect", "--format", "{{.Id}}", tag]), running);

    project
}

// --- scenario 5: preflight ---------------------------------------------------------------

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn prod_with_debug_on_is_refused_before_anything_is_created() {
    let project = Project::new("preflight");
    project.init_prod();
    project.set_env(".env.prod", "DEBUG", "1");
    let out = project.xtask(&["prod", "--with-db"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "prod with DEBUG=1 was not refused:\n{stderr}");
    assert!(stderr.contains("DEBUG=1") && stderr.contains("nothing was started"), "{stderr}");
    assert_stack_gone(&project, "prod");
    assert!(!docker(&["image", "inspect", &project.web_image()]).status.success(), "the web image was built");
}

// --- scenario 6: build cache: see tests/e2e/swarm.rs, whose releases are code-only changes --

// --- scenario 7: Compose v1 --------------------------------------------------------------

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn compose_v1_runs_the_dev_stack() {
    // The `docker-compose` the xtask runs is the one on PATH; a standalone Compose v2 goes by
    // that name too, and running it would test v2 under the v1 scenario's name.
    let version = Command::new("docker-compose").args(["version", "--short"]).output();
    let version = version.map(|out| text(&out.stdout).trim().to_owned()).unwrap_or_default();
    if !version.starts_with("1.") {
        return skip(&format!("no Compose v1 on PATH (docker-compose version: {version:?}): Compose v1 not tested"));
    }
    let project = Project::with_compose("v1", Some("docker-compose"));
    let port = Site::plain(project.init_dev());
    // The classic builder of Compose v1 shares no cache with BuildKit's.
    start_dev(&project, port, Duration::from_secs(300));
    project.ok(&["down", "--volumes"]);
    assert_stack_gone(&project, "dev");
}

// --- scenario 8: HTTPS -------------------------------------------------------------------

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn https_serves_the_local_certificate_then_the_users_own_files() {
    let (project, site) = running_prod("https");
    let ca = project.path("certs/ca.pem");

    // HTTP/2 with the project's CA, and HSTS from Django's settings.
    let (head, version) = curl_head(site, &ca, &["--http2"], "/");
    assert_eq!(version, "2", "not HTTP/2:\n{head}");
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    let hsts = format!("strict-transport-security: max-age={}", project.env_value(".env.prod", "SECURE_HSTS_SECONDS"));
    assert!(head.to_lowercase().contains(&hsts), "no {hsts}:\n{head}");
    assert_eq!(served_subject(site, &ca).as_deref(), Some("localhost"), "the local leaf is not the one served");

    // Plain HTTP only redirects, to the same host and path on the HTTPS port.
    let http = Site::plain(project.http_port());
    let redirect = http::get(http, "/uploads/?page=2").unwrap();
    assert_eq!(redirect.status, 301, "{redirect}");
    assert_eq!(redirect.header("location"), Some(site.url("/uploads/?page=2").as_str()), "{redirect}");

    // TLS 1.1 is refused by the server (the client is allowed to offer it), TLS 1.2 verifies.
    let old = s_client(site, &ca, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
    assert!(
        old.contains("Cipher is (NONE)") && old.contains("alert protocol version"),
        "TLS 1.1 was not refused:\n{old}"
    );
    let tls12 = s_client(site, &ca, &["-tls1_2", "-verify_hostname", "localhost"]);
    assert!(tls12.contains("Verify return code: 0 (ok)") && tls12.contains("New, TLSv1.2"), "{tls12}");

    browser_logs_in_and_uploads(&project, site, &ca);

    // The user's own certificate, made by openssl; replacing it and running prod again serves the new one.
    project.set_env(".env.prod", "TLS_MODE", "files");
    project.set_env(".env.prod", "TLS_CERT_FILE", "own/chain.pem");
    project.set_env(".env.prod", "TLS_KEY_FILE", "own/key.pem");
    for generation in ["own-1", "own-2"] {
        own_certificate(&project, generation);
        let started = Instant::now();
        project.ok(&["prod", "--no-build"]);
        timing(&format!("https: prod with the certificate {generation} to healthy"), started.elapsed());
        let own = project.path("own/chain.pem");
        assert_eq!(served_subject(site, &own).as_deref(), Some(generation), "{generation} is not served");
        assert_eq!(http::get(Site::tls(site.port, &own), "/").unwrap().status, 200);
    }
}

// --- scenario: acme ----------------------------------------------------------------------

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn acme_obtains_a_certificate_from_pebble_and_renews_it_without_dropping_a_request() {
    let project = Project::new("acme");
    let (http, https) = (harness::free_port(), harness::free_port());
    let pebble = acme::Pebble::start(http);
    init_acme(&project, &pebble, http, https);
    project.timed("cold start to healthy", &["prod", "--with-db"]);

    // nginx started on the bootstrap certificate; certbot's from pebble replaces it.
    let root = pebble.root();
    let started = Instant::now();
    let first = wait_for(Duration::from_secs(120), Duration::from_millis(250), || acme::served(https, &root));
    let first = first.unwrap_or_else(|| panic!("no certificate from pebble for {} within 120s", acme::HOST));
    timing("acme: healthy to pebble's certificate served", started.elapsed());
    assert!(first.issuer.contains("Pebble Intermediate CA"), "{first:?}");

    // A forced renewal while requests run: nginx reloads, it is not restarted.
    let nginx = project.container("prod", "nginx");
    let state = || docker_ok(&["inspect", "--format", "{{.State.StartedAt}} {{.RestartCount}} {{.State.Pid}}", &nginx]);
    let before = state();
    let (renewed, renew) = renew_under_load(&project, https, &root, &first);
    assert_eq!(state(), before, "nginx was restarted rather than reloaded");
    let logs = text(&docker(&["logs", &nginx]).stderr);
    let bootstrap = "acme-watch: serving /etc/nginx/tls/fullchain.pem";
    assert!(logs.contains(bootstrap), "nginx did not start on the bootstrap pair");
    assert!(logs.contains("acme-watch: new certificate"), "no reload in nginx's log");

    // No key in what the xtask, certbot or nginx said.
    let certbot = docker(&["logs", &project.container("prod", "certbot")]);
    let said = [text(&renew.stdout), text(&renew.stderr), text(&certbot.stdout), text(&certbot.stderr), logs];
    assert!(said.iter().all(|s| !s.contains("PRIVATE KEY")), "a private key was printed");

    // A restarted nginx starts on certbot's certificate, not on the bootstrap pair.
    docker_ok(&["restart", &nginx]);
    let again = wait_for(Duration::from_secs(30), Duration::from_millis(250), || acme::served(https, &root));
    assert_eq!(again.as_ref(), Some(&renewed), "after a restart nginx serves another certificate");

    project.ok(&["down", "--prod", "--volumes"]);
    assert_stack_gone(&project, "prod");
}

/// `init --prod --tls acme` for [`acme::HOST`] on the given ports, with pebble as the CA.
fn init_acme(project: &Project, pebble: &acme::Pebble, http: u16, https: u16) {
    project.ok(&["init", "--prod", "--host", acme::HOST, "--tls", "acme"]);
    let settings = [
        ("HTTP_PORT", http.to_string()),
        ("HTTPS_PORT", https.to_string()),
        ("GUNICORN_WORKERS", "2".to_owned()),
        ("ACME_EMAIL", "admin@example.com".to_owned()),
        ("ACME_DIRECTORY_URL", pebble.directory_url.clone()),
        ("ACME_CA_BUNDLE", pebble.api_ca.to_string_lossy().into_owned()),
        ("CERTBOT_IMAGE", acme::certbot_image()),
    ];
    for (key, value) in &settings {
        project.set_env(".env.prod", key, value);
    }
}

/// `tls renew --force` while a bounded request loop runs: returns the new certificate once
/// it is served, and what the xtask said. No request may fail.
fn renew_under_load(project: &Project, https: u16, root: &Path, first: &acme::Served) -> (acme::Served, Output) {
    let requests = acme::RequestLoop::start(https, root, 5000, Duration::from_secs(150));
    sleep(Duration::from_secs(1));
    let started = Instant::now();
    let renew = project.ok(&["tls", "renew", "--force"]);
    let renewed = wait_for(Duration::from_secs(60), Duration::from_millis(100), || {
        acme::served(https, root).filter(|s| s.serial != first.serial)
    });
    let renewed = renewed.unwrap_or_else(|| panic!("the renewed certificate was not served within 60s ({first:?})"));
    timing("acme: forced renewal to the new certificate served", started.elapsed());
    sleep(Duration::from_secs(2));
    let (ok, failed) = requests.stop();
    let all = ok as usize + failed.len();
    eprintln!("e2e: acme: {all} requests during the renewal, {} failed", failed.len());
    assert!(failed.is_empty(), "{} of {all} requests failed: {:?}", failed.len(), &failed[..failed.len().min(5)]);
    assert!(ok >= 20, "only {ok} requests ran during the renewal");
    assert!(renewed.issuer.contains("Pebble Intermediate CA"), "{renewed:?}");
    (renewed, renew)
}

/// Headless Chromium, trusting the project's CA: logs into the admin (styled by its CSS
/// from nginx), uploads a file through the site's form and fetches it back under /media/.
/// The screenshot goes to target/e2e-https-admin.png.
fn browser_logs_in_and_uploads(project: &Project, site: Site, ca: &std::path::Path) {
    let password = "e2e-Admin-password-1";
    let create = format!(
        "from django.contrib.auth import get_user_model; get_user_model().objects.create_superuser('admin', 'admin@example.com', '{password}')"
    );
    project.ok(&["manage", "--prod", "--", "shell", "-c", &create]);
    let started = Instant::now();
    let browser = browser::Browser::start(ca);
    let log_in = || {
        browser.goto(&site.url("/admin/"));
        if browser.title().starts_with("Site administration") {
            return; // logged in by a try the network change interrupted after the fact
        }
        if browser.network_changed() {
            return; // the page did not load: `until` sees the error page and tries again
        }
        let page = browser.script("return document.body ? document.body.innerText : '';", serde_json::json!([]));
        assert!(browser.url().contains("/admin/login/"), "not sent to the login page: {}\n{page}", browser.url());
        browser.type_into("#id_username", "admin");
        browser.type_into("#id_password", password);
        browser.click("input[type=submit]");
    };
    let shot = harness::repo().join("target/e2e-https-admin.png");
    // WebDriver's click returns once the click is sent, not when the next page has loaded.
    let mut title = String::new();
    let admin = browser.until(log_in, || {
        title = browser.title();
        title.starts_with("Site administration").then_some(())
    });
    if admin.is_none() {
        browser.screenshot(&shot);
        panic!("not logged in (title {title:?}, {}); screenshot: {}", browser.url(), shot.display());
    }
    // Styled: the header has the admin's colour, and base.css came from nginx with its rules.
    let style = browser.script(
        "const sheet = [...document.styleSheets].find(s => (s.href || '').includes('/static/admin/css/base'));
         return [getComputedStyle(document.querySelector('#header')).backgroundColor,
                 sheet ? sheet.href : null, sheet ? sheet.cssRules.length : 0];",
        serde_json::json!([]),
    );
    browser.screenshot(&shot);
    let background = style[0].as_str().unwrap_or_default();
    assert!(!["", "rgba(0, 0, 0, 0)", "transparent"].contains(&background), "the admin is unstyled: {style}");
    assert!(style[1].as_str().is_some_and(|href| href.starts_with(&site.url("/static/admin/css/base"))), "{style}");
    assert!(style[2].as_u64().unwrap_or(0) > 10, "base.css has no rules: {style}");
    let css = http::get(site, &style[1].as_str().unwrap()[site.url("").len()..]).unwrap();
    assert_eq!((css.status, css.header("server")), (200, Some("nginx")), "{css}");
    eprintln!(
        "e2e: https: browser: logged into the admin, header background {background}, screenshot {}",
        shot.display()
    );

    // An upload through the form, then fetched back by the browser.
    let file = tempfile::Builder::new().prefix("browser-upload-").suffix(".txt").tempfile().unwrap();
    let content = format!(
        "uploaded by headless Chromium for {}
",
        project.name
    );
    fs::write(file.path(), &content).unwrap();
    let name = file.path().file_name().unwrap().to_string_lossy().into_owned();
    let upload = || {
        browser.goto(&site.url("/uploads/"));
        browser.type_into("input[type=file]", &file.path().to_string_lossy());
        browser.click("form button[type=submit]");
    };
    let find_link = "return [...document.querySelectorAll('a')].map(a => a.getAttribute('href')).find(h => h.endsWith('/' + arguments[0])) || null;";
    let listed =
        browser.until(upload, || browser.script(find_link, serde_json::json!([name])).as_str().map(str::to_owned));
    let Some(url) = listed else {
        let shot = harness::repo().join("target/e2e-https-upload.png");
        browser.screenshot(&shot);
        let page = browser.script("return document.body.innerText;", serde_json::json!([]));
        panic!(
            "{name} is not listed after the browser's upload ({}, screenshot {}):\n{page}",
            browser.url(),
            shot.display()
        );
    };
    let fetched = browser.async_script(
        "const done = arguments[arguments.length - 1];
         fetch(arguments[0]).then(r => r.text().then(t => done([r.status, t]))).catch(e => done([0, String(e)]));",
        serde_json::json!([url]),
    );
    assert_eq!((fetched[0].as_u64(), fetched[1].as_str()), (Some(200), Some(content.as_str())), "{fetched}");
    timing("https: browser login, styled admin, upload and fetch", started.elapsed());
}

/// A self-signed certificate for localhost and 127.0.0.1 named `name`, written by openssl
/// to own/chain.pem and own/key.pem, replacing the previous ones.
fn own_certificate(project: &Project, name: &str) {
    let dir = project.path("own");
    fs::create_dir_all(&dir).unwrap();
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30"])
        .args(["-subj", &format!("/CN={name}"), "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-keyout", "key.new", "-out", "chain.new"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl req failed: {}", text(&out.stderr));
    fs::rename(dir.join("key.new"), dir.join("key.pem")).unwrap();
    fs::rename(dir.join("chain.new"), dir.join("chain.pem")).unwrap();
}

/// `curl -I` of the site with extra flags: the response head and the HTTP version.
fn curl_head(site: Site, ca: &std::path::Path, flags: &[&str], path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "15", "--output", "/dev/null", "--dump-header", "-"])
        .args(["--write-out", "%{http_version}", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", site.port)])
        .args(flags)
        .arg(site.url(path))
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {}: {}", site.url(path), text(&out.stderr));
    let all = text(&out.stdout);
    let (head, version) = all.rsplit_once("\r\n\r\n").unwrap_or((&all, ""));
    (head.to_owned(), version.trim().to_owned())
}

/// What `openssl s_client` says of a handshake with the site, trusting `ca`.
fn s_client(site: Site, ca: &std::path::Path, flags: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{}", site.port), "-servername", "localhost", "-CAfile"])
        .arg(ca)
        .args(flags)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    text(&out.stdout) + &text(&out.stderr)
}

/// The common name of the certificate the site serves, when it verifies against `ca`.
fn served_subject(site: Site, ca: &std::path::Path) -> Option<String> {
    let out = s_client(site, ca, &["-verify_hostname", "localhost", "-verify_return_error"]);
    if !out.contains("Verify return code: 0 (ok)") {
        return None;
    }
    let subject = out.lines().find_map(|l| l.strip_prefix("subject="))?;
    subject.rsplit("CN = ").next().map(|cn| cn.split(',').next().unwrap_or(cn).trim().to_owned())
}

// --- helpers -----------------------------------------------------------------------------

/// `GET path`, which must answer 200.
fn get_ok(port: Site, path: &str) -> Response {
    let response = http::get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(response.status, 200, "GET {path}:\n{response}");
    response
}

/// A scratch project whose production stack, with the bundled database, is up and
/// healthy; returns it with its HTTPS site.
fn running_prod(scenario: &str) -> (Project, Site) {
    let project = Project::new(scenario);
    let port = project.init_prod();
    project.timed("cold start to healthy", &["prod", "--with-db"]);
    (project, port)
}

/// `dev --detach` and `migrate`, then the home page (its time is printed).
fn start_dev(project: &Project, port: Site, limit: Duration) {
    let started = Instant::now();
    project.ok(&["dev", "--detach"]);
    project.ok(&["migrate"]);
    let home = wait_for_page(port, "/", limit);
    timing(&format!("{}: cold start to first page", project.scenario), started.elapsed());
    assert!(home.text().contains("<h1>It works</h1>"), "unexpected home page:\n{home}");
}

/// Polls `GET path` until it answers 200.
fn wait_for_page(port: Site, path: &str, limit: Duration) -> Response {
    let mut last = String::from("no answer");
    let page = wait_for(limit, Duration::from_millis(500), || match http::get(port, path) {
        Ok(r) if r.status == 200 => Some(r),
        Ok(r) => {
            last = r.to_string();
            None
        }
        Err(e) => {
            last = e.to_string();
            None
        }
    });
    page.unwrap_or_else(|| panic!("GET {path} did not answer 200 within {limit:?}; last answer:\n{last}"))
}

/// The CSRF cookie and a form token, taken from the upload page.
struct Csrf {
    cookie: String,
    token: String,
}

impl Csrf {
    fn fetch(port: Site) -> Csrf {
        let form = get_ok(port, "/uploads/");
        let cookie = form.cookie("csrftoken").unwrap_or_else(|| panic!("no csrftoken cookie:\n{form}"));
        let page = form.text();
        let token = http::between(&page, "name=\"csrfmiddlewaretoken\" value=\"", "\"").expect("a CSRF form field");
        Csrf { cookie, token: token.to_owned() }
    }
}

fn upload(port: Site, csrf: &Csrf, name: &str, content: &[u8]) -> Response {
    upload_bytes(port, csrf, name, content).unwrap_or_else(|e| panic!("upload of {name}: {e}"))
}

/// Posts the upload form. The cookie is Secure, so it is copied into the header by hand.
fn upload_bytes(port: Site, csrf: &Csrf, name: &str, content: &[u8]) -> std::io::Result<Response> {
    let (content_type, body) = http::multipart(&[("csrfmiddlewaretoken", &csrf.token)], "file", name, content);
    let cookie = format!("csrftoken={}", csrf.cookie);
    // Over HTTPS, Django's CSRF check wants the page the form came from, as browsers send it.
    let referer = port.url("/uploads/");
    let headers = [("Content-Type", content_type.as_str()), ("Cookie", &cookie), ("Referer", &referer)];
    http::request(port, "POST", "/uploads/", &headers, &body)
}

/// The /media/ URL the upload list gives for a file uploaded as `name`.
fn media_url(port: Site, name: &str) -> Option<String> {
    let page = get_ok(port, "/uploads/").text();
    page.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|url| url.starts_with("/media/") && url.rsplit('/').next() == Some(name))
        .map(str::to_owned)
}

fn assert_listed(port: Site, names: &[String]) {
    let page = get_ok(port, "/uploads/").text();
    let missing: Vec<&String> = names.iter().filter(|n| !page.contains(&format!("/{n}\""))).collect();
    assert!(missing.is_empty(), "committed uploads are missing: {missing:?}\n{page}");
}

/// A static name like site.0123456789ab.css.
fn is_hashed(name: &str) -> bool {
    let parts: Vec<&str> = name.rsplit('/').next().unwrap_or(name).split('.').collect();
    parts.len() >= 3 && {
        let hash = parts[parts.len() - 2];
        hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit())
    }
}

/// The bytes of a file in a running container.
fn exec_bytes(container: &str, path: &str) -> Vec<u8> {
    let out = docker(&["exec", container, "cat", path]);
    assert!(out.status.success(), "cannot read {path}: {}", text(&out.stderr));
    out.stdout
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("a valid gzip stream");
    out
}

/// The host ports a container's ports are published on.
fn host_ports(container: &str) -> Vec<String> {
    let json = docker_ok(&["inspect", "--format", "{{json .NetworkSettings.Ports}}", container]);
    let ports: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut found: Vec<String> = ports
        .as_object()
        .into_iter()
        .flat_map(|map| map.values())
        .filter_map(|bindings| bindings.as_array())
        .flatten()
        .filter_map(|b| b["HostPort"].as_str().map(str::to_owned))
        .collect();
    found.sort();
    found.dedup();
    found
}

/// No container, network or volume of the stack is left.
fn assert_stack_gone(project: &Project, stack: &str) {
    assert_eq!(project.containers(stack, None), Vec::<String>::new(), "containers of the {stack} stack exist");
    assert_eq!(project.networks(stack), Vec::<String>::new(), "networks of the {stack} stack exist");
    assert_eq!(project.volumes(stack), Vec::<String>::new(), "volumes of the {stack} stack exist");
}

/// `docker save`s the image and searches every file of it, each layer tar included, for
/// each of `secrets`. A string known to be in the code must be found, or the search proves nothing.
fn assert_secrets_in_no_layer(project: &Project, image: &str, secrets: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("image.tar");
    docker_ok(&["save", "--output", &saved.to_string_lossy(), image]);
    let unpacked = dir.path().join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    let untar = Command::new("tar").arg("-xf").arg(&saved).arg("-C").arg(&unpacked).status().unwrap();
    assert!(untar.success(), "cannot unpack the saved image");
    fs::remove_file(&saved).unwrap();
    // manifest.json names the layer files in the legacy layout (<id>/layer.tar) and in the
    // OCI one of Docker 25 and later (blobs/sha256/<digest>) alike.
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    let layers: Vec<&str> = manifest[0]["Layers"].as_array().into_iter().flatten().filter_map(|l| l.as_str()).collect();
    let expected: Vec<String> =
        serde_json::from_str(&docker_ok(&["image", "inspect", "--format", "{{json .RootFS.Layers}}", image])).unwrap();
    assert_eq!(layers.len(), expected.len(), "the saved image lists {layers:?} for {} layers", expected.len());
    assert!(layers.iter().all(|l| unpacked.join(l).is_file()), "a layer listed in manifest.json is missing");
    let holding = |needle: &str| -> Vec<String> {
        let out =
            Command::new("grep").args(["-rlF", "--binary-files=text", "--", needle]).arg(&unpacked).output().unwrap();
        text(&out.stdout).lines().map(str::to_owned).collect()
    };
    assert!(!holding("MAX_DEFAULT_WORKERS").is_empty(), "the layer search does not see the code");
    for (what, secret) in secrets {
        assert_eq!(holding(secret), Vec::<String>::new(), "the {what} of {} is in the image", project.name);
    }
}
