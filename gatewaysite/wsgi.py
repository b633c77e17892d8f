"""WSGI entry point for gunicorn: gatewaysite.wsgi:application."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gatewaysite.settings")

application = get_wsgi_application()

from routing import metrics  # noqa: E402 - needs the settings configured above

# Each worker process writes its request counters from a background thread.
# Only servers load this module, so tests with pytest-django have no writer
# that could lock their SQLite database.
metrics.start_flushing()
