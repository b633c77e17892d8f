"""Middleware for the console's own paths: change attribution and the database-unavailable page."""

import logging

from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpResponse
from django.template.loader import render_to_string

from console.config import history
from console.config.models import ConfigChange
from routing.conf import gateway_settings

logger = logging.getLogger(__name__)

# Seconds a browser or script is asked to wait before it tries the console again.
DATABASE_RETRY_AFTER_SECONDS = 10


def is_console_path(path):
    return path[1:].split("/", 1)[0] == gateway_settings.CONSOLE_PREFIX


def is_unavailable_error(exc):
    """Return whether ``exc`` means that the database cannot be reached or used at all.

    IntegrityError, ProgrammingError and the other subclasses of DatabaseError
    report a problem with one statement, not with the database, so they stay
    ordinary server errors.
    """
    return isinstance(exc, (OperationalError, InterfaceError)) or type(exc) is DatabaseError


class ChangeAttributionMiddleware:
    """Attribute the configuration changes that a console request makes to its user.

    Must come after AuthenticationMiddleware. The user is read only when a change
    is recorded, so a request that changes nothing does not load it here.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_console_path(request.path_info):
            return self.get_response(request)
        with history.attribute_changes(
            ConfigChange.SOURCE_CONSOLE, request=request, request_id=getattr(request, "request_id", "")
        ):
            return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """Return a 503 page instead of a 500 for a console page whose view cannot reach the database.

    The proxy path never gets here: it keeps serving the last route table it built.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_console_path(request.path_info) or not is_unavailable_error(exception):
            return None
        request_id = getattr(request, "request_id", "-")
        logger.error(
            "console_database_unavailable request_id=%s path=%s error=%s",
            request_id,
            request.path,
            exception.__class__.__name__,
        )
        body = render_to_string(
            "console/config/database_unavailable.html",
            {"request_id": request_id, "retry_after": DATABASE_RETRY_AFTER_SECONDS},
        )
        response = HttpResponse(body, status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        response["Cache-Control"] = "no-store"
        return response
