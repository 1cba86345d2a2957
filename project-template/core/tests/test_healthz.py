"""/healthz: 200 when the database answers a query, 503 when it does not."""

from unittest import mock

from django.db import OperationalError, connections
from django.test import TestCase, override_settings


class HealthzTests(TestCase):
    def test_ok_when_database_answers(self):
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, b"ok\n")
        self.assertEqual(response["Cache-Control"], "no-store")

    def test_unavailable_when_database_fails(self):
        failure = OperationalError("connection refused")
        with mock.patch.object(connections["default"], "cursor", side_effect=failure):
            with self.assertLogs(level="WARNING") as logs:
                response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 503)
        self.assertIn("connection refused", "\n".join(logs.output))
        self.assertEqual(response.content, b"unavailable\n")

    @override_settings(ALLOWED_HOSTS=["www.example.com"], SECURE_SSL_REDIRECT=True)
    def test_probe_skips_host_check_and_https_redirect(self):
        # The container healthcheck calls http://127.0.0.1:8000/healthz directly.
        response = self.client.get("/healthz", HTTP_HOST="127.0.0.1:8000")
        self.assertEqual(response.status_code, 200)
        with self.assertLogs("django.security", level="ERROR"):
            other = self.client.get("/", HTTP_HOST="127.0.0.1:8000")
        self.assertEqual(other.status_code, 400)
