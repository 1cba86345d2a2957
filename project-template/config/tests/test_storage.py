"""collectstatic with the production storage: hashed names plus deterministic .gz siblings."""

import gzip
import json
import tempfile
from pathlib import Path

from django.core.management import call_command
from django.test import SimpleTestCase, override_settings

from config.storage import write_gzip_sibling

PRODUCTION_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "config.storage.CompressedManifestStaticFilesStorage"},
}


class CollectstaticTests(SimpleTestCase):
    def collect(self, root):
        with override_settings(STATIC_ROOT=root, STORAGES=PRODUCTION_STORAGES):
            call_command("collectstatic", interactive=False, verbosity=0)
        return json.loads((Path(root) / "staticfiles.json").read_text())["paths"]

    def test_hashed_names_and_gzip_siblings(self):
        with tempfile.TemporaryDirectory() as root:
            paths = self.collect(root)
            for name in ["core/site.css", "core/site.js"]:
                hashed = paths[name]
                self.assertRegex(hashed, r"\.[0-9a-f]{12}\.(css|js)$")
                for stored in [name, hashed]:
                    original = (Path(root) / stored).read_bytes()
                    packed = (Path(root) / (stored + ".gz")).read_bytes()
                    self.assertEqual(gzip.decompress(packed), original)

    def test_gzip_siblings_are_reproducible(self):
        with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
            hashed = self.collect(first)["core/site.css"]
            self.collect(second)
            self.assertEqual(
                (Path(first) / (hashed + ".gz")).read_bytes(),
                (Path(second) / (hashed + ".gz")).read_bytes(),
            )

    def test_incompressible_file_gets_no_sibling(self):
        with tempfile.TemporaryDirectory() as root:
            path = Path(root) / "tiny.txt"
            path.write_bytes(b"x")
            self.assertFalse(write_gzip_sibling(path))
            self.assertFalse(path.with_name("tiny.txt.gz").exists())
