"""Pages of the app: the home page and the upload form with the list of uploads."""

from django.contrib import messages
from django.shortcuts import redirect, render

from .forms import UploadForm
from .models import Upload


def home(request):
    return render(request, "core/home.html")


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
