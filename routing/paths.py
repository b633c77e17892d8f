"""Normalization of the request path, done once before the route table is consulted.

The normalized path is the string that is matched, authorized and forwarded, so an
upstream cannot read a path other than the one the gateway authorized. The rules:

- Percent-escapes of unreserved characters (RFC 3986 section 2.3) are decoded, and
  every other escape is written with uppercase hex digits.
- Characters outside the ``pchar`` set of RFC 3986 section 3.3 are percent-encoded.
- Repeated slashes collapse into one. ``.`` and ``..`` segments are resolved as in
  RFC 3986 section 5.2.4, and a ``..`` that would climb above the root is rejected.
- Rejected with 400: an encoded dot segment (``%2E%2E``), a backslash raw or encoded,
  control bytes raw or encoded (NUL included), a raw space, a raw ``;`` (a path
  parameter; ``%3B`` stays encoded and is data), a double-encoded character
  (``%25`` followed by two hex digits), a malformed escape, bytes that are
  not valid UTF-8 once decoded (overlong forms included), and a path that does not
  start with ``/``.
- An encoded slash (``%2F``) stays encoded inside its segment and is flagged, so that
  the proxy can reject it unless the matched route allows encoded slashes.
"""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from routing.exceptions import InvalidPath

UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# pchar minus unreserved and percent: sub-delims / ":" / "@".
RAW_ALLOWED = UNRESERVED | frozenset(b"!$&'()*+,;=:@")
HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
MAX_PATH_LENGTH = 8192
DOUBLE_ENCODED_RE = re.compile(r"%25[0-9A-Fa-f]{2}")


@dataclass(frozen=True)
class NormalizedPath:
    """The canonical path and what the normalizer noticed on the way."""

    path: str
    has_encoded_slash: bool = False


def raw_request_path(environ):
    """Return the path of the request target exactly as the client sent it, or None.

    gunicorn passes the request target as ``RAW_URI`` and uWSGI as ``REQUEST_URI``.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw is None:
        return None
    path = raw.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/") and "://" in path:
        # An absolute-form request target (RFC 9112 section 3.2.2): only the path
        # is used, and the upstream host always comes from the target URL.
        path = urlsplit(path).path or "/"
    return path


def path_from_path_info(path_info):
    """Return a raw-looking path rebuilt from the decoded PATH_INFO.

    Servers such as Django's development server decode the path before the
    gateway reads it, so an encoded slash can no longer be distinguished from a real one.
    """
    encoded = []
    for byte in path_info.encode("utf-8", "surrogateescape"):
        if byte in RAW_ALLOWED or byte == ord("/"):
            encoded.append(chr(byte))
        else:
            encoded.append(f"%{byte:02X}")
    return "".join(encoded)


def normalize_path(raw_path):
    """Return the NormalizedPath for ``raw_path``, or raise InvalidPath (400) saying why."""
    if len(raw_path) > MAX_PATH_LENGTH:
        raise InvalidPath(f"The request path is longer than {MAX_PATH_LENGTH} characters.", code="path_too_long")
    if not raw_path.startswith("/"):
        raise InvalidPath("The request path must start with '/'.")

    try:
        data = raw_path.encode("latin-1")
    except UnicodeEncodeError:
        # A server that decoded the request line as UTF-8 hands over characters
        # above U+00FF; their UTF-8 bytes are what the client sent.
        data = raw_path.encode("utf-8", "surrogateescape")

    output = []
    has_encoded_slash = False
    for raw_segment in data.split(b"/")[1:]:
        segment, encoded_slash = normalize_segment(raw_segment)
        has_encoded_slash = has_encoded_slash or encoded_slash
        output.append(segment)

    segments = remove_dot_segments(output)
    return NormalizedPath("/" + "/".join(segments), has_encoded_slash)


def normalize_segment(raw_segment):
    """Return one segment in canonical form and whether it contains an encoded slash."""
    parts = []
    decoded = bytearray()
    had_escape = False
    encoded_slash = False
    index = 0
    length = len(raw_segment)
    while index < length:
        byte = raw_segment[index]
        if byte == ord("%"):
            escape = raw_segment[index + 1 : index + 3]
            if not is_escape(escape):
                raise InvalidPath("The request path contains a malformed percent-escape.", code="malformed_escape")
            byte = int(escape, 16)
            index += 3
            had_escape = True
            if byte == ord("/"):
                encoded_slash = True
            elif byte == ord("\\"):
                raise InvalidPath("The request path contains an encoded backslash.", code="backslash")
            if byte in UNRESERVED:
                parts.append(chr(byte))
            else:
                check_control(byte, allow_space=True)
                parts.append(f"%{byte:02X}")
        else:
            index += 1
            if byte == ord("\\"):
                raise InvalidPath("The request path contains a backslash.", code="backslash")
            if byte == ord(";"):
                # Servlet containers cut ";name=value" out of a segment, so
                # "/admin;x" would reach them as "/admin" while the gateway
                # matched a different segment.
                raise InvalidPath("The request path contains a ';' parameter.", code="path_parameter")
            check_control(byte)
            if byte in RAW_ALLOWED:
                parts.append(chr(byte))
            else:
                parts.append(f"%{byte:02X}")
        decoded.append(byte)

    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPath("The request path is not valid UTF-8 once decoded.", code="invalid_utf8") from exc

    segment = "".join(parts)
    # "%252F" is "%2F" to an upstream that decodes twice. The check runs on the
    # canonical form, because decoding "%41" after "%25" can also make one.
    if DOUBLE_ENCODED_RE.search(segment):
        raise InvalidPath("The request path contains a double-encoded character.", code="double_encoding")
    if had_escape and segment in {".", ".."}:
        raise InvalidPath("The request path contains an encoded dot segment.", code="encoded_dot_segment")
    return segment, encoded_slash


def is_escape(two_bytes):
    """Return whether ``two_bytes`` are the two hex digits of a percent-escape."""
    return len(two_bytes) == 2 and two_bytes[0] in HEX_DIGITS and two_bytes[1] in HEX_DIGITS


def check_control(byte, allow_space=False):
    """Raise InvalidPath for a control byte (C0 controls, DEL), and for a space unless ``allow_space``."""
    if byte < 0x20 or byte == 0x7F or (byte == 0x20 and not allow_space):
        raise InvalidPath("The request path contains a control character or a space.", code="control_character")


def remove_dot_segments(segments):
    """Resolve ``.`` and ``..`` and drop empty segments, keeping a trailing slash."""
    output = []
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == ".":
            pass
        elif segment == "..":
            if not output:
                raise InvalidPath("The request path climbs above the root with '..'.", code="dot_segment_above_root")
            output.pop()
        elif segment == "":
            pass
        else:
            output.append(segment)
            continue
        if index == last:
            # "/a/." and "/a/" name the same directory, as do "/a/b/.." and "/a/".
            output.append("")
    return output or [""]
