"""The forwarding client: keep-alive connections per target on http.client, and one send with its error mapping.

The proxy sends requests with the standard library's http.client and keeps its own
small pool of idle connections per target. Each library layer above http.client
cost CPU on every request for work the gateway does not need. In the first
benchmark profile, requests' Session.send and Request.prepare took about a
quarter of a worker's CPU. After that, urllib3's pool manager, header dictionary,
URL re-encoding and response wrapper cost about 100 µs per request
(docs/benchmarks.md). The request target is sent exactly as the client wrote it,
and no header is added that the client did not send, apart from Host.
"""

import http.client
import select
import ssl
import threading
from urllib.parse import urlsplit

from routing.conf import gateway_settings
from routing.exceptions import UpstreamTimeout, UpstreamUnavailable

# When one worker has used more distinct targets than this, every pool is closed
# and rebuilt on demand. So pools of removed targets do not pile up.
MAX_POOLS = 1024

_pools = {}
_lock = threading.Lock()
_tls_context = None


def tls_context():
    """Return the TLS context for https targets: the system's CA certificates, host names checked."""
    global _tls_context
    if _tls_context is None:
        _tls_context = ssl.create_default_context()
    return _tls_context


def connection_dropped(connection):
    """Return whether an idle connection was closed by the upstream or has unread bytes.

    An idle keep-alive socket that polls readable carries either the upstream's
    FIN or data that belongs to no request, so it must not carry the next one.
    """
    sock = connection.sock
    if sock is None:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class TargetPool:
    """The idle keep-alive connections to one target, most recently used first."""

    def __init__(self, target, max_idle):
        parts = urlsplit(target)
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.max_idle = max_idle
        self.idle = []
        self.closed = False
        self.lock = threading.Lock()

    def take(self, connect_timeout):
        """Return an idle connection that is still open, or a new connected one.

        Raise UpstreamTimeout (504) or UpstreamUnavailable (502) when connecting fails.
        """
        while True:
            with self.lock:
                connection = self.idle.pop() if self.idle else None
            if connection is None:
                break
            if not connection_dropped(connection):
                return connection
            connection.close()
        if self.https:
            connection = http.client.HTTPSConnection(self.host, self.port, timeout=connect_timeout,
                                                     context=tls_context())
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=connect_timeout)
        try:
            connection.connect()
        except TimeoutError as exc:
            connection.close()
            raise UpstreamTimeout(log_error="connect_timeout") from exc
        except OSError as exc:
            connection.close()
            raise UpstreamUnavailable(log_error="connection_failed") from exc
        return connection

    def put(self, connection):
        """Keep ``connection`` for the next request, or close it when the pool is full or closed."""
        with self.lock:
            if not self.closed and len(self.idle) < self.max_idle:
                self.idle.append(connection)
                return
        connection.close()

    def close(self):
        """Close the idle connections, and each connection in use when it comes back."""
        with self.lock:
            self.closed = True
            idle, self.idle = self.idle, []
        for connection in idle:
            connection.close()


def get_pool(upstream_name, target):
    """Return the pool of idle connections to one target URL of an upstream, creating it on first use."""
    key = (upstream_name, target)
    pool = _pools.get(key)
    if pool is not None:
        return pool
    with _lock:
        pool = _pools.get(key)
        if pool is None:
            if len(_pools) >= MAX_POOLS:
                close_pools()
            pool = _pools[key] = TargetPool(target, gateway_settings.UPSTREAM_POOL_SIZE)
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


def ascii_target(raw_target):
    """Return the request target with every non-ASCII character percent-encoded.

    gunicorn rejects such bytes in the request line with 400. Other WSGI servers
    pass the query as latin-1 text, one character per byte the client sent, so
    such a character stands for one byte. A character above U+00FF is encoded
    as UTF-8.
    """
    if raw_target.isascii():
        return raw_target
    encoded = []
    for character in raw_target:
        code = ord(character)
        if code < 0x80:
            encoded.append(character)
        elif code <= 0xFF:
            encoded.append(f"%{code:02X}")
        else:
            encoded.extend(f"%{byte:02X}" for byte in character.encode("utf-8"))
    return "".join(encoded)


