"""The forwarding client: a pooled requests.Session per upstream, and one send with its error mapping."""

import threading

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import SKIP_HEADER
from urllib3.util.url import _encode_target

from routing.conf import gateway_settings
from routing.exceptions import UpstreamTimeout, UpstreamUnavailable

_sessions = {}
_lock = threading.Lock()
# The request target (path and query) of the request this thread is sending.
_raw_target = threading.local()


class RawTargetMixin:
    """Send the request target as the client wrote it.

    urllib3 percent-encodes characters such as '[' and ']' in the query and
    upper-cases existing escapes. The gateway forwards the client's query byte
    for byte, so it swaps the raw target back in when urllib3's encoding of it
    is the target about to be sent.
    """

    def _make_request(self, conn, method, url, *args, **kwargs):
        raw = getattr(_raw_target, "value", None)
        if raw is not None and raw != url and _encode_target(raw) == url:
            url = raw
        return super()._make_request(conn, method, url, *args, **kwargs)


class RawTargetHTTPConnectionPool(RawTargetMixin, HTTPConnectionPool):
    pass


class RawTargetHTTPSConnectionPool(RawTargetMixin, HTTPSConnectionPool):
    pass


class UpstreamAdapter(HTTPAdapter):
    """An HTTPAdapter whose pools keep the request target unchanged."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": RawTargetHTTPConnectionPool,
            "https": RawTargetHTTPSConnectionPool,
        }


def get_session(upstream_name):
    """Return the keep-alive session of an upstream, creating it on first use."""
    session = _sessions.get(upstream_name)
    if session is not None:
        return session
    with _lock:
        session = _sessions.get(upstream_name)
        if session is None:
            session = requests.Session()
            # Proxy variables, .netrc credentials and CA bundles from the
            # environment must not change where or how requests are sent.
            session.trust_env = False
            adapter = UpstreamAdapter(
                pool_connections=4, pool_maxsize=gateway_settings.UPSTREAM_POOL_SIZE, max_retries=0
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _sessions[upstream_name] = session
        return session


def timeouts(upstream, route=None):
    """Return the (connect, read) timeout in seconds: the route's, else the upstream's, else the settings'."""
    connect = (
        (route and route.connect_timeout_seconds)
        or upstream.connect_timeout_seconds
        or gateway_settings.UPSTREAM_CONNECT_TIMEOUT_SECONDS
    )
    read = (
        (route and route.read_timeout_seconds)
        or upstream.read_timeout_seconds
        or gateway_settings.UPSTREAM_READ_TIMEOUT_SECONDS
    )
    return (connect, read)


def send(upstream, method, url, headers, body, raw_target=None, timeout=None):
    """Send one request to ``url`` and return the streamed requests.Response.

    ``raw_target`` is the path and query to put on the request line unchanged.
    Raise UpstreamTimeout (504) when the connect or read timeout passes, and
    UpstreamUnavailable (502) when the connection is refused, reset or the answer
    is not HTTP. The messages never contain the target URL, which only the log shows.
    """
    names = {name.lower() for name, _value in headers}
    header_map = requests.structures.CaseInsensitiveDict()
    for name, value in headers:
        if name in header_map:
            header_map[name] = f"{header_map[name]}, {value}"
        else:
            header_map[name] = value
    # urllib3 would add its own User-Agent and Accept-Encoding; the upstream
    # sees only what the client sent.
    if "user-agent" not in names:
        header_map["User-Agent"] = SKIP_HEADER
    if "accept-encoding" not in names:
        header_map["Accept-Encoding"] = SKIP_HEADER

    prepared = requests.Request(method, url, headers=header_map, data=body).prepare()
    # requests re-quotes the URL; the normalized path and the raw query are final.
    prepared.url = url
    _raw_target.value = raw_target
    try:
        return get_session(upstream.name).send(
            prepared, stream=True, timeout=timeout or timeouts(upstream), allow_redirects=False
        )
    except requests.exceptions.ConnectTimeout as exc:
        raise UpstreamTimeout(log_error="connect_timeout") from exc
    except requests.exceptions.ReadTimeout as exc:
        raise UpstreamTimeout(log_error="read_timeout") from exc
    except requests.exceptions.ConnectionError as exc:
        raise UpstreamUnavailable(log_error="connection_failed") from exc
    except requests.exceptions.RequestException as exc:
        raise UpstreamUnavailable(
            "The upstream sent a malformed response.", log_error=exc.__class__.__name__
        ) from exc
    finally:
        _raw_target.value = None
