"""The settings layer's mechanism: the project's own settings, then what the stacks decide.

The project's settings module (DJANGO_PROJECT_SETTINGS) is imported unchanged and its
upper-case names are taken over; the values below replace them, read from the
environment with the strict readers of stack_settings.env, so a project adopts the
stacks without editing its settings.
"""

import importlib

from stack_settings import database as _database
from stack_settings import env

HEALTH_MIDDLEWARE = "stack_settings.health.HealthCheckMiddleware"
COMPRESSED_STORAGE = "stack_settings.storage.CompressedManifestStaticFilesStorage"
DEFAULT_STORAGE = {"BACKEND": "django.core.files.storage.FileSystemStorage"}

# Where the web image keeps its writable directories, which the stacks mount as volumes
# (static, media) and which nginx serves under /static/ and /media/.
STATIC_ROOT_IN_IMAGE = "/app/staticfiles"
MEDIA_ROOT_IN_IMAGE = "/app/media"


def own_settings():
    """The upper-case names of the project's settings module."""
    module = importlib.import_module(env.string("DJANGO_PROJECT_SETTINGS"))
    return {name: getattr(module, name) for name in dir(module) if name.isupper()}


def database(own):
    """PostgreSQL from POSTGRES_* when POSTGRES_HOST is set, else the project's databases."""
    host = env.string("POSTGRES_HOST", default=None)
    databases = dict(own.get("DATABASES", {}))
    if host is None:
        return databases
    databases["default"] = _database.postgres(host)
    return databases


def common(own, production):
    """What both stacks set: key, debug, hosts, database, files, the health probe."""
    middleware = [m for m in own.get("MIDDLEWARE", []) if m != HEALTH_MIDDLEWARE]
    key_default = env.REQUIRED if production else own.get("SECRET_KEY", env.REQUIRED)
    return {
        "SECRET_KEY": env.string("SECRET_KEY", default=key_default),
        "DEBUG": env.boolean("DEBUG", default=not production),
        "ALLOWED_HOSTS": env.comma_list("ALLOWED_HOSTS", default=env.REQUIRED if production else []),
        "CSRF_TRUSTED_ORIGINS": env.comma_list("CSRF_TRUSTED_ORIGINS", default=[]),
        "DATABASES": database(own),
        "STATIC_URL": "/static/",
        "STATIC_ROOT": env.string("STATIC_ROOT", default=STATIC_ROOT_IN_IMAGE),
        "MEDIA_URL": "/media/",
        "MEDIA_ROOT": env.string("MEDIA_ROOT", default=MEDIA_ROOT_IN_IMAGE),
        # First, so probes are answered before host validation and the HTTPS redirect.
        "MIDDLEWARE": [HEALTH_MIDDLEWARE, *middleware],
    }


def security(own):
    """Production: hashed static files, HTTPS behind nginx, HSTS, secure cookies.

    TLS terminates in front of nginx, which forwards the scheme in X-Forwarded-Proto and
    overwrites whatever a client sent, so that header can be trusted here.
    """
    redirect = env.boolean("SECURE_SSL_REDIRECT", default=True)
    subdomains = env.boolean("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    preload = env.boolean("SECURE_HSTS_PRELOAD", default=True)
    # A deploy check is silenced only when its protection was switched off on purpose.
    switched_off = [("security.W008", not redirect), ("security.W005", not subdomains), ("security.W021", not preload)]
    silenced = list(own.get("SILENCED_SYSTEM_CHECKS", []))
    silenced += [check for check, off in switched_off if off and check not in silenced]
    storages = dict(own.get("STORAGES", {"default": DEFAULT_STORAGE}))
    storages["staticfiles"] = {"BACKEND": COMPRESSED_STORAGE}
    return {
        "STORAGES": storages,
        "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
        "SECURE_SSL_REDIRECT": redirect,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": env.integer("SECURE_HSTS_SECONDS", default=31536000, minimum=0),
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": subdomains,
        "SECURE_HSTS_PRELOAD": preload,
        "SILENCED_SYSTEM_CHECKS": silenced,
    }
