"""Uploading a file stores it under MEDIA_ROOT, records a row and lists it by MEDIA_URL."""

import shutil
import tempfile
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase, override_settings

from core.models import Upload


class UploadTests(TestCase):
    def setUp(self):
        self.media_root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.media_root)
        settings_override = override_settings(MEDIA_ROOT=self.media_root, MEDIA_URL="/media/")
        settings_override.enable()
        self.addCleanup(settings_override.disable)

    def test_upload_creates_file_and_row(self):
        content = b"hello from the upload test\n"
        response = self.client.post(
            "/uploads/", {"file": SimpleUploadedFile("note.txt", content)}
        )
        self.assertRedirects(response, "/uploads/")

        upload = Upload.objects.get()
        self.assertEqual(upload.size, len(content))
        stored = Path(self.media_root) / upload.file.name
        self.assertEqual(stored.read_bytes(), content)
        self.assertTrue(upload.file.name.startswith("uploads/"))

        listing = self.client.get("/uploads/")
        self.assertContains(listing, f'href="/media/{upload.file.name}"')

    def test_form_page_renders(self):
        response = self.client.get("/uploads/")
        self.assertContains(response, 'enctype="multipart/form-data"')
        self.assertContains(response, "No uploads yet.")

    def test_oversized_upload_is_refused(self):
        with override_settings(MAX_UPLOAD_BYTES=4):
            response = self.client.post(
                "/uploads/", {"file": SimpleUploadedFile("big.bin", b"12345")}
            )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "are refused")
        self.assertFalse(Upload.objects.exists())
        self.assertEqual(list(Path(self.media_root).rglob("*.bin")), [])
