"""The proxy path end to end: the gateway under Django's live server, a real upstream on 127.0.0.1."""

import base64
import gzip
import hashlib
import json
import os
import time
from http.client import HTTPConnection

import jwt
import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db(transaction=True)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_token(claims, key=None, algorithm="HS256", headers=None):
    base = {
        "token_type": "access",
        "sub": "7",
        "jti": "test-jti",
        "iat": int(time.time()),
        "exp": int(time.time()) + 300,
        "iss": settings.SIMPLE_JWT["ISSUER"],
        "roles": ["reader"],
        "permissions": [],
    }
    base.update(claims)
    return jwt.encode(base, key or settings.SIMPLE_JWT["SIGNING_KEY"], algorithm=algorithm, headers=headers)


def unsigned_token(claims):
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    return f"{header}.{payload}."


def assert_problem(response, status):
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert body["title"]
    assert body["detail"]
    return body


@pytest.fixture
def orders_route(make_route, upstream):
    return make_route(name="orders", paths="/api/orders\n/api/orders/**", upstream_url=upstream.url,
                      roles=["reader", "admin"])


def test_proxy_forwards_allowed_request(gateway, http, orders_route, upstream, auth_header):
    response = http.get(f"{gateway}/api/orders/42", headers=auth_header(roles=["reader"]))
    assert response.status_code == 200
    assert len(upstream.received) == 1
    assert upstream.last.method == "GET"
    assert upstream.last.target == "/api/orders/42"


def test_proxy_adds_identity_headers(gateway, http, orders_route, upstream, make_user, token_for):
    user = make_user(username="ida", roles=["reader", "admin"], permissions=["orders:read"])
    http.get(f"{gateway}/api/orders", headers={"Authorization": f"Bearer {token_for(user)}"})
    assert upstream.last.header("X-User-Id") == str(user.pk)
    assert upstream.last.header("X-User-Roles") == "admin,reader"
    assert upstream.last.header("X-User-Permissions") == "orders:read"


def test_proxy_forwards_authorization_header(gateway, http, orders_route, upstream, auth_header):
    headers = auth_header(roles=["reader"])
    http.get(f"{gateway}/api/orders", headers=headers)
    assert upstream.last.header("Authorization") == headers["Authorization"]


def test_proxy_missing_token_gets_401(gateway, http, orders_route, upstream):
    response = http.get(f"{gateway}/api/orders")
    body = assert_problem(response, 401)
    assert body["code"] == "not_authenticated"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="jwtgate"'
    assert upstream.received == []


BAD_TOKENS = {
    "malformed": lambda: "not-a-jwt",
    "two-segments": lambda: "abc.def",
    "bad-signature": lambda: signed_token({}, key="another-key-that-is-long-enough-for-hs256"),
    "alg-none": lambda: unsigned_token({"token_type": "access", "sub": "1", "jti": "x", "exp": int(time.time()) + 300}),
    "expired": lambda: signed_token({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}),
    "refresh-token": lambda: signed_token({"token_type": "refresh"}),
    "wrong-issuer": lambda: signed_token({"iss": "someone-else"}),
    "missing-exp": lambda: signed_token({"exp": None}),
    "missing-subject": lambda: signed_token({"sub": ""}),
}


