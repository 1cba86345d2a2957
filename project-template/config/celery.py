"""The project's Celery app: its broker is REDIS_URL (CELERY_* settings), its tasks those of
the installed apps' tasks.py. A worker runs `celery -A config worker`, the scheduler
`celery -A config beat` (the processes in Cargo.toml's description)."""

import os
import socket
import time

from celery import Celery
from celery.signals import before_task_publish

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@before_task_publish.connect
def stamp_heartbeat(sender=None, body=None, **kwargs):
    """The heartbeat says when and by which scheduler it was sent, so a run where two
    schedulers overlapped shows in its rows (see core.tasks.heartbeat)."""
    if sender == "core.tasks.heartbeat" and isinstance(body, tuple) and len(body) > 1:
        body[1].update(sent_at=time.time(), sent_by=socket.gethostname())
