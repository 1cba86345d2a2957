"""The project's Celery app: its broker is REDIS_URL (CELERY_* settings), its tasks those of
the installed apps' tasks.py. A worker runs `celery -A config worker`, the scheduler
`celery -A config beat` (the processes in Cargo.toml's description)."""

import os
import socket
import time
from pathlib import Path

from celery import Celery, bootsteps
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


# The worker's healthcheck (its `health` in Cargo.toml) is this file's age.
ALIVE = Path("/tmp/celery-worker-alive")
# How often the file is touched; the healthcheck allows 10 s.
ALIVE_EVERY = 2.0


class Alive(bootsteps.StartStopStep):
    """Touches ALIVE while the worker's consumer is connected to the broker and its event loop
    turns: a check that reads the file's age needs no Python process of its own, where
    `celery inspect ping` starts one that imports the project and asks the worker through the
    broker, seconds on busy cores before every start counts as up. The consumer stops its
    steps when it loses the broker, and the file goes with them."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.entry = None

    def start(self, consumer):
        ALIVE.touch()
        self.entry = consumer.timer.call_repeatedly(ALIVE_EVERY, ALIVE.touch, priority=10)

    def stop(self, consumer):
        if self.entry is not None:
            self.entry.cancel()
            self.entry = None
        ALIVE.unlink(missing_ok=True)

    shutdown = stop


app.steps["consumer"].add(Alive)
