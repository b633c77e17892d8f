"""The floor of a Python gateway under gunicorn: forward every request with http.client and check nothing.

The harness serves this WSGI application with jwtgate's own gunicorn settings
(gatewaysite/gunicorn.conf.py: the same worker class, workers and threads) as the
subjects ``floor`` and ``floor-gevent``. It checks no token, matches no route,
writes no log and forwards no client header, and each thread (or greenlet) keeps
one connection to the upstream. Its CPU per request is what the server and the
HTTP client that jwtgate uses cost by themselves, so jwtgate's cost above it is
what its own pipeline adds.
"""

import http.client
import os
import threading
from urllib.parse import urlsplit

HOP_BY_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding"})

upstream = urlsplit(os.environ["FLOOR_UPSTREAM_URL"])
local = threading.local()


class UpstreamBody:
    """The upstream's body in chunks as they arrive; closing drops a connection whose body was not read to the end."""

    def __init__(self, connection, response):
        self.connection = connection
        self.response = response

    def __iter__(self):
        while chunk := self.response.read1(65536):
            yield chunk

    def close(self):
        if not self.response.isclosed() or self.response.will_close:
            self.connection.close()


def application(environ, start_response):
    connection = getattr(local, "connection", None)
    if connection is None:
        connection = local.connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else None
    connection.request(environ["REQUEST_METHOD"], environ.get("RAW_URI") or environ["PATH_INFO"], body=body)
    response = connection.getresponse()
    headers = [(name, value) for name, value in response.getheaders() if name.lower() not in HOP_BY_HOP_HEADERS]
    start_response(f"{response.status} {response.reason}", headers)
    return UpstreamBody(connection, response)
