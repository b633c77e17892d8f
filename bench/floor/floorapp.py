"""The floor of a Python gateway under gunicorn: forward every request with urllib3 and check nothing.

The harness serves this WSGI application with jwtgate's own gunicorn settings
(gatewaysite/gunicorn.conf.py: the same worker class, workers and threads) as the
subject ``floor``. It checks no token, matches no route, writes no log and
forwards no client header, so its CPU per request is what the server and the
upstream client cost by themselves. jwtgate's cost above it is what its own
pipeline adds, and no gateway on this server and client can cost less.
"""

import os

import urllib3

HOP_BY_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding"})

upstream = urllib3.util.parse_url(os.environ["FLOOR_UPSTREAM_URL"])
pool = urllib3.HTTPConnectionPool(
    upstream.host, upstream.port, maxsize=int(os.environ.get("FLOOR_POOL_SIZE", "32")), retries=False
)


class UpstreamBody:
    """The upstream's body in chunks as they arrive; closing returns the connection to the pool."""

    def __init__(self, response):
        self.response = response

    def __iter__(self):
        yield from self.response.stream(65536, decode_content=False)

    def close(self):
        self.response.release_conn()


def application(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else None
    response = pool.urlopen(
        environ["REQUEST_METHOD"],
        environ.get("RAW_URI") or environ["PATH_INFO"],
        body=body,
        redirect=False,
        retries=False,
        preload_content=False,
        decode_content=False,
    )
    headers = [(name, value) for name, value in response.headers.items() if name.lower() not in HOP_BY_HOP_HEADERS]
    start_response(f"{response.status} {response.reason}", headers)
    return UpstreamBody(response)
