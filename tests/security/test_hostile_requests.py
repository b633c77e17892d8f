"""Hostile requests against one gateway under gunicorn: each gets its exact status and reaches no upstream.

The routes:
- ``/public/**`` is public;
- ``/api/**`` needs role ``reader``, and ``/api/internal/**`` under it also needs ``admin``;
- ``/admin-api/**`` needs role ``admin``;
- ``/upload/**`` needs role ``reader`` and takes request bodies of at most 1,024 bytes.
"""

import base64
import json
import time

import jwt
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.management import call_command

from accounts.models import Role, User
from accounts.tokens import RefreshToken, issue_access_token
from routing.exceptions import InvalidPath
from routing.paths import normalize_path
from routing.models import Route, RoleRule, Target, Upstream
from tests.gunicorn import GunicornGateway, raw_request
from tests.upstream import RecordingUpstream

@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """Start one upstream and one gunicorn gateway with the routes above, for the whole module."""
    upstream = RecordingUpstream().start()
    with django_db_blocker.unblock():
        service = Upstream.objects.create(name="service")
        Target.objects.create(upstream=service, url=upstream.url)
        reader = Role.objects.create(name="reader")
        admin = Role.objects.create(name="admin")
        Route.objects.create(name="public", paths="/public/**", upstream=service, auth="public")
        api = Route.objects.create(name="api", paths="/api/**", upstream=service)
        api.roles.add(reader)
        rule = RoleRule.objects.create(route=api, path="/api/internal/**")
        rule.roles.add(admin)
        Route.objects.create(name="admin-api", paths="/admin-api/**", upstream=service).roles.add(admin)
        Route.objects.create(name="upload", paths="/upload/**", upstream=service, max_body_bytes=1024).roles.add(
            reader
        )
        user = User.objects.create_user("reader", password="correct horse battery")
        user.roles.add(reader)
        refresh = RefreshToken.for_user(user)
        tokens = {"access": str(issue_access_token(refresh, user)), "refresh": str(refresh), "user_id": str(user.pk)}
    # gunicorn rejects header fields above 8,190 bytes itself (431), so the
    # gateway's own token size limit is lowered below that to be reachable.
    gateway = GunicornGateway(
        tmp_path_factory.mktemp("hostile"), workers=1, threads=4, env={"JWTGATE_ACCESS_TOKEN_MAX_BYTES": "4096"}
    ).start()
    yield {"url": gateway.url, "upstream": upstream, "tokens": tokens, "gateway": gateway}
    gateway.stop()
    upstream.stop()
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def gateway(stack):
    stack["upstream"].received.clear()
    return stack


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides):
    now = int(time.time())
    base = {
        "token_type": "access",
        "sub": "1",
        "jti": "hostile",
        "iat": now,
        "exp": now + 300,
        "iss": settings.SIMPLE_JWT["ISSUER"],
        "roles": ["reader", "admin"],
        "permissions": [],
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not DROP}


DROP = object()


def sign(payload, key=None, algorithm="HS256", headers=None):
    return jwt.encode(payload, key or settings.SIMPLE_JWT["SIGNING_KEY"], algorithm=algorithm, headers=headers)


def forge(header, payload_json, signature_key=None):
    """Return a compact JWS built by hand from a header dict and a raw payload string, HS256-signed."""
    import hashlib
    import hmac

    signing_input = f"{b64url(json.dumps(header))}.{b64url(payload_json)}"
    key = (signature_key or settings.SIMPLE_JWT["SIGNING_KEY"]).encode()
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


ATTACKER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_PEM = ATTACKER_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)


def attacker_jwk():
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(ATTACKER_KEY.public_key()))
    return public


