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
