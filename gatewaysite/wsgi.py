"""WSGI entry point for gunicorn: gatewaysite.wsgi:application.

Proxied requests go straight to the proxy, the rest through Django's handler;
see routing.wsgi.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gatewaysite.settings")

django_application = get_wsgi_application()

from routing import metrics  # noqa: E402 - needs the settings configured above
from routing.wsgi import GatewayApplication  # noqa: E402

application = GatewayApplication(django_application)

# Each worker process writes its request counters from a background thread.
# Only servers load this module, so tests with pytest-django have no writer
# that could lock their SQLite database.
metrics.start_flushing()
