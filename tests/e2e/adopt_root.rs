//! A project as real ones are laid out, adopted by the adoption guide with nothing of it
//! edited but Cargo.toml and .gitignore: `manage.py` at the repository's root (`startproject
//! mysite .`), settings that read `BASE_DIR / ".env"` with python-dotenv and require a
//! variable of the project's own (from its own `.env.example`), whitenoise, requirements split
//! over files that include each other, psycopg2 built from source against Debian's libpq
//! (build-packages and run-packages), its own `.dockerignore` and its own tests, a Celery
//! worker in its Procfile; on trixie's Python 3.13. Secrets lie where a working tree has
//! them, and none may reach the image.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::adopt::{django, follow_the_guide};
use super::harness::{docker, docker_ok, git, repo, text, timing, wait_for, Project};
use super::http::{self, Site};
use super::{assert_secrets_in_no_layer, assert_stack_gone, get_ok, is_hashed, wait_for_page};

const GREETING: &str = "Hello from the example file of the project";

/// The description the guide's step 2 asks for.
const KEYS: &str = "dir = \".\"\nsettings = \"mysite.settings\"\nwsgi = \"mysite.wsgi\"\npython = \"3.13\"\n\
                    build-packages = [\"gcc\", \"libpq-dev\"]\nrun-packages = [\"libpq5\"]\n";

/// Files a working tree has that must never reach an image, each holding a marker of its own.
const SECRETS: &[(&str, &str)] = &[
    (".envrc", "export API_TOKEN=envrc-marker-3f9a1c\n"),
    ("deploy-key.pem", "-----BEGIN PRIVATE KEY-----\npem-marker-7b2e4d\n-----END PRIVATE KEY-----\n"),
    ("backups/site.dump", "PGDMP\u{1}dump-marker-c41d88\n"),
    ("stray.sql.gz", "sqlgz-marker-90ab3e\n"),
    ("id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\nssh-marker-5e6f70\n"),
    ("mysite/local.key", "key-marker-1a2b3c\n"),
    ("docs/internal.txt", "dockerignore-marker-d0c5d0\n"),
];

fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// The project before adoption: startproject at the root, an app with a model, a page that
/// shows a variable of its own, tests, split requirements, dotenv and whitenoise.
fn root_project(root: &Path) {
    fs::create_dir_all(root).unwrap();
    django(root, &["-m", "django", "startproject", "mysite", "."]);
    django(root, &["manage.py", "startapp", "pages"]);
    write(
        root,
        "pages/models.py",
        "from django.db import models\n\n\nclass Note(models.Model):\n    text = models.CharField(max_length=200)\n",
    );
    write(
        root,
        "pages/views.py",
        "from django.conf import settings\nfrom django.shortcuts import render\n\nfrom .models import Note\n\n\n\
         def home(request):\n    notes = [n.text for n in Note.objects.all()]\n    \
         return render(request, \"pages/home.html\", {\"greeting\": settings.GREETING, \"notes\": notes})\n",
    );
    write(
        root,
        "pages/templates/pages/home.html",
        "{% load static %}<!doctype html>\n<link rel=\"stylesheet\" href=\"{% static 'pages/site.css' %}\">\n\
         <h1>Root site</h1>\n<p id=\"greeting\">{{ greeting }}</p>\n<ul>{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul>\n",
    );
    write(root, "pages/static/pages/site.css", "body { color: #0a0b0c; }\n");
    write(
        root,
        "pages/tests.py",
        "from django.conf import settings\nfrom django.test import TestCase\n\nfrom .models import Note\n\n\n\
         class HomeTests(TestCase):\n    def test_home_lists_notes(self):\n        Note.objects.create(text=\"first note\")\n        \
         response = self.client.get(\"/\")\n        self.assertEqual(response.status_code, 200)\n        \
         self.assertContains(response, \"first note\")\n\n    def test_greeting_comes_from_the_environment(self):\n        \
         self.assertContains(self.client.get(\"/\"), settings.GREETING)\n\n    def test_runs_without_debug(self):\n        \
         self.assertFalse(settings.DEBUG)\n\n    def test_the_database_is_postgresql(self):\n        \
         from django.db import connection\n\n        self.assertEqual(connection.vendor, \"postgresql\")\n",
    );
    let urls = fs::read_to_string(root.join("mysite/urls.py")).unwrap();
    let urls =
        urls.replace("from django.urls import path", "from django.urls import path\n\nfrom pages.views import home");
    write(root, "mysite/urls.py", &urls.replace("urlpatterns = [", "urlpatterns = [\n    path(\"\", home),"));
    // The app and its migration first, with startproject's settings as they are.
    let settings = fs::read_to_string(root.join("mysite/settings.py")).unwrap();
    write(
        root,
        "mysite/settings.py",
        &settings.replacen("INSTALLED_APPS = [", "INSTALLED_APPS = [\n    \"pages\",", 1),
    );
    django(root, &["manage.py", "makemigrations", "pages"]);
    // A Celery app as its documentation lays it out, a task, and the Procfile that runs the
    // worker (after the migration: the host's virtualenv has Django only).
    write(
        root,
        "mysite/celery.py",
        "import os\n\nfrom celery import Celery\n\nos.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"mysite.settings\")\n\n\
         app = Celery(\"mysite\")\napp.config_from_object(\"django.conf:settings\", namespace=\"CELERY\")\napp.autodiscover_tasks()\n",
    );
    write(root, "mysite/__init__.py", "from .celery import app as celery_app\n\n__all__ = (\"celery_app\",)\n");
    write(
        root,
        "pages/tasks.py",
        "from celery import shared_task\n\nfrom .models import Note\n\n\n@shared_task\ndef add_note(text):\n    Note.objects.create(text=text)\n",
    );
    write(
        root,
        "Procfile",
        "web: gunicorn mysite.wsgi --log-file -\nworker: celery -A mysite worker --loglevel=INFO\n",
    );
    // Then what a real project's settings do: read .env with python-dotenv, require a
    // variable of their own, serve static files with whitenoise.
    let settings = fs::read_to_string(root.join("mysite/settings.py")).unwrap();
    let settings = settings
        .replace("from pathlib import Path", "import os\nfrom pathlib import Path\n\nfrom dotenv import load_dotenv")
        .replacen(
            "'django.middleware.security.SecurityMiddleware',",
            "'django.middleware.security.SecurityMiddleware',\n    'whitenoise.middleware.WhiteNoiseMiddleware',",
            1,
        );
    let settings = settings.replacen(
        "# Quick-start development settings",
        "load_dotenv(BASE_DIR / \".env\")\nGREETING = os.environ[\"GREETING\"]\nSTATIC_ROOT = BASE_DIR / \"staticfiles\"\n\
         CELERY_BROKER_URL = os.environ[\"REDIS_URL\"]\n\n# Quick-start development settings",
        1,
    );
    assert!(
        settings.contains("load_dotenv(BASE_DIR") && settings.contains("WhiteNoise"),
        "startproject's settings changed"
    );
    write(root, "mysite/settings.py", &settings);
    write(root, ".env.example", &format!("SECRET_KEY=change-me\nDEBUG=True\nGREETING={GREETING}\n"));
    write(root, ".dockerignore", "docs/\n*.md\n");
    write(root, "README.md", "# Root site\n");
    write(root, ".gitignore", "__pycache__/\n/staticfiles/\n");
    let pins = fs::read_to_string(repo().join("project-template/requirements.txt")).unwrap();
    let pin = |prefix: &str| pins.lines().find(|l| l.starts_with(prefix)).unwrap().to_owned();
    let extra = fs::read_to_string(repo().join("tests/e2e/support/requirements-e2e.txt")).unwrap();
    let extra = |prefix: &str| extra.lines().find(|l| l.starts_with(prefix)).unwrap().to_owned();
    write(root, "requirements.txt", "-r requirements/production.txt\n");
    let base = [
        pin("Django=="),
        pin("asgiref=="),
        pin("sqlparse=="),
        // The extra that brings the Redis transport's own dependencies, as Celery's docs say.
        pin("celery==").replace("celery==", "celery[redis]=="),
        pin("redis=="),
        extra("python-dotenv=="),
        extra("whitenoise=="),
    ];
    write(root, "requirements/base.txt", &(base.join("\n") + "\n"));
    write(root, "requirements/production.txt", &format!("-r base.txt\n{}\npsycopg2==2.9.13\n", pin("gunicorn==")));
    write(root, "requirements/dev.txt", "-r base.txt\n");
    for (path, content) in SECRETS {
        write(root, path, content);
    }
    fs::remove_file(root.join("db.sqlite3")).ok();
}

