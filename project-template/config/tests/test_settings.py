"""Shape of the settings modules, each loaded in a fresh interpreter with a controlled env.

Settings are read at import time, so every case runs `python` in a subprocess whose
environment holds only the variables the case sets (plus the interpreter's own).
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from django.test import SimpleTestCase

PROJECT_DIR = Path(__file__).resolve().parents[2]

SETTINGS_VARIABLES = {
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "DJANGO_SETTINGS_MODULE",
}
SETTINGS_PREFIXES = ("POSTGRES_", "SECURE_")

PRINT_SETTINGS = """
import json, sys
from django.conf import settings
print(json.dumps({name: getattr(settings, name) for name in sys.argv[1:]}, default=str))
"""


def production_env(**overrides):
    """A production-like environment: debug off, a long random key, a real host name."""
    values = {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "www.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://www.example.com",
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def run_python(args, settings_module, variables):
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in SETTINGS_VARIABLES and not name.startswith(SETTINGS_PREFIXES)
    }
    env.update(variables, DJANGO_SETTINGS_MODULE=settings_module)
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


class SettingsCase(SimpleTestCase):
    def load(self, names, settings_module="config.settings.prod", **variables):
        result = run_python(["-c", PRINT_SETTINGS, *names], settings_module, variables)
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout)

    def load_fails(self, settings_module="config.settings.prod", **variables):
        result = run_python(["-c", PRINT_SETTINGS, "DEBUG"], settings_module, variables)
        self.assertNotEqual(result.returncode, 0, result.stdout)
        return result.stderr


class ProductionSettingsTests(SettingsCase):
    def test_secure_shape_by_default(self):
        values = self.load(
            [
                "DEBUG",
                "STORAGES",
                "SECURE_PROXY_SSL_HEADER",
                "SECURE_SSL_REDIRECT",
                "SESSION_COOKIE_SECURE",
                "CSRF_COOKIE_SECURE",
                "SECURE_HSTS_SECONDS",
                "SECURE_HSTS_INCLUDE_SUBDOMAINS",
                "SECURE_HSTS_PRELOAD",
                "SILENCED_SYSTEM_CHECKS",
                "ALLOWED_HOSTS",
                "CSRF_TRUSTED_ORIGINS",
            ],
            **production_env(),
        )
        self.assertIs(values["DEBUG"], False)
        self.assertEqual(
            values["STORAGES"]["staticfiles"]["BACKEND"],
            "config.storage.CompressedManifestStaticFilesStorage",
        )
        self.assertEqual(values["SECURE_PROXY_SSL_HEADER"], ["HTTP_X_FORWARDED_PROTO", "https"])
        self.assertIs(values["SECURE_SSL_REDIRECT"], True)
        self.assertIs(values["SESSION_COOKIE_SECURE"], True)
        self.assertIs(values["CSRF_COOKIE_SECURE"], True)
        self.assertEqual(values["SECURE_HSTS_SECONDS"], 31536000)
        self.assertIs(values["SECURE_HSTS_INCLUDE_SUBDOMAINS"], True)
        self.assertIs(values["SECURE_HSTS_PRELOAD"], True)
        self.assertEqual(values["SILENCED_SYSTEM_CHECKS"], [])
        self.assertEqual(values["ALLOWED_HOSTS"], ["www.example.com"])
        self.assertEqual(values["CSRF_TRUSTED_ORIGINS"], ["https://www.example.com"])

    def test_static_storage_is_a_manifest_storage(self):
        from django.contrib.staticfiles.storage import ManifestStaticFilesStorage

        from config.storage import CompressedManifestStaticFilesStorage

        self.assertTrue(
            issubclass(CompressedManifestStaticFilesStorage, ManifestStaticFilesStorage)
        )

    def test_hsts_and_redirect_come_from_env(self):
        values = self.load(
            ["SECURE_HSTS_SECONDS", "SECURE_SSL_REDIRECT", "SILENCED_SYSTEM_CHECKS"],
            **production_env(SECURE_HSTS_SECONDS="600", SECURE_SSL_REDIRECT="no"),
        )
        self.assertEqual(values["SECURE_HSTS_SECONDS"], 600)
        self.assertIs(values["SECURE_SSL_REDIRECT"], False)
        # Only the redirect warning is silenced, and only because it was switched off.
        self.assertEqual(values["SILENCED_SYSTEM_CHECKS"], ["security.W008"])

    def test_secret_key_is_required(self):
        stderr = self.load_fails(**production_env(SECRET_KEY=None))
        self.assertIn("SECRET_KEY is required", stderr)

    def test_allowed_hosts_is_required(self):
        stderr = self.load_fails(**production_env(ALLOWED_HOSTS=" , "))
        self.assertIn("ALLOWED_HOSTS is required", stderr)

    def test_bad_debug_value_is_named(self):
        stderr = self.load_fails(**production_env(DEBUG="maybe"))
        self.assertIn("DEBUG must be one of", stderr)
        self.assertIn("'maybe'", stderr)

    def test_deploy_check_passes(self):
        for extra in [{}, {"SECURE_SSL_REDIRECT": "0"}]:
            with self.subTest(**extra):
                result = run_python(
                    ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                    "config.settings.prod",
                    production_env(**extra),
                )
                self.assertEqual(result.returncode, 0, result.stderr)

    def test_deploy_check_still_catches_debug(self):
        result = run_python(
            ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            "config.settings.prod",
            production_env(DEBUG="1"),
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("security.W018", result.stderr)


class DatabaseSettingsTests(SettingsCase):
    def test_postgres_from_env(self):
        values = self.load(
            ["DATABASES"],
            **production_env(
                POSTGRES_HOST="db.internal",
                POSTGRES_PORT="6432",
                POSTGRES_USER="app",
                POSTGRES_PASSWORD="secret",
                POSTGRES_DB="appdb",
            ),
        )
        database = values["DATABASES"]["default"]
        self.assertEqual(database["ENGINE"], "django.db.backends.postgresql")
        self.assertEqual(
            [database["HOST"], database["PORT"], database["USER"], database["NAME"]],
            ["db.internal", 6432, "app", "appdb"],
        )

    def test_sqlite_only_without_postgres_host(self):
        values = self.load(["DATABASES"], **production_env(POSTGRES_USER="ignored"))
        self.assertEqual(values["DATABASES"]["default"]["ENGINE"], "django.db.backends.sqlite3")

    def test_postgres_password_is_required_with_a_host(self):
        stderr = self.load_fails(
            **production_env(POSTGRES_HOST="db", POSTGRES_USER="app", POSTGRES_DB="app")
        )
        self.assertIn("POSTGRES_PASSWORD is required", stderr)


class DevelopmentSettingsTests(SettingsCase):
    def test_runs_without_any_variable(self):
        values = self.load(["DEBUG", "SECRET_KEY"], settings_module="config.settings.dev")
        self.assertIs(values["DEBUG"], True)
        self.assertTrue(values["SECRET_KEY"])

    def test_debug_is_parsed_strictly(self):
        stderr = self.load_fails(settings_module="config.settings.dev", DEBUG="off")
        self.assertIn("'off'", stderr)
