//! Bringing your own Django project: a project made by Django's own `django-admin
//! startproject` and `startapp` (run on the host, from a virtualenv of the cached wheels),
//! with a model, a template and a static file, adopted by following the adoption guide
//! (docs/src/your-project.md) step by step: the pipeline's paths copied in, the description written, nothing
//! else of the project touched. And the repository `cargo xtask new` makes.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::harness::{copy_paths, docker_ok, git, host_venv, repo, run_ok, text, timing, wait_for, Project};
use super::http::Site;
use super::{assert_stack_gone, exec_bytes, get_ok, http, is_hashed, wait_for_page};

/// Step 1 of the guide: the paths of this repository to copy into yours.
const PIPELINE_PATHS: &[&str] = &["Cargo.toml", "Cargo.lock", ".cargo", "xtask", "docker"];

/// Step 3 of the guide: what to add to .gitignore, read from the guide's page itself so that
/// the scenario follows the guide as written (a path the guide forgets fails `release`'s
/// clean-tree check).
pub fn ignored() -> String {
    let guide = fs::read_to_string(repo().join("docs/src/your-project.md")).unwrap();
    let step = guide.split_once("3. Add to `.gitignore`:").expect("the guide's step 3").1;
    let step = step.split_once("\n4. ").expect("the guide's step 4").0;
    let paths: Vec<&str> = step.split('`').skip(1).step_by(2).collect();
    assert!(paths.contains(&"/.env.prod"), "step 3 lists no env file: {paths:?}");
    paths.iter().map(|p| format!("{p}\n")).collect()
}

/// `python -m django ...` (what `django-admin` runs) or `python manage.py ...` on the host.
pub fn django(dir: &Path, args: &[&str]) {
    run_ok(
        Command::new(host_venv().join("bin/python")).args(args).current_dir(dir).env_remove("DJANGO_SETTINGS_MODULE"),
    );
}

/// A Django project as its team has it before adopting the pipeline: `mysite/` made by
/// startproject, an app `pages` made by startapp with a model, a view, a template and a
/// static file, and its migration made by makemigrations; its dependencies in
/// `pyproject.toml`, locked by `uv lock` against `index_url`.
fn startproject(root: &Path, index_url: &str) {
    fs::create_dir_all(root).unwrap();
    django(root, &["-m", "django", "startproject", "mysite"]);
    let site = root.join("mysite");
    django(&site, &["manage.py", "startapp", "pages"]);
    let write = |relative: &str, text: &str| {
        let path = site.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    write(
        "pages/models.py",
        "from django.db import models\n\n\nclass Note(models.Model):\n    text = models.CharField(max_length=200)\n",
    );
    write("pages/views.py", "from django.shortcuts import render\n\n\ndef home(request):\n    return render(request, \"pages/home.html\")\n");
    write(
        "pages/templates/pages/home.html",
        "{% load static %}<!doctype html>\n<link rel=\"stylesheet\" href=\"{% static 'pages/site.css' %}\">\n<h1>Adopted site</h1>\n",
    );
    write("pages/static/pages/site.css", "body { font-family: sans-serif; color: #123456; }\n");
    let urls = fs::read_to_string(site.join("mysite/urls.py")).unwrap();
    let urls =
        urls.replace("from django.urls import path", "from django.urls import path\n\nfrom pages.views import home");
    write("mysite/urls.py", &urls.replace("urlpatterns = [", "urlpatterns = [\n    path(\"\", home),"));
    let settings = fs::read_to_string(site.join("mysite/settings.py")).unwrap();
    let with_app = settings.replacen("INSTALLED_APPS = [", "INSTALLED_APPS = [\n    \"pages\",", 1);
    assert_ne!(with_app, settings, "startproject's settings have no INSTALLED_APPS list");
    write("mysite/settings.py", &with_app);
    django(&site, &["manage.py", "makemigrations", "pages"]);
    fs::remove_file(site.join("db.sqlite3")).ok();
    let pins = fs::read_to_string(repo().join("project-template/requirements.txt")).unwrap();
    let wanted: Vec<String> = pins
        .lines()
        .filter(|l| ["Django==", "gunicorn==", "psycopg["].iter().any(|p| l.starts_with(p)))
        .map(|l| format!("    \"{l}\",\n"))
        .collect();
    let pyproject = format!(
        "[project]\nname = \"mysite\"\nversion = \"1.0.0\"\nrequires-python = \"==3.11.*\"\ndependencies = [\n{}]\n\n\
         # Deployed on Linux only: lock no other platform's packages.\n\
         [tool.uv]\nenvironments = [\"sys_platform == 'linux'\"]\n",
        wanted.concat()
    );
    write("pyproject.toml", &pyproject);
    run_ok(
        Command::new(host_venv().join("bin/uv"))
            .args(["lock", "--quiet", "--no-cache", "--default-index", index_url])
            .current_dir(&site),
    );
}

/// The adoption guide (docs/src/your-project.md), step by step, with `keys` as the description (the
/// lines after `[workspace.metadata.django]`).
pub fn follow_the_guide(root: &Path, keys: &str) {
    // 1. Copy the pipeline's paths into the repository.
    copy_paths(PIPELINE_PATHS, root);
    // 2. Describe the project in Cargo.toml's [workspace.metadata.django].
    let manifest = root.join("Cargo.toml");
    let cargo = fs::read_to_string(&manifest).unwrap();
    let at = cargo.find("[workspace.metadata.django]").expect("Cargo.toml has the description section");
    fs::write(&manifest, format!("{}[workspace.metadata.django]\n{keys}", &cargo[..at])).unwrap();
    // 3. Keep the env files and build output out of git, after the project's own lines.
    let gitignore = fs::read_to_string(root.join(".gitignore")).unwrap_or_default();
    fs::write(root.join(".gitignore"), gitignore + &ignored()).unwrap();
}

/// A scratch repository holding a startproject project adopted through the guide.
fn adopted(scenario: &str) -> Project {
    // The lock is made against the project's own package index, which exists once the
    // project does: make the project first, then its files.
    let project = Project::made_by(scenario, |root| fs::create_dir_all(root).unwrap());
    let root = project.root();
    startproject(&root, project.index_url());
    // The subdirectory project runs on bookworm's Python, the root one (adopt-root) on trixie's.
    let keys = "dir = \"mysite\"\nsettings = \"mysite.settings\"\nwsgi = \"mysite.wsgi\"\npython = \"3.11\"\n\
                dependencies = \"pyproject.toml\"\n";
    follow_the_guide(&root, keys);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "Adopt the Dockerized Django pipeline"]);
    project
}

