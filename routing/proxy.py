"""The proxy path: the stages of routing.decision, then forward and respond."""

import logging
import re
import time
from http import HTTPStatus
from http.client import responses as HTTP_REASONS

from django.core.exceptions import DisallowedHost
from django.http import HttpResponse, StreamingHttpResponse
from django.http.request import HttpHeaders, split_domain_port
from rest_framework_simplejwt.exceptions import TokenError

from accounts.tokens import ANONYMOUS, verify_access_token_cached
from routing import forwarding, headers, health, metrics
from routing.conf import gateway_settings
from routing.exceptions import (
    BadRequest,
    GatewayError,
    InvalidToken,
    NotAuthenticated,
    RequestBodyTooLarge,
    RequestHeadersTooLarge,
)
from routing.decision import decide
from routing.matching import route_tables
from routing.paths import path_from_path_info, raw_request_path
from routing.problems import problem_body, problem_headers

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("routing.access")

# RFC 9110 section 6.4.1: no content in responses to HEAD, nor with 204 or 304.
BODILESS_STATUSES = frozenset({204, 304})
# The query parameter of RFC 6750 section 2.3, which this gateway rejects.
QUERY_TOKEN_RE = re.compile(r"(?:^|[&;])access_token=", re.IGNORECASE)
# CONTENT_TYPE and CONTENT_LENGTH carry header fields without the HTTP_ prefix.
UNPREFIXED_HEADERS = HttpHeaders.UNPREFIXED_HEADERS
WHITESPACE_RE = re.compile(r"\s")
# A space, a control character or DEL, which no request line may carry (RFC 9112 section 3.2).
UNSAFE_QUERY_RE = re.compile(r"[\x00-\x20\x7f]")


def handle(request):
    """Proxy one request and return its GatewayResponse; every GatewayError becomes a problem response.

    Writes one access-log line per request.
    """
    started = time.perf_counter()
    log = {"route": "-", "target": "-", "request_id": request.request_id}
    health.ensure_health_checker()
    try:
        response = proxy(request, log)
    except GatewayError as exc:
        response = problem(exc.status_code, exc.detail, request.request_id, code=exc.code,
                           headers=exc.response_headers())
        log["error"] = exc.log_error
    except Exception as exc:
        # The client gets a bare 500 even with DEBUG on, and the traceback goes to the log only.
        logger.exception("proxy_failed request_id=%s route=%s", request.request_id, log["route"])
        response = problem(500, "The gateway failed to handle the request.", request.request_id,
                           code="internal_error")
        log["error"] = exc.__class__.__name__
    write_access_log(request, response.status, started, log)
    metrics.record_request(log["route"], response.status, time.perf_counter() - started,
                           log.get("shadow_denials", 0))
    return response


def proxy(request, log):
    """Run the pipeline stages for ``request``; ``log`` collects the access-log fields."""
    check_header_size(request)
    decision = decide(
        route_tables.get(),
        method=request.method,
        host=request_host(request),
        # NOTE: without RAW_URI (Django's development server) %2F arrives decoded
        # and cannot be rejected; gunicorn passes the raw request target.
        raw_path=raw_request_path(request.environ) or path_from_path_info(request.path_info),
        authenticate=lambda route: authenticate(request, route),
        log=log,
    )
    route = decision.route
    log["shadow_denials"] = [denial.requirement for denial in decision.shadow_denials]
    for denial in decision.shadow_denials:
        logger.warning(
            "shadow_denied request_id=%s route=%s requirement=%s user=%s reason=%s",
            request.request_id, route.name, denial.requirement, decision.identity.user_id or "-", denial.reason,
        )

    forward_headers = headers.forward_request_headers(request, decision.identity, request.request_id,
                                                      route.preserve_host)
    body = request_body(request, route)
    _target, upstream_response, on_close = forwarding.forward(
        route, request.method, decision.forwarded_path, query_suffix(request), forward_headers, body, log
    )
    return build_response(request, upstream_response, on_close)


