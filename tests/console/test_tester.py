"""The route tester: the proxy's decision stages run from the console on the live route table."""

import pytest

from accounts.tokens import ANONYMOUS
from console.observe.tester import CALLER_CLAIMS, CALLER_NONE, CALLER_TOKEN, Caller, explain
from routing.models import Target
from routing.version import current_version
from tests.conftest import read_response

pytestmark = pytest.mark.django_db

TESTER_URL = "/console/observe/tester/"


@pytest.fixture(autouse=True)
def live_configuration(settings):
    """Check the configuration version on every lookup, so that each test finds the routes it just stored."""
    settings.GATEWAY = {**settings.GATEWAY, "CONFIG_CHECK_INTERVAL_SECONDS": 0}


@pytest.fixture
def orders_route(make_route, upstream):
    return make_route(
        name="orders",
        paths="/api/orders/**",
        methods="GET,POST",
        upstream_url=upstream.url,
        roles=["reader", "admin"],
        rules=[{"methods": "POST", "roles": ["admin"]}],
    )


def claims(*roles, permissions=()):
    return Caller(CALLER_CLAIMS, roles=frozenset(roles), permissions=frozenset(permissions))


def form_data(**overrides):
    data = {"method": "GET", "host": "api.example.com", "target": "/api/orders/7", "caller": CALLER_CLAIMS}
    data.update(overrides)
    return data


DECISIONS = [
    pytest.param("GET", "/api/orders/7", claims("reader"), None, None, id="allow"),
    pytest.param("GET", "/api/%2e%2e/orders", claims("reader"), 400, "encoded_dot_segment", id="dot-segment-400"),
    pytest.param("GET", "/api/orders/7?access_token=x", claims("reader"), 400, "invalid_request", id="query-token-400"),
    pytest.param("GET", "/api/orders/7", Caller(CALLER_NONE), 401, "not_authenticated", id="no-token-401"),
    pytest.param("GET", "/api/orders/7", Caller(CALLER_TOKEN, token="abc.def.ghi"), 401, "invalid_token",
                 id="bad-token-401"),
    pytest.param("GET", "/api/orders/7", claims(), 403, "insufficient_scope", id="no-role-403"),
    pytest.param("POST", "/api/orders", claims("reader"), 403, "insufficient_scope", id="rule-role-403"),
    pytest.param("GET", "/api/invoices", claims("reader"), 404, "route_not_found", id="no-route-404"),
    pytest.param("DELETE", "/api/orders/7", claims("admin"), 405, "method_not_allowed", id="method-405"),
]


@pytest.mark.parametrize(("method", "target", "caller", "status", "code"), DECISIONS)
def test_tester_decides_like_proxy_table(orders_route, method, target, caller, status, code):
    result = explain(method, "api.example.com", target, caller)
    assert result.status == status
    assert (result.error.code if result.error else None) == code


PROXY_CASES = [
    pytest.param("GET", "/api/orders/7", ["reader"], id="allow"),
    pytest.param("GET", "/api/orders/7", [], id="no-role"),
    pytest.param("POST", "/api/orders", ["reader"], id="rule-denies"),
    pytest.param("POST", "/api/orders", ["admin"], id="rule-allows"),
    pytest.param("GET", "/api/invoices", ["reader"], id="no-route"),
    pytest.param("PUT", "/api/orders/7", ["admin"], id="wrong-method"),
    pytest.param("GET", "/api//orders/./7", ["reader"], id="unnormalized-path"),
]


@pytest.mark.parametrize(("method", "target", "roles"), PROXY_CASES)
def test_tester_status_equals_proxy_status(client, orders_route, make_user, token_for, method, target, roles):
    user = make_user(username="caller", roles=roles)
    token = token_for(user)
    proxied = read_response(
        client.generic(method, target, HTTP_HOST="api.example.com", HTTP_AUTHORIZATION=f"Bearer {token}")
    )
    result = explain(method, "api.example.com", target, Caller(CALLER_TOKEN, token=token))
    assert (result.status or 200) == proxied.status_code


def test_tester_sends_nothing_upstream(orders_route, upstream):
    explain("GET", "api.example.com", "/api/orders/7", claims("reader"))
    assert upstream.received == []


def test_tester_shows_normalized_path(orders_route):
    result = explain("GET", "api.example.com", "/api//orders/./7/%7Eitems", claims("reader"))
    assert result.normalized_path == "/api/orders/7/~items"


def test_tester_shows_matched_route_and_pattern(orders_route):
    result = explain("GET", "api.example.com", "/api/orders/7", claims("reader"))
    assert result.route.name == "orders"
    assert result.pattern == "/api/orders/**"


def test_tester_upstream_url_keeps_query(make_route, upstream):
    make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, strip_prefix="/api", auth="public")
    result = explain("GET", "api.example.com", "/api/orders/7?expand=items&sort=-id", claims())
    assert [call.url for call in result.upstream_calls] == [f"{upstream.url}/orders/7?expand=items&sort=-id"]


def test_tester_lists_every_target_url(make_route, upstream):
    route = make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, auth="public")
    Target.objects.create(upstream=route.upstream, url="http://127.0.0.1:9/v1", weight=3)
    result = explain("GET", "api.example.com", "/api/orders/7?x=1", claims())
    assert {(call.url, call.weight) for call in result.upstream_calls} == {
        ("http://127.0.0.1:9/v1/api/orders/7?x=1", 3),
        (f"{upstream.url}/api/orders/7?x=1", 1),
    }


