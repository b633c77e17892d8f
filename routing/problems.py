"""RFC 9457 problem details responses for errors that the gateway returns itself."""

import json
from http import HTTPStatus

from django.http import HttpResponse

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_response(status, detail, request_id, code=None, headers=None):
    """Return an application/problem+json response with ``status``, ``title``, ``detail`` and ``request_id``.

    ``type`` is ``about:blank``, so ``title`` is the status phrase (RFC 9457 section 4.2.1);
    ``code`` is an extension member that names the failure for programs.
    """
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }
    if code:
        body["code"] = code
    response = HttpResponse(
        json.dumps(body, separators=(",", ":")), status=status, content_type=PROBLEM_CONTENT_TYPE
    )
    response["Content-Length"] = str(len(response.content))
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    for name, value in (headers or {}).items():
        response[name] = value
    return response
