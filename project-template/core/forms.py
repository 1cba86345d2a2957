"""Upload form with a size limit (MAX_UPLOAD_BYTES) checked before the file is stored."""

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
