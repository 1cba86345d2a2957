//! Failures are reported, not hidden: every command that runs a one-off container fails
//! with one line naming the image build when the build fails (an unreachable base image, a
//! requirement that cannot be installed), `check` leaves no container, network or volume
//! behind when it passes, a busy port is refused before anything is built, and a start that
//! fails half-way names the containers it left.

use std::fs;
use std::net::TcpListener;
use std::time::Instant;

use super::harness::{docker, docker_ok, text, timing, Project};

/// The commands that run a one-off web container.
const ONE_OFFS: &[&[&str]] = &[
    &["check", "--prod"],
    &["check"],
    &["migrate"],
    &["collectstatic", "--prod"],
    &["manage", "--", "check"],
    &["release", "--version", "0.0.1", "--allow-dirty"],
];

/// The project's containers, networks and volumes as `docker ps -a`, `network ls` and
/// `volume ls` list them (names carry the project name).
fn engine_objects(project: &Project) -> Vec<String> {
    let mut lines = Vec::new();
    for args in [
        &["ps", "-a", "--format", "{{.Names}}"][..],
        &["network", "ls", "--format", "{{.Name}}"],
        &["volume", "ls", "--format", "{{.Name}}"],
    ] {
        let listed = docker_ok(args);
        lines.extend(listed.lines().filter(|l| l.contains(&project.name)).map(|l| format!("{} {l}", args[0])));
    }
    lines.sort();
    lines
}

/// Runs every one-off command with `env` and asserts each fails with the build's line, for
/// the reason the build output names (`cause`).
fn assert_each_fails_at_the_build(project: &Project, env: &[(&str, &str)], why: &str, cause: &str) {
    for args in ONE_OFFS {
        let started = Instant::now();
        let out = project.xtask_env(args, env);
        let stderr = text(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert!(!out.status.success(), "{args:?} passed with {why}:\n{stderr}");
        assert_eq!(errors.len(), 1, "{args:?}: one error line expected:\n{stderr}");
        assert!(errors[0].starts_with("error: cannot build the web image: "), "{args:?} with {why}: {}", errors[0]);
        assert!(errors[0].contains(" build web` failed with exit code "), "{args:?}: {}", errors[0]);
        let said = text(&out.stdout) + &stderr;
        assert!(said.contains(cause), "{args:?}: the build did not fail on {cause}:\n{said}");
        timing(&format!("failures: {} with {why}", args.join(" ")), started.elapsed());
    }
}

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn one_off_commands_fail_at_a_failed_build_and_check_leaves_nothing_behind() {
    let project = Project::new("failures");
    project.init_dev();
    project.init_prod();
    let before = engine_objects(&project);

    assert_each_fails_at_the_build(
        &project,
        &[("PYTHON_IMAGE", "nonexistent.invalid/python:3")],
        "an unreachable base image",
        "nonexistent.invalid",
    );
    let requirements = project.path("project-template/requirements.txt");
    let pinned = fs::read_to_string(&requirements).unwrap();
    fs::write(&requirements, format!("{pinned}no-such-requirement-xtask==9.9.9\n")).unwrap();
    let cause = "no-such-requirement-xtask";
    assert_each_fails_at_the_build(&project, &[], "a requirement that cannot be installed", cause);
    fs::write(&requirements, pinned).unwrap();
    assert_eq!(engine_objects(&project), before, "a failed build left something behind");
    assert!(!project.path("dist").exists(), "a failed release wrote its output directory");

    let started = Instant::now();
    let out = project.ok(&["check", "--prod"]);
    timing("failures: check --prod, image built", started.elapsed());
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(said.contains("System check identified no issues"), "the deployment checks did not run:\n{said}");
    assert_eq!(engine_objects(&project), before, "check --prod left a container, network or volume");
    let started = Instant::now();
    project.ok(&["check"]);
    timing("failures: check, dev image built", started.elapsed());
    assert_eq!(engine_objects(&project), before, "check left a container, network or volume");
}

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn a_busy_port_is_refused_up_front_and_a_half_way_start_names_what_it_left() {
    let project = Project::new("ports");
    project.init_prod();
    let before = engine_objects(&project);
    for variable in ["HTTP_PORT", "HTTPS_PORT"] {
        let port: u16 = project.env_value(".env.prod", variable).parse().expect("a port");
        let held = TcpListener::bind(("0.0.0.0", port)).unwrap();
        let out = project.xtask(&["prod", "--with-db"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let line = format!("error: {variable}={port} is already in use on this host: stop what listens on port {port}, or set {variable} to a free port in .env.prod\n");
        assert_eq!(stderr, line);
        assert_eq!(engine_objects(&project), before, "a refused start created something");
        assert!(!docker(&["image", "inspect", &project.web_image()]).status.success(), "the web image was built");
        drop(held);
    }

    // A web that never becomes healthy (it fails at import): the health wait gives up
    // (after the database and Redis, which the same timeout bounds, have come up) and the
    // stack is left half-started, and says so.
    let wsgi = project.path("project-template/config/wsgi.py");
    let good = fs::read_to_string(&wsgi).unwrap();
    fs::write(&wsgi, format!("{good}\nraise RuntimeError(\"this release is broken\")\n")).unwrap();
    let started = Instant::now();
    let out = project.xtask(&["prod", "--with-db", "--wait-timeout", "30"]);
    timing("ports: prod until the health wait gives up", started.elapsed());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let error = stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
    let mut names: Vec<String> =
        engine_objects(&project).iter().filter_map(|l| l.strip_prefix("ps ")).map(str::to_owned).collect();
    names.sort();
    let prefix = format!("{}-prod-", project.name);
    let services: Vec<&str> = names.iter().filter_map(|n| n.strip_prefix(&prefix)?.strip_suffix("-1")).collect();
    // Every service of the template's prod stack: its own, the bundled Redis and the
    // Procfile's processes.
    assert_eq!(services, ["beat", "db", "nginx", "redis", "web", "worker"], "{names:?}");
    let said = format!(
        "error: the prod stack did not start and left container(s) {}: remove them with `cargo xtask down --prod`: ",
        names.join(", ")
    );
    assert!(error.starts_with(&said), "{error}");
    project.ok(&["down", "--prod", "--volumes"]);
    assert_eq!(engine_objects(&project), before, "the named command did not remove what was left");
}