TOKEN_CASES = {
    # The signature algorithm is the gateway's, never the token's.
    "alg-none": lambda: f"{b64url(json.dumps({'alg': 'none', 'typ': 'JWT'}))}.{b64url(json.dumps(claims()))}.",
    "alg-none-uppercase": lambda: f"{b64url(json.dumps({'alg': 'NONE'}))}.{b64url(json.dumps(claims()))}.",
    "alg-none-with-signature": lambda: f"{b64url(json.dumps({'alg': 'none'}))}.{b64url(json.dumps(claims()))}.c2ln",
    "alg-hs512": lambda: sign(claims(), algorithm="HS512"),
    "alg-hs384": lambda: sign(claims(), algorithm="HS384"),
    "alg-rs256-attacker-key": lambda: sign(claims(), key=ATTACKER_PEM, algorithm="RS256"),
    "alg-unknown": lambda: forge({"alg": "XS999", "typ": "JWT"}, json.dumps(claims())),
    "alg-missing": lambda: forge({"typ": "JWT"}, json.dumps(claims())),
    # Keys are never taken from the token.
    "kid-foreign": lambda: sign(claims(), headers={"kid": "someone-elses-key"}),
    "kid-path-traversal": lambda: sign(claims(), headers={"kid": "../../dev/null"}),
    "jwk-embedded": lambda: sign(claims(), key=ATTACKER_PEM, algorithm="RS256", headers={"jwk": attacker_jwk()}),
    "jku-header": lambda: sign(claims(), headers={"jku": "http://127.0.0.1:9/jwks.json"}),
    "x5u-header": lambda: sign(claims(), headers={"x5u": "http://127.0.0.1:9/cert.pem"}),
    "x5c-header": lambda: sign(claims(), headers={"x5c": ["MIIB"]}),
    "crit-header": lambda: sign(claims(), headers={"crit": ["exp"]}),
    # Signatures.
    "signature-other-secret": lambda: sign(claims(), key="another-secret-that-is-long-enough-for-hs256"),
    "signature-stripped": lambda: sign(claims()).rsplit(".", 1)[0] + ".",
    "signature-tampered": lambda: sign(claims())[:-4] + "AAAA",
    "payload-swapped": lambda: ".".join(
        [sign(claims()).split(".")[0], b64url(json.dumps(claims(roles=["root"]))), sign(claims()).split(".")[2]]
    ),
    # Structure.
    "one-segment": lambda: "abc",
    "two-segments": lambda: "abc.def",
    "four-segments": lambda: sign(claims()) + ".extra",
    "empty-header": lambda: "." + sign(claims()).split(".", 1)[1],
    "bad-base64": lambda: "e30*.e30.c2ln",
    "header-not-json": lambda: f"{b64url('not json')}.{b64url(json.dumps(claims()))}.c2ln",
    "payload-not-json": lambda: forge({"alg": "HS256"}, "not json"),
    "payload-array": lambda: forge({"alg": "HS256"}, "[1, 2, 3]"),
    "payload-string": lambda: forge({"alg": "HS256"}, '"admin"'),
    "payload-duplicate-roles": lambda: forge(
        {"alg": "HS256"}, json.dumps(claims(roles=["reader"]))[:-1] + ', "roles": ["admin"]}'
    ),
    "header-duplicate-alg": lambda: f'{b64url(chr(123) + chr(34) + "alg" + chr(34) + ":" + chr(34) + "none" + chr(34) + "," + chr(34) + "alg" + chr(34) + ":" + chr(34) + "HS256" + chr(34) + chr(125))}.{b64url(json.dumps(claims()))}.c2ln',  # noqa: E501
    "oversized": lambda: sign(claims(padding="x" * 5000)),
    # Claims.
    "exp-string": lambda: sign(claims(exp=str(int(time.time()) + 300))),
    "exp-boolean": lambda: sign(claims(exp=True)),
    "exp-missing": lambda: sign(claims(exp=DROP)),
    "expired": lambda: sign(claims(exp=int(time.time()) - 120, iat=int(time.time()) - 600)),
    "nbf-future": lambda: sign(claims(nbf=int(time.time()) + 600)),
    "iat-future": lambda: sign(claims(iat=int(time.time()) + 600)),
    "iss-wrong": lambda: sign(claims(iss="https://issuer.example")),
    "iss-missing": lambda: sign(claims(iss=DROP)),
    "token-type-refresh": lambda: sign(claims(token_type="refresh")),
    "token-type-missing": lambda: sign(claims(token_type=DROP)),
    "jti-missing": lambda: sign(claims(jti=DROP)),
    "sub-missing": lambda: sign(claims(sub=DROP)),
    "sub-number": lambda: sign(claims(sub=1)),
    "roles-string": lambda: sign(claims(roles="admin")),
    "roles-mixed-list": lambda: sign(claims(roles=["reader", 7])),
    "permissions-object": lambda: sign(claims(permissions={"all": True})),
}