def test_tester_verifies_issued_token(orders_route, make_user, token_for):
    user = make_user(username="reader", roles=["reader"], permissions=["orders:read"])
    result = explain("GET", "api.example.com", "/api/orders/7", Caller(CALLER_TOKEN, token=token_for(user)))
    assert result.allowed
    assert result.identity.user_id == str(user.pk)
    assert result.identity.permissions == frozenset({"orders:read"})


def test_tester_claims_caller_is_tester_user(orders_route):
    result = explain("GET", "api.example.com", "/api/orders/7", claims("reader"))
    assert result.identity.user_id == "tester"


def test_tester_public_route_caller_anonymous(make_route, upstream):
    make_route(name="catalog", paths="/catalog/**", upstream_url=upstream.url, auth="public")
    result = explain("GET", "api.example.com", "/catalog/7", claims())
    assert result.identity is ANONYMOUS


def test_tester_anonymous_rule_needs_token(make_route, upstream):
    make_route(name="catalog", paths="/catalog/**", upstream_url=upstream.url, auth="public",
               rules=[{"methods": "POST", "roles": ["editor"]}])
    result = explain("POST", "api.example.com", "/catalog/7", claims())
    assert result.status == 401


def test_tester_reports_each_requirement_met(orders_route):
    result = explain("POST", "api.example.com", "/api/orders", claims("reader"))
    assert [(check.requirement.source, check.met) for check in result.requirements] == [
        ("route", True),
        ("rule 1 (POST any path)", False),
    ]


def test_tester_unmet_requirement_gives_reason(orders_route):
    result = explain("POST", "api.example.com", "/api/orders", claims("reader"))
    assert result.requirements[1].reason == "This request needs one of the roles: admin."


def test_tester_skips_requirements_without_identity(orders_route):
    result = explain("GET", "api.example.com", "/api/orders/7", Caller(CALLER_NONE))
    assert [check.met for check in result.requirements] == [None]


def test_tester_reports_shadow_denial(make_route, upstream):
    make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url,
               rules=[{"roles": ["auditor"], "shadow": True}])
    result = explain("GET", "api.example.com", "/api/orders/7", claims("reader"))
    assert result.allowed
    assert [denial.requirement for denial in result.shadow_denials] == ["rule 1 (any method any path)"]


def test_tester_shadow_denial_before_enforced_denial(make_route, upstream):
    make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, roles=["reader"], shadow=True,
               rules=[{"roles": ["admin"]}])
    result = explain("GET", "api.example.com", "/api/orders/7", claims("guest"))
    assert result.status == 403
    assert [denial.requirement for denial in result.shadow_denials] == ["route"]


def test_tester_405_lists_allowed_methods(orders_route):
    result = explain("DELETE", "api.example.com", "/api/orders/7", claims("admin"))
    assert result.response_headers == [("Allow", "GET, HEAD, POST")]


def test_tester_404_reports_normalized_path(orders_route):
    result = explain("GET", "api.example.com", "/api/invoices/../bills", claims("reader"))
    assert result.normalized_path == "/api/bills"


def test_tester_uses_live_route_table(orders_route, make_route, upstream):
    explain("GET", "api.example.com", "/api/orders/7", claims("reader"))
    make_route(name="invoices", paths="/api/invoices/**", upstream_url=upstream.url, auth="public")
    result = explain("GET", "api.example.com", "/api/invoices/1", claims())
    assert result.config_version == current_version()
    assert result.route.name == "invoices"


def test_tester_host_must_match_route_hosts(make_route, upstream):
    make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, hosts="api.example.com",
               auth="public")
    result = explain("GET", "other.example.com:8443", "/api/orders/7", claims())
    assert result.status == 404


def test_tester_page_requires_login(client):
    response = client.get(TESTER_URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")


def test_tester_page_requires_route_view_permission(client, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="correct horse battery", is_staff=True)
    client.force_login(staff)
    assert client.get(TESTER_URL).status_code == 403


def test_tester_page_shows_form(console):
    response = console.get(TESTER_URL)
    assert response.status_code == 200
    assert b'id="route-tester-form"' in response.content


def test_tester_page_shows_decision_and_url(console, orders_route, upstream):
    response = console.post(TESTER_URL, form_data(target="/api/orders/7?page=2", roles=["reader"]))
    assert response.context["result"].allowed
    assert f"{upstream.url}/api/orders/7?page=2".encode() in response.content


def test_tester_page_shows_denial_reason(console, orders_route):
    response = console.post(TESTER_URL, form_data(method="POST", target="/api/orders", roles=["reader"]))
    assert b"insufficient_scope" in response.content
    assert b"This request needs one of the roles: admin." in response.content


def test_tester_page_offers_stored_roles(console, orders_route):
    choices = console.get(TESTER_URL).context["form"].fields["roles"].choices
    assert choices == [("admin", "admin"), ("reader", "reader")]


def test_tester_form_needs_token_for_token_caller(console, orders_route):
    response = console.post(TESTER_URL, form_data(caller=CALLER_TOKEN, token=""))
    assert response.context["form"].errors["token"] == ["Paste an access token, or choose another caller."]


def test_tester_form_rejects_relative_path(console, orders_route):
    response = console.post(TESTER_URL, form_data(target="api/orders"))
    assert "target" in response.context["form"].errors


def test_tester_rejects_host_not_allowed(orders_route, settings):
    settings.ALLOWED_HOSTS = ["api.example.com"]
    result = explain("GET", "evil.example.net", "/api/orders/7", claims("reader"))
    assert (result.status, result.error.code) == (400, "invalid_host")


def test_console_index_links_observe_pages(console):
    content = console.get("/console/").content
    assert b'href="/console/observe/tester/"' in content
    assert b'href="/console/observe/dashboard/"' in content
