//! The Django project's description (`[workspace.metadata.django]` in the root Cargo.toml),
//! read by the real xtask binary through `cargo metadata`: a good one reaches every Compose
//! command as variables, a bad one is refused in one line before anything runs.

use std::fs;

use crate::support::sandbox::Sandbox;

/// A repository holding a `django-admin startproject mysite` layout in `mysite/`, an env
/// file for the dev stack, and `section` as its description.
fn adopted(section: &str) -> Sandbox {
    let sandbox = Sandbox::with_examples();
    for file in ["mysite/manage.py", "mysite/mysite/__init__.py", "mysite/mysite/settings.py", "mysite/mysite/wsgi.py"]
    {
        let path = sandbox.root().join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "").unwrap();
    }
    sandbox.write("mysite/requirements.txt", "Django==5.2.19\n");
    sandbox.write(".env", &sandbox.read("docker/dev.env.example"));
    sandbox.write("Cargo.toml", &format!("[workspace]\n\n[workspace.metadata.django]\n{section}"));
    sandbox
}

/// Every path under the root with its content (directories empty), to show nothing changed.
fn tree(sandbox: &Sandbox) -> Vec<(String, Vec<u8>)> {
    let root = sandbox.root();
    walkdir::WalkDir::new(&root)
        .sort_by_file_name()
        .into_iter()
        .map(|entry| entry.unwrap().into_path())
        .map(|path| (path.strip_prefix(&root).unwrap().display().to_string(), fs::read(&path).unwrap_or_default()))
        .collect()
}

const GOOD: &str = "dir = \"mysite\"\nsettings = \"mysite.settings\"\ndev-settings = \"mysite.settings\"\n\
                    wsgi = \"mysite.wsgi:application\"\n";

