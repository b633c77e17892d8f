"""Balancing, retries, timeouts and target health against real misbehaving upstreams on 127.0.0.1."""

import threading
import time

import pytest
import requests

from routing.models import Route, Target, Upstream
from tests.gunicorn import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def make_service(db):
    """Return a function that stores an upstream with the given targets and a public route /svc/** to it."""

    def make(urls, weights=None, route_fields=None, **upstream_fields):
        upstream_row = Upstream.objects.create(name="service", **upstream_fields)
        for index, url in enumerate(urls):
            Target.objects.create(upstream=upstream_row, url=url, weight=(weights or [1] * len(urls))[index])
        return Route.objects.create(name="svc", paths="/svc/**", upstream=upstream_row, auth="public",
                                    **(route_fields or {}))

    return make


def served_by(response):
    return response.headers.get("X-Served-By")


def test_balancing_follows_weights(gateway, http, faulty, make_service):
    heavy, light = faulty("heavy"), faulty("light")
    make_service([heavy.url, light.url], weights=[3, 1])
    names = [served_by(http.get(f"{gateway}/svc/x")) for _ in range(8)]
    assert names.count("heavy") == 6
    assert names.count("light") == 2


def test_balancing_least_outstanding_avoids_busy(gateway, http, faulty, make_service):
    busy, idle = faulty("busy", "slow:2"), faulty("idle")
    make_service([busy.url, idle.url], balancing="least_outstanding")
    background = threading.Thread(target=lambda: requests.get(f"{gateway}/svc/slow", timeout=10))
    background.start()
    time.sleep(0.3)
    names = [served_by(http.get(f"{gateway}/svc/x")) for _ in range(4)]
    background.join()
    assert names == ["idle"] * 4
    assert len(busy.requests) == 1


def test_retry_refused_goes_to_other_target(gateway, http, faulty, make_service):
    alive = faulty("alive")
    make_service([f"http://127.0.0.1:{free_port()}", alive.url])
    response = http.get(f"{gateway}/svc/x")
    assert response.status_code == 200
    assert served_by(response) == "alive"


def test_retry_on_503_goes_to_other_target(gateway, http, faulty, make_service):
    failing, alive = faulty("failing", "status:503"), faulty("alive")
    make_service([failing.url, alive.url])
    response = http.get(f"{gateway}/svc/x")
    assert served_by(response) == "alive"
    assert len(failing.requests) == 1
    assert len(alive.requests) == 1


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_retry_never_repeats_non_idempotent(gateway, http, faulty, make_service, method):
    failing, alive = faulty("failing", "status:503"), faulty("alive")
    make_service([failing.url, alive.url])
    response = http.request(method, f"{gateway}/svc/x", data=b"payload")
    assert response.status_code == 503
    assert len(failing.requests) == 1
    assert alive.requests == []


def test_retry_post_after_reset_reaches_once(gateway, http, faulty, make_service):
    resetting, alive = faulty("resetting", "reset"), faulty("alive")
    make_service([resetting.url, alive.url])
    response = http.post(f"{gateway}/svc/x", data=b"payload")
    assert response.status_code == 502
    assert len(resetting.requests) == 1
    assert alive.requests == []


def test_retry_post_when_route_opts_in(gateway, http, faulty, make_service):
    failing, alive = faulty("failing", "status:503"), faulty("alive")
    make_service([failing.url, alive.url], route_fields={"retry_non_idempotent": True})
    response = http.post(f"{gateway}/svc/x", data=b"payload")
    assert served_by(response) == "alive"


def test_retry_count_is_bounded(gateway, http, faulty, make_service):
    servers = [faulty(f"failing{index}", "status:503") for index in range(3)]
    make_service([server.url for server in servers], retries=1)
    response = http.get(f"{gateway}/svc/x")
    assert response.status_code == 503
    assert sum(len(server.requests) for server in servers) == 2


def test_retry_disabled_with_zero_retries(gateway, http, faulty, make_service):
    failing, alive = faulty("failing", "status:503"), faulty("alive")
    make_service([failing.url, alive.url], retries=0)
    assert http.get(f"{gateway}/svc/x").status_code == 503
    assert alive.requests == []


def test_retry_status_list_is_configurable(gateway, http, faulty, make_service):
    failing, alive = faulty("failing", "status:500"), faulty("alive")
    make_service([failing.url, alive.url], retry_on_statuses="500")
    assert served_by(http.get(f"{gateway}/svc/x")) == "alive"


def test_retry_replays_small_body(gateway, http, faulty, make_service):
    failing, hashing = faulty("failing", "status:503"), faulty("hashing", "hash")
    make_service([failing.url, hashing.url])
    payload = b"z" * 1000
    response = http.put(f"{gateway}/svc/x", data=payload)
    assert response.status_code == 200
    assert response.text.endswith(" 1000")


def test_retry_skips_large_streamed_body(gateway, http, faulty, make_service, settings):
    settings.GATEWAY = {**settings.GATEWAY, "RETRY_BUFFER_BYTES": 100}
    failing, alive = faulty("failing", "status:503"), faulty("alive")
    make_service([failing.url, alive.url])
    response = http.put(f"{gateway}/svc/x", data=b"z" * 1000)
    assert response.status_code == 503
    assert alive.requests == []


