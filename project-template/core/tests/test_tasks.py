"""Background tasks: the home page's form enqueues record tasks whose rows the page lists;
the scheduler's heartbeat records when and by whom it was sent. The tasks run in the test
process (eager), so no broker is needed."""

from django.test import TestCase

from config.celery import app
from core import tasks
from core.models import Heartbeat, TaskRun


class EagerTasks(TestCase):
    def setUp(self):
        app.conf.task_always_eager = True
        self.addCleanup(setattr, app.conf, "task_always_eager", False)


class TaskFormTests(EagerTasks):
    def test_the_form_enqueues_tasks_whose_runs_the_page_lists(self):
        response = self.client.post("/", {"count": 3, "seconds": 0})
        self.assertRedirects(response, "/")
        keys = sorted(TaskRun.objects.values_list("key", flat=True))
        self.assertEqual(len(keys), 3)
        self.assertEqual(len({key.split("-")[0] for key in keys}), 1, "one batch")
        page = self.client.get("/")
        for key in keys:
            self.assertContains(page, key)
        self.assertContains(page, f"version {tasks.VERSION}")

    def test_a_count_out_of_range_is_refused(self):
        response = self.client.post("/", {"count": 0})
        self.assertEqual(response.status_code, 200)
        self.assertFalse(TaskRun.objects.exists())


class HeartbeatTests(EagerTasks):
    def test_a_heartbeat_sent_by_the_scheduler_keeps_its_stamp(self):
        tasks.heartbeat.delay(sent_at=1234.5, sent_by="beat-host")
        beat = Heartbeat.objects.get()
        self.assertEqual((beat.sent_at, beat.sent_by, beat.version), (1234.5, "beat-host", tasks.VERSION))