def check_header_size(request):
    """Raise RequestHeadersTooLarge (431) when the request's header fields exceed MAX_REQUEST_HEADER_BYTES.

    The size is that of the names and values as ``request.headers`` lists them,
    counted on the WSGI environ without building that mapping.
    """
    limit = gateway_settings.MAX_REQUEST_HEADER_BYTES
    size = 0
    for key, value in request.META.items():
        if key.startswith("HTTP_"):
            size += len(key) - 5 + len(value)
        elif key in UNPREFIXED_HEADERS:
            size += len(key) + len(value)
    if size > limit:
        raise RequestHeadersTooLarge(f"The request header fields exceed {limit} bytes.")


def request_host(request):
    """Return the request's host in lower case without the port, or raise BadRequest (400)."""
    try:
        host = request.get_host()
    except DisallowedHost as exc:
        raise BadRequest("The Host header is invalid or not allowed.", code="invalid_host") from exc
    domain, _port = split_domain_port(host)
    return domain.lower()


def bearer_token(request):
    """Return the Bearer token of the request, None when there is none, or raise a 400 or 401 error.

    RFC 6750 section 2 lets a client send a token one way only, and this gateway
    accepts the Authorization header alone: a token in the query string is
    rejected, because URLs end up in logs and browser history.
    """
    if QUERY_TOKEN_RE.search(request.META.get("QUERY_STRING", "")):
        raise BadRequest(
            "Access tokens are not accepted in the query string; send 'Authorization: Bearer <token>'.",
            code="invalid_request",
        )
    authorization = request.META.get("HTTP_AUTHORIZATION")
    if authorization is None:
        return None
    # WSGI servers join repeated header fields with commas, and neither a token
    # nor Basic credentials contain one.
    if "," in authorization:
        raise BadRequest("The request has more than one Authorization header.", code="invalid_request")
    scheme, _, credentials = authorization.strip().partition(" ")
    # RFC 9110 section 11.1: the scheme is matched case-insensitively.
    if scheme.lower() != "bearer":
        return None
    token = credentials.strip()
    if not token or WHITESPACE_RE.search(token):
        raise InvalidToken("The Authorization header does not hold exactly one Bearer token.")
    return token


def authenticate(request, route):
    """Return the caller's Identity, ANONYMOUS on a public route without a token, or raise a 401 error.

    A token that is presented is always verified, on public routes too.
    """
    token = bearer_token(request)
    if token is None:
        if route.public:
            return ANONYMOUS
        raise NotAuthenticated()
    try:
        return verify_access_token_cached(token, gateway_settings.ACCESS_TOKEN_MAX_BYTES)
    except TokenError as exc:
        raise InvalidToken(log_error=f"invalid_token reason={exc.__class__.__name__}") from exc


def query_suffix(request):
    """Return ``?`` and the query string exactly as the client sent it, or an empty string.

    Raise BadRequest (400) for a query with a space or a control character, which
    no HTTP/1.1 request line may carry (RFC 9112 section 3.2).
    """
    query = request.META.get("QUERY_STRING", "")
    if not query:
        return ""
    if UNSAFE_QUERY_RE.search(query):
        raise BadRequest("The query string contains a space or a control character.", code="invalid_query")
    return "?" + query


def read_client_body(stream, size):
    """Return up to ``size`` bytes of the client's body, or raise BadRequest (400) when reading it fails.

    A client that goes away mid-body makes the WSGI server raise an OSError or
    its own error. That is the client's failure, so it must not reach the
    forwarding client, which would count it against the upstream's health.
    """
    try:
        return stream.read(size)
    except GatewayError:
        raise
    except Exception as exc:
        raise BadRequest(
            "The request body could not be read to its end.", code="incomplete_body",
            log_error=f"client_body_failed error={exc.__class__.__name__}",
        ) from exc


