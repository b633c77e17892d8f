"""JWTGATE_MODE: a process serves the proxy, the console, or both."""

import os
import subprocess
import sys

import pytest

from routing.middleware import is_gateway_owned
from tests.gunicorn import BASE_DIR
from tests.console.helpers import PASSWORD, console_session

PROBLEM_JSON = "application/problem+json"


# The dispatch decision, with the mode changed through the settings fixture


@pytest.mark.parametrize("mode, path, owned", [
    pytest.param("both", "/console/login/", True, id="both-console"),
    pytest.param("console", "/console/login/", True, id="console-console"),
    pytest.param("proxy", "/console/login/", False, id="proxy-console"),
    pytest.param("proxy", "/auth/token", True, id="proxy-auth"),
    pytest.param("proxy", "/healthz", True, id="proxy-healthz"),
    pytest.param("console", "/api/orders", False, id="console-api"),
])
def test_mode_decides_owned_paths(settings, mode, path, owned):
    settings.GATEWAY = {**settings.GATEWAY, "MODE": mode}
    assert is_gateway_owned(path) is owned


def test_mode_console_disables_proxy(client, settings, make_route, upstream):
    make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, auth="public")
    settings.GATEWAY = {**settings.GATEWAY, "MODE": "console", "CONFIG_CHECK_INTERVAL_SECONDS": 0}
    response = client.get("/api/orders/1")
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM_JSON
    assert response.json()["code"] == "proxy_disabled"
    assert upstream.received == []


def test_mode_proxy_routes_console_prefix(client, settings, make_route, upstream):
    make_route(name="everything", paths="/**", upstream_url=upstream.url, auth="public")
    settings.GATEWAY = {**settings.GATEWAY, "MODE": "proxy", "CONFIG_CHECK_INTERVAL_SECONDS": 0}
    response = client.get("/console/login/")
    b"".join(response.streaming_content)
    assert response.status_code == 200
    assert upstream.last.path == "/console/login/"


def test_mode_rejects_unknown_value(tmp_path):
    env = {**os.environ, "JWTGATE_MODE": "sidecar", "JWTGATE_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "JWTGATE_MODE='sidecar' is not a mode; use proxy, console or both." in result.stderr


# One gunicorn process per mode


@pytest.fixture
def alice(make_user):
    return make_user(username="alice", password=PASSWORD, roles=["reader"])


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", "operator@example.com", PASSWORD)


def obtain_token(http, base_url):
    return http.post(f"{base_url}/auth/token", json={"username": "alice", "password": PASSWORD}, timeout=10)


@pytest.mark.gunicorn
def test_gunicorn_proxy_mode_has_no_console(gunicorn_gateway, http, make_route, upstream):
    make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, auth="public")
    base_url = gunicorn_gateway(workers=1, env={"JWTGATE_MODE": "proxy"})
    response = http.get(f"{base_url}/console/login/", timeout=10)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == PROBLEM_JSON
    assert response.json()["code"] == "route_not_found"


@pytest.mark.gunicorn
def test_gunicorn_proxy_mode_forwards_console_path(gunicorn_gateway, http, make_route, upstream):
    make_route(name="everything", paths="/**", upstream_url=upstream.url, auth="public")
    base_url = gunicorn_gateway(workers=1, env={"JWTGATE_MODE": "proxy"})
    response = http.get(f"{base_url}/console/", timeout=10)
    assert response.status_code == 200
    assert upstream.last.path == "/console/"


@pytest.mark.gunicorn
def test_gunicorn_proxy_mode_serves_tokens_and_api(gunicorn_gateway, http, make_route, upstream, alice):
    make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, roles=["reader"])
    base_url = gunicorn_gateway(workers=1, env={"JWTGATE_MODE": "proxy"})
    token = obtain_token(http, base_url).json()["access"]
    response = http.get(f"{base_url}/api/orders/1", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200
    assert http.get(f"{base_url}/healthz", timeout=10).status_code == 200


@pytest.mark.gunicorn
def test_gunicorn_console_mode_disables_proxy(gunicorn_gateway, http, make_route, upstream):
    make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, auth="public")
    base_url = gunicorn_gateway(workers=1, env={"JWTGATE_MODE": "console"})
    response = http.get(f"{base_url}/api/orders/1", timeout=10)
    assert response.status_code == 404
    assert response.json()["code"] == "proxy_disabled"
    assert "JWTGATE_MODE=console" in response.json()["detail"]
    assert upstream.received == []


@pytest.mark.gunicorn
def test_gunicorn_console_mode_serves_console(gunicorn_gateway, operator):
    base_url = gunicorn_gateway(workers=1, env={"JWTGATE_MODE": "console"})
    session = console_session(base_url, "operator")
    assert session.get(f"{base_url}/console/routing/route/", timeout=10).status_code == 200


@pytest.mark.gunicorn
def test_gunicorn_console_mode_serves_tokens(gunicorn_gateway, http, alice):
    base_url = gunicorn_gateway(workers=1, env={"JWTGATE_MODE": "console"})
    assert obtain_token(http, base_url).status_code == 200
    assert http.get(f"{base_url}/healthz", timeout=10).status_code == 200


@pytest.mark.gunicorn
def test_gunicorn_both_mode_serves_both(gunicorn_gateway, http, make_route, upstream, operator):
    make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, auth="public")
    base_url = gunicorn_gateway(workers=1, env={"JWTGATE_MODE": "both"})
    assert http.get(f"{base_url}/api/orders/1", timeout=10).status_code == 200
    session = console_session(base_url, "operator")
    assert session.get(f"{base_url}/console/routing/route/", timeout=10).status_code == 200