#[test]
fn a_description_reaches_the_compose_commands_with_the_settings_layer_on() {
    let sandbox = adopted(GOOD);
    let run = sandbox.xtask(&["--dry-run", "dev"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected = "DJANGO_DIR=mysite DJANGO_DEPENDENCIES=mysite/requirements.txt PYTHON_VERSION=3.13 \
                    DJANGO_SETTINGS=stack_settings.dev DJANGO_PROJECT_SETTINGS=mysite.settings \
                    DJANGO_APP=mysite.wsgi:application DJANGO_WORKER_CLASS=sync BUILD_PACKAGES='' RUN_PACKAGES='' \
                    DEV_WEB_IMAGE=site-dev-web DJANGO_BUILD_CONTEXT=";
    assert!(run.stdout.contains(expected), "{}", run.stdout);
}

#[test]
fn asgi_serves_with_uvicorn_workers_and_the_layer_can_be_switched_off() {
    let sandbox = adopted(&format!("{GOOD}asgi = \"mysite.wsgi:application\"\nsettings-layer = false\n"));
    let run = sandbox.xtask(&["--dry-run", "dev"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(" DJANGO_SETTINGS=mysite.settings "), "{}", run.stdout);
    assert!(run.stdout.contains(" DJANGO_WORKER_CLASS=uvicorn.workers.UvicornWorker "), "{}", run.stdout);
}

#[test]
fn bad_descriptions_are_refused_in_one_line_before_anything_runs() {
    let cases = [
        ("dirr = \"mysite\"\n", "unknown field `dirr`, expected one of"),
        (&GOOD.replace("dir = \"mysite\"", "dir = \"my-site\"") as &str, "dir = \"my-site\": no such directory"),
        (
            &GOOD.replace("settings = \"mysite.settings\"\ndev", "settings = \"mysite.prod\"\ndev"),
            "neither mysite/prod.py",
        ),
        (&format!("{GOOD}dependencies = \"pyproject.toml\"\n"), "dependencies = \"pyproject.toml\": no such file"),
        (&format!("{GOOD}python = 3.12\n"), "invalid type: floating point `3.12`, expected a string"),
        (&GOOD.replace("dir = \"mysite\"", "dir = \"../elsewhere\""), "is not a path inside the repository"),
        (&format!("{GOOD}python = \"3.99\"\n"), "python = \"3.99\" has no base image python:3.99-slim"),
        (
            &format!("{GOOD}run-packages = [\"libpq5\", \"Libjpeg\"]\n"),
            "run-packages: \"Libjpeg\" is not a Debian package name",
        ),
    ];
    for (section, expected) in cases {
        let sandbox = adopted(section);
        let before = tree(&sandbox);
        for command in [&["dev"][..], &["--dry-run", "dev"], &["check"], &["migrate"], &["logs"]] {
            let run = sandbox.xtask(command);
            assert_eq!(run.code, 1, "{command:?} with {section}: {}", run.stderr);
            let lines = run.stderr_lines();
            assert_eq!(lines.len(), 1, "{}", run.stderr);
            assert!(lines[0].starts_with("error: [workspace.metadata.django] in Cargo.toml: "), "{}", lines[0]);
            assert!(lines[0].contains(expected), "{command:?}: {}", lines[0]);
            assert!(run.stdout.is_empty(), "{}", run.stdout);
        }
        assert_eq!(tree(&sandbox), before, "a refused description changed a file");
    }
}

#[test]
fn bad_processes_are_refused_in_one_line_before_anything_runs() {
    let table = |name: &str, keys: &str| format!("{GOOD}\n[workspace.metadata.django.processes.{name}]\n{keys}\n");
    let section = |name: &str| format!("error: [workspace.metadata.django.processes.{name}] in Cargo.toml: ");
    let cases = [
        (table("worker", "command = \"celery -A mysite worker\"\nreplica = 2"), section("worker") + "unknown field `replica`"),
        (table("worker", "command = \"  \""), section("worker") + "command is empty: set the command the web image runs for it"),
        (table("web", "command = \"gunicorn mysite.wsgi\""), section("web") + "a process cannot be named \"web\", the name of a service of the stacks' own"),
        (
            table("beat", "command = \"celery -A mysite beat\"\nsingleton = true\nreplicas = 2"),
            section("beat") + "singleton = true with replicas = 2: a singleton runs once; set replicas = 1 or drop singleton",
        ),
        (
            table("beat", "command = \"celery -A mysite beat\""),
            section("beat") + "its command runs Celery's scheduler (beat), of which two at once would send every task twice: set singleton = true",
        ),
    ];
    for (manifest, expected) in cases {
        let sandbox = adopted("");
        sandbox.write("Cargo.toml", &format!("[workspace]\n\n[workspace.metadata.django]\n{manifest}"));
        assert_refused_in_one_line(&sandbox, &expected);
    }
    let sandbox = adopted(GOOD);
    sandbox.write("Procfile", "web: gunicorn mysite.wsgi\nworker celery -A mysite worker\n");
    assert_refused_in_one_line(
        &sandbox,
        "error: Procfile line 2: \"worker celery -A mysite worker\" is not `NAME: command`: fix the line",
    );
}

/// Every stack command stops at once with one line starting with `expected`, and no file changes.
fn assert_refused_in_one_line(sandbox: &Sandbox, expected: &str) {
    let before = tree(sandbox);
    for command in [&["dev"][..], &["--dry-run", "dev"], &["check"], &["logs"]] {
        let run = sandbox.xtask(command);
        assert_eq!(run.code, 1, "{command:?}: {}", run.stderr);
        let lines = run.stderr_lines();
        assert!(lines.len() == 1 && lines[0].starts_with(expected), "{command:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    assert_eq!(tree(sandbox), before, "a refused description changed a file");
}

#[test]
fn a_requirements_file_missing_from_the_directory_is_named() {
    let sandbox = adopted(GOOD);
    fs::remove_file(sandbox.root().join("mysite/requirements.txt")).unwrap();
    let run = sandbox.xtask(&["dev"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("dependencies = \"requirements.txt\": no such file in mysite"), "{}", run.stderr);
}

#[test]
fn a_requirements_include_that_is_missing_is_named() {
    let sandbox = adopted(GOOD);
    sandbox.write("mysite/requirements.txt", "-r requirements/base.txt\ngunicorn==23.0.0\n");
    let before = tree(&sandbox);
    let run = sandbox.xtask(&["--dry-run", "dev"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let expected = "error: [workspace.metadata.django] in Cargo.toml: dependencies = \"requirements.txt\": \
                    mysite/requirements.txt line 1: includes \"requirements/base.txt\", and mysite/requirements/base.txt \
                    does not exist: fix the path (it is relative to mysite/requirements.txt)";
    assert_eq!(run.stderr_lines(), [expected]);
    assert_eq!(tree(&sandbox), before, "a refused description changed a file");
}

#[test]
fn one_settings_module_serves_both_stacks() {
    let sandbox = adopted(&GOOD.replace("dev-settings = \"mysite.settings\"\n", ""));
    let run = sandbox.xtask(&["--dry-run", "dev"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(" DJANGO_PROJECT_SETTINGS=mysite.settings "), "{}", run.stdout);
}
