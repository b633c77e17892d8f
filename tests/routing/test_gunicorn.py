"""The gateway under a real gunicorn process with two workers, sharing the test database."""

import time

import pytest

from tests.gunicorn import raw_request

pytestmark = pytest.mark.gunicorn


@pytest.fixture
def alice(make_user):
    return make_user(username="alice", password="correct horse battery", roles=["reader"])


def login(http, base_url):
    response = http.post(f"{base_url}/auth/token", json={"username": "alice", "password": "correct horse battery"})
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['access']}"}


def test_gunicorn_logs_in_and_forwards(gunicorn_gateway, http, make_route, upstream, alice):
    make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, roles=["reader"])
    base_url = gunicorn_gateway()
    response = http.get(f"{base_url}/api/orders/1?x=1", headers=login(http, base_url))
    assert response.status_code == 200
    assert upstream.last.target == "/api/orders/1?x=1"
    assert upstream.last.header("X-User-Roles") == "reader"


def test_gunicorn_rejects_encoded_slash(gunicorn_gateway, http, make_route, upstream, alice):
    make_route(name="files", paths="/files/**", upstream_url=upstream.url)
    base_url = gunicorn_gateway()
    authorization = login(http, base_url)["Authorization"]
    status, _head, _body = raw_request(base_url, "GET /files/a%2Fb HTTP/1.1", [f"Authorization: {authorization}"])
    assert status == 400
    assert upstream.received == []


def test_gunicorn_route_may_keep_encoded_slash(gunicorn_gateway, http, make_route, upstream, alice):
    make_route(name="files", paths="/files/**", upstream_url=upstream.url, allow_encoded_slashes=True)
    base_url = gunicorn_gateway()
    authorization = login(http, base_url)["Authorization"]
    status, _head, _body = raw_request(base_url, "GET /files/a%2fb HTTP/1.1", [f"Authorization: {authorization}"])
    assert status == 200
    assert upstream.last.target == "/files/a%2Fb"


def test_gunicorn_rejects_encoded_dot_segment(gunicorn_gateway, http, make_route, upstream, alice):
    make_route(name="public", paths="/public/**", upstream_url=upstream.url, auth="public")
    base_url = gunicorn_gateway()
    status, _head, body = raw_request(base_url, "GET /public/%2e%2e/internal HTTP/1.1")
    assert status == 400
    assert b"encoded_dot_segment" in body
    assert upstream.received == []


def test_gunicorn_forwards_chunked_body(gunicorn_gateway, http, make_route, upstream, alice):
    make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, roles=["reader"])
    base_url = gunicorn_gateway()
    authorization = login(http, base_url)["Authorization"]
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    status, _head, _body = raw_request(
        base_url, "POST /api/orders/1 HTTP/1.1",
        [f"Authorization: {authorization}", "Transfer-Encoding: chunked"], body,
    )
    assert status == 200
    assert upstream.last.body == b"hello world"


def test_gunicorn_head_sends_no_body(gunicorn_gateway, http, make_route, upstream, alice):
    make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, roles=["reader"])
    upstream.respond("/api/orders/big", headers=[("Content-Length", "4096")], body=b"x" * 4096)
    base_url = gunicorn_gateway()
    authorization = login(http, base_url)["Authorization"]
    status, head, body = raw_request(base_url, "HEAD /api/orders/big HTTP/1.1", [f"Authorization: {authorization}"])
    assert status == 200
    assert "Content-Length: 4096" in head
    assert body == b""


def test_gunicorn_change_reaches_every_worker(gunicorn_gateway, http, make_route, upstream, alice):
    route = make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, roles=["reader"])
    base_url = gunicorn_gateway(workers=2, threads=2)
    headers = login(http, base_url)
    for _ in range(10):
        assert http.get(f"{base_url}/api/orders/1", headers=headers).status_code == 200

    route.enabled = False
    route.save()
    changed_at = time.monotonic()
    # Fresh connections spread the requests over both workers.
    deadline = changed_at + 5
    consecutive_404 = 0
    while consecutive_404 < 20 and time.monotonic() < deadline:
        status = http.get(f"{base_url}/api/orders/1", headers={**headers, "Connection": "close"}).status_code
        consecutive_404 = consecutive_404 + 1 if status == 404 else 0
    elapsed = time.monotonic() - changed_at
    assert consecutive_404 == 20
    assert elapsed < 2.5
