"""The route table: pattern matching, route choice and the configuration version check."""

import pytest

from routing.exceptions import MethodNotAllowed, RouteNotFound
from routing.matching import CompiledRoute, CompiledUpstream, RouteTable, RouteTableHolder

UPSTREAM = CompiledUpstream(name="u", targets=(("http://127.0.0.1:1", 1),), connect_timeout_seconds=None,
                            read_timeout_seconds=None)


def route(name, paths, methods=None, hosts=(), priority=0):
    return CompiledRoute(
        name=name, paths=tuple(paths), methods=frozenset(methods) if methods else None, hosts=tuple(hosts),
        upstream=UPSTREAM, strip_prefix="", public=False, roles=frozenset(), permissions=frozenset(),
        priority=priority, rules=(),
    )


def table(*routes):
    return RouteTable.build(1, routes)


PATTERN_CASES = [
    ("/api/orders", "/api/orders", True),
    ("/api/orders", "/api/orders/", False),
    ("/api/orders", "/api/orders/1", False),
    ("/api/orders/**", "/api/orders", True),
    ("/api/orders/**", "/api/orders/", True),
    ("/api/orders/**", "/api/orders/1/items", True),
    ("/api/orders/**", "/api/ordersx", False),
    ("/api/*/items", "/api/7/items", True),
    ("/api/*/items", "/api//items", False),
    ("/api/*/items", "/api/7/8/items", False),
    ("/api/*", "/api/", False),
    ("/**", "/", True),
    ("/**", "/anything/at/all", True),
    ("/", "/", True),
    ("/", "/x", False),
    ("/API/orders", "/api/orders", False),
]


@pytest.mark.parametrize(("pattern", "path", "matches"), PATTERN_CASES,
                         ids=[f"{pattern} {path}" for pattern, path, _ in PATTERN_CASES])
def test_table_pattern_matching(pattern, path, matches):
    routes = table(route("r", [pattern]))
    if matches:
        assert routes.match("h", path, "GET").route.name == "r"
    else:
        with pytest.raises(RouteNotFound):
            routes.match("h", path, "GET")


def test_table_prefers_higher_priority():
    routes = table(route("specific", ["/api/orders/**"]), route("catch-all", ["/**"], priority=10))
    assert routes.match("h", "/api/orders/1", "GET").route.name == "catch-all"


def test_table_prefers_more_specific_pattern():
    routes = table(route("catch-all", ["/**"]), route("orders", ["/api/orders/**"]), route("one", ["/api/orders/1"]))
    assert routes.match("h", "/api/orders/1", "GET").route.name == "one"
    assert routes.match("h", "/api/orders/2", "GET").route.name == "orders"
    assert routes.match("h", "/other", "GET").route.name == "catch-all"


def test_table_prefers_route_with_host():
    routes = table(route("any", ["/**"]), route("shop", ["/**"], hosts=["shop.example.com"]))
    assert routes.match("shop.example.com", "/x", "GET").route.name == "shop"
    assert routes.match("other.example.com", "/x", "GET").route.name == "any"


def test_table_wildcard_host_matches_subdomain():
    routes = table(route("shop", ["/**"], hosts=["*.example.com"]))
    assert routes.match("eu.example.com", "/x", "GET").route.name == "shop"
    with pytest.raises(RouteNotFound):
        routes.match("example.com", "/x", "GET")


def test_table_method_falls_to_next_route():
    routes = table(route("read", ["/api/**"], methods=["GET"], priority=5), route("write", ["/api/**"], methods=["POST"]))
    assert routes.match("h", "/api/x", "POST").route.name == "write"


def test_table_method_mismatch_lists_allowed():
    routes = table(route("read", ["/api/**"], methods=["GET"]), route("write", ["/api/**"], methods=["POST"]))
    with pytest.raises(MethodNotAllowed) as error:
        routes.match("h", "/api/x", "DELETE")
    assert error.value.allowed == ["GET", "HEAD", "POST"]


