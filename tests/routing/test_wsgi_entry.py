"""The WSGI entry of gunicorn (routing.wsgi): proxied paths bypass Django's handler and get the responses Django's handler would send."""

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest
from django.core.signals import request_started
from django.core.wsgi import get_wsgi_application

from routing import balancing
from routing.matching import route_tables
from routing.wsgi import GatewayApplication

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def application():
    return GatewayApplication(get_wsgi_application())


@pytest.fixture
def started_signals():
    """Record each request_started signal, which Django's handler sends for every request it handles."""
    sent = []

    def receiver(**kwargs):
        sent.append(kwargs)

    request_started.connect(receiver)
    yield sent
    request_started.disconnect(receiver)


def call(application, path, method="GET", headers=None, body=b""):
    """Call the WSGI application as a server would; return (status line, header list, body bytes)."""
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "RAW_URI": path, "QUERY_STRING": "",
               "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)) if body else ""}
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    setup_testing_defaults(environ)
    started = {}

    def start_response(status, response_headers, exc_info=None):
        started["status"] = status
        started["headers"] = response_headers

    result = application(environ, start_response)
    try:
        content = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return started["status"], started["headers"], content


def test_proxied_request_skips_django_handler(application, started_signals, make_route, upstream, auth_header):
    make_route(paths="/api/orders/**", upstream_url=upstream.url, roles=["reader"])
    status, headers, content = call(application, "/api/orders/1", headers=auth_header(roles=["reader"]))
    assert status == "200 OK"
    assert len(upstream.received) == 1
    assert started_signals == []


def test_gateway_owned_path_goes_through_django_handler(application, started_signals):
    status, headers, content = call(application, "/auth/token", method="POST", body=b"{}",
                                    headers={"Content-Type": "application/json"})
    assert status.startswith("400 ")
    assert len(started_signals) == 1


def test_problem_through_entry_matches_django_handler(application, client, make_route, upstream):
    make_route(paths="/api/orders/**", upstream_url=upstream.url, roles=["reader"])
    status, headers, content = call(application, "/api/orders/1", headers={"X-Request-ID": "entry-401"})
    django_response = client.get("/api/orders/1", headers={"X-Request-ID": "entry-401"})

    assert status == f"401 {django_response.reason_phrase}"
    assert dict(headers) == dict(django_response.items())
    assert json.loads(content) == django_response.json()
    assert json.loads(content)["request_id"] == "entry-401"
    assert upstream.received == []


def test_proxied_response_through_entry_matches_django_handler(application, client, make_route, upstream,
                                                               auth_header):
    make_route(paths="/api/orders/**", upstream_url=upstream.url, roles=["reader"])
    upstream.respond("/api/orders/", status=201, body=b'{"id": 1}',
                     headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Upstream", "yes")])
    headers = auth_header(roles=["reader"])
    status, entry_headers, content = call(application, "/api/orders/1", headers=headers)
    django_response = client.get("/api/orders/1", headers=headers)

    assert status == "201 Created"
    assert content == b"".join(django_response.streaming_content) == b'{"id": 1}'
    assert entry_headers == list(django_response.items())
    assert [value for name, value in entry_headers if name == "Set-Cookie"] == ["a=1", "b=2"]
    assert not any(name == "X-Request-ID" for name, _value in entry_headers)
    django_response.close()


def test_console_mode_leaves_proxied_paths_to_django(application, settings, started_signals, make_route,
                                                      upstream):
    settings.GATEWAY = {**settings.GATEWAY, "MODE": "console"}
    make_route(paths="/api/orders/**", upstream_url=upstream.url, auth="public")
    status, headers, content = call(application, "/api/orders/1")
    assert status.startswith("404 ")
    assert json.loads(content)["code"] == "proxy_disabled"
    assert len(started_signals) == 1
    assert upstream.received == []


def test_rejected_start_response_releases_upstream(application, make_route, upstream):
    make_route(paths="/api/orders/**", upstream_url=upstream.url, auth="public")
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/orders/1", "RAW_URI": "/api/orders/1",
               "QUERY_STRING": "", "wsgi.input": io.BytesIO(b"")}
    setup_testing_defaults(environ)

    def rejecting_start_response(status, headers, exc_info=None):
        raise ValueError("invalid header")

    with pytest.raises(ValueError):
        application(environ, rejecting_start_response)
    assert len(upstream.received) == 1
    balancer = balancing.get_balancer(route_tables.get().routes[0].upstream)
    assert list(balancer.outstanding.values()) == [0]


def test_upstream_header_with_control_character_dropped(application, make_route, upstream):
    make_route(paths="/api/orders/**", upstream_url=upstream.url, auth="public")
    upstream.respond("/api/orders/", headers=[("X-Broken", "a\x01b"), ("X-Fine", "yes")], body=b"ok")
    status, headers, content = call(application, "/api/orders/1")
    assert status == "200 OK"
    names = [name for name, _value in headers]
    assert "X-Broken" not in names
    assert "X-Fine" in names
    assert content == b"ok"
