"""Forms of the app: the upload form, with a size limit (MAX_UPLOAD_BYTES) checked before the
file is stored, and the form that enqueues background tasks."""

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from .models import Upload


class UploadForm(forms.ModelForm):
    class Meta:
        model = Upload
        fields = ["file"]

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise forms.ValidationError(f"Files larger than {filesizeformat(limit)} are refused.")
        return upload

    def save(self, commit=True):
        self.instance.size = self.cleaned_data["file"].size
        return super().save(commit=commit)


class TasksForm(forms.Form):
    """How many record tasks to enqueue, and how long each takes."""

    count = forms.IntegerField(min_value=1, max_value=1000, initial=1)
    seconds = forms.FloatField(min_value=0, max_value=60, initial=0, required=False)