def test_table_get_allows_head():
    routes = table(route("read", ["/api/**"], methods=["GET"]))
    assert routes.match("h", "/api/x", "HEAD").route.name == "read"


def test_table_many_routes_match_exactly():
    routes = table(*(route(f"r{index}", [f"/svc{index}/**"]) for index in range(10_000)))
    assert routes.match("h", "/svc9876/orders", "GET").route.name == "r9876"


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.mark.django_db
def test_holder_checks_version_once_per_interval(make_route, django_assert_num_queries, settings):
    settings.GATEWAY = {**settings.GATEWAY, "CONFIG_CHECK_INTERVAL_SECONDS": 1.0}
    make_route(name="orders", paths="/api/**", upstream_url="http://127.0.0.1:9")
    clock = FakeClock()
    holder = RouteTableHolder(clock=clock)
    first = holder.get()
    with django_assert_num_queries(0):
        clock.now += 0.5
        assert holder.get() is first
    with django_assert_num_queries(1):
        clock.now += 0.6
        assert holder.get() is first


@pytest.mark.django_db
def test_holder_rebuilds_after_change(make_route, settings):
    settings.GATEWAY = {**settings.GATEWAY, "CONFIG_CHECK_INTERVAL_SECONDS": 1.0}
    route = make_route(name="orders", paths="/api/**", upstream_url="http://127.0.0.1:9")
    clock = FakeClock()
    holder = RouteTableHolder(clock=clock)
    assert len(holder.get().routes) == 1
    route.enabled = False
    route.save()
    clock.now += 1.1
    assert len(holder.get().routes) == 0


@pytest.mark.django_db
def test_holder_keeps_table_when_database_fails(make_route, settings, monkeypatch, caplog):
    from django.db import OperationalError

    from routing import version

    settings.GATEWAY = {**settings.GATEWAY, "CONFIG_CHECK_INTERVAL_SECONDS": 1.0}
    make_route(name="orders", paths="/api/**", upstream_url="http://127.0.0.1:9")
    clock = FakeClock()
    holder = RouteTableHolder(clock=clock)
    first = holder.get()

    def fail():
        raise OperationalError("database is down")

    monkeypatch.setattr(version, "current_version", fail)
    clock.now += 2
    assert holder.get() is first
    assert "config_check_failed" in caplog.text


# CONN_MAX_AGE 0: Django closes the connection at the end of every request, and
# the table check, which proxied requests make outside Django's handler, must too.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("max_age", "stays_open"), [(0, False), (60, True)], ids=["past-max-age", "within"])
def test_holder_connection_follows_max_age(make_route, monkeypatch, max_age, stays_open):
    from django.db import connection

    make_route(name="orders", paths="/api/**", upstream_url="http://127.0.0.1:9")
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", max_age)
    holder = RouteTableHolder(clock=FakeClock())
    assert len(holder.get().routes) == 1
    assert (connection.connection is not None) is stays_open


def test_table_host_index_matches_exactly():
    routes = table(*(route(f"h{index}", ["/**"], hosts=[f"svc{index}.example.com"]) for index in range(10_000)))
    assert routes.match("svc4321.example.com", "/x", "GET").route.name == "h4321"
    with pytest.raises(RouteNotFound):
        routes.match("svc4321.example.org", "/x", "GET")


def test_table_wildcard_host_matches_deeper_subdomain():
    routes = table(route("shop", ["/**"], hosts=["*.example.com"]), route("exact", ["/**"], hosts=["a.example.com"]))
    assert routes.match("x.y.example.com", "/x", "GET").route.name == "shop"
    assert routes.match("a.example.com", "/x", "GET").route.name == "exact"


def test_table_route_with_two_hosts():
    routes = table(route("both", ["/api/**"], hosts=["a.example.com", "*.example.org"]))
    assert routes.match("a.example.com", "/api/x", "GET").route.name == "both"
    assert routes.match("b.example.org", "/api/x", "GET").route.name == "both"
    with pytest.raises(RouteNotFound):
        routes.match("b.example.com", "/api/x", "GET")
