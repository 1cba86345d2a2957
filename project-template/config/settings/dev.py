"""Development settings: DEBUG on unless the environment says otherwise, a throwaway key."""

from config import env

from .base import *  # noqa: F403

DEBUG = env.boolean("DEBUG", default=True)

# Only for local development; the production settings require SECRET_KEY.
SECRET_KEY = env.string(
    "SECRET_KEY", default="django-insecure-development-only-key-never-use-in-production"
)

# Empty means Django's DEBUG default: localhost, 127.0.0.1 and [::1].
ALLOWED_HOSTS = env.comma_list("ALLOWED_HOSTS", default=[])
