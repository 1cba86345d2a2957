"""Uploaded files: the file lives under MEDIA_ROOT, the row records its name and size."""

from django.db import models


class Upload(models.Model):
    file = models.FileField(upload_to="uploads/%Y/%m/")
    size = models.PositiveBigIntegerField()
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-uploaded_at", "-id"]

    def __str__(self):
        return self.file.name


class TaskRun(models.Model):
    """One run of the record task: a task's key (a run twice shows as two rows), the code
    version and the worker that ran it."""

    key = models.CharField(max_length=100, db_index=True)
    version = models.CharField(max_length=40)
    worker = models.CharField(max_length=255)
    finished_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-finished_at", "-id"]

    def __str__(self):
        return self.key


class Heartbeat(models.Model):
    """One tick of the scheduler: when and by which scheduler it was sent."""

    sent_at = models.FloatField()
    sent_by = models.CharField(max_length=255)
    version = models.CharField(max_length=40)
    ran_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sent_at"]
