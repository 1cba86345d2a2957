"""Production settings: behind nginx, TLS terminated in front of nginx, secrets required.

Must pass `python manage.py check --deploy --fail-level WARNING` with a production env.
"""

from config import env

from .base import *  # noqa: F403
from .base import STORAGES

DEBUG = env.boolean("DEBUG", default=False)
SECRET_KEY = env.string("SECRET_KEY")
ALLOWED_HOSTS = env.comma_list("ALLOWED_HOSTS")

# Hashed names let nginx cache them for a year; the .gz siblings feed nginx's gzip_static.
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "config.storage.CompressedManifestStaticFilesStorage"},
}

# TLS terminates in front of nginx. nginx forwards the scheme the terminator reported
# (or its own, http, when reached directly) in X-Forwarded-Proto and overwrites whatever
# else a client sent, so this header can be trusted here.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Default on: plain-HTTP requests are redirected to HTTPS. Set SECURE_SSL_REDIRECT=0 only
# when TLS is terminated upstream and that terminator already redirects (or refuses) plain
# HTTP, or for a local plain-HTTP test stack on 127.0.0.1. Cookies stay Secure either way,
# so a session or CSRF cookie never travels over a plain-HTTP hop a browser can see.
SECURE_SSL_REDIRECT = env.boolean("SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True

# HSTS is only sent on requests Django sees as HTTPS. Lower SECURE_HSTS_SECONDS while
# rolling out HTTPS; 0 turns HSTS off (and `check --deploy` then warns, on purpose).
SECURE_HSTS_SECONDS = env.integer("SECURE_HSTS_SECONDS", default=31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.boolean("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.boolean("SECURE_HSTS_PRELOAD", default=True)

# A deploy check is silenced only when the operator switched the matching protection off
# on purpose through the environment; every other warning still fails the deploy check.
SILENCED_SYSTEM_CHECKS = [
    check
    for check, switched_off in [
        ("security.W008", not SECURE_SSL_REDIRECT),  # TLS is terminated upstream
        ("security.W005", not SECURE_HSTS_INCLUDE_SUBDOMAINS),
        ("security.W021", not SECURE_HSTS_PRELOAD),
    ]
    if switched_off
]
