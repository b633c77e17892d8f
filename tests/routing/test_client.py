"""The forwarding client (routing.client): kept-alive connections, the request it writes, and its failures."""

import http.client
import socket
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from routing import client
from routing.models import Upstream
from tests.gunicorn import raw_request
from tests.routing.test_resilience import make_service  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)


def get(gateway, path, headers=None):
    """Send a GET with only the given headers (http.client adds Host and nothing else) and return (status, body)."""
    parts = urlsplit(gateway)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_client_reuses_idle_connection(gateway, faulty, make_service):
    server = faulty("kept")
    make_service([server.url])
    for _attempt in range(3):
        assert get(gateway, "/svc/x") == (200, b"kept")
    assert len(server.requests) == 3
    assert server.accepted == 1


def test_client_replaces_connection_closed_while_idle(gateway, faulty, make_service):
    server = faulty("closing", "ok-close")
    make_service([server.url], retries=0)
    assert get(gateway, "/svc/a") == (200, b"closing")
    # Give the upstream's FIN time to arrive before the pooled connection is reused.
    time.sleep(0.2)
    assert get(gateway, "/svc/b") == (200, b"closing")
    assert server.accepted == 2
    assert server.requests == [("GET", "/svc/a"), ("GET", "/svc/b")]


def test_client_adds_no_encoding_or_agent(gateway, make_route, upstream, auth_header):
    make_route(paths="/api/orders/**", upstream_url=upstream.url, roles=["reader"])
    status, _body = get(gateway, "/api/orders/1", headers=auth_header(roles=["reader"]))
    assert status == 200
    names = {name.lower() for name, _value in upstream.last.headers}
    assert "accept-encoding" not in names
    assert "user-agent" not in names
    assert upstream.last.header("Host") == urlsplit(upstream.url).netloc


def test_client_keeps_client_encoding_and_agent(gateway, make_route, upstream, auth_header):
    make_route(paths="/api/orders/**", upstream_url=upstream.url, roles=["reader"])
    headers = {**auth_header(roles=["reader"]), "Accept-Encoding": "br", "User-Agent": "orders-app/2"}
    assert get(gateway, "/api/orders/1", headers=headers)[0] == 200
    assert upstream.last.header("Accept-Encoding") == "br"
    assert upstream.last.header("User-Agent") == "orders-app/2"


def test_client_encodes_non_ascii_query_bytes():
    assert client.ascii_target("/a?q=caf\xe9&x=1") == "/a?q=caf%E9&x=1"
    assert client.ascii_target("/a?q=\u20ac") == "/a?q=%E2%82%AC"
    assert client.ascii_target("/a?q=%C3%A9") == "/a?q=%C3%A9"


@pytest.mark.gunicorn
def test_gunicorn_rejects_non_ascii_query_byte(gunicorn_gateway, make_route, upstream):
    make_route(paths="/api/orders/**", upstream_url=upstream.url, auth="public")
    base_url = gunicorn_gateway()
    status, _head, _body = raw_request(base_url, "GET /api/orders/1?q=caf\xe9 HTTP/1.1")
    assert status == 400
    assert upstream.received == []


def test_client_pool_keeps_at_most_max_idle(faulty):
    server = faulty("small-pool")
    pool = client.TargetPool(server.url, max_idle=1)
    first, second = pool.take(1.0), pool.take(1.0)
    pool.put(first)
    pool.put(second)
    assert pool.idle == [first]
    assert second.sock is None
    pool.close()


def test_client_closes_connection_returned_to_closed_pool(faulty):
    server = faulty("late")
    pool = client.TargetPool(server.url, max_idle=4)
    in_use = pool.take(1.0)
    pool.close()
    pool.put(in_use)
    assert pool.idle == []
    assert in_use.sock is None


def test_client_rejects_interim_response(gateway, faulty, make_service):
    server = faulty("hints", "early-hints")
    make_service([server.url], retries=0)
    first_status, first_body = get(gateway, "/svc/a")
    second_status, second_body = get(gateway, "/svc/b")
    assert (first_status, second_status) == (502, 502)
    assert b"interim" in first_body
    assert b"final" not in first_body + second_body
    assert server.accepted == 2


@pytest.mark.gunicorn
def test_gunicorn_closes_client_on_short_upstream_body(gunicorn_gateway, faulty, make_service):
    server = faulty("short", "short-body")
    make_service([server.url], retries=0)
    host, port = gunicorn_gateway().split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        # A kept-alive request: only a closed connection shows the client that the body is cut short.
        connection.sendall(f"GET /svc/x HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"Content-Length: 100" in head
    assert body == b"0123456789"


@pytest.mark.gunicorn
def test_gunicorn_client_abort_mid_upload_spares_target(gunicorn_gateway, faulty, make_service):
    server = faulty("spared")
    make_service([server.url], retries=0, failure_threshold=1, route_fields={"retry_non_idempotent": False})
    base_url = gunicorn_gateway(workers=1)
    host, port = base_url.split("//")[1].split(":")
    for _attempt in range(2):
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(f"POST /svc/upload HTTP/1.1\r\nHost: {host}:{port}\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n10\r\nonly-part".encode())
            time.sleep(0.3)
        time.sleep(0.3)
    status, body = get(base_url, "/svc/after")
    assert (status, body) == (200, b"spared")
    assert Upstream.objects.get(name="service").failure_threshold == 1


def test_client_short_body_raises_incomplete_read(faulty):
    server = faulty("short", "short-body")
    upstream = SimpleNamespace(name="short", connect_timeout_seconds=1.0, read_timeout_seconds=2.0)
    response = client.send(upstream, "GET", server.url, "/x", [], None)
    assert response.status == 200
    assert response.read1(65536) == b"0123456789"
    with pytest.raises(http.client.IncompleteRead):
        response.read1(65536)
    response.close()