class RequestBody:
    """The client's request body, read in chunks as the upstream connection sends it.

    ``__len__`` lets the forwarding client send a Content-Length instead of chunked encoding.
    The size was checked against the route's limit before the first byte is read.
    ``started`` records for a retry whether any byte was consumed.
    """

    def __init__(self, stream, length, chunk_size):
        self.stream = stream
        self.length = length
        self.chunk_size = chunk_size
        self.started = False

    def __len__(self):
        return self.length

    def __iter__(self):
        self.started = True
        remaining = self.length
        while remaining > 0:
            chunk = read_client_body(self.stream, min(self.chunk_size, remaining))
            if not chunk:
                raise BadRequest("The request body ended before its Content-Length.", code="incomplete_body")
            remaining -= len(chunk)
            yield chunk


class ChunkedBody:
    """A chunked request body, read until the WSGI server reports its end.

    Raise RequestBodyTooLarge (413) once more than ``limit`` bytes arrived; the
    upstream connection is then dropped before the body ends.
    """

    def __init__(self, stream, chunk_size, limit):
        self.stream = stream
        self.chunk_size = chunk_size
        self.limit = limit
        self.started = False

    def __iter__(self):
        self.started = True
        received = 0
        while chunk := read_client_body(self.stream, self.chunk_size):
            received += len(chunk)
            if received > self.limit:
                raise RequestBodyTooLarge(f"The request body exceeds this route's limit of {self.limit} bytes.")
            yield chunk


def request_body(request, route):
    """Return the body to stream upstream: a RequestBody, a generator for chunked input, or None.

    Raise RequestBodyTooLarge (413) for a Content-Length above the route's limit,
    without reading the body.
    """
    chunk_size = gateway_settings.REQUEST_BODY_CHUNK_BYTES
    limit = route.max_body_bytes if route.max_body_bytes is not None else gateway_settings.MAX_REQUEST_BODY_BYTES
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        # Django reads no body without Content-Length, so read the WSGI input,
        # which gunicorn decodes from chunked transfer coding.
        return ChunkedBody(request.environ["wsgi.input"], chunk_size, limit)
    raw_length = request.META.get("CONTENT_LENGTH") or "0"
    if not raw_length.isdigit():
        raise BadRequest("The Content-Length header is not a non-negative integer.", code="invalid_content_length")
    length = int(raw_length)
    if length > limit:
        raise RequestBodyTooLarge(f"The request body exceeds this route's limit of {limit} bytes.")
    if length == 0:
        return None
    return RequestBody(request, length, chunk_size)


class UpstreamBody:
    """The upstream response body as it arrives, compressed bytes passed through untouched.

    Each chunk is passed on as soon as the upstream sends it, so server-sent
    events arrive one by one and a slow stream is not held back. With
    ``send_body`` false (HEAD, 204, 304) it yields nothing and only returns
    the connection on close.
    """

    def __init__(self, upstream_response, chunk_size, request_id, on_close=None, send_body=True):
        self.upstream_response = upstream_response
        self.chunk_size = chunk_size
        self.request_id = request_id
        self.on_close = on_close
        self.send_body = send_body
        self.complete = False
        self.closed = False

    def __iter__(self):
        if not self.send_body:
            return
        raw = self.upstream_response
        try:
            # read1 returns what has arrived, up to one chunk of a chunked body.
            while chunk := raw.read1(self.chunk_size):
                yield chunk
        except Exception as exc:
            # The status line has been sent, so the only signal left to the client
            # is a connection closed before the end of the body.
            logger.error(
                "upstream_body_failed request_id=%s error=%s", self.request_id, exc.__class__.__name__
            )
            raise
        self.complete = True

    def close(self):
        """Return the connection to the pool after a full read, or drop it after a partial one."""
        if self.closed:
            return
        self.closed = True
        raw = self.upstream_response
        if not self.complete:
            raw.close()
        raw.release_conn()
        if self.on_close is not None:
            self.on_close()


