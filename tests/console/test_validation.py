"""Validation on save: each check of the route, rule, target and upstream models, and the console forms."""

import html

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError

from accounts.models import ApiPermission, Role
from routing.models import RoleRule, Route, Target, Upstream
from tests.console.helpers import route_form, service  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def route_errors(upstream_row, **fields):
    """Return the message dict of Route.full_clean() for a route with ``fields``, or {} when it is valid."""
    values = {"name": "candidate", "paths": "/api/orders/**", "upstream": upstream_row, **fields}
    try:
        Route(**values).full_clean()
    except ValidationError as exc:
        return exc.message_dict
    return {}


def stored_route(upstream_row, name, **fields):
    """Store a route without clean(), as an older row or a script could have written it."""
    values = {"paths": "/api/orders/**", **fields}
    return Route.objects.create(name=name, upstream=upstream_row, **values)


# Patterns, methods and hosts

MALFORMED_PATTERNS = [
    pytest.param("api/orders", "must start with '/'", id="no-leading-slash"),
    pytest.param("/api/**/items", "'**' may only be the last segment", id="double-star-inside"),
    pytest.param("/api/ord*", "must be whole segments", id="star-in-segment"),
    pytest.param("/api//orders", "empty segment", id="empty-segment"),
    pytest.param("/api/../admin", "is not a normalized path segment", id="dot-dot-segment"),
    pytest.param("/api/a%2fb", "is not a normalized path segment", id="lowercase-escape"),
]


@pytest.mark.parametrize("pattern, message", MALFORMED_PATTERNS)
def test_route_rejects_malformed_pattern(service, pattern, message):
    errors = route_errors(service, paths=pattern)
    assert message in " ".join(errors["paths"])


def test_route_requires_pattern(service):
    assert route_errors(service, paths="  ")["paths"] == ["Enter at least one path pattern."]


SHADOWING_PATTERNS = ["/auth/token", "/auth/**", "/.well-known/jwks.json", "/healthz", "/console/**"]


@pytest.mark.parametrize("pattern", SHADOWING_PATTERNS)
def test_route_rejects_gateway_owned_path(service, pattern):
    errors = route_errors(service, paths=pattern)
    assert f"Pattern {pattern!r} would shadow a path that the gateway serves itself" in errors["paths"][0]


def test_route_rejects_custom_console_prefix(service, settings):
    settings.GATEWAY = {**settings.GATEWAY, "CONSOLE_PREFIX": "ops"}
    assert "would shadow" in route_errors(service, paths="/ops/**")["paths"][0]


def test_route_allows_leading_wildcard(service):
    assert route_errors(service, paths="/**") == {}


def test_route_rejects_unknown_method(service):
    assert "'FETCH' is not an HTTP method" in route_errors(service, methods="GET,FETCH")["methods"][0]


def test_route_rejects_host_with_port(service):
    assert "is not a host name" in route_errors(service, hosts="api.example.com:8443")["hosts"][0]


# Strip prefix

def test_route_rejects_strip_prefix_outside_pattern(service):
    errors = route_errors(service, paths="/api/orders/**\n/v2/orders", strip_prefix="/api")
    assert errors["strip_prefix"] == ["Strip prefix '/api' is not a prefix of pattern '/v2/orders'."]


def test_route_rejects_wildcard_strip_prefix(service):
    errors = route_errors(service, strip_prefix="/api/*")
    assert "must be a literal path" in errors["strip_prefix"][0]


def test_route_rejects_partial_segment_prefix(service):
    errors = route_errors(service, paths="/apiv2/**", strip_prefix="/api")
    assert "is not a prefix of pattern '/apiv2/**'" in errors["strip_prefix"][0]


def test_route_accepts_strip_prefix_of_every_pattern(service):
    assert route_errors(service, paths="/api/orders\n/api/orders/**", strip_prefix="/api/") == {}


# Routes that claim the same requests

def test_route_rejects_identical_route(service):
    stored_route(service, "orders")
    errors = route_errors(service)
    assert errors["paths"] == [
        "Pattern '/api/orders/**' for every method on any host is already served by the enabled route 'orders'; "
        "change the pattern, methods or hosts, or disable one of the two routes."
    ]


def test_route_duplicate_names_shared_methods(service):
    stored_route(service, "orders", methods="GET,POST")
    errors = route_errors(service, methods="POST,DELETE")
    assert "for method POST on any host" in errors["paths"][0]


