"""Path patterns of routes and role rules, host patterns, and method lists.

A path pattern is a list of segments after a leading slash. A literal segment
matches itself, ``*`` matches exactly one non-empty segment, and a final ``**``
matches the path above it and everything below it: ``/api/orders/**`` matches
``/api/orders``, ``/api/orders/`` and ``/api/orders/7/items``. Matching is
case-sensitive and runs on the normalized path (see ``routing.paths``).
"""

import re

from django.core.exceptions import ValidationError

# RFC 3986 section 3.3: pchar = unreserved / pct-encoded / sub-delims / ":" / "@",
# less ";", which the normalizer rejects in paths. Percent-escapes are written
# with uppercase hex digits, as the normalizer emits them.
LITERAL_SEGMENT_RE = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()+,=:@]|%[0-9A-F]{2})+$")
HOST_RE = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")

STAR = "*"
DOUBLE_STAR = "**"


def split_path(path):
    """Return the segments of an absolute path: ``/a/b/`` gives ``["a", "b", ""]``."""
    return path.split("/")[1:]


def parse_pattern(pattern):
    """Return the segments of a path pattern, or raise ValidationError saying what is wrong."""
    if not isinstance(pattern, str) or not pattern.startswith("/"):
        raise ValidationError(f"Path pattern {pattern!r} must start with '/'.", code="invalid_pattern")
    if pattern == "/":
        return [""]
    segments = split_path(pattern)
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == DOUBLE_STAR:
            if index != last:
                raise ValidationError(
                    f"Path pattern {pattern!r}: '**' may only be the last segment.", code="invalid_pattern"
                )
        elif segment == STAR:
            continue
        elif segment == "":
            # Only a trailing slash may leave an empty segment: the normalizer
            # collapses repeated slashes, so an inner empty segment never matches.
            if index != last:
                raise ValidationError(
                    f"Path pattern {pattern!r} contains an empty segment ('//').", code="invalid_pattern"
                )
        elif "*" in segment:
            raise ValidationError(
                f"Path pattern {pattern!r}: '*' and '**' must be whole segments, not part of {segment!r}.",
                code="invalid_pattern",
            )
        elif segment in {".", ".."} or not LITERAL_SEGMENT_RE.match(segment):
            raise ValidationError(
                f"Path pattern {pattern!r}: segment {segment!r} is not a normalized path segment "
                "(use letters, digits, - . _ ~ ! $ & ' ( ) + , = : @ and uppercase percent-escapes).",
                code="invalid_pattern",
            )
    return segments


def compile_pattern(pattern):
    """Return a compiled regular expression that matches exactly the paths ``pattern`` matches."""
    segments = parse_pattern(pattern)
    parts = []
    for segment in segments:
        if segment == DOUBLE_STAR:
            parts.append("(?:/.*)?")
        elif segment == STAR:
            parts.append("/[^/]+")
        else:
            parts.append("/" + re.escape(segment))
    return re.compile("^" + "".join(parts) + "$", re.DOTALL)


def pattern_specificity(pattern):
    """Return a sort key under which a more specific pattern compares greater."""
    segments = parse_pattern(pattern)
    literals = sum(1 for segment in segments if segment not in {STAR, DOUBLE_STAR})
    exact = DOUBLE_STAR not in segments
    stars = sum(1 for segment in segments if segment == STAR)
    return (literals, exact, -stars, len(pattern))


def literal_prefix(pattern):
    """Return the pattern's leading literal segments, up to the first wildcard."""
    prefix = []
    for segment in parse_pattern(pattern):
        if segment in {STAR, DOUBLE_STAR}:
            break
        prefix.append(segment)
    return prefix


def parse_methods(value):
    """Return the upper-case HTTP methods in a comma- or space-separated string, or raise ValidationError."""
    if isinstance(value, (list, tuple)):
        items = [str(item) for item in value]
    else:
        items = re.split(r"[\s,]+", value or "")
    methods = []
    for item in items:
        method = item.strip().upper()
        if not method:
            continue
        if method not in HTTP_METHODS:
            raise ValidationError(
                f"{item!r} is not an HTTP method; use one of {', '.join(HTTP_METHODS)}.", code="invalid_method"
            )
        if method not in methods:
            methods.append(method)
    return methods


def parse_hosts(value):
    """Return the lower-case host patterns in a comma-, space- or newline-separated string."""
    if isinstance(value, (list, tuple)):
        items = [str(item) for item in value]
    else:
        items = re.split(r"[\s,]+", value or "")
    hosts = []
    for item in items:
        host = item.strip().lower().rstrip(".")
        if not host:
            continue
        if not HOST_RE.match(host):
            raise ValidationError(
                f"{item!r} is not a host name; use a name such as api.example.com or *.example.com, without a port.",
                code="invalid_host",
            )
        if host not in hosts:
            hosts.append(host)
    return hosts


def parse_paths(value):
    """Return the path patterns in a newline- or space-separated string, each validated."""
    if isinstance(value, (list, tuple)):
        items = [str(item) for item in value]
    else:
        items = (value or "").split()
    paths = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        parse_pattern(item)
        if item not in paths:
            paths.append(item)
    return paths