/// `SELECT to_regclass(table)` in the stack's database: the table's name, or empty.
fn table(project: &Project, stack: &str, env_file: &str, name: &str) -> String {
    let query = format!("SELECT to_regclass('public.{name}')");
    project.psql(&project.container(stack, "db"), env_file, &query)
}

/// Bad descriptions are refused with one line before anything is built or started.
fn assert_bad_descriptions_refused(project: &Project) {
    let manifest = project.path("Cargo.toml");
    let good = fs::read_to_string(&manifest).unwrap();
    let cases = [
        ("dir = \"mysite\"", "dir = \"mysite2\"", "dir = \"mysite2\": no such directory"),
        (
            "settings = \"mysite.settings\"\n",
            "settings = \"mysite.production\"\n",
            "settings = \"mysite.production\": neither",
        ),
        // The dependency file named missing.
        ("dependencies = \"pyproject.toml\"", "dependencies = \"requirements-prod.txt\"", "no such file in mysite"),
    ];
    for (from, to, expected) in cases {
        assert!(good.contains(from), "the description changed: update this test");
        fs::write(&manifest, good.replacen(from, to, 1)).unwrap();
        for args in [&["prod"][..], &["dev", "--detach"], &["check", "--prod"]] {
            let out = project.xtask(args);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?} with `{to}` was not refused: {stderr}");
            assert!(stderr.contains(expected) && stderr.lines().count() == 1, "{args:?}: {stderr}");
        }
    }
    fs::write(&manifest, good).unwrap();
    assert_stack_gone(project, "dev");
    assert_stack_gone(project, "prod");
    assert!(
        !super::harness::docker(&["image", "inspect", &project.web_image()]).status.success(),
        "an image was built"
    );
}

/// The production stack of an adopted project: healthy through nginx, its page and its
/// hashed, cached static file on `port`; `migrate --prod` and `check --prod` pass.
fn assert_prod_serves(project: &Project, port: Site) {
    project.ok(&["check", "--prod"]);
    project.timed("prod cold start to healthy", &["prod"]);
    project.ok(&["migrate", "--prod"]);
    assert_eq!(
        table(project, "prod", ".env.prod", "pages_note"),
        "pages_note",
        "migrate did not create the model's table"
    );
    let home = get_ok(port, "/");
    assert!(home.text().contains("<h1>Adopted site</h1>"), "unexpected page:\n{home}");
    assert_eq!(home.header("server"), Some("nginx"), "not answered by nginx:\n{home}");
    let css = http::between(&home.text(), "href=\"/static/", "\"").expect("the page links its stylesheet").to_owned();
    assert!(css.starts_with("pages/site.") && is_hashed(&css), "the stylesheet URL carries no content hash: {css}");
    let served = get_ok(port, &format!("/static/{css}"));
    let web = project.container("prod", "web");
    assert!(
        served.body == exec_bytes(&web, &format!("/app/staticfiles/{css}")),
        "/static/{css} differs from the collected file"
    );
    assert!(text(&served.body).contains("#123456"), "not the project's stylesheet");
    let cache = served.header("cache-control").unwrap_or_default();
    assert!(cache.contains("max-age=31536000") && cache.contains("immutable"), "Cache-Control: {cache}");
}