@pytest.mark.parametrize("make_token", TOKEN_CASES.values(), ids=TOKEN_CASES.keys())
def test_hostile_token_gets_401(gateway, make_token):
    status, head, body = raw_request(gateway["url"], "GET /api/orders HTTP/1.1", [f"Authorization: Bearer {make_token()}"])
    assert status == 401
    assert 'error="invalid_token"' in head
    assert json.loads(body)["code"] == "invalid_token"
    assert gateway["upstream"].received == []


def test_hostile_refresh_token_gets_401(gateway):
    refresh = gateway["tokens"]["refresh"]
    status, _head, _body = raw_request(gateway["url"], "GET /api/orders HTTP/1.1", [f"Authorization: Bearer {refresh}"])
    assert status == 401
    assert gateway["upstream"].received == []


AUTHORIZATION_CASES = [
    # (id, request line, header lines given the valid token, status)
    ("no-header", "GET /api/orders HTTP/1.1", lambda token: [], 401),
    ("basic-scheme", "GET /api/orders HTTP/1.1", lambda token: ["Authorization: Basic cmVhZGVyOnB3"], 401),
    ("bearer-without-token", "GET /api/orders HTTP/1.1", lambda token: ["Authorization: Bearer"], 401),
    ("bearer-two-tokens", "GET /api/orders HTTP/1.1", lambda token: [f"Authorization: Bearer {token} {token}"], 401),
    ("two-headers", "GET /api/orders HTTP/1.1",
     lambda token: [f"Authorization: Bearer {token}", f"Authorization: Bearer {token}"], 400),
    ("bearer-and-basic", "GET /api/orders HTTP/1.1",
     lambda token: [f"Authorization: Bearer {token}", "Authorization: Basic cmVhZGVyOnB3"], 400),
    ("token-in-query", "GET /api/orders?access_token={token} HTTP/1.1", lambda token: [], 400),
    ("token-in-query-and-header", "GET /api/orders?x=1&access_token={token} HTTP/1.1",
     lambda token: [f"Authorization: Bearer {token}"], 400),
    ("token-in-query-public", "GET /public/x?ACCESS_TOKEN={token} HTTP/1.1", lambda token: [], 400),
    ("invalid-token-public-route", "GET /public/x HTTP/1.1", lambda token: ["Authorization: Bearer a.b.c"], 401),
    ("reader-on-admin-route", "GET /admin-api/users HTTP/1.1", lambda token: [f"Authorization: Bearer {token}"], 403),
    ("reader-on-internal-rule", "GET /api/internal/keys HTTP/1.1",
     lambda token: [f"Authorization: Bearer {token}"], 403),
]


@pytest.mark.parametrize(("request_line", "make_headers", "status"),
                         [case[1:] for case in AUTHORIZATION_CASES], ids=[case[0] for case in AUTHORIZATION_CASES])
def test_hostile_authorization_is_refused(gateway, request_line, make_headers, status):
    token = gateway["tokens"]["access"]
    request_line = request_line.replace("{token}", token)
    got, _head, _body = raw_request(gateway["url"], request_line, make_headers(token))
    assert got == status
    assert gateway["upstream"].received == []


