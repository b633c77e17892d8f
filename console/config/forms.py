"""Forms of the configuration pages: the YAML upload and the history filters."""

from django import forms

from console.config.history import TRACKED_MODELS
from django.apps import apps

# The largest YAML file the console accepts, in bytes. The planned file travels
# back in a signed hidden field, and Django rejects form fields above
# DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB by default), so a larger upload could be
# planned but not confirmed. manage.py applyconfig has no such limit.
MAX_UPLOAD_BYTES = 1024 * 1024


class UploadForm(forms.Form):
    file = forms.FileField(label="YAML file", help_text="A file in the format that the download above produces.")
    prune = forms.BooleanField(
        required=False,
        label="Delete what the file omits",
        help_text="Also delete the upstreams, routes, roles and API permissions that the file does not list.",
    )

    def clean_file(self):
        """Return the uploaded file's text, or raise ValidationError when it is too large or not UTF-8."""
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file has {upload.size} bytes, more than the console accepts ({MAX_UPLOAD_BYTES}); "
                "apply it with manage.py applyconfig instead."
            )
        try:
            return upload.read().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise forms.ValidationError(
                f"The file is not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8 and upload it again."
            ) from exc


def type_choices():
    """Return (model name, verbose name) of each tracked model, for the history's type filter."""
    choices = [("", "all types")]
    for label in TRACKED_MODELS:
        model = apps.get_model(label)
        choices.append((model._meta.model_name, model._meta.verbose_name))
    return choices


class HistoryFilterForm(forms.Form):
    type = forms.ChoiceField(required=False, label="Type")
    object = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["type"].choices = type_choices()
