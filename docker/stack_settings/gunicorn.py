"""Gunicorn settings for the web container: `gunicorn --config python:stack_settings.gunicorn APP`.

GUNICORN_WORKERS sets the worker count; unset or empty means 2 * CPUs + 1, capped at
MAX_DEFAULT_WORKERS so a large host does not open more database connections than a small
database accepts.
"""

import os

MAX_DEFAULT_WORKERS = 12


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def workers_from_env():
    raw = os.environ.get("GUNICORN_WORKERS", "").strip()
    if not raw:
        return min(2 * usable_cpus() + 1, MAX_DEFAULT_WORKERS)
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"GUNICORN_WORKERS must be a positive integer, got {raw!r}")
    return int(raw)


bind = "0.0.0.0:8000"
workers = workers_from_env()
accesslog = "-"
errorlog = "-"
# Heartbeat files on tmpfs: a worker blocked on a slow overlay filesystem is not killed.
worker_tmp_dir = "/dev/shm"
timeout = 30
graceful_timeout = 30
# Gunicorn's control socket (for `gunicornc`, on by default since 25.1) would go to
# $HOME/.gunicorn, i.e. /app/.gunicorn, which the app user cannot create. Docker already
# manages the process; nothing here uses gunicornc.
control_socket_disable = True