class GatewayResponse:
    """A response of the proxy path as the WSGI server receives it: status, header list and body.

    routing.wsgi hands it to the WSGI server without building a Django response.
    Under Django's handler (the development server and the test client),
    ``as_django_response`` converts it to the equivalent Django response. ``body`` is an iterable of
    bytes; when it has a ``close`` method, the server calls it after the last chunk.
    """

    __slots__ = ("status", "reason", "headers", "body", "proxied")

    def __init__(self, status, reason, headers, body, proxied):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.proxied = proxied

    @property
    def status_line(self):
        return f"{self.status} {self.reason}"

    def as_django_response(self):
        """Return the Django response that sends the same status, headers and body."""
        if self.proxied:
            response = ProxyResponse(self.body, self.status, self.reason, self.headers)
        else:
            response = HttpResponse(b"".join(self.body), status=self.status, reason=self.reason)
            for name, value in self.headers:
                response.headers[name] = value
        # The access-log line is the one line for this request; Django's request
        # logger would otherwise repeat every 4xx and 5xx.
        response._has_been_logged = True
        return response


class ProxyResponse(StreamingHttpResponse):
    """A streamed upstream response whose headers are sent exactly as the upstream listed them.

    Django's header mapping stores one value per name, so repeated fields such as
    Set-Cookie are kept in ``upstream_headers`` and emitted by ``items()``.
    """

    is_proxied = True

    def __init__(self, streaming_content, status, reason, upstream_headers):
        super().__init__(streaming_content, status=status, reason=reason)
        del self.headers["Content-Type"]
        self.upstream_headers = upstream_headers

    def items(self):
        return [*self.headers.items(), *self.upstream_headers]

    def has_header(self, header):
        lower = header.lower()
        return super().has_header(header) or any(name.lower() == lower for name, _ in self.upstream_headers)

    __contains__ = has_header


def problem(status, detail, request_id, code=None, headers=None):
    """Return the application/problem+json GatewayResponse for an error; see routing.problems."""
    body = problem_body(status, detail, request_id, code)
    return GatewayResponse(status, HTTPStatus(status).phrase, problem_headers(body, request_id, headers),
                           (body,), proxied=False)


def build_response(request, upstream_response, on_close=None):
    """Return the GatewayResponse for the client's UpstreamResponse; ``on_close`` runs when its body is closed."""
    status = upstream_response.status
    # routing.client turns a 1xx response into a 502 error, so every status here is final.
    send_body = not (request.method == "HEAD" or status in BODILESS_STATUSES)
    body = UpstreamBody(upstream_response, gateway_settings.STREAM_CHUNK_BYTES, request.request_id, on_close,
                        send_body=send_body)
    if not send_body:
        # Nothing is left to read, and release_conn decides whether the connection can be reused.
        body.complete = True
    reason = upstream_response.reason or HTTP_REASONS.get(status, "Unknown Status Code")
    return GatewayResponse(status, reason, headers.response_headers(upstream_response.headers.items()), body,
                           proxied=True)


def loggable(value, limit=200):
    """Return ``value`` cut to ``limit`` characters with control characters escaped, safe for one log line."""
    value = value[:limit]
    if value.isprintable():
        return value
    return value.encode("unicode_escape").decode("ascii")


ACCESS_LOG_FORMAT = (
    "request_id=%s method=%s path=%s route=%s target=%s status=%s elapsed_ms=%.1f client=%s attempts=%s error=%s"
)


def write_access_log(request, status, started, log):
    """Write the request's access-log line, at a level derived from its status."""
    if status >= 500:
        level = logging.ERROR
    elif status >= 400:
        level = logging.WARNING
    else:
        level = logging.INFO
    if not access_logger.isEnabledFor(level):
        return
    elapsed_ms = (time.perf_counter() - started) * 1000
    client_ip, _trusted = headers.client_address(request)
    arguments = (
        request.request_id,
        request.method,
        loggable(raw_request_path(request.environ) or request.path_info),
        log["route"],
        log["target"],
        status,
        elapsed_ms,
        client_ip,
        log.get("attempts", 0),
        log.get("error", "-"),
    )
    # makeRecord() and handle() skip Logger.findCaller, which walks the stack on
    # every call and cost a visible share of the benchmark profile. The line
    # always comes from here, so the caller is known.
    record = access_logger.makeRecord(access_logger.name, level, __file__, 0, ACCESS_LOG_FORMAT, arguments, None)
    access_logger.handle(record)