def test_route_duplicate_names_hosts(service):
    stored_route(service, "orders", hosts="api.example.com")
    errors = route_errors(service, hosts="API.example.com.")
    assert "on hosts api.example.com is already served" in errors["paths"][0]


DUPLICATE_CASES = [
    pytest.param({}, {}, id="identical"),
    pytest.param({"methods": "GET"}, {"methods": ""}, id="all-methods-include-get"),
    pytest.param({"methods": "GET"}, {"methods": "HEAD"}, id="get-includes-head"),
    pytest.param({"methods": "get,post"}, {"methods": "POST"}, id="method-case"),
    pytest.param({"hosts": "API.Example.com"}, {"hosts": "api.example.com"}, id="host-case"),
    pytest.param({"hosts": "a.example.com\nb.example.com"}, {"hosts": "b.example.com,a.example.com"}, id="host-order"),
    pytest.param({"paths": "/v1/x\n/api/orders/**"}, {"paths": "/api/orders/**\n/v2/y"}, id="one-shared-pattern"),
    pytest.param({"priority": 10}, {"priority": 0}, id="different-priority"),
]


@pytest.mark.parametrize("stored, candidate", DUPLICATE_CASES)
def test_route_rejects_duplicate(service, stored, candidate):
    stored_route(service, "orders", **stored)
    errors = route_errors(service, **candidate)
    assert "already served by the enabled route 'orders'" in errors["paths"][0]


DISTINCT_CASES = [
    pytest.param({"methods": "GET"}, {"methods": "POST"}, id="disjoint-methods"),
    pytest.param({"hosts": "a.example.com"}, {"hosts": ""}, id="hosts-and-any-host"),
    pytest.param({"hosts": "a.example.com"}, {"hosts": "a.example.com\nb.example.com"}, id="different-host-sets"),
    pytest.param({"paths": "/api/**"}, {"paths": "/api/orders/**"}, id="nested-patterns"),
    pytest.param({"paths": "/api/orders"}, {"paths": "/api/orders/"}, id="trailing-slash"),
    pytest.param({"enabled": False}, {}, id="other-disabled"),
    pytest.param({}, {"enabled": False}, id="candidate-disabled"),
]


@pytest.mark.parametrize("stored, candidate", DISTINCT_CASES)
def test_route_accepts_distinct_route(service, stored, candidate):
    stored_route(service, "orders", **stored)
    assert route_errors(service, **candidate) == {}


def test_route_accepts_its_own_row(service):
    route = stored_route(service, "orders")
    route.priority = 3
    route.full_clean()


def test_route_skips_duplicate_check_for_invalid_paths(service):
    stored_route(service, "orders")
    errors = route_errors(service, paths="/api/orders/**\n/auth/x")
    assert len(errors["paths"]) == 1


# Targets and upstreams

INVALID_TARGET_URLS = [
    pytest.param("ftp://127.0.0.1:8081", "must start with http:// or https://", id="ftp"),
    pytest.param("127.0.0.1:8081", "must start with http:// or https://", id="no-scheme"),
    pytest.param("http:///v1", "has no host", id="no-host"),
    pytest.param("http://user:secret@127.0.0.1", "must not contain credentials", id="credentials"),
    pytest.param("http://127.0.0.1/v1?x=1", "must not contain a query", id="query"),
    pytest.param("http://127.0.0.1:99999", "has an invalid port", id="port"),
]


@pytest.mark.parametrize("url, message", INVALID_TARGET_URLS)
def test_target_rejects_invalid_url(service, url, message):
    with pytest.raises(ValidationError) as raised:
        Target(upstream=service, url=url).full_clean()
    assert message in raised.value.message_dict["url"][0]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8081", "https://orders.internal/v1/"])
def test_target_accepts_http_url(service, url):
    Target(upstream=service, url=url).full_clean()


def test_target_rejects_same_url_with_slash(service):
    with pytest.raises(ValidationError) as raised:
        Target(upstream=service, url="http://127.0.0.1:9/").full_clean()
    assert "already exists" in " ".join(raised.value.messages)


@pytest.mark.parametrize("field", ["retry_on_statuses", "failure_statuses"])
def test_upstream_rejects_invalid_status(field):
    with pytest.raises(ValidationError) as raised:
        Upstream(name="svc", **{field: "502,700"}).full_clean()
    assert "'700' is not an HTTP status code" in raised.value.message_dict[field][0]