@pytest.mark.parametrize(("mode", "status"), [("reset", 502), ("garbage", 502), ("close", 502), ("slow:2", 504)],
                         ids=["reset", "garbage", "close", "read-timeout"])
def test_fault_maps_to_status(gateway, http, faulty, make_service, mode, status):
    server = faulty("only", mode)
    make_service([server.url], read_timeout_seconds=0.5, retries=0)
    response = http.get(f"{gateway}/svc/x")
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    assert str(server.port) not in response.text


def test_route_read_timeout_overrides_upstream(gateway, http, faulty, make_service):
    server = faulty("slowish", "slow:1")
    make_service([server.url], read_timeout_seconds=5, retries=0, route_fields={"read_timeout_seconds": 0.3})
    assert http.get(f"{gateway}/svc/x").status_code == 504


def test_fault_logs_route_and_target(gateway, http, faulty, make_service, caplog):
    server = faulty("only", "reset")
    make_service([server.url], retries=0)
    with caplog.at_level("INFO", logger="routing.access"):
        http.get(f"{gateway}/svc/x")
    lines = [record.getMessage() for record in caplog.records if record.name == "routing.access"]
    assert len(lines) == 1
    assert "route=svc" in lines[0]
    assert f"target={server.url}" in lines[0]


def test_passive_ejection_skips_failing_target(gateway, http, faulty, make_service):
    failing, alive = faulty("failing", "reset"), faulty("alive")
    make_service([failing.url, alive.url], failure_threshold=2, ejection_seconds=60)
    statuses = [http.get(f"{gateway}/svc/x").status_code for _ in range(10)]
    assert statuses == [200] * 10
    assert len(failing.requests) == 2


def test_half_open_trial_returns_target(gateway, http, faulty, make_service):
    flaky, alive = faulty("flaky", "reset"), faulty("alive")
    make_service([flaky.url, alive.url], failure_threshold=1, ejection_seconds=0.5)
    http.get(f"{gateway}/svc/x")
    assert len(flaky.requests) == 1
    flaky.mode = "ok"
    time.sleep(0.6)
    names = [served_by(http.get(f"{gateway}/svc/x")) for _ in range(4)]
    assert names[0] == "flaky"
    assert names.count("flaky") == 2


def test_half_open_trial_failure_ejects_again(gateway, http, faulty, make_service):
    flaky, alive = faulty("flaky", "reset"), faulty("alive")
    make_service([flaky.url, alive.url], failure_threshold=1, ejection_seconds=0.5)
    http.get(f"{gateway}/svc/x")
    time.sleep(0.6)
    names = [served_by(http.get(f"{gateway}/svc/x")) for _ in range(4)]
    assert names == ["alive"] * 4
    assert len(flaky.requests) == 2


def test_all_targets_down_gets_503_retry_after(gateway, http, make_service):
    make_service([f"http://127.0.0.1:{free_port()}"], failure_threshold=1, ejection_seconds=30)
    first = http.get(f"{gateway}/svc/x")
    second = http.get(f"{gateway}/svc/x")
    assert first.status_code == 502
    assert second.status_code == 503
    assert 1 <= int(second.headers["Retry-After"]) <= 30
    assert second.json()["code"] == "no_healthy_target"


def test_target_stopped_mid_run(gateway, http, faulty, make_service):
    first, second = faulty("first"), faulty("second")
    make_service([first.url, second.url], failure_threshold=1)
    statuses = []
    for index in range(12):
        if index == 5:
            first.stop()
        statuses.append(http.get(f"{gateway}/svc/x").status_code)
    assert statuses == [200] * 12
    assert served_by(http.get(f"{gateway}/svc/x")) == "second"


def test_active_health_check_marks_target_down(gateway, http, faulty, make_service):
    sick, healthy = faulty("sick", "status:503"), faulty("healthy")
    make_service([sick.url, healthy.url], health_check_path="/healthz", health_check_interval_seconds=0.5,
                 retries=0, failure_threshold=100)
    http.get(f"{gateway}/svc/warm-up")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and ("GET", "/healthz") not in sick.requests:
        time.sleep(0.1)
    time.sleep(0.3)
    names = [served_by(http.get(f"{gateway}/svc/x")) for _ in range(6)]
    assert names == ["healthy"] * 6
    assert ("GET", "/healthz") in sick.requests


def test_active_health_check_restores_target(gateway, http, faulty, make_service):
    recovering, healthy = faulty("recovering", "status:503"), faulty("healthy")
    make_service([recovering.url, healthy.url], health_check_path="/healthz", health_check_interval_seconds=0.5,
                 retries=0, failure_threshold=100)
    http.get(f"{gateway}/svc/warm-up")
    time.sleep(1.2)
    recovering.mode = "ok"
    time.sleep(1.2)
    names = {served_by(http.get(f"{gateway}/svc/x")) for _ in range(6)}
    assert names == {"recovering", "healthy"}
