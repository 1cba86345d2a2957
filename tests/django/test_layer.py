"""The settings layer (docker/stack_settings) over a project made by `django-admin
startproject`, whose settings read nothing from the environment.

Settings are read at import time, so every case runs `manage.py` in a fresh interpreter
whose environment holds only the variables the case sets. The project is made in a
temporary directory by Django's own startproject, once for the module.
"""

import json
import os
import secrets
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

LAYER_PATH = Path(__file__).resolve().parents[2] / "docker"

PRINT_SETTINGS = """
import json, sys
import django
django.setup()
from django.conf import settings
print(json.dumps({name: getattr(settings, name) for name in sys.argv[1:]}, default=str))
"""


def production_env(**overrides):
    values = {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "www.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://www.example.com",
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


class LayerTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.project = Path(cls.tmp.name) / "mysite"
        cls.project.mkdir()
        made = subprocess.run(
            [sys.executable, "-m", "django", "startproject", "mysite", str(cls.project)],
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, made.stderr

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_python(self, args, settings_module, variables):
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(LAYER_PATH)}
        env.update(variables, DJANGO_SETTINGS_MODULE=settings_module)
        env.setdefault("DJANGO_PROJECT_SETTINGS", "mysite.settings")
        return subprocess.run(
            [sys.executable, *args], cwd=self.project, env=env, capture_output=True, text=True, timeout=120
        )

    def settings(self, module, variables, *names):
        result = self.run_python(["-c", PRINT_SETTINGS, *names], module, variables)
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout)

    def deploy_check(self, module, variables):
        return self.run_python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], module, variables)

    def test_startproject_defaults_pass_the_deploy_check_through_the_layer(self):
        result = self.deploy_check("stack_settings.prod", production_env())
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_the_same_project_fails_the_deploy_check_on_its_own_settings(self):
        result = self.deploy_check("mysite.settings", production_env())
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("security.W004", result.stdout + result.stderr)

    def test_production_values_come_from_the_environment(self):
        env = production_env(
            POSTGRES_HOST="db", POSTGRES_USER="u", POSTGRES_PASSWORD="p", POSTGRES_DB="d", SECURE_HSTS_SECONDS="60"
        )
        got = self.settings(
            "stack_settings.prod", env,
            "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "DATABASES", "STATIC_ROOT",
            "STATIC_URL", "MEDIA_ROOT", "MEDIA_URL", "STORAGES", "MIDDLEWARE", "INSTALLED_APPS",
            "SECURE_HSTS_SECONDS", "SESSION_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "ROOT_URLCONF",
        )
        self.assertEqual(got["SECRET_KEY"], env["SECRET_KEY"])
        self.assertIs(got["DEBUG"], False)
        self.assertEqual(got["ALLOWED_HOSTS"], ["www.example.com"])
        self.assertEqual(got["CSRF_TRUSTED_ORIGINS"], ["https://www.example.com"])
        default = got["DATABASES"]["default"]
        self.assertEqual(
            (default["ENGINE"], default["HOST"], default["PORT"], default["USER"], default["NAME"]),
            ("django.db.backends.postgresql", "db", 5432, "u", "d"),
        )
        self.assertEqual((got["STATIC_ROOT"], got["STATIC_URL"]), ("/app/staticfiles", "/static/"))
        self.assertEqual((got["MEDIA_ROOT"], got["MEDIA_URL"]), ("/app/media", "/media/"))
        self.assertEqual(
            got["STORAGES"]["staticfiles"]["BACKEND"], "stack_settings.storage.CompressedManifestStaticFilesStorage"
        )
        self.assertEqual(got["MIDDLEWARE"][0], "stack_settings.health.HealthCheckMiddleware")
        self.assertIn("django.middleware.security.SecurityMiddleware", got["MIDDLEWARE"])
        # The project's own settings stay: its apps and URLs.
        self.assertIn("django.contrib.admin", got["INSTALLED_APPS"])
        self.assertEqual(got["ROOT_URLCONF"], "mysite.urls")
        self.assertEqual(got["SECURE_HSTS_SECONDS"], 60)
        self.assertIs(got["SESSION_COOKIE_SECURE"], True)
        self.assertIs(got["SECURE_SSL_REDIRECT"], True)

    def test_values_are_parsed_strictly(self):
        for name, value in [("DEBUG", "maybe"), ("POSTGRES_PORT", "eighty"), ("SECURE_SSL_REDIRECT", "ture")]:
            with self.subTest(name=name):
                env = production_env(**{name: value, "POSTGRES_HOST": "db", "POSTGRES_USER": "u",
                                        "POSTGRES_PASSWORD": "p", "POSTGRES_DB": "d"})
                result = self.run_python(["manage.py", "check"], "stack_settings.prod", env)
                self.assertNotEqual(result.returncode, 0)
                self.assertIn(f"{name} must be", result.stderr)
                self.assertIn(repr(value), result.stderr)

    def test_production_requires_a_key_and_hosts(self):
        for name in ["SECRET_KEY", "ALLOWED_HOSTS"]:
            with self.subTest(name=name):
                result = self.run_python(["manage.py", "check"], "stack_settings.prod", production_env(**{name: None}))
                self.assertNotEqual(result.returncode, 0)
                self.assertIn(f"{name} is required", result.stderr)

    def test_switching_the_redirect_off_silences_only_its_check(self):
        got = self.settings("stack_settings.prod", production_env(SECURE_SSL_REDIRECT="0"), "SILENCED_SYSTEM_CHECKS")
        self.assertEqual(got["SILENCED_SYSTEM_CHECKS"], ["security.W008"])
        result = self.deploy_check("stack_settings.prod", production_env(SECURE_SSL_REDIRECT="0"))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_development_keeps_debug_on_and_the_project_key_by_default(self):
        own = self.settings("mysite.settings", {}, "SECRET_KEY")
        got = self.settings("stack_settings.dev", {}, "DEBUG", "SECRET_KEY", "DATABASES", "SESSION_COOKIE_SECURE")
        self.assertIs(got["DEBUG"], True)
        self.assertEqual(got["SECRET_KEY"], own["SECRET_KEY"])
        self.assertEqual(got["DATABASES"]["default"]["ENGINE"], "django.db.backends.sqlite3")
        self.assertIs(got["SESSION_COOKIE_SECURE"], False)

    def test_the_health_probe_answers_through_the_layer(self):
        probe = (
            "import django; django.setup()\n"
            "from django.test import Client\n"
            "r = Client().get('/healthz', HTTP_HOST='127.0.0.1:8000')\n"
            "print(r.status_code, r.content.decode().strip())\n"
        )
        result = self.run_python(["-c", probe], "stack_settings.prod", production_env(SECURE_SSL_REDIRECT="1"))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), "200 ok")

    def test_a_missing_project_settings_module_is_named(self):
        result = self.run_python(["manage.py", "check"], "stack_settings.prod",
                                 production_env(DJANGO_PROJECT_SETTINGS="mysite.nothere"))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("mysite.nothere", result.stderr)


if __name__ == "__main__":
    unittest.main()
