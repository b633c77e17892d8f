"""Error responses: no stack trace, secret, token or upstream address, also with DEBUG on."""

import pytest

from accounts import serializers
from routing import proxy
from tests.conftest import read_response

pytestmark = pytest.mark.django_db(transaction=True)


def explode(*args, **kwargs):
    raise RuntimeError("secret-detail-from-the-inside")


@pytest.fixture
def orders(make_route, upstream, settings):
    settings.GATEWAY = {**settings.GATEWAY, "CONFIG_CHECK_INTERVAL_SECONDS": 0}
    return make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, auth="public")


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_proxy_failure_is_bare_500(client, orders, upstream, settings, monkeypatch, caplog, debug):
    settings.DEBUG = debug
    monkeypatch.setattr(proxy, "query_suffix", explode)
    response = read_response(client.get("/api/orders/1"))
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    assert b"secret-detail" not in response.content_bytes
    assert b"Traceback" not in response.content_bytes
    assert upstream.received == []
    assert "secret-detail-from-the-inside" in caplog.text


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_token_view_failure_is_bare_500(client, settings, monkeypatch, debug):
    settings.DEBUG = debug
    monkeypatch.setattr(serializers.TokenObtainSerializer, "validate", explode)
    response = client.post("/auth/token", {"username": "a", "password": "b"}, content_type="application/json")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    assert b"secret-detail" not in response.content
    assert b"Traceback" not in response.content


def test_proxy_error_has_nosniff(client, orders):
    response = read_response(client.get("/nothing"))
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "no-store"


def test_token_response_has_nosniff(client, make_user):
    make_user(username="alice", password="correct horse battery")
    response = client.post("/auth/token", {"username": "alice", "password": "correct horse battery"},
                           content_type="application/json")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "no-store"


def test_console_keeps_clickjacking_protection(client):
    assert client.get("/console/login/")["X-Frame-Options"] == "DENY"


def test_console_login_requires_csrf(make_user):
    from django.test import Client

    make_user(username="root", password="correct horse battery", is_staff=True)
    response = Client(enforce_csrf_checks=True).post(
        "/console/login/", {"username": "root", "password": "correct horse battery"}
    )
    assert response.status_code == 403


def test_proxy_error_logged_once(client, make_route, settings, caplog):
    from tests.gunicorn import free_port

    settings.GATEWAY = {**settings.GATEWAY, "CONFIG_CHECK_INTERVAL_SECONDS": 0}
    make_route(name="down", paths="/down/**", upstream_url=f"http://127.0.0.1:{free_port()}", auth="public")
    with caplog.at_level("INFO"):
        read_response(client.get("/down/x"))
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1
    assert errors[0].name == "routing.access"


def test_console_permission_denied_stays_403(client, make_user):
    staff = make_user(username="staff", password="correct horse battery", is_staff=True)
    client.force_login(staff)
    response = client.get("/console/routing/route/")
    assert response.status_code == 403
