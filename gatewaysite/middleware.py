"""Request ids, and problem responses for failures on the gateway's own paths."""

import logging
import re
import uuid

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404

from routing.problems import problem_response

logger = logging.getLogger(__name__)

# Long enough for a UUID or a trace id, without characters that could split a header or a log line.
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_for(request):
    """Return the client's X-Request-ID when it is sane, else a new UUID4 in hex."""
    incoming = request.META.get("HTTP_X_REQUEST_ID", "")
    if REQUEST_ID_RE.match(incoming):
        return incoming
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Store the request id on ``request.request_id`` and set X-Request-ID on the gateway's own responses.

    Proxied responses keep the upstream's headers unchanged.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_for(request)
        response = self.get_response(request)
        if not getattr(response, "is_proxied", False):
            response.headers.setdefault("X-Request-ID", request.request_id)
        return response


def server_error(request, *args, **kwargs):
    """Return a 500 problem response without details (the handler500 view)."""
    return problem_response(
        500, "The gateway failed to handle the request.", getattr(request, "request_id", "-"), code="internal_error"
    )


class ProblemExceptionMiddleware:
    """Turn an exception raised by a gateway-owned view into a bare 500 problem, also when DEBUG is on.

    The traceback goes to the log, never into the response.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        # Django turns these into 403, 404 and 400 pages of its own, which carry no traceback.
        if isinstance(exception, (PermissionDenied, Http404, SuspiciousOperation, BadRequest)):
            return None
        logger.exception("view_failed request_id=%s path=%s", getattr(request, "request_id", "-"), request.path)
        return server_error(request)
