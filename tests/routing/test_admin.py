"""The console: route and upstream forms, their validation, and changes reaching the proxy."""

import time

import pytest

from routing.models import ConfigVersion, Route, Upstream
from routing.version import current_version
from tests.conftest import read_response

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(make_upstream, upstream):
    return make_upstream(name="service", urls=[upstream.url])


def route_form(upstream_row, **overrides):
    data = {
        "name": "orders",
        "enabled": "on",
        "upstream": str(upstream_row.pk),
        "priority": "0",
        "paths": "/api/orders\r\n/api/orders/**",
        "methods": "",
        "hosts": "",
        "auth": "required",
        "strip_prefix": "",
        "rules-TOTAL_FORMS": "0",
        "rules-INITIAL_FORMS": "0",
        "rules-MIN_NUM_FORMS": "0",
        "rules-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


def test_console_is_served_under_prefix(console):
    assert console.get("/console/").status_code == 200


def test_console_admin_path_is_proxied(client):
    response = client.get("/admin/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_console_adds_route(console, service):
    response = console.post("/console/routing/route/add/", route_form(service))
    assert response.status_code == 302
    assert Route.objects.get(name="orders").paths == "/api/orders\n/api/orders/**"


def test_console_save_bumps_version(console, service):
    before = current_version()
    console.post("/console/routing/route/add/", route_form(service))
    assert current_version() > before


FORM_ERRORS = [
    ({"paths": "api/orders"}, "paths", "must start with '/'"),
    ({"paths": "/auth/token"}, "paths", "would shadow"),
    ({"paths": "/console/**"}, "paths", "would shadow"),
    ({"paths": "/api/**/x"}, "paths", "may only be the last segment"),
    ({"paths": "/api/ord*"}, "paths", "must be whole segments"),
    ({"methods": "GET,FETCH"}, "methods", "is not an HTTP method"),
    ({"hosts": "bad_host!"}, "hosts", "is not a host name"),
    ({"strip_prefix": "/v2"}, "strip_prefix", "is not a prefix"),
]


@pytest.mark.parametrize(("overrides", "field", "message"), FORM_ERRORS,
                         ids=[f"{field}-{message.split()[0]}" for _, field, message in FORM_ERRORS])
def test_console_rejects_invalid_route(console, service, overrides, field, message):
    response = console.post("/console/routing/route/add/", route_form(service, **overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field])
    assert not Route.objects.exists()


def test_console_rejects_rule_with_bad_path(console, service):
    data = route_form(service, **{
        "rules-TOTAL_FORMS": "1",
        "rules-0-methods": "DELETE",
        "rules-0-path": "orders/**",
    })
    response = console.post("/console/routing/route/add/", data)
    assert response.status_code == 200
    assert not Route.objects.exists()


def test_console_rejects_target_without_http(console):
    data = {
        "name": "svc",
        "targets-TOTAL_FORMS": "1",
        "targets-INITIAL_FORMS": "0",
        "targets-MIN_NUM_FORMS": "1",
        "targets-MAX_NUM_FORMS": "1000",
        "targets-0-url": "ftp://127.0.0.1/x",
        "targets-0-weight": "1",
    }
    response = console.post("/console/routing/upstream/add/", data)
    assert response.status_code == 200
    assert not Upstream.objects.exists()


def test_console_disable_action_reaches_proxy(console, make_route, upstream, auth_header, settings):
    settings.GATEWAY = {**settings.GATEWAY, "CONFIG_CHECK_INTERVAL_SECONDS": 0}
    route = make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url)
    headers = auth_header()
    assert read_response(console.get("/api/orders/1", headers=headers)).status_code == 200
    console.post("/console/routing/route/", {"action": "disable_routes", "_selected_action": [route.pk]})
    assert read_response(console.get("/api/orders/1", headers=headers)).status_code == 404
    assert ConfigVersion.objects.get(pk=1).version == current_version()


def test_console_upstream_list_shows_health(console, make_upstream):
    from routing import health

    upstream_row = make_upstream(name="svc", urls=["http://127.0.0.1:9001", "http://127.0.0.1:9002"])
    store = health.get_store()
    store.record_failure(health.target_key("svc", "http://127.0.0.1:9002"), 1, 60, time.time())
    page = console.get("/console/routing/upstream/").content.decode()
    assert upstream_row.name in page
    assert "http://127.0.0.1:9001 <span class=\"target-health target-health-healthy\">(healthy)</span>" in page
    assert "http://127.0.0.1:9002 <span class=\"target-health target-health-ejected\">(ejected)</span>" in page
