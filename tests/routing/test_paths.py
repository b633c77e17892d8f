"""The path normalizer: canonical forms and the inputs it rejects with 400."""

import pytest

from routing.exceptions import InvalidPath
from routing.paths import normalize_path, path_from_path_info, raw_request_path

CANONICAL = [
    ("/", "/"),
    ("/api/orders", "/api/orders"),
    ("/api/orders/", "/api/orders/"),
    ("/api//orders", "/api/orders"),
    ("//api///orders//", "/api/orders/"),
    ("/api/./orders", "/api/orders"),
    ("/api/x/../orders", "/api/orders"),
    ("/api/orders/.", "/api/orders/"),
    ("/api/orders/x/..", "/api/orders/"),
    ("/%61pi/%6Frders", "/api/orders"),
    ("/api/%7Euser", "/api/~user"),
    ("/api/a%20b", "/api/a%20b"),
    ("/api/a%3fb", "/api/a%3Fb"),
    ("/api/caf%c3%a9", "/api/caf%C3%A9"),
    ("/api/a%3bb=c", "/api/a%3Bb=c"),
    ("/api/a\"b", "/api/a%22b"),
]


@pytest.mark.parametrize(("raw", "expected"), CANONICAL, ids=[raw for raw, _ in CANONICAL])
def test_normalize_path_canonical_form(raw, expected):
    assert normalize_path(raw).path == expected


REJECTED = [
    ("/api/%2e%2e/admin", "encoded_dot_segment"),
    ("/api/%2E/admin", "encoded_dot_segment"),
    ("/api/.%2e/admin", "encoded_dot_segment"),
    ("/api/..\\admin", "backslash"),
    ("/api/%5cadmin", "backslash"),
    ("/api/%00", "control_character"),
    ("/api/%0d%0aSet-Cookie:x", "control_character"),
    ("/api/a\x01b", "control_character"),
    ("/api/%7f", "control_character"),
    ("/api/%c0%ae%c0%ae/admin", "invalid_utf8"),
    ("/api/%ff", "invalid_utf8"),
    ("/api/%zz", "malformed_escape"),
    ("/api/a%252Fb", "double_encoding"),
    ("/api/%2", "malformed_escape"),
    ("/..", "dot_segment_above_root"),
    ("/api/../../etc", "dot_segment_above_root"),
    ("api/orders", "invalid_path"),
    ("/api/admin;jsessionid=1/x", "path_parameter"),
]


@pytest.mark.parametrize(("raw", "code"), REJECTED, ids=[raw.encode("unicode_escape").decode() for raw, _ in REJECTED])
def test_normalize_path_rejects(raw, code):
    with pytest.raises(InvalidPath) as error:
        normalize_path(raw)
    assert error.value.code == code
    assert error.value.status_code == 400


def test_normalize_path_flags_encoded_slash():
    result = normalize_path("/files/a%2fb")
    assert result.path == "/files/a%2Fb"
    assert result.has_encoded_slash


def test_normalize_path_rejects_overlong_path():
    with pytest.raises(InvalidPath):
        normalize_path("/" + "a" * 9000)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"RAW_URI": "/a%2Fb?x=1"}, "/a%2Fb"),
        ({"REQUEST_URI": "/a/b"}, "/a/b"),
        ({"RAW_URI": "http://other.example/x/y?z"}, "/x/y"),
        ({}, None),
    ],
    ids=["gunicorn", "uwsgi", "absolute-form", "none"],
)
def test_raw_request_path_reads_server_variable(environ, expected):
    assert raw_request_path(environ) == expected


def test_path_from_path_info_reencodes():
    assert path_from_path_info("/caf\u00e9/a b") == "/caf%C3%A9/a%20b"
