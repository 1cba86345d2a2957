"""The strict environment readers in config.env."""

import os
import tempfile
from unittest import mock

from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase

from config import env


def environ(**values):
    return mock.patch.dict(os.environ, values)


class BooleanTests(SimpleTestCase):
    def test_accepts_the_six_words_in_any_case(self):
        cases = {"1": True, "TRUE": True, "Yes": True, "0": False, "false": False, "NO": False}
        for raw, expected in cases.items():
            with self.subTest(raw=raw), environ(FLAG=raw):
                self.assertIs(env.boolean("FLAG"), expected)

    def test_bad_value_names_variable_and_value(self):
        for raw in ["maybe", "on", "2", "ture", "y"]:
            with self.subTest(raw=raw), environ(DEBUG=raw):
                with self.assertRaises(ImproperlyConfigured) as caught:
                    env.boolean("DEBUG", default=False)
                self.assertIn("DEBUG", str(caught.exception))
                self.assertIn(repr(raw), str(caught.exception))

    def test_unset_or_blank_uses_default(self):
        with mock.patch.dict(os.environ, clear=True):
            self.assertIs(env.boolean("FLAG", default=True), True)
        with environ(FLAG="  "):
            self.assertIs(env.boolean("FLAG", default=False), False)

    def test_unset_without_default_is_an_error(self):
        with mock.patch.dict(os.environ, clear=True):
            with self.assertRaisesMessage(ImproperlyConfigured, "FLAG is required"):
                env.boolean("FLAG")


class StringTests(SimpleTestCase):
    def test_strips_whitespace(self):
        with environ(NAME="  value  "):
            self.assertEqual(env.string("NAME"), "value")

    def test_empty_required_value_is_an_error(self):
        with environ(SECRET_KEY=""):
            with self.assertRaisesMessage(ImproperlyConfigured, "SECRET_KEY is required"):
                env.string("SECRET_KEY")


class FileTests(SimpleTestCase):
    def test_a_secret_file_gives_the_value_stripped_of_its_newline(self):
        with tempfile.NamedTemporaryFile("w", suffix=".secret") as file:
            file.write("from-a-file\n")
            file.flush()
            with mock.patch.dict(os.environ, {"SECRET_KEY_FILE": file.name}, clear=True):
                self.assertEqual(env.string("SECRET_KEY"), "from-a-file")

    def test_both_forms_at_once_are_refused(self):
        with tempfile.NamedTemporaryFile("w") as file:
            with environ(SECRET_KEY="inline", SECRET_KEY_FILE=file.name):
                with self.assertRaisesMessage(ImproperlyConfigured, "both SECRET_KEY and SECRET_KEY_FILE"):
                    env.string("SECRET_KEY")

    def test_an_unreadable_file_names_the_variable_and_the_path(self):
        with mock.patch.dict(os.environ, {"SECRET_KEY_FILE": "/nonexistent/key"}, clear=True):
            with self.assertRaisesMessage(ImproperlyConfigured, "SECRET_KEY_FILE='/nonexistent/key' cannot be read"):
                env.string("SECRET_KEY")

    def test_an_empty_file_counts_as_not_given(self):
        with tempfile.NamedTemporaryFile("w") as file:
            with mock.patch.dict(os.environ, {"PORT_FILE": file.name}, clear=True):
                self.assertEqual(env.integer("PORT", default=5432), 5432)


class IntegerTests(SimpleTestCase):
    def test_parses_and_bounds(self):
        with environ(PORT="5433"):
            self.assertEqual(env.integer("PORT", minimum=1, maximum=65535), 5433)
        with environ(PORT="70000"):
            with self.assertRaisesMessage(ImproperlyConfigured, "PORT must be at most 65535"):
                env.integer("PORT", minimum=1, maximum=65535)

    def test_bad_value_names_variable_and_value(self):
        with environ(SECURE_HSTS_SECONDS="1y"):
            with self.assertRaisesMessage(ImproperlyConfigured, "SECURE_HSTS_SECONDS must be an integer, got '1y'"):
                env.integer("SECURE_HSTS_SECONDS", default=0)


class CommaListTests(SimpleTestCase):
    def test_splits_strips_and_drops_blank_items(self):
        with environ(ALLOWED_HOSTS=" a.example , ,b.example,, "):
            self.assertEqual(env.comma_list("ALLOWED_HOSTS"), ["a.example", "b.example"])

    def test_only_blank_items_counts_as_unset(self):
        with environ(ALLOWED_HOSTS=" , ,"):
            self.assertEqual(env.comma_list("ALLOWED_HOSTS", default=[]), [])
            with self.assertRaisesMessage(ImproperlyConfigured, "ALLOWED_HOSTS is required"):
                env.comma_list("ALLOWED_HOSTS")
