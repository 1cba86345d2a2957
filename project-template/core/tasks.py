"""Background tasks: record runs a task's work (a pause) and writes a row, heartbeat is the
scheduler's tick."""

import socket
import time

from celery import shared_task

from .models import Heartbeat, TaskRun

# The code version a row was written by: a redeploy of a change shows in the rows.
VERSION = "1"


@shared_task
def record(key, seconds=0.0):
    time.sleep(seconds)
    TaskRun.objects.create(key=key, version=VERSION, worker=socket.gethostname())


@shared_task
def heartbeat(sent_at=None, sent_by=""):
    Heartbeat.objects.create(sent_at=sent_at or time.time(), sent_by=sent_by, version=VERSION)
