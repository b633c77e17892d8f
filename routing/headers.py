"""Header rules: hop-by-hop headers, identity headers and the X-Forwarded-* set."""

import functools
import ipaddress
import logging
import re

from routing.conf import gateway_settings

# RFC 9110 section 7.6.1 names Connection and the fields it lists. The rest are
# the hop-by-hop fields of RFC 2616 section 13.5.1 that servers still send, plus
# Proxy-Connection, which some clients send in place of Connection.
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

IDENTITY_PREFIX = "x-user-"

# RFC 9110 section 5.1 (a token) and section 5.5 (no control character but tab).
FIELD_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
INVALID_FIELD_VALUE_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

logger = logging.getLogger(__name__)

# Headers that only a trusted proxy may set; from anyone else they are dropped
# and the gateway writes its own.
FORWARDING_HEADERS = frozenset(
    {
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-real-ip",
    }
)

# Set by the gateway or by the HTTP client for the upstream connection.
# NOTE: the WSGI server handles Expect: 100-continue, so it is not forwarded.
REQUEST_HEADERS_SET_BY_GATEWAY = frozenset({"host", "content-length", "expect", "x-request-id"})


def connection_listed(headers):
    """Return the lower-case field names listed in every Connection header of ``headers``."""
    names = set()
    for name, value in headers:
        if name.lower() == "connection":
            names.update(token.strip().lower() for token in value.split(",") if token.strip())
    return names


def is_identity_header(lower_name):
    """Return whether a header belongs to the identity namespace that only the gateway may write."""
    if lower_name.startswith(IDENTITY_PREFIX):
        return True
    return lower_name in {name.lower() for name in gateway_settings.EXTRA_IDENTITY_HEADERS}


def trusted_networks():
    """Return the configured trusted proxies as ip_network objects."""
    return parse_networks(tuple(gateway_settings.TRUSTED_PROXIES))


@functools.lru_cache(maxsize=8)
def parse_networks(values):
    """Return ip_network objects for addresses or CIDR networks, parsed once per setting value."""
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def is_trusted(address, networks):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request):
    """Return the client's IP address and whether the socket peer is a trusted proxy.

    Without trusted proxies the socket peer is the client. Behind trusted proxies
    the client is the right-most X-Forwarded-For entry that is not itself trusted.
    """
    peer = request.META.get("REMOTE_ADDR", "")
    networks = trusted_networks()
    if not networks or not is_trusted(peer, networks):
        return peer, False
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, networks):
            return hop, True
    return (hops[0] if hops else peer), True


def forward_request_headers(request, identity, request_id, preserve_host):
    """Return the list of (name, value) headers to send upstream for ``request``.

    Drops hop-by-hop headers and those named in Connection, every client-supplied
    identity header, and the forwarding headers of an untrusted peer. Then adds
    X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Request-ID and the
    identity headers of ``identity``.
    """
    incoming = list(request.headers.items())
    dropped = HOP_BY_HOP_HEADERS | connection_listed(incoming) | REQUEST_HEADERS_SET_BY_GATEWAY
    client_ip, trusted_peer = client_address(request)
    if not trusted_peer:
        dropped = dropped | FORWARDING_HEADERS
    else:
        dropped = dropped | {"x-forwarded-for"}

    headers = []
    for name, value in incoming:
        lower = name.lower()
        if lower in dropped or is_identity_header(lower):
            continue
        headers.append((name, value))

    host = request.META.get("HTTP_HOST", "")
    peer = request.META.get("REMOTE_ADDR", "")
    if trusted_peer and request.META.get("HTTP_X_FORWARDED_FOR"):
        forwarded_for = f"{request.META['HTTP_X_FORWARDED_FOR']}, {peer}"
    else:
        forwarded_for = peer
    headers.append(("X-Forwarded-For", forwarded_for))
    if not trusted_peer or not request.META.get("HTTP_X_FORWARDED_PROTO"):
        headers.append(("X-Forwarded-Proto", request.scheme))
    if not trusted_peer or not request.META.get("HTTP_X_FORWARDED_HOST"):
        headers.append(("X-Forwarded-Host", host))
    headers.append(("X-Request-ID", request_id))
    if preserve_host and host:
        headers.append(("Host", host))

    if identity.user_id:
        headers.append(("X-User-Id", identity.user_id))
        headers.append(("X-User-Roles", ",".join(sorted(identity.roles))))
        headers.append(("X-User-Permissions", ",".join(sorted(identity.permissions))))
    return headers


def response_headers(upstream_headers):
    """Return the upstream's response headers minus hop-by-hop ones, repeated fields kept apart.

    A field whose name is not a token or whose value carries a control
    character other than tab (RFC 9110 section 5.5) is dropped and logged:
    the WSGI server would refuse the whole response for it.
    """
    items = list(upstream_headers)
    dropped = HOP_BY_HOP_HEADERS | connection_listed(items)
    forwarded = []
    for name, value in items:
        if name.lower() in dropped:
            continue
        if not FIELD_NAME_RE.fullmatch(name) or INVALID_FIELD_VALUE_RE.search(value):
            logger.warning("upstream_header_dropped name=%r reason=invalid_field", name[:100])
            continue
        forwarded.append((name, value))
    return forwarded
