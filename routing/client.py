"""The forwarding client: a urllib3 connection pool per target, and one send with its error mapping.

The proxy talks to urllib3 directly rather than through requests. The benchmark
profile (docs/benchmarks.md) showed requests' Session.send and Request.prepare
at about a quarter of a worker's CPU per proxied request, for work the gateway
does not need: cookie jars, redirects, proxy lookups from the environment and
URL re-quoting. urllib3 is the connection pool that requests itself uses.
"""

import threading

import urllib3
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util import SKIP_HEADER
from urllib3.util.url import _encode_target, parse_url

from routing.conf import gateway_settings
from routing.exceptions import UpstreamTimeout, UpstreamUnavailable

_pools = {}
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


# When one worker has used more distinct targets than this, every pool is closed
# and rebuilt on demand. So pools of removed targets do not pile up.
MAX_POOLS = 1024


def get_pool(upstream_name, target):
    """Return the keep-alive connection pool of one target URL of an upstream, creating it on first use.

    The pools are looked up by target rather than through urllib3's PoolManager,
    which parses the URL and normalizes a pool key on every request.
    """
    key = (upstream_name, target)
    pool = _pools.get(key)
    if pool is not None:
        return pool
    with _lock:
        pool = _pools.get(key)
        if pool is None:
            if len(_pools) >= MAX_POOLS:
                close_pools()
            url = parse_url(target)
            pool_class = RawTargetHTTPSConnectionPool if url.scheme == "https" else RawTargetHTTPConnectionPool
            # No retries and no redirects inside urllib3: the forwarding layer
            # decides about retries, and redirects go back to the client.
            pool = _pools[key] = pool_class(
                url.host, url.port, maxsize=gateway_settings.UPSTREAM_POOL_SIZE, retries=False
            )
        return pool


def close_pools():
    for pool in _pools.values():
        pool.close()
    _pools.clear()


def clear():
    """Close every pooled connection, as a new worker would start."""
    with _lock:
        close_pools()


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


def send(upstream, method, target, raw_target, headers, body, timeout=None):
    """Send one request to ``target`` and return urllib3's streamed HTTPResponse.

    ``headers`` is a list of (name, value). ``body`` is None, bytes-like, or an
    iterable of bytes, sent with Content-Length when it has a length and chunked
    otherwise. ``target`` is the target's URL and ``raw_target`` the path and
    query to put on the request line unchanged. Raise UpstreamTimeout (504) when the connect or read timeout
    passes, and UpstreamUnavailable (502) when the connection is refused or
    reset or the response is not HTTP. The messages never contain the target URL,
    which only the log shows.
    """
    header_map = urllib3.HTTPHeaderDict()
    for name, value in headers:
        header_map.add(name, value)
    # urllib3 would add its own User-Agent and Accept-Encoding, but the upstream
    # must receive only what the client sent.
    if "user-agent" not in header_map:
        header_map["User-Agent"] = SKIP_HEADER
    if "accept-encoding" not in header_map:
        header_map["Accept-Encoding"] = SKIP_HEADER

    chunked = False
    if body is not None:
        data = getattr(body, "data", None)
        if data is not None:
            body = data
        if hasattr(body, "__len__"):
            header_map["Content-Length"] = str(len(body))
        else:
            chunked = True
    elif method in {"POST", "PUT", "PATCH"}:
        header_map["Content-Length"] = "0"

    connect, read = timeout or timeouts(upstream)
    _raw_target.value = raw_target
    try:
        return get_pool(upstream.name, target).urlopen(
            method,
            raw_target,
            body=body,
            headers=header_map,
            chunked=chunked,
            redirect=False,
            retries=False,
            assert_same_host=False,
            timeout=urllib3.Timeout(connect=connect, read=read),
            preload_content=False,
            decode_content=False,
        )
    # NewConnectionError is a subclass of ConnectTimeoutError, so it comes first.
    except NewConnectionError as exc:
        raise UpstreamUnavailable(log_error="connection_failed") from exc
    except ConnectTimeoutError as exc:
        raise UpstreamTimeout(log_error="connect_timeout") from exc
    except ReadTimeoutError as exc:
        raise UpstreamTimeout(log_error="read_timeout") from exc
    except ProtocolError as exc:
        raise UpstreamUnavailable(log_error="connection_failed") from exc
    except (HTTPError, OSError) as exc:
        raise UpstreamUnavailable(
            "The upstream sent a malformed response.", log_error=exc.__class__.__name__
        ) from exc
    finally:
        _raw_target.value = None