PATH_CASES = [
    # Dot segments, raw and encoded: resolved paths are checked like any other.
    ("dot-dot-into-rule", "/api/x/../internal/keys", 403),
    ("dot-into-rule", "/api/./internal/keys", 403),
    ("double-slash-into-rule", "/api//internal//keys", 403),
    ("public-dot-dot-to-admin", "/public/../admin-api/users", 403),
    ("encoded-dot-dot-lower", "/public/%2e%2e/admin-api/users", 400),
    ("encoded-dot-dot-upper", "/public/%2E%2E/admin-api/users", 400),
    ("encoded-dot-dot-mixed", "/public/.%2e/admin-api/users", 400),
    ("encoded-dot", "/api/%2e/internal/keys", 400),
    ("encoded-unreserved-into-rule", "/api/%69nternal/keys", 403),
    ("climb-above-root", "/../api/internal", 400),
    ("climb-far-above-root", "/api/../../../etc/passwd", 400),
    # Slashes and backslashes.
    ("encoded-slash-lower", "/api/internal%2fkeys", 400),
    ("encoded-slash-upper", "/public%2F..%2Fadmin-api/users", 400),
    ("double-encoded-slash", "/api/internal%252fkeys", 400),
    ("double-encoded-dot-dot", "/public/%252e%252e/admin-api/users", 400),
    ("backslash-raw", "/public\\..\\admin-api\\users", 400),
    ("backslash-encoded", "/public/..%5cadmin-api/users", 400),
    ("backslash-encoded-upper", "/public/..%5Cadmin-api/users", 400),
    # Path parameters.
    ("semicolon-parameter", "/api/internal;jsessionid=1/keys", 400),
    ("semicolon-dot-dot", "/public/..;/admin-api/users", 400),
    # Control bytes and invalid UTF-8.
    ("nul-encoded", "/public/x%00.json", 400),
    ("newline-encoded", "/public/x%0d%0aX-Injected:%201", 400),
    ("tab-encoded", "/public/x%09y", 400),
    ("del-encoded", "/public/x%7f", 400),
    ("overlong-dot", "/public/%c0%ae%c0%ae/admin-api/users", 400),
    ("overlong-slash", "/public/..%c0%afadmin-api", 400),
    ("invalid-utf8-byte", "/public/%ff", 400),
    ("truncated-utf8", "/public/%e2%82", 400),
    ("surrogate-utf8", "/public/%ed%a0%80", 400),
    ("malformed-escape", "/public/%zz", 400),
    ("truncated-escape", "/public/%4", 400),
    # Another host in the path never changes the upstream host.
    ("authority-in-path", "//127.0.0.2/admin-api/users", 404),
    ("at-sign-host", "/@127.0.0.2/admin-api", 404),
    # Case: matching is case-sensitive, so another case is another path.
    ("uppercase-prefix", "/API/internal/keys", 404),
    ("overlong-request-line", "/public/" + "a" * 5000, 414),
]


@pytest.mark.parametrize(("path", "status"), [case[1:] for case in PATH_CASES], ids=[case[0] for case in PATH_CASES])
def test_hostile_path_is_refused(gateway, path, status):
    token = gateway["tokens"]["access"]
    got, _head, _body = raw_request(gateway["url"], f"GET {path} HTTP/1.1", [f"Authorization: Bearer {token}"])
    assert got == status
    assert gateway["upstream"].received == []


def test_hostile_absolute_form_keeps_target_host(gateway):
    token = gateway["tokens"]["access"]
    status, _head, _body = raw_request(
        gateway["url"], "GET http://127.0.0.2:1/api/orders HTTP/1.1", [f"Authorization: Bearer {token}"]
    )
    received = gateway["upstream"].received
    assert status == 200
    assert received[0].target == "/api/orders"
    assert received[0].header("Host") == gateway["upstream"].url.split("//")[1]


HEADER_CASES = [
    ("header-section-too-large", "GET /api/orders HTTP/1.1", lambda token: [f"X-Pad-{index}: {'a' * 8000}" for index in range(5)], b"", 431),
    ("one-header-too-large", "GET /api/orders HTTP/1.1", lambda token: ["X-Big: " + "a" * 9000], b"", 431),
    ("too-many-headers", "GET /api/orders HTTP/1.1", lambda token: [f"X-H{index}: 1" for index in range(120)], b"", 431),
    ("body-over-route-limit", "POST /upload/file HTTP/1.1", lambda token: ["Content-Length: 4096"], b"x" * 4096, 413),
    ("announced-body-over-limit", "POST /upload/file HTTP/1.1", lambda token: ["Content-Length: 1073741824"], b"", 413),
    ("chunked-body-over-limit", "POST /upload/file HTTP/1.1", lambda token: ["Transfer-Encoding: chunked"],
     b"800\r\n" + b"x" * 2048 + b"\r\n0\r\n\r\n", 413),
    ("content-length-not-a-number", "POST /upload/file HTTP/1.1", lambda token: ["Content-Length: ten"], b"", 400),
    ("content-length-negative", "POST /upload/file HTTP/1.1", lambda token: ["Content-Length: -1"], b"", 400),
    ("content-length-and-chunked", "POST /upload/file HTTP/1.1",
     lambda token: ["Content-Length: 5", "Transfer-Encoding: chunked"], b"0\r\n\r\n", 400),
    ("two-content-lengths", "POST /upload/file HTTP/1.1", lambda token: ["Content-Length: 5", "Content-Length: 6"], b"hello!", 400),
]