/// The adopted project through both stacks and a release, as its team would use them;
/// returns it with its production stack still up.
fn adopt_and_run(scenario: &str) -> Project {
    let started = Instant::now();
    let project = adopted(scenario);
    timing(&format!("{scenario}: startproject and the guide"), started.elapsed());
    let (port, prod_port) = (Site::plain(project.init_dev()), project.init_prod());
    assert_bad_descriptions_refused(&project);
    assert_dev_serves(&project, port);
    assert_prod_serves(&project, prod_port);

    // release: the project's static files, hashed, in the archive.
    git(&project.root(), &["tag", "v1.0.0"]);
    project.timed("release", &["release"]);
    let archive = project.path(&format!("dist/{}-1.0.0-static.tar.gz", project.name));
    let listing = run_ok(Command::new("tar").arg("-tzf").arg(&archive));
    assert!(
        listing.lines().any(|l| l.starts_with("pages/site.") && is_hashed(l)),
        "no hashed stylesheet in:\n{listing}"
    );
    assert!(listing.lines().any(|l| l.starts_with("admin/css/")), "the admin's static files are missing:\n{listing}");
    project.ok(&["verify", &project.path("dist").to_string_lossy()]);
    project
}

/// dev: the page, a template edit picked up, migrate creates the model's table.
fn assert_dev_serves(project: &Project, port: Site) {
    let started = Instant::now();
    project.ok(&["dev", "--detach"]);
    let home = wait_for_page(port, "/", Duration::from_secs(180));
    timing(&format!("{}: dev cold start to first page", project.scenario), started.elapsed());
    assert!(home.text().contains("<h1>Adopted site</h1>"), "unexpected page:\n{home}");
    assert_eq!(table(project, "dev", ".env", "pages_note"), "", "the table exists before migrate");
    project.ok(&["migrate"]);
    assert_eq!(table(project, "dev", ".env", "pages_note"), "pages_note", "migrate did not create the model's table");
    let template = project.path("mysite/pages/templates/pages/home.html");
    let html = fs::read_to_string(&template).unwrap();
    fs::write(&template, html.replace("<h1>Adopted site</h1>", "<h1>Adopted site, edited</h1>")).unwrap();
    let edited = wait_for(Duration::from_secs(30), Duration::from_millis(250), || {
        http::get(port, "/").ok().filter(|r| r.status == 200 && r.text().contains("Adopted site, edited"))
    });
    assert!(edited.is_some(), "the edited template was not served within 30s");
    fs::write(&template, html).unwrap();
    project.ok(&["down", "--volumes"]);
}

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn an_adopted_startproject_project_installs_from_uv_lock_and_runs_in_dev_prod_and_release() {
    // A plain requirements file is adopt-root's (split over three files); this project
    // installs from pyproject.toml and uv.lock, in the dev image and the production one.
    let project = adopt_and_run("adopt-uv");
    assert!(project.path("mysite/uv.lock").is_file(), "uv lock wrote no uv.lock");
    let web = project.container("prod", "web");
    let running = docker_ok(&["exec", &web, "python", "-c", "import django; print(django.__version__)"]);
    let pins = fs::read_to_string(repo().join("project-template/requirements.txt")).unwrap();
    assert!(pins.contains(&format!("Django=={running}")), "the image runs Django {running}, not the locked version");
}

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn a_new_repository_serves_its_dev_stack() {
    let project = Project::made_by("new", |root| {
        run_ok(
            Command::new(env!("CARGO_BIN_EXE_xtask"))
                .args(["new", &root.to_string_lossy(), "--name", "shop"])
                .env_remove("XTASK_ROOT")
                .env("GIT_AUTHOR_NAME", "e2e")
                .env("GIT_AUTHOR_EMAIL", "e2e@example.invalid")
                .env("GIT_COMMITTER_NAME", "e2e")
                .env("GIT_COMMITTER_EMAIL", "e2e@example.invalid"),
        );
    });
    assert!(project.path("project-template/shop/settings/dev.py").is_file());
    let port = Site::plain(project.init_dev());
    let started = Instant::now();
    project.ok(&["dev", "--detach"]);
    project.ok(&["migrate"]);
    let home = wait_for_page(port, "/", Duration::from_secs(180));
    timing("new: dev cold start to first page", started.elapsed());
    assert!(home.text().contains("<h1>It works</h1>"), "unexpected page:\n{home}");
    let web = project.container("dev", "web");
    let settings = docker_ok(&["exec", &web, "printenv", "DJANGO_SETTINGS_MODULE"]);
    assert_eq!(settings, "shop.settings.dev");
    project.ok(&["down", "--volumes"]);
    assert_stack_gone(&project, "dev");
}
