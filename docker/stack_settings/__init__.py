"""What the stacks add to any Django project, shipped into the web image at /opt/stack.

- `env`: strict readers for settings taken from environment variables.
- `dev`, `prod`: the settings layer. DJANGO_SETTINGS_MODULE names one of them, and it
  imports the project's own settings module (DJANGO_PROJECT_SETTINGS), then sets from the
  environment what the stacks decide: secret key, debug, hosts, database, static and
  media files, and in production the security settings and the static storage.
- `database`: the PostgreSQL settings from POSTGRES_*.
- `health`: /healthz for the container healthchecks.
- `storage`: the static storage that writes hashed names and gzip siblings for nginx.
- `gunicorn`: gunicorn's configuration (`--config python:stack_settings.gunicorn`).
"""
