"""The home page and its static files."""

from django.contrib.staticfiles import finders
from django.test import TestCase

# With the production settings the names carry a content hash (site.0123456789ab.css).
HASH = r"(\.[0-9a-f]{12})?"


class HomePageTests(TestCase):
    def test_home_page_links_css_and_js(self):
        response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        page = response.content.decode()
        self.assertRegex(page, rf'href="/static/core/site{HASH}\.css"')
        self.assertRegex(page, rf'src="/static/core/site{HASH}\.js"')

    def test_static_files_exist(self):
        for name in ["core/site.css", "core/site.js"]:
            with self.subTest(name=name):
                self.assertIsNotNone(finders.find(name))