@pytest.mark.parametrize(("request_line", "make_headers", "body", "status"),
                         [case[1:] for case in HEADER_CASES], ids=[case[0] for case in HEADER_CASES])
def test_hostile_headers_and_bodies_are_refused(gateway, request_line, make_headers, body, status):
    token = gateway["tokens"]["access"]
    headers = [f"Authorization: Bearer {token}", *make_headers(token)]
    got, _head, _body = raw_request(gateway["url"], request_line, headers, body)
    assert got == status
    assert gateway["upstream"].received == []


def test_hostile_identity_headers_never_forwarded(gateway):
    token = gateway["tokens"]["access"]
    spoofed = ["X-User-Id: 1", "x-user-id: 2", "X-USER-ROLES: admin", "X-User-Roles: root", "X-User-Email: a@b"]
    status, _head, _body = raw_request(gateway["url"], "GET /api/orders HTTP/1.1",
                                       [f"Authorization: Bearer {token}", *spoofed])
    received = gateway["upstream"].received[0]
    assert status == 200
    assert received.header_values("X-User-Id") == [gateway["tokens"]["user_id"]]
    assert received.header_values("X-User-Roles") == ["reader"]
    assert received.header("X-User-Email") is None


def test_hostile_connection_named_header_dropped(gateway):
    token = gateway["tokens"]["access"]
    headers = [f"Authorization: Bearer {token}", "Connection: close, X-Secret", "Connection: X-Other",
               "X-Secret: 1", "X-Other: 2"]
    raw_request(gateway["url"], "GET /api/orders HTTP/1.1", headers)
    received = gateway["upstream"].received[0]
    assert received.header("X-Secret") is None
    assert received.header("X-Other") is None


def test_hostile_forwarded_for_from_untrusted_peer(gateway):
    token = gateway["tokens"]["access"]
    headers = [f"Authorization: Bearer {token}", "X-Forwarded-For: 203.0.113.7", "Forwarded: for=203.0.113.7",
               "X-Real-IP: 203.0.113.7", "X-Forwarded-Proto: https"]
    raw_request(gateway["url"], "GET /api/orders HTTP/1.1", headers)
    received = gateway["upstream"].received[0]
    assert received.header("X-Forwarded-For") == "127.0.0.1"
    assert received.header("Forwarded") is None
    assert received.header("X-Real-IP") is None
    assert received.header("X-Forwarded-Proto") == "http"


@pytest.mark.parametrize("path", ["/api/orders", "/nothing-here", "/api/internal/keys"], ids=["401", "404", "401-rule"])
def test_hostile_errors_leak_nothing(gateway, path):
    status, head, body = raw_request(gateway["url"], f"GET {path} HTTP/1.1", ["Authorization: Bearer x.y.z"])
    text = body.decode()
    assert "Traceback" not in text
    assert gateway["upstream"].url.split("//")[1] not in text
    assert settings.SIMPLE_JWT["SIGNING_KEY"] not in text
    assert "X-Content-Type-Options: nosniff" in head


# Pieces of request targets that a client can put on an HTTP/1.1 request line.
WIRE_PIECES = st.sampled_from([
    "/", "//", ".", "..", "%2e", "%2E", "%2f", "%5c", "\\", ";", "%3b", "%00", "%25", "%252f", "%c0%ae", "%ff",
    "%41", "~", "@", "api", "internal", "public", "admin-api", "keys", "x", "*", "%",
])
WIRE_PATHS = st.lists(WIRE_PIECES, max_size=10).map(lambda parts: "/" + "".join(parts))


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=WIRE_PATHS)
def test_hostile_fuzz_authorized_path_is_forwarded_path(stack, raw):
    stack["upstream"].received.clear()
    token = stack["tokens"]["access"]
    status, _head, _body = raw_request(stack["url"], f"GET {raw} HTTP/1.1", [f"Authorization: Bearer {token}"])
    received = stack["upstream"].received
    if status != 200:
        assert received == []
        return
    # Only a path that normalizes can have been forwarded, and it arrives as normalized.
    try:
        expected = normalize_path(raw).path
    except InvalidPath:
        pytest.fail(f"{raw!r} was forwarded although the normalizer rejects it")
    assert [request.target for request in received] == [expected]
    assert not expected.startswith(("/api/internal/", "/admin-api"))
    assert expected != "/api/internal"