# Role rules

def test_rule_rejects_malformed_path(make_route):
    route = make_route()
    with pytest.raises(ValidationError) as raised:
        RoleRule(route=route, path="orders/**").full_clean()
    assert "must start with '/'" in raised.value.message_dict["path"][0]


def test_rule_rejects_unknown_method(make_route):
    route = make_route()
    with pytest.raises(ValidationError) as raised:
        RoleRule(route=route, methods="PUSH").full_clean()
    assert "'PUSH' is not an HTTP method" in raised.value.message_dict["methods"][0]


# The console forms

def form_errors(response):
    return response.context["adminform"].form.errors


def test_console_rejects_duplicate_route(console, service):
    stored_route(service, "orders-v1", paths="/api/orders/**")
    response = console.post("/console/routing/route/add/", route_form(service, paths="/api/orders/**"))
    assert response.status_code == 200
    assert "already served by the enabled route 'orders-v1'" in form_errors(response)["paths"][0]


def test_console_accepts_duplicate_when_disabled(console, service):
    stored_route(service, "orders-v1", paths="/api/orders/**")
    response = console.post(
        "/console/routing/route/add/", route_form(service, paths="/api/orders/**", enabled=None)
    )
    assert response.status_code == 302


def test_console_edit_keeps_own_patterns(console, service):
    route = stored_route(service, "orders", paths="/api/orders\n/api/orders/**")
    response = console.post(f"/console/routing/route/{route.pk}/change/", route_form(service, priority="4"))
    assert response.status_code == 302


MISSING_REFERENCES = [
    pytest.param("/console/routing/route/add/", "roles", id="route-role"),
    pytest.param("/console/routing/route/add/", "permissions", id="route-permission"),
    pytest.param("/console/routing/route/add/", "rules-0-roles", id="rule-role"),
    pytest.param("/console/routing/route/add/", "rules-0-permissions", id="rule-permission"),
]


@pytest.mark.parametrize("url, field", MISSING_REFERENCES)
def test_console_rejects_missing_reference(console, service, url, field):
    data = route_form(service, **{"rules-TOTAL_FORMS": "1", "rules-0-methods": "POST", "rules-0-path": "", field: "9999"})
    response = console.post(url, data)
    assert response.status_code == 200
    assert not Route.objects.exists()
    assert "Select a valid choice. 9999 is not one of the available choices." in response.content.decode()


def test_console_rejects_missing_role_permission(console):
    response = console.post("/console/accounts/role/add/", {"name": "reader", "permissions": ["9999"]})
    assert response.status_code == 200
    assert "9999 is not one of the available choices" in " ".join(form_errors(response)["permissions"])
    assert not Role.objects.exists()


def test_console_rejects_missing_user_role(console, admin_user, make_user, rf):
    user = make_user(username="bob", roles=["reader"])
    request = rf.post("/")
    request.user = admin_user
    model_admin = admin.site._registry[type(user)]
    form_class = model_admin.get_form(request, obj=user, change=True, fields=["roles"])
    form = form_class(data={"roles": ["9999"]}, instance=user)
    assert "9999 is not one of the available choices" in " ".join(form.errors["roles"])


def test_console_accepts_existing_references(console, service):
    role = Role.objects.create(name="reader")
    permission = ApiPermission.objects.create(codename="orders:read")
    data = route_form(service, roles=[str(role.pk)], permissions=[str(permission.pk)])
    assert console.post("/console/routing/route/add/", data).status_code == 302
    assert list(Route.objects.get(name="orders").roles.all()) == [role]


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
    assert "must start with http:// or https://" in response.content.decode()
    assert not Upstream.objects.exists()


def test_console_enable_action_skips_duplicate(console, service):
    stored_route(service, "orders-v1")
    disabled = stored_route(service, "orders-v2", enabled=False)
    response = console.post(
        "/console/routing/route/", {"action": "enable_routes", "_selected_action": [disabled.pk]}, follow=True
    )
    assert not Route.objects.get(pk=disabled.pk).enabled
    assert "Route 'orders-v2' stays disabled" in html.unescape(response.content.decode())


def test_console_enable_action_enables_distinct(console, service):
    disabled = stored_route(service, "orders-v2", enabled=False)
    console.post("/console/routing/route/", {"action": "enable_routes", "_selected_action": [disabled.pk]})
    assert Route.objects.get(pk=disabled.pk).enabled