class UpstreamResponse:
    """The upstream's response: status, header fields, and the body read as it arrives.

    ``headers.items()`` lists repeated fields one by one. ``release_conn``
    returns the connection to its pool when the body was read to its end and the
    upstream keeps the connection open, and closes it otherwise.
    """

    def __init__(self, pool, connection, response):
        self.pool = pool
        self.connection = connection
        self.response = response
        self.status = response.status
        self.reason = response.reason
        self.headers = response.msg
        self.released = False

    def read1(self, size):
        """Return at most ``size`` bytes of the body as soon as some arrive; empty at its end.

        Raise IncompleteRead when the upstream closes the connection before the
        end of a Content-Length body: http.client returns an empty read there.
        """
        data = self.response.read1(size)
        if not data and self.response.length:
            raise http.client.IncompleteRead(b"", self.response.length)
        return data

    def close(self):
        """Drop the connection, for a body that was not read to its end."""
        if self.released:
            return
        self.released = True
        self.response.close()
        self.connection.close()

    def release_conn(self):
        if self.released:
            return
        self.released = True
        response = self.response
        # http.client closes a body read to its end. A HEAD, 204 or 304
        # response has length 0 and nothing to read. If it announced a chunked
        # body anyway, the connection is dropped in case one follows.
        finished = response.isclosed() or (response.length == 0 and not response.chunked)
        if finished and not response.will_close and self.connection.sock is not None:
            response.close()
            self.pool.put(self.connection)
        else:
            response.close()
            self.connection.close()


def send(upstream, method, target, raw_target, headers, body, timeout=None):
    """Send one request to ``target`` and return its UpstreamResponse, with the body still to be read.

    ``headers`` is a list of (name, value). ``body`` is None, bytes-like, or an
    iterable of bytes, sent with Content-Length when it has a length and chunked
    otherwise. ``target`` is the target's URL and ``raw_target`` the path and
    query to put on the request line unchanged. Raise UpstreamTimeout (504)
    when the connect or read timeout passes, and UpstreamUnavailable (502) when
    the connection is refused or reset or the response is not HTTP. The messages
    never contain the target URL, which only the log shows.
    """
    connect_timeout, read_timeout = timeout or timeouts(upstream)
    if body is not None:
        data = getattr(body, "data", None)
        if data is not None:
            body = (data,)
            length = len(data)
        else:
            length = len(body) if hasattr(body, "__len__") else None

    pool = get_pool(upstream.name, target)
    connection = pool.take(connect_timeout)
    try:
        connection.sock.settimeout(read_timeout)
        # The upstream receives only the client's headers: http.client adds
        # Host unless the route preserves the client's, and no Accept-Encoding.
        has_host = any(name.lower() == "host" for name, _value in headers)
        connection.putrequest(method, ascii_target(raw_target), skip_host=has_host, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        if body is None:
            if method in {"POST", "PUT", "PATCH"}:
                connection.putheader("Content-Length", "0")
            connection.endheaders()
        elif length is not None:
            connection.putheader("Content-Length", str(length))
            connection.endheaders()
            for chunk in body:
                connection.send(chunk)
        else:
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            for chunk in body:
                if chunk:
                    connection.send(b"%X\r\n%b\r\n" % (len(chunk), chunk))
            connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        if response.status < 200:
            # http.client skips 100 Continue but returns any other 1xx, such as
            # 103 Early Hints, as if it were final. Its final response would
            # still follow on this connection, so the connection cannot be reused.
            connection.close()
            raise UpstreamUnavailable(
                "The upstream sent an interim response (1xx) that the gateway does not forward.",
                log_error=f"interim_response status={response.status}",
            )
    except TimeoutError as exc:
        connection.close()
        raise UpstreamTimeout(log_error="read_timeout") from exc
    except ConnectionError as exc:
        # RemoteDisconnected, a reset or a broken pipe: the upstream went away.
        connection.close()
        raise UpstreamUnavailable(log_error="connection_failed") from exc
    except http.client.HTTPException as exc:
        connection.close()
        raise UpstreamUnavailable(
            "The upstream sent a malformed response.", log_error=exc.__class__.__name__
        ) from exc
    except OSError as exc:
        connection.close()
        raise UpstreamUnavailable(log_error="connection_failed") from exc
    except BaseException:
        # A request-body error (400, 413), also raised when the client goes
        # away mid-body, or the interim-response error above: the request was
        # cut short, so the connection cannot carry another.
        connection.close()
        raise
    return UpstreamResponse(pool, connection, response)
