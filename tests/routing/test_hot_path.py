"""The proxy path on a warm route table makes no database query."""

import pytest

from tests.conftest import read_response

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def warm_route(make_route, upstream, settings):
    settings.GATEWAY = {**settings.GATEWAY, "CONFIG_CHECK_INTERVAL_SECONDS": 60}
    return make_route(name="orders", paths="/api/orders/**", upstream_url=upstream.url, roles=["reader"],
                      rules=[{"methods": "DELETE", "roles": ["admin"]}])


def test_hot_path_authorized_request_makes_no_query(client, warm_route, upstream, auth_header,
                                                    django_assert_num_queries):
    headers = auth_header(roles=["reader"])
    read_response(client.get("/api/orders/1", headers=headers))
    with django_assert_num_queries(0):
        response = read_response(client.get("/api/orders/2", headers=headers))
    assert response.status_code == 200
    assert len(upstream.received) == 2


@pytest.mark.parametrize(("method", "status"), [("DELETE", 403), ("PATCH", 200)], ids=["denied", "allowed"])
def test_hot_path_rule_check_makes_no_query(client, warm_route, auth_header, django_assert_num_queries,
                                            method, status):
    headers = auth_header(roles=["reader"])
    read_response(client.get("/api/orders/1", headers=headers))
    with django_assert_num_queries(0):
        response = read_response(client.generic(method, "/api/orders/2", headers=headers))
    assert response.status_code == status


def test_hot_path_invalid_token_makes_no_query(client, warm_route, django_assert_num_queries):
    read_response(client.get("/api/orders/1"))
    with django_assert_num_queries(0):
        response = client.get("/api/orders/2", headers={"Authorization": "Bearer a.b.c"})
    assert response.status_code == 401
