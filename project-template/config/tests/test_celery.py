"""The worker's liveness file: touched while its consumer runs, gone when it stops."""

import os
import tempfile
from pathlib import Path
from unittest import mock

from django.test import SimpleTestCase

from config import celery


class Timer:
    """The consumer's timer, recording what it is asked to repeat."""

    def __init__(self):
        self.repeated = []

    def call_repeatedly(self, every, function, priority=0):
        entry = mock.Mock()
        self.repeated.append((every, function, entry))
        return entry


class AliveTests(SimpleTestCase):
    def test_the_step_is_one_of_the_consumers(self):
        self.assertIn(celery.Alive, celery.app.steps["consumer"])

    def test_touched_while_the_consumer_runs_and_removed_when_it_stops(self):
        with tempfile.TemporaryDirectory() as root:
            alive = Path(root) / "alive"
            with mock.patch.object(celery, "ALIVE", alive):
                consumer = mock.Mock(timer=Timer())
                step = celery.Alive(consumer)
                step.start(consumer)
                self.assertTrue(alive.exists())
                [(every, touch, entry)] = consumer.timer.repeated
                self.assertEqual(every, celery.ALIVE_EVERY)
                os.utime(alive, (0, 0))
                touch()
                self.assertGreater(alive.stat().st_mtime, 0)
                step.stop(consumer)
                self.assertFalse(alive.exists())
                entry.cancel.assert_called_once_with()
