"""Settings of `cargo xtask test`: the project's test suite in the production image.

The production settings (DJANGO_TEST_BASE_SETTINGS: what the image runs, the settings
layer's or the project's own), less what only makes sense behind nginx's HTTPS: Django's
test client speaks plain HTTP, so the redirect to HTTPS would answer every request with a
301, and Secure cookies would never come back. Static files are read from where the image
collected them when it was built, as there is no `static` volume in a test run.
"""

import os
from importlib import import_module

_base = import_module(os.environ["DJANGO_TEST_BASE_SETTINGS"])
globals().update({name: value for name, value in vars(_base).items() if name.isupper()})

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
STATIC_ROOT = "/opt/static"
