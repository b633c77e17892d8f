"""Property tests: the path normalizer and the token parser never fail with anything but a 400 or 401."""

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from rest_framework_simplejwt.exceptions import TokenError

from accounts.tokens import verify_access_token
from routing import patterns
from routing.exceptions import InvalidPath
from routing.matching import CompiledRoute, CompiledRule, CompiledUpstream, RouteTable
from routing.paths import normalize_path
from routing.decision import forwarded_path

# Pieces that have broken path handling elsewhere, mixed with plain text.
PATH_PIECES = st.sampled_from([
    "/", "//", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "\\", ";", "%3b", "%00", "%0a", "%25", "%252f",
    "%c0%ae", "%ff", "%e2%82%ac", "%41", "%7e", "~", "@", ":", "api", "internal", "public", "admin", "x", "*",
    "?", "#", " ", "\x7f", "\xe9", "%", "%4", "%zz",
])
RAW_PATHS = st.lists(st.one_of(PATH_PIECES, st.text(max_size=3)), max_size=12).map(lambda parts: "/" + "".join(parts))

FUZZ = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(RAW_PATHS)
def test_fuzz_normalizer_only_rejects_with_400(raw):
    try:
        result = normalize_path(raw)
    except InvalidPath as exc:
        assert exc.status_code == 400
        return
    assert result.path.startswith("/")
    segments = result.path.split("/")[1:]
    assert "." not in segments
    assert ".." not in segments
    assert "" not in segments[:-1]
    assert "\\" not in result.path
    assert ";" not in result.path
    assert all(0x21 <= ord(character) < 0x7F for character in result.path)


@FUZZ
@given(RAW_PATHS)
def test_fuzz_normalizer_is_idempotent(raw):
    try:
        result = normalize_path(raw)
    except InvalidPath:
        return
    assert normalize_path(result.path).path == result.path


UPSTREAM = CompiledUpstream(name="u", targets=(("http://127.0.0.1:1", 1),), connect_timeout_seconds=None,
                            read_timeout_seconds=None)


def compiled_route(name, paths, strip_prefix="", rules=()):
    return CompiledRoute(name=name, paths=tuple(paths), methods=None, hosts=(), upstream=UPSTREAM,
                         strip_prefix=strip_prefix, public=False, roles=frozenset(), permissions=frozenset(),
                         priority=0, rules=tuple(rules))


INTERNAL_RULE = CompiledRule(methods=None, path="/api/internal/**",
                             path_regex=patterns.compile_pattern("/api/internal/**"),
                             roles=frozenset({"admin"}), permissions=frozenset())
TABLE = RouteTable.build(1, [
    compiled_route("api", ["/api/**"], rules=[INTERNAL_RULE]),
    compiled_route("public", ["/public/**"], strip_prefix="/public"),
    compiled_route("one", ["/x/*/y"]),
])


@FUZZ
@given(RAW_PATHS)
def test_fuzz_forwarded_path_stays_inside_pattern(raw):
    try:
        path = normalize_path(raw).path
        match = TABLE.match("h", path, "GET")
    except (InvalidPath, Exception) as exc:  # noqa: BLE001 - RouteNotFound and 400s end the example
        assert getattr(exc, "status_code", None) in {400, 404}
        return
    # The pattern that authorized the request matches the string that is forwarded.
    assert patterns.compile_pattern(match.pattern).match(path)
    forwarded = forwarded_path(match.route, path)
    assert match.route.strip_prefix + forwarded == path or (forwarded == "/" and path == match.route.strip_prefix)
    # A rule decides on the same string: whatever reaches /api/internal/ is seen as such.
    if match.route.name == "api":
        assert INTERNAL_RULE.applies_to("GET", path) == (path == "/api/internal" or path.startswith("/api/internal/"))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
CLAIM_NAMES = st.sampled_from(["exp", "iat", "nbf", "sub", "jti", "iss", "aud", "token_type", "roles",
                               "permissions", "alg", "kid", "crit", "jwk"])
JSON_OBJECTS = st.dictionaries(st.one_of(CLAIM_NAMES, st.text(max_size=5)), JSON_VALUES, max_size=8)
SEGMENTS = st.one_of(
    JSON_OBJECTS.map(lambda value: b64url(json.dumps(value).encode())),
    JSON_VALUES.map(lambda value: b64url(json.dumps(value).encode())),
    st.binary(max_size=40).map(b64url),
    st.text(max_size=20),
)
TOKENS = st.one_of(
    st.text(max_size=200),
    st.lists(SEGMENTS, min_size=1, max_size=5).map(".".join),
)


@FUZZ
@given(TOKENS)
def test_fuzz_token_parser_only_raises_token_error(token):
    try:
        verify_access_token(token)
    except TokenError:
        return
    pytest.fail(f"token accepted: {token!r}")