/// The project adopted through the guide, committed (its secrets git-ignored).
fn adopted() -> Project {
    let started = Instant::now();
    let project = Project::made_by("adopt-root", |root| {
        root_project(root);
        follow_the_guide(root, KEYS);
        let gitignore = fs::read_to_string(root.join(".gitignore")).unwrap();
        let secrets: Vec<&str> = SECRETS.iter().map(|(p, _)| *p).filter(|p| !p.starts_with("docs/")).collect();
        fs::write(root.join(".gitignore"), gitignore + &secrets.join("\n") + "\n").unwrap();
    });
    timing("adopt-root: startproject and the guide", started.elapsed());
    project
}

#[test]
#[ignore = "needs a Docker engine; run with --ignored"]
fn a_root_layout_project_with_dotenv_and_split_requirements_runs_and_leaks_nothing() {
    let project = adopted();
    let dev = Site::plain(project.init_dev());
    assert!(fs::read_to_string(project.path(".env")).unwrap().contains(&format!("GREETING={GREETING}")));

    // dev: the page, with the project's own variable; the host's .env is hidden, not unreadable.
    let started = Instant::now();
    project.ok(&["dev", "--detach"]);
    project.ok(&["migrate"]);
    let home = wait_for_page(dev, "/", Duration::from_secs(120));
    timing("adopt-root: dev cold start to first page", started.elapsed());
    assert!(home.text().contains(GREETING), "{home}");
    let web = project.container("dev", "web");
    assert_eq!(docker_ok(&["exec", &web, "cat", "/app/.env"]), "", "the host's .env is visible in dev");
    assert!(docker_ok(&["exec", &web, "cat", "/app/manage.py"]).contains("django"), "the code is not mounted");
    the_procfile_worker_runs_a_task(&project, "dev", dev);
    project.ok(&["down", "--volumes"]);

    // The project's own tests, in the production image, against a throwaway PostgreSQL.
    let tested = project.timed("test", &["test"]);
    let said = text(&tested.stderr) + &text(&tested.stdout);
    assert!(said.contains("Ran 4 tests") && said.contains("OK"), "{said}");
    let failing = project.xtask(&["test", "--", "pages.tests.NoSuchTests"]);
    assert_eq!(failing.status.code(), Some(1), "a failing suite exited {:?}", failing.status);
    assert_stack_gone(&project, "test");

    // prod: refused while a file holds a key by its content, then served over HTTPS.
    let site = project.init_prod();
    write(&project.root(), "notes/signing.txt", "-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n");
    let refused = project.xtask(&["check", "--prod"]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: notes/signing.txt is a private key and would enter the web image"), "{stderr}");
    fs::remove_dir_all(project.path("notes")).unwrap();
    project.ok(&["check", "--prod"]);
    project.timed("prod cold start to healthy", &["prod", "--with-db"]);
    project.ok(&["migrate", "--prod"]);
    let page = get_ok(site, "/");
    assert!(page.text().contains(GREETING) && page.text().contains("<h1>Root site</h1>"), "{page}");
    let css = http::between(&page.text(), "href=\"/static/", "\"").expect("a stylesheet").to_owned();
    assert!(css.starts_with("pages/site.") && is_hashed(&css), "{css}");
    assert!(text(&get_ok(site, &format!("/static/{css}")).body).contains("#0a0b0c"));
    the_procfile_worker_runs_a_task(&project, "prod", site);

    // The image: libpq at run time, no compiler, nothing of the secrets or of .dockerignore's.
    let image = project.web_image();
    let shell = |script: &str| docker(&["run", "--rm", "--entrypoint", "sh", &image, "-c", script]);
    assert!(shell("ldconfig -p | grep -q 'libpq.so.5 '").status.success(), "libpq5 is not in the image");
    assert!(!shell("command -v gcc || command -v cc").status.success(), "a compiler is in the image");
    assert!(shell("python -c 'import psycopg2'").status.success(), "psycopg2 does not import");
    let secret_key = project.env_value(".env.prod", "SECRET_KEY");
    let site_key = fs::read_to_string(project.path("certs/site-key.pem")).unwrap();
    let ca_key = fs::read_to_string(project.path("certs/ca-key.pem")).unwrap();
    let mut secrets: Vec<(&str, String)> = SECRETS.iter().map(|(path, content)| (*path, marker(content))).collect();
    secrets.push((".env.prod's SECRET_KEY", secret_key));
    secrets.push(("certs/site-key.pem", site_key.lines().nth(1).unwrap().to_owned()));
    secrets.push(("certs/ca-key.pem", ca_key.lines().nth(1).unwrap().to_owned()));
    let secrets: Vec<(&str, &str)> = secrets.iter().map(|(what, s)| (*what, s.as_str())).collect();
    assert_secrets_in_no_layer(&project, &image, &secrets);
    eprintln!("e2e: adopt-root: {} secrets searched for in every layer of {image}, 0 found", secrets.len());

    // release: its static files, and verify.
    git(&project.root(), &["tag", "v2.0.0"]);
    project.timed("release", &["release"]);
    project.ok(&["verify", &project.path("dist").to_string_lossy()]);

    // A system package the suite does not have is named, and nothing starts.
    project.ok(&["down", "--prod", "--volumes"]);
    project.edit("Cargo.toml", "run-packages = [\"libpq5\"]", "run-packages = [\"libpq5\", \"libjpeg-nonexistent\"]");
    let out = project.xtask(&["prod", "--with-db"]);
    let said = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    let last = said.lines().last().unwrap_or_default();
    let named = "error: cannot build the production images: run-packages in [workspace.metadata.django] of \
                 Cargo.toml: libjpeg-nonexistent: no such package in Debian GNU/Linux 13 (trixie): fix the name";
    assert!(last.starts_with(named), "{said}");
    assert_stack_gone(&project, "prod");
}

/// The Procfile's worker (its web line is the pipeline's own) runs in the stack, and a task
/// enqueued from a one-off container shows on the page once the worker ran it.
fn the_procfile_worker_runs_a_task(project: &Project, stack: &str, site: Site) {
    let worker = project.container(stack, "worker");
    let command = docker_ok(&["inspect", "--format", "{{json .Config.Cmd}}", &worker]);
    assert!(command.contains("exec celery -A mysite worker --loglevel=INFO"), "{command}");
    let note = format!("a note written by the {stack} worker");
    let enqueue = format!("from pages.tasks import add_note; add_note.delay({note:?})");
    let mut args = vec!["manage"];
    if stack == "prod" {
        args.push("--prod");
    }
    args.extend(["--", "shell", "-c", &enqueue]);
    project.ok(&args);
    let shown = wait_for(Duration::from_secs(60), Duration::from_millis(500), || {
        get_ok(site, "/").text().contains(&note).then_some(())
    });
    assert!(shown.is_some(), "the {stack} worker did not run the task within 60s");
}

/// The marker a secret file's content carries (its last word).
fn marker(content: &str) -> String {
    content
        .split(|c: char| c.is_whitespace() || c == '=' || c == '\u{1}')
        .find(|w| w.contains("marker"))
        .unwrap()
        .to_owned()
}
