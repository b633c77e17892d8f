"""Shadow mode: a denied request goes through, is logged with the rule and the caller, and is counted."""

import pytest

from routing import metrics
from tests.conftest import read_response

pytestmark = pytest.mark.django_db

DASHBOARD_URL = "/console/observe/dashboard/"
RULE = "rule 1 (any method any path)"


@pytest.fixture(autouse=True)
def fresh_aggregator():
    """Start every test with empty counters in this process's aggregator, as a new worker would."""
    metrics.aggregator.reset()
    yield
    metrics.aggregator.reset()


@pytest.fixture
def shadow_rule_route(make_route, upstream):
    return make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, roles=["reader"],
                      rules=[{"roles": ["auditor"], "shadow": True}])


@pytest.fixture
def reader(make_user):
    return make_user(username="reader", roles=["reader"])


@pytest.fixture
def reader_get(client, reader, token_for):
    """Return a function that sends GET ``path`` through the proxy with the reader's token."""
    token = token_for(reader)

    def get(path):
        return read_response(client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}"))

    return get


def shadow_records(caplog):
    return [record for record in caplog.records if record.name == "routing.proxy" and "shadow_denied" in record.msg]


def test_shadow_rule_lets_denied_request_through(shadow_rule_route, upstream, reader_get):
    response = reader_get("/api/orders/7")
    assert response.status_code == 200
    assert [request.target for request in upstream.received] == ["/api/orders/7"]


def test_shadow_rule_logs_one_denial(shadow_rule_route, upstream, reader, reader_get, caplog):
    with caplog.at_level("WARNING", logger="routing.proxy"):
        reader_get("/api/orders/7")
    records = shadow_records(caplog)
    assert len(records) == 1
    assert records[0].levelname == "WARNING"
    assert f"requirement={RULE}" in records[0].getMessage()
    assert f"user={reader.pk}" in records[0].getMessage()


def test_shadow_rule_met_logs_nothing(shadow_rule_route, upstream, make_user, token_for, client, caplog):
    auditor = make_user(username="auditor", roles=["reader", "auditor"])
    with caplog.at_level("WARNING", logger="routing.proxy"):
        read_response(client.get("/api/orders/7", HTTP_AUTHORIZATION=f"Bearer {token_for(auditor)}"))
    assert shadow_records(caplog) == []


def test_shadow_route_roles_let_request_through(make_route, upstream, reader_get):
    make_route(name="reports", paths="/reports/**", upstream_url=upstream.url, roles=["auditor"], shadow=True)
    assert reader_get("/reports/daily").status_code == 200


def test_enforced_rule_after_shadow_still_denies(make_route, upstream, reader_get):
    make_route(name="reports", paths="/reports/**", upstream_url=upstream.url, roles=["auditor"], shadow=True,
               rules=[{"roles": ["admin"]}])
    assert reader_get("/reports/daily").status_code == 403
    assert upstream.received == []


def test_shadow_denial_counted_per_requirement(shadow_rule_route, upstream, reader_get):
    reader_get("/api/orders/7")
    reader_get("/api/orders/8")
    ((_key, stats),) = metrics.aggregator.snapshot("orders").items()
    assert stats.shadow_denials == {RULE: 2}


def test_dashboard_counts_shadow_denial_after_flush(shadow_rule_route, upstream, reader_get, console):
    reader_get("/api/orders/7")
    metrics.aggregator.flush()
    response = console.get(DASHBOARD_URL)
    assert response.context["shadow_rows"] == [("orders", RULE, [1, 1])]
    assert [row["windows"][0]["shadow_denials"] for row in response.context["rows"] if row["route"] == "orders"] == [1]


def test_dashboard_shows_shadow_rule_name(shadow_rule_route, upstream, reader_get, console):
    reader_get("/api/orders/7")
    metrics.aggregator.flush()
    assert f'data-requirement="{RULE}"'.encode() in console.get(DASHBOARD_URL).content


def test_dashboard_skips_shadow_before_flush(shadow_rule_route, upstream, reader_get, console):
    reader_get("/api/orders/7")
    assert console.get(DASHBOARD_URL).context["shadow_rows"] == []


def test_tester_page_shows_shadow_denial(shadow_rule_route, console):
    response = console.post(
        "/console/observe/tester/",
        {"method": "GET", "host": "testserver", "target": "/api/orders/7", "caller": "claims", "roles": ["reader"]},
    )
    assert [denial.requirement for denial in response.context["result"].shadow_denials] == [RULE]
    assert b'id="tester-shadow-denials"' in response.content
