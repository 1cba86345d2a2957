"""The stacks' PostgreSQL database, from POSTGRES_* in the environment."""

from stack_settings import env


def postgres(host):
    """Django's settings for the PostgreSQL server at `host`, the rest read strictly."""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": host,
        "PORT": env.integer("POSTGRES_PORT", default=5432, minimum=1, maximum=65535),
        "USER": env.string("POSTGRES_USER"),
        "PASSWORD": env.string("POSTGRES_PASSWORD"),
        "NAME": env.string("POSTGRES_DB"),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        # Bounded so /healthz answers 503 well within the container healthcheck timeout.
        "OPTIONS": {"connect_timeout": 5},
    }
