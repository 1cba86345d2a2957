"""The home page and its static files."""

from django.contrib.staticfiles import finders
from django.test import TestCase


class HomePageTests(TestCase):
    def test_home_page_links_css_and_js(self):
        response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, 'href="/static/core/site.css"')
        self.assertContains(response, 'src="/static/core/site.js"')

    def test_static_files_exist(self):
        for name in ["core/site.css", "core/site.js"]:
            with self.subTest(name=name):
                self.assertIsNotNone(finders.find(name))