@pytest.mark.parametrize("make_token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_proxy_invalid_token_gets_401(gateway, http, orders_route, upstream, make_token):
    response = http.get(f"{gateway}/api/orders", headers={"Authorization": f"Bearer {make_token()}"})
    body = assert_problem(response, 401)
    assert body["code"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="jwtgate", error="invalid_token"')
    assert upstream.received == []


def test_proxy_bearer_scheme_is_case_insensitive(gateway, http, orders_route, upstream, auth_header):
    token = auth_header(roles=["reader"])["Authorization"].split()[1]
    response = http.get(f"{gateway}/api/orders", headers={"Authorization": f"bEaReR {token}"})
    assert response.status_code == 200


def test_proxy_missing_role_gets_403(gateway, http, orders_route, upstream, auth_header):
    response = http.get(f"{gateway}/api/orders", headers=auth_header(roles=["guest"]))
    body = assert_problem(response, 403)
    assert body["code"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert upstream.received == []


def test_proxy_no_route_gets_404(gateway, http, orders_route, upstream):
    response = http.get(f"{gateway}/api/customers")
    body = assert_problem(response, 404)
    assert body["code"] == "route_not_found"


def test_proxy_wrong_method_gets_405_with_allow(gateway, http, make_route, upstream, auth_header):
    make_route(name="reports", paths="/reports/**", upstream_url=upstream.url, methods="GET,POST")
    response = http.delete(f"{gateway}/reports/1", headers=auth_header())
    assert_problem(response, 405)
    assert response.headers["Allow"] == "GET, HEAD, POST"
    assert upstream.received == []


def test_proxy_refused_connection_gets_502(gateway, http, make_route, auth_header):
    from tests.gunicorn import free_port

    make_route(name="down", paths="/down/**", upstream_url=f"http://127.0.0.1:{free_port()}")
    response = http.get(f"{gateway}/down/x", headers=auth_header())
    body = assert_problem(response, 502)
    assert "127.0.0.1" not in response.text
    assert body["code"] == "upstream_unavailable"


def test_proxy_read_timeout_gets_504(gateway, http, make_route, make_upstream, upstream, auth_header):
    slow = make_upstream(name="slow", urls=[upstream.url], read_timeout_seconds=0.3)
    make_route(name="slow", paths="/slow/**", upstream_row=slow)
    upstream.respond("/slow", delay_seconds=1.5)
    response = http.get(f"{gateway}/slow/x", headers=auth_header())
    body = assert_problem(response, 504)
    assert body["code"] == "upstream_timeout"
    assert upstream.url.split("//")[1] not in response.text


def test_proxy_upstream_without_targets_gets_503(gateway, http, make_route, auth_header):
    make_route(name="empty", paths="/empty/**")
    response = http.get(f"{gateway}/empty/x", headers=auth_header())
    assert_problem(response, 503)


def test_proxy_closed_connection_gets_502(gateway, http, make_route, upstream, auth_header):
    make_route(name="broken", paths="/broken/**", upstream_url=upstream.url)
    upstream.respond("/broken", status=0)
    response = http.get(f"{gateway}/broken/x", headers=auth_header())
    assert_problem(response, 502)


RULE_CASES = [
    ("GET", ["reader"], 200),
    ("DELETE", ["reader"], 403),
    ("DELETE", ["admin"], 200),
    ("POST", ["reader"], 403),
    ("POST", ["writer"], 403),
    ("POST", ["reader", "writer"], 200),
]


@pytest.mark.parametrize(("method", "roles", "status"), RULE_CASES,
                         ids=[f"{method}-{'+'.join(roles)}" for method, roles, _ in RULE_CASES])
def test_proxy_role_rules_per_method(gateway, http, make_route, upstream, auth_header, method, roles, status):
    make_route(
        name="orders", paths="/api/orders/**", upstream_url=upstream.url, roles=["reader", "admin"],
        rules=[
            {"methods": "DELETE", "path": "/api/orders/**", "roles": ["admin"]},
            {"methods": "POST", "roles": ["writer"]},
        ],
    )
    response = http.request(method, f"{gateway}/api/orders/5", headers=auth_header(roles=roles))
    assert response.status_code == status


SUB_PATH_CASES = [
    ("/api/orders/5", ["reader"], 200),
    ("/api/orders/5/refund", ["reader"], 403),
    ("/api/orders/5/refund", ["finance"], 403),
    ("/api/orders/5/refund", ["reader", "finance"], 200),
]


@pytest.mark.parametrize(("path", "roles", "status"), SUB_PATH_CASES,
                         ids=[f"{path}-{'+'.join(roles)}" for path, roles, _ in SUB_PATH_CASES])
def test_proxy_role_rules_per_sub_path(gateway, http, make_route, upstream, auth_header, path, roles, status):
    make_route(
        name="orders", paths="/api/orders/**", upstream_url=upstream.url, roles=["reader"],
        rules=[{"path": "/api/orders/*/refund", "roles": ["finance"]}],
    )
    response = http.get(f"{gateway}{path}", headers=auth_header(roles=roles))
    assert response.status_code == status


PERMISSION_CASES = [
    ([], 403),
    (["orders:read"], 403),
    (["orders:read", "orders:write"], 200),
]


@pytest.mark.parametrize(("permissions", "status"), PERMISSION_CASES, ids=["none", "one-of-two", "both"])
def test_proxy_permissions_need_all(gateway, http, make_route, upstream, auth_header, permissions, status):
    make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url,
               permissions=["orders:read", "orders:write"])
    response = http.get(f"{gateway}/api/orders/1", headers=auth_header(permissions=permissions))
    assert response.status_code == status


def test_proxy_role_permission_reaches_token(gateway, http, make_route, upstream, make_user, token_for):
    from accounts.models import ApiPermission, Role

    make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, permissions=["orders:write"])
    role = Role.objects.create(name="clerk")
    role.permissions.add(ApiPermission.objects.get(codename="orders:write"))
    user = make_user(username="carl", roles=["clerk"])
    response = http.get(f"{gateway}/api/orders/1", headers={"Authorization": f"Bearer {token_for(user)}"})
    assert response.status_code == 200


def test_proxy_head_follows_get_rules(gateway, http, make_route, upstream, auth_header):
    make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url,
               rules=[{"methods": "GET", "roles": ["admin"]}])
    response = http.head(f"{gateway}/api/orders/1", headers=auth_header(roles=["reader"]))
    assert response.status_code == 403
    assert upstream.received == []


