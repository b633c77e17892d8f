"""RFC 9457 problem details responses for errors that the gateway returns itself."""

import json
from http import HTTPStatus

from django.http import HttpResponse

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_body(status, detail, request_id, code=None):
    """Return the problem+json body with ``type``, ``title``, ``status``, ``detail``, ``request_id`` and ``code``.

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
    return json.dumps(body, separators=(",", ":")).encode()


def problem_headers(body, request_id=None, headers=None):
    """Return the header list of a problem response with ``body``, the ``headers`` mapping last."""
    header_list = [
        ("Content-Type", PROBLEM_CONTENT_TYPE),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    if request_id is not None:
        header_list.append(("X-Request-ID", request_id))
    header_list.extend((headers or {}).items())
    return header_list


def problem_response(status, detail, request_id, code=None, headers=None):
    """Return the problem+json body of ``problem_body`` as a Django response, for the gateway's own views."""
    body = problem_body(status, detail, request_id, code)
    response = HttpResponse(body, status=status)
    for name, value in problem_headers(body, headers=headers):
        response[name] = value
    return response
