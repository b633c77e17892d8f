"""Micro-benchmarks of the hot path's steps: route matching, token verification and header building.

Run by bench/run.sh with pytest-benchmark; conftest.py sets up jwtgate's settings.
The route tables are compiled in memory from the same generated configuration
that the load benchmark applies with ``manage.py applyconfig``.
"""

import tracemalloc

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.test import RequestFactory, override_settings
from rest_framework_simplejwt.exceptions import TokenError

from accounts.tokens import AccessToken, Identity, verify_access_token, verify_access_token_cached
from harness import routeset
from routing import headers, patterns
from routing.matching import CompiledRoute, CompiledRule, CompiledUpstream, RouteTable
from routing.paths import normalize_path

UPSTREAM_URL = "http://127.0.0.1:9"


def compile_document(document):
    """Return the CompiledRoutes of an applyconfig document, built as routing.matching.compile_routes builds them."""
    upstreams = {
        entry["name"]: CompiledUpstream(
            name=entry["name"],
            targets=tuple((target["url"], 1) for target in entry["targets"]),
            connect_timeout_seconds=None,
            read_timeout_seconds=None,
        )
        for entry in document["upstreams"]
    }
    compiled = []
    for entry in document["routes"]:
        rules = tuple(
            CompiledRule(
                methods=frozenset(patterns.parse_methods(rule.get("methods", []))) or None,
                path=rule.get("path", ""),
                path_regex=patterns.compile_pattern(rule["path"]) if rule.get("path") else None,
                roles=frozenset(rule.get("roles", [])),
                permissions=frozenset(rule.get("permissions", [])),
            )
            for rule in entry.get("rules", [])
        )
        compiled.append(
            CompiledRoute(
                name=entry["name"],
                paths=tuple(patterns.parse_paths(entry["paths"])),
                methods=frozenset(patterns.parse_methods(entry.get("methods", []))) or None,
                hosts=tuple(patterns.parse_hosts(entry.get("hosts", []))),
                upstream=upstreams[entry["upstream"]],
                strip_prefix="",
                public=entry.get("auth") == "public",
                roles=frozenset(entry.get("roles", [])),
                permissions=frozenset(entry.get("permissions", [])),
                priority=0,
                rules=rules,
            )
        )
    return compiled


def route_table(route_count):
    return RouteTable.build(1, compile_document(routeset.configuration(route_count, UPSTREAM_URL)))


def host_route_table(route_count):
    """Return a table of routes that differ only by host, each with the pattern ``/**``."""
    upstream = CompiledUpstream("bench", ((UPSTREAM_URL, 1),), None, None)
    routes = [
        CompiledRoute(
            name=f"host-{index:05d}",
            paths=("/**",),
            methods=None,
            hosts=(f"svc-{index:05d}.bench.test",),
            upstream=upstream,
            strip_prefix="",
            public=False,
            roles=frozenset({"reader"}),
            permissions=frozenset(),
            priority=0,
            rules=(),
        )
        for index in range(route_count)
    ]
    return RouteTable.build(1, routes)


@pytest.fixture(scope="module")
def table_10():
    return route_table(10)


@pytest.fixture(scope="module")
def table_10k():
    return route_table(10_000)


def test_match_api_route_10_routes(benchmark, table_10):
    match = benchmark(table_10.match, "127.0.0.1", "/api/small", "GET")
    assert match.route.name == "api"


def test_match_api_route_10k_routes(benchmark, table_10k):
    match = benchmark(table_10k.match, "127.0.0.1", "/api/small", "GET")
    assert match.route.name == "api"


def test_match_wildcard_route_10k_routes(benchmark, table_10k):
    match = benchmark(table_10k.match, "127.0.0.1", "/svc-05006/v1/42/items/7", "GET")
    assert match.route.name == "svc-05006"


def test_match_host_route_10k_host_routes(benchmark):
    # Every route's pattern is /**, so every route is a candidate for every path
    # and the host is compared route by route.
    table = host_route_table(10_000)
    match = benchmark(table.match, "svc-09999.bench.test", "/orders/7", "GET")
    assert match.route.name == "host-09999"


def test_build_route_table_10k_routes(benchmark):
    # One build, traced: extra_info records the bytes that the table keeps afterwards
    # and the peak while building, as tracemalloc counts Python allocations.
    document = routeset.configuration(10_000, UPSTREAM_URL)

    def build():
        tracemalloc.start()
        try:
            table = RouteTable.build(1, compile_document(document))
            retained, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return table, retained, peak

    table, retained, peak = benchmark.pedantic(build, rounds=1, iterations=1)
    benchmark.extra_info["retained_bytes"] = retained
    benchmark.extra_info["peak_bytes"] = peak
    assert len(table.routes) == 10_000


def test_normalize_path_plain(benchmark):
    normalized = benchmark(normalize_path, "/api/v1/orders/12345/items")
    assert normalized.path == "/api/v1/orders/12345/items"


def make_access_token():
    token = AccessToken()
    token["sub"] = "42"
    token["roles"] = ["reader"]
    token["permissions"] = []
    return str(token)


def test_verify_access_token_hs256(benchmark):
    raw_token = make_access_token()
    identity = benchmark(verify_access_token, raw_token)
    assert identity.roles == frozenset({"reader"})


def test_verify_access_token_cached_hit(benchmark):
    raw_token = make_access_token()
    verify_access_token_cached(raw_token)
    identity = benchmark(verify_access_token_cached, raw_token)
    assert identity.roles == frozenset({"reader"})


def test_reject_forged_token_cached(benchmark):
    header, payload, _signature = make_access_token().split(".")
    forged = f"{header}.{payload}.{'A' * 43}"

    def reject():
        try:
            verify_access_token_cached(forged)
        except TokenError:
            return True
        return False

    assert reject()
    assert benchmark(reject)


@pytest.fixture(scope="module")
def rs256_settings():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return {**settings.SIMPLE_JWT, "ALGORITHM": "RS256", "SIGNING_KEY": private_pem, "VERIFYING_KEY": public_pem}


def test_verify_access_token_rs256(benchmark, rs256_settings):
    # override_settings sends setting_changed, which rebuilds the cached token backend.
    with override_settings(SIMPLE_JWT=rs256_settings):
        raw_token = make_access_token()
        identity = benchmark(verify_access_token, raw_token)
    assert identity.roles == frozenset({"reader"})


def test_forward_request_headers_typical(benchmark):
    request = RequestFactory().get(
        "/api/small",
        headers={
            "Authorization": "Bearer header.payload.signature",
            "Accept": "application/json",
            "User-Agent": "bench-client/1.0",
            "Accept-Encoding": "gzip, deflate",
            "X-User-Id": "spoofed",
        },
    )
    identity = Identity(user_id="42", roles=frozenset({"reader"}), permissions=frozenset())
    forwarded = benchmark(headers.forward_request_headers, request, identity, "0123456789abcdef", False)
    assert ("X-User-Id", "42") in forwarded
