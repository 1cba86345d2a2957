"""Runs a command under Django's autoreloader, as runserver runs itself: when a .py file of
the project changes, the command is stopped and started again. The dev stack runs the
project's processes (a Celery worker, a scheduler) this way.

usage: python -m stack_settings.autoreload COMMAND [ARGS...]

The reloader's child process starts COMMAND and waits for it; on a change it stops it (the
signal it would get from `docker stop`, then a kill after a grace period) and the reloader
starts a new child. The whole project directory is watched, not only the modules the child
imported: a worker's tasks are imported by the worker, not by this process.
"""

import atexit
import os
import signal
import subprocess
import sys
from pathlib import Path

import django
from django.utils import autoreload

GRACE_SECONDS = 10


def watch_project(sender, **kwargs):
    sender.watch_dir(Path.cwd(), "**/*.py")


def run(command):
    child = subprocess.Popen(command)
    reloading = []

    def stop():
        reloading.append(True)
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    # The reloader ends this process (sys.exit) on a change: the command goes with it, and its
    # exit code is not this process's, which tells the reloader to start a new one.
    atexit.register(stop)
    code = child.wait()
    if not reloading:
        # The command ending on its own ends the container, as it would without the reloader.
        os._exit(code)


def main(argv):
    if not argv:
        sys.exit("usage: python -m stack_settings.autoreload COMMAND [ARGS...]")
    django.setup()
    autoreload.autoreload_started.connect(watch_project)
    autoreload.run_with_reloader(run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
