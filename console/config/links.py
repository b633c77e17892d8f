"""Links from the model admin pages to the configuration history."""

from urllib.parse import urlencode

from django.shortcuts import redirect
from django.urls import reverse


def history_url(model=None, object_id=None):
    """Return the URL of the history page, filtered to one object (and its targets or rules) when given."""
    url = reverse("admin:config:history")
    if model is None:
        return url
    return f"{url}?{urlencode({'object': f'{model._meta.model_name}:{object_id}'})}"


class HistoryLinkMixin:
    """Send the History button of a change page to the configuration history of that object."""

    def history_view(self, request, object_id, extra_context=None):
        return redirect(history_url(self.model, object_id))
