"""Pages of the app: the home page, with the form that enqueues background tasks and the
latest runs, and the upload form with the list of uploads."""

import uuid

from celery import current_app
from django.contrib import messages
from django.shortcuts import redirect, render

from .forms import TasksForm, UploadForm
from .models import TaskRun, Upload
from .tasks import record

RUNS_SHOWN = 10


def home(request):
    if request.method == "POST":
        form = TasksForm(request.POST)
        if form.is_valid():
            batch = uuid.uuid4().hex[:12]
            count, seconds = form.cleaned_data["count"], form.cleaned_data["seconds"] or 0.0
            # One broker connection for the whole batch, not one taken from the pool per task.
            with current_app.producer_or_acquire() as producer:
                for index in range(count):
                    record.apply_async((f"{batch}-{index}", seconds), producer=producer)
            messages.success(request, f"Enqueued {count} task(s) of batch {batch}.")
            return redirect("home")
    else:
        form = TasksForm()
    runs = TaskRun.objects.all()[:RUNS_SHOWN]
    return render(request, "core/home.html", {"form": form, "runs": runs})


def uploads(request):
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.save()
            messages.success(request, f"Stored {upload.file.name}.")
            return redirect("uploads")
    else:
        form = UploadForm()
    return render(request, "core/uploads.html", {"form": form, "uploads": Upload.objects.all()})