def test_proxy_public_route_needs_no_token(gateway, http, make_route, upstream):
    make_route(name="status", paths="/status/**", upstream_url=upstream.url, auth="public")
    response = http.get(f"{gateway}/status/ping")
    assert response.status_code == 200
    assert upstream.last.header("X-User-Id") is None


def test_proxy_public_route_verifies_presented_token(gateway, http, make_route, upstream):
    make_route(name="status", paths="/status/**", upstream_url=upstream.url, auth="public")
    response = http.get(f"{gateway}/status/ping", headers={"Authorization": "Bearer forged.token.value"})
    assert_problem(response, 401)
    assert upstream.received == []


def test_proxy_public_route_forwards_identity(gateway, http, make_route, upstream, make_user, token_for):
    make_route(name="status", paths="/status/**", upstream_url=upstream.url, auth="public")
    user = make_user(username="pat", roles=["reader"])
    http.get(f"{gateway}/status/ping", headers={"Authorization": f"Bearer {token_for(user)}"})
    assert upstream.last.header("X-User-Id") == str(user.pk)


def test_proxy_public_route_rule_asks_for_token(gateway, http, make_route, upstream):
    make_route(name="status", paths="/status/**", upstream_url=upstream.url, auth="public",
               rules=[{"methods": "DELETE", "roles": ["admin"]}])
    response = http.delete(f"{gateway}/status/1")
    assert_problem(response, 401)
    assert upstream.received == []


STRIP_CASES = [
    ("/api/orders/42", "/orders/42"),
    ("/api/orders", "/orders"),
    ("/api/orders/", "/orders/"),
]


@pytest.mark.parametrize(("path", "forwarded"), STRIP_CASES, ids=["below", "exact", "trailing-slash"])
def test_proxy_strips_prefix(gateway, http, make_route, upstream, auth_header, path, forwarded):
    make_route(name="orders", paths="/api/orders\n/api/orders/**", upstream_url=upstream.url, strip_prefix="/api")
    http.get(f"{gateway}{path}", headers=auth_header())
    assert upstream.last.target == forwarded


def test_proxy_appends_path_to_target_base_path(gateway, http, make_route, upstream, auth_header):
    make_route(name="orders", paths="/api/**", upstream_url=f"{upstream.url}/v2", strip_prefix="/api")
    http.get(f"{gateway}/api/orders/1", headers=auth_header())
    assert upstream.last.target == "/v2/orders/1"


QUERY_CASES = [
    "a=1&a=2&a=3",
    "lower=%2f%c3%a9",
    "q=caf%C3%A9&tag=x%2By&empty=&flag",
    "redirect=%2Fhome%3Fx%3D1&b=%20",
    "list[]=1&list[]=2",
]


@pytest.mark.parametrize("query", QUERY_CASES, ids=["repeated", "lowercase-escapes", "encoded", "nested-encoding", "brackets"])
def test_proxy_keeps_query_string_bytes(gateway, orders_route, upstream, auth_header, query):
    # http.client sends the request target as written; requests would re-encode it.
    connection = HTTPConnection(gateway.split("//")[1], timeout=10)
    connection.request("GET", f"/api/orders?{query}", headers=auth_header(roles=["reader"]))
    assert connection.getresponse().status == 200
    connection.close()
    assert upstream.last.query == query


def test_proxy_streams_binary_post_exactly(gateway, http, orders_route, upstream, auth_header):
    payload = os.urandom(1024 * 1024)
    headers = {**auth_header(roles=["reader"]), "Content-Type": "application/octet-stream"}
    response = http.post(f"{gateway}/api/orders/upload", data=payload, headers=headers)
    assert response.status_code == 200
    assert upstream.last.body == payload
    assert response.json()["body_sha256"] == hashlib.sha256(payload).hexdigest()


def test_proxy_passes_gzip_response_untouched(gateway, http, orders_route, upstream, auth_header):
    compressed = gzip.compress(b'{"orders": []}' * 100)
    upstream.respond("/api/orders/gz", headers=[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
                     body=compressed)
    response = http.get(f"{gateway}/api/orders/gz", headers=auth_header(roles=["reader"]), stream=True)
    raw = response.raw.read(decode_content=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert raw == compressed


def test_proxy_keeps_every_set_cookie(gateway, http, orders_route, upstream, auth_header):
    cookies = ["a=1; Path=/", "b=2; Path=/api; HttpOnly", "a=3; Path=/api/orders; Secure"]
    upstream.respond("/api/orders/login", headers=[("Set-Cookie", cookie) for cookie in cookies], body=b"ok")
    response = http.get(f"{gateway}/api/orders/login", headers=auth_header(roles=["reader"]))
    assert response.raw.headers.getlist("Set-Cookie") == cookies


def test_proxy_drops_spoofed_identity_headers(gateway, http, orders_route, upstream, auth_header):
    headers = {**auth_header(roles=["reader"]), "X-User-Id": "1", "x-user-roles": "admin", "X-USER-EMAIL": "a@b"}
    http.get(f"{gateway}/api/orders", headers=headers)
    assert upstream.last.header("X-User-Id") != "1"
    assert upstream.last.header("X-User-Roles") == "reader"
    assert upstream.last.header("X-User-Email") is None


def test_proxy_drops_identity_headers_on_public_route(gateway, http, make_route, upstream):
    make_route(name="status", paths="/status/**", upstream_url=upstream.url, auth="public")
    http.get(f"{gateway}/status/ping", headers={"X-User-Id": "1", "X-User-Roles": "admin"})
    assert upstream.last.header("X-User-Id") is None
    assert upstream.last.header("X-User-Roles") is None


def test_proxy_drops_hop_by_hop_headers(gateway, http, orders_route, upstream, auth_header):
    headers = {
        **auth_header(roles=["reader"]),
        "Connection": "keep-alive, X-Internal-Hop",
        "X-Internal-Hop": "secret",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==",
        "X-Kept": "yes",
    }
    http.get(f"{gateway}/api/orders", headers=headers)
    received = {name.lower() for name, _ in upstream.last.headers}
    assert received.isdisjoint({"x-internal-hop", "keep-alive", "te", "proxy-authorization"})
    assert upstream.last.header("X-Kept") == "yes"


def test_proxy_adds_forwarded_headers(gateway, http, orders_route, upstream, auth_header):
    headers = {**auth_header(roles=["reader"]), "X-Forwarded-For": "203.0.113.9"}
    http.get(f"{gateway}/api/orders", headers=headers)
    assert upstream.last.header("X-Forwarded-For") == "127.0.0.1"
    assert upstream.last.header("X-Forwarded-Proto") == "http"
    assert upstream.last.header("X-Forwarded-Host") == gateway.split("//")[1]


def test_proxy_keeps_sane_request_id(gateway, http, orders_route, upstream, auth_header):
    headers = {**auth_header(roles=["reader"]), "X-Request-ID": "trace-1234.abc"}
    http.get(f"{gateway}/api/orders", headers=headers)
    assert upstream.last.header("X-Request-ID") == "trace-1234.abc"


def test_proxy_replaces_insane_request_id(gateway, http, orders_route, upstream, auth_header):
    headers = {**auth_header(roles=["reader"]), "X-Request-ID": "bad id with spaces <script>"}
    http.get(f"{gateway}/api/orders", headers=headers)
    forwarded = upstream.last.header("X-Request-ID")
    assert len(forwarded) == 32
    assert forwarded.isalnum()


def test_proxy_returns_upstream_status_and_headers(gateway, http, orders_route, upstream, auth_header):
    upstream.respond("/api/orders/new", status=201, headers=[("Location", "/api/orders/9"),
                                                              ("Content-Type", "text/plain")], body=b"made")
    response = http.post(f"{gateway}/api/orders/new", headers=auth_header(roles=["reader"]))
    assert response.status_code == 201
    assert response.headers["Location"] == "/api/orders/9"
    assert response.text == "made"
    assert "X-Request-ID" not in response.headers


@pytest.mark.parametrize("status", [204, 304])
def test_proxy_bodiless_status_has_no_body(gateway, http, orders_route, upstream, auth_header, status):
    upstream.respond("/api/orders/empty", status=status, headers=[("ETag", '"v1"')])
    response = http.get(f"{gateway}/api/orders/empty", headers=auth_header(roles=["reader"]))
    assert response.status_code == status
    assert response.content == b""


def test_proxy_head_has_no_body(gateway, http, orders_route, upstream, auth_header):
    upstream.respond("/api/orders/big", headers=[("Content-Type", "text/plain"), ("Content-Length", "5000")],
                     body=b"x" * 5000)
    response = http.head(f"{gateway}/api/orders/big", headers=auth_header(roles=["reader"]))
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == "5000"
    assert upstream.last.method == "HEAD"


def test_proxy_change_takes_effect_without_restart(gateway, http, make_route, upstream, auth_header):
    route = make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url)
    headers = auth_header()
    assert http.get(f"{gateway}/api/orders/1", headers=headers).status_code == 200
    route.enabled = False
    route.save()
    assert http.get(f"{gateway}/api/orders/1", headers=headers).status_code == 404


def test_proxy_logs_one_access_line(gateway, http, orders_route, upstream, caplog):
    with caplog.at_level("INFO", logger="routing.access"):
        http.get(f"{gateway}/api/orders")
    records = [record for record in caplog.records if record.name == "routing.access"]
    assert len(records) == 1
    assert records[0].levelname == "WARNING"
    assert "status=401" in records[0].getMessage()


def test_proxy_access_log_omits_token(gateway, http, orders_route, upstream, auth_header, caplog):
    headers = auth_header(roles=["reader"])
    with caplog.at_level("DEBUG"):
        http.get(f"{gateway}/api/orders", headers=headers)
    token = headers["Authorization"].split()[1]
    assert token not in caplog.text
