"""Request counters: the in-memory aggregator, the percentile estimate, the flush, and the dashboard page."""

import os
import re
import threading
import time
from datetime import UTC, datetime

import pytest
from django.conf import settings as django_settings
from django.db import DatabaseError
from django.utils import timezone

from console.models import RouteMinuteStats, WorkerHeartbeat
from console.observe import store
from routing import metrics
from routing.metrics import LATENCY_BOUNDS_SECONDS, MetricsAggregator, RouteStats, estimate_percentile
from tests.conftest import read_response

DASHBOARD_URL = "/console/observe/dashboard/"
# 2026-01-01 12:00:00 UTC, the start of a minute.
NOON = 1767268800.0


class FakeClock:
    def __init__(self, now=NOON):
        self.now = now

    def __call__(self):
        return self.now


class RecordingWriter:
    def __init__(self, fail=False):
        self.batches = []
        self.fail = fail

    def __call__(self, batch):
        if self.fail:
            raise DatabaseError("database is locked")
        self.batches.append(batch)


@pytest.fixture(autouse=True)
def fresh_aggregator():
    """Start every test with empty counters in this process's aggregator, as a new worker would."""
    metrics.aggregator.stop_flushing()
    metrics.aggregator.reset()
    yield metrics.aggregator
    metrics.aggregator.stop_flushing()
    metrics.aggregator.reset()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def writer():
    return RecordingWriter()


@pytest.fixture
def aggregator(clock, writer):
    return MetricsAggregator(writer=writer, clock=clock)


def first_window_requests(html, label):
    """Return the request count in the first window of the dashboard row labelled ``label``."""
    match = re.search(rf'<th scope="row">{re.escape(label)}</th>\s*<td class="number requests">(\d+)</td>', html)
    return int(match.group(1)) if match else None


def histogram(*latencies):
    stats = RouteStats()
    for seconds in latencies:
        stats.add(200, seconds)
    return stats.latency_counts


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [
        pytest.param(0.0, 0, id="zero"),
        pytest.param(0.005, 0, id="first-bound-included"),
        pytest.param(0.0051, 1, id="just-above-first-bound"),
        pytest.param(1.0, LATENCY_BOUNDS_SECONDS.index(1.0), id="one-second"),
        pytest.param(31.0, len(LATENCY_BOUNDS_SECONDS), id="overflow"),
    ],
)
def test_latency_bucket_bounds_table(seconds, bucket):
    assert metrics.latency_bucket(seconds) == bucket


def test_percentile_of_empty_histogram_is_none():
    assert estimate_percentile(histogram(), 0.5) is None


def test_percentile_interpolates_inside_bucket():
    # Ten requests between 10 ms and 25 ms: the median is assumed halfway.
    assert estimate_percentile(histogram(*[0.02] * 10), 0.5) == pytest.approx(0.0175)


def test_percentile_picks_bucket_by_rank():
    counts = histogram(*[0.003] * 90, *[0.4] * 10)
    assert 0.25 < estimate_percentile(counts, 0.95) <= 0.5


def test_percentile_overflow_reports_last_bound():
    assert estimate_percentile(histogram(45.0, 60.0), 0.95) == LATENCY_BOUNDS_SECONDS[-1]


def test_percentile_estimate_within_bucket_width():
    latencies = sorted((index * 7919 % 1000) / 1000 * 0.8 for index in range(1, 1001))
    counts = histogram(*latencies)
    for fraction in (0.5, 0.95):
        exact = latencies[int(fraction * len(latencies)) - 1]
        bucket = metrics.latency_bucket(exact)
        width = LATENCY_BOUNDS_SECONDS[bucket] - (LATENCY_BOUNDS_SECONDS[bucket - 1] if bucket else 0)
        assert abs(estimate_percentile(counts, fraction) - exact) <= width


def test_percentile_of_merged_workers():
    fast, slow = RouteStats(), RouteStats()
    for _ in range(50):
        fast.add(200, 0.004)
        slow.add(200, 0.9)
    fast.merge(slow)
    assert fast.percentile(0.5) <= 0.005
    assert fast.percentile(0.95) > 0.5


@pytest.mark.parametrize(
    ("status", "field"),
    [
        pytest.param(200, "status_2xx", id="200"),
        pytest.param(204, "status_2xx", id="204"),
        pytest.param(302, "status_3xx", id="302"),
        pytest.param(404, "status_4xx", id="404"),
        pytest.param(429, "status_4xx", id="429"),
        pytest.param(502, "status_5xx", id="502"),
    ],
)
def test_aggregator_counts_status_class_table(aggregator, status, field):
    aggregator.record_request("orders", status, 0.01)
    stats = aggregator.snapshot()[(NOON, "orders")]
    assert getattr(stats, field) == 1
    assert stats.requests == 1


def test_aggregator_separates_minutes(aggregator, clock):
    aggregator.record_request("orders", 200, 0.01)
    clock.now += 61
    aggregator.record_request("orders", 200, 0.01)
    assert sorted(aggregator.snapshot()) == [(NOON, "orders"), (NOON + 60, "orders")]


def test_aggregator_names_unmatched_requests(aggregator):
    aggregator.record_request("-", 404, 0.001)
    aggregator.record_request(None, 400, 0.001)
    assert aggregator.snapshot()[(NOON, metrics.NO_ROUTE)].requests == 2


def test_aggregator_counts_shadow_denials_by_requirement(aggregator):
    aggregator.record_request("orders", 200, 0.01, ["route", "rule 1 (any method any path)"])
    aggregator.record_request("orders", 200, 0.01, ["rule 1 (any method any path)"])
    denials = aggregator.snapshot()[(NOON, "orders")].shadow_denials
    assert denials == {"route": 1, "rule 1 (any method any path)": 2}


def test_aggregator_accepts_shadow_denial_count(aggregator):
    aggregator.record_request("orders", 200, 0.01, 2)
    assert aggregator.snapshot()[(NOON, "orders")].shadow_denials == {metrics.UNNAMED_REQUIREMENT: 2}


def test_aggregator_first_flush_writes_heartbeat(aggregator, writer):
    assert aggregator.flush()
    assert writer.batches[0].rows == {}


def test_aggregator_idle_flush_writes_nothing(aggregator, writer):
    aggregator.flush()
    assert not aggregator.flush()
    assert len(writer.batches) == 1


def test_aggregator_idle_heartbeat_after_interval(aggregator, writer, clock):
    aggregator.flush()
    clock.now += metrics.HEARTBEAT_INTERVAL_SECONDS
    assert aggregator.flush()


def test_aggregator_flushes_changed_minutes_only(aggregator, writer, clock):
    aggregator.record_request("orders", 200, 0.01)
    aggregator.record_request("invoices", 200, 0.01)
    aggregator.flush()
    aggregator.record_request("orders", 500, 0.01)
    aggregator.flush()
    assert list(writer.batches[1].rows) == [(NOON, "orders")]


def test_aggregator_flush_writes_running_totals(aggregator, writer):
    aggregator.record_request("orders", 200, 0.01)
    aggregator.flush()
    aggregator.record_request("orders", 200, 0.01)
    aggregator.flush()
    assert writer.batches[1].rows[(NOON, "orders")].requests == 2


def test_aggregator_keeps_counts_after_failed_flush(aggregator, writer, caplog):
    aggregator.record_request("orders", 200, 0.01)
    writer.fail = True
    with caplog.at_level("WARNING", logger="routing.metrics"):
        assert not aggregator.flush()
    writer.fail = False
    aggregator.flush()
    assert writer.batches[0].rows[(NOON, "orders")].requests == 1
    assert "metrics_flush_failed" in caplog.records[0].getMessage()


def test_aggregator_forgets_written_past_minutes(aggregator, clock):
    aggregator.record_request("orders", 200, 0.01)
    clock.now += 60
    aggregator.flush()
    assert aggregator.snapshot() == {}


def test_aggregator_keeps_current_minute_after_flush(aggregator):
    aggregator.record_request("orders", 200, 0.01)
    aggregator.flush()
    assert aggregator.snapshot()[(NOON, "orders")].requests == 1


def test_aggregator_drops_unwritten_counts_past_retention(aggregator, writer, clock, caplog):
    aggregator.record_request("orders", 200, 0.01)
    writer.fail = True
    clock.now += metrics.RETENTION_SECONDS + 60
    with caplog.at_level("WARNING", logger="routing.metrics"):
        aggregator.flush()
    writer.fail = False
    aggregator.forget_old_minutes()
    assert aggregator.snapshot() == {}
    assert "metrics_dropped route=orders" in caplog.text


def test_aggregator_heartbeat_carries_loaded_version(aggregator, writer, clock):
    aggregator.record_table_loaded(7, loaded_at=NOON - 5)
    aggregator.flush()
    assert (writer.batches[0].config_version, writer.batches[0].loaded_at) == (7, NOON - 5)


def test_aggregator_flush_thread_respects_interval(writer):
    aggregator = MetricsAggregator(writer=writer, flush_interval_seconds=0.1)
    aggregator.start_flushing()
    try:
        started = time.monotonic()
        while time.monotonic() - started < 0.6:
            aggregator.record_request("orders", 200, 0.01)
            time.sleep(0.005)
    finally:
        aggregator.stop_flushing()
    assert 1 <= len(writer.batches) <= 6
    assert sum(batch.rows[key].requests for batch in writer.batches[-1:] for key in batch.rows) >= 1


def test_aggregator_records_without_flush_thread(writer):
    aggregator = MetricsAggregator(writer=writer)
    aggregator.record_request("orders", 200, 0.01)
    assert aggregator.flusher is None


def test_aggregator_is_thread_safe(aggregator):
    def record():
        for _ in range(500):
            aggregator.record_request("orders", 200, 0.01)

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert aggregator.snapshot()[(NOON, "orders")].requests == 2000


@pytest.mark.django_db
def test_store_writes_one_row_per_route_minute(clock):
    aggregator = MetricsAggregator(clock=clock)
    aggregator.record_request("orders", 200, 0.01)
    aggregator.flush()
    aggregator.record_request("orders", 503, 2.0)
    aggregator.flush()
    row = RouteMinuteStats.objects.get()
    assert (row.requests, row.status_2xx, row.status_5xx) == (2, 1, 1)
    assert row.minute == datetime.fromtimestamp(NOON, tz=UTC)


@pytest.mark.django_db
def test_store_flush_uses_one_transaction(clock, django_assert_num_queries):
    aggregator = MetricsAggregator(clock=clock)
    for route in ("orders", "invoices", "users"):
        aggregator.record_request(route, 200, 0.01)
    aggregator.record_table_loaded(3)
    # The savepoint pair, one upsert for the counters of every route, one for the
    # heartbeat and, on the first flush, two pruning deletes.
    with django_assert_num_queries(6):
        aggregator.flush()


@pytest.mark.django_db
def test_store_writes_worker_heartbeat(clock):
    aggregator = MetricsAggregator(clock=clock)
    aggregator.record_table_loaded(4, loaded_at=NOON - 1)
    aggregator.flush()
    heartbeat = WorkerHeartbeat.objects.get()
    assert (heartbeat.pid, heartbeat.config_version) == (aggregator.worker.pid, 4)
    assert heartbeat.loaded_at == datetime.fromtimestamp(NOON - 1, tz=UTC)


@pytest.mark.django_db
def test_store_prunes_rows_past_retention(clock):
    old = MetricsAggregator(clock=FakeClock(NOON - metrics.RETENTION_SECONDS - 120))
    old.record_request("orders", 200, 0.01)
    old.flush()
    aggregator = MetricsAggregator(clock=clock)
    aggregator.record_request("orders", 200, 0.01)
    aggregator.flush()
    assert RouteMinuteStats.objects.count() == 1


@pytest.mark.django_db
def test_store_merges_workers_per_route(clock):
    for status in (200, 500):
        worker = MetricsAggregator(clock=clock)
        worker.record_request("orders", status, 0.01)
        worker.flush()
    (entry,) = store.route_windows(datetime.fromtimestamp(NOON + 30, tz=UTC))
    assert (entry.windows[15].requests, entry.windows[15].status_5xx) == (2, 1)


@pytest.mark.django_db
def test_store_windows_split_by_age(clock):
    aggregator = MetricsAggregator(clock=clock)
    aggregator.record_request("orders", 200, 0.01)
    clock.now += 30 * 60
    aggregator.record_request("orders", 200, 0.01)
    aggregator.flush()
    (entry,) = store.route_windows(datetime.fromtimestamp(clock.now, tz=UTC))
    assert (entry.windows[15].requests, entry.windows[60].requests) == (1, 2)


@pytest.mark.django_db
def test_store_lists_configured_routes_without_traffic():
    entries = store.route_windows(timezone.now(), routes=["orders"])
    assert [(entry.route, entry.windows[60].requests) for entry in entries] == [("orders", 0)]


@pytest.mark.django_db
def test_dashboard_requires_login(client):
    response = client.get(DASHBOARD_URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")


@pytest.mark.django_db
def test_dashboard_shows_route_counts(console):
    aggregator = MetricsAggregator()
    for status in (200, 200, 404, 502):
        aggregator.record_request("orders", status, 0.02)
    aggregator.flush()
    rows = {row["route"]: row for row in console.get(DASHBOARD_URL).context["rows"]}
    window = rows["orders"]["windows"][0]
    assert (window["requests"], window["status_2xx"], window["status_4xx"], window["status_5xx"]) == (4, 2, 1, 1)
    assert 10 < window["p50_ms"] <= 25


@pytest.mark.django_db
def test_dashboard_shows_worker_version(console):
    aggregator = MetricsAggregator()
    aggregator.record_table_loaded(5)
    aggregator.flush()
    response = console.get(DASHBOARD_URL)
    assert [(beat.pid, beat.config_version) for beat in response.context["heartbeats"]] == [
        (aggregator.worker.pid, 5)
    ]
    assert f'data-pid="{aggregator.worker.pid}"'.encode() in response.content


@pytest.mark.django_db
def test_dashboard_hides_stale_workers(console):
    stale = MetricsAggregator(clock=FakeClock(time.time() - 2 * 3600))
    stale.flush()
    assert console.get(DASHBOARD_URL).context["heartbeats"] == []


@pytest.mark.django_db
def test_dashboard_shows_current_config_version(console, make_route, upstream):
    make_route(name="orders", upstream_url=upstream.url)
    response = console.get(DASHBOARD_URL)
    assert response.context["config_version"] > 0


@pytest.mark.django_db
def test_proxy_records_request_without_queries(client, settings, make_route, upstream, django_assert_num_queries):
    settings.GATEWAY = {**settings.GATEWAY, "CONFIG_CHECK_INTERVAL_SECONDS": 3600}
    make_route(name="catalog", paths="/catalog/**", upstream_url=upstream.url, auth="public")
    read_response(client.get("/catalog/warm-up"))
    with django_assert_num_queries(0):
        for index in range(10):
            assert read_response(client.get(f"/catalog/{index}")).status_code == 200
    assert metrics.aggregator.snapshot("catalog").popitem()[1].requests == 11


@pytest.mark.django_db
def test_proxy_records_table_load(client, make_route, upstream):
    make_route(name="catalog", paths="/catalog/**", upstream_url=upstream.url, auth="public")
    read_response(client.get("/catalog/1"))
    assert metrics.aggregator.config_version is not None


def test_dashboard_counts_live_server_requests(gateway, http, client, django_user_model, make_route, upstream):
    make_route(name="catalog", paths="/catalog/**", upstream_url=upstream.url, auth="public")
    for index in range(12):
        assert http.get(f"{gateway}/catalog/{index}").status_code == 200
    assert http.get(f"{gateway}/nowhere").status_code == 404
    metrics.aggregator.flush()
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "correct horse battery")
    client.force_login(admin)
    http.cookies.set(django_settings.SESSION_COOKIE_NAME, client.cookies[django_settings.SESSION_COOKIE_NAME].value)
    page = http.get(f"{gateway}{DASHBOARD_URL}")
    assert page.status_code == 200
    assert first_window_requests(page.text, "catalog") == 12
    assert first_window_requests(page.text, "(no route matched)") == 1


@pytest.mark.gunicorn
def test_gunicorn_workers_flush_counters(gunicorn_gateway, http, make_route, upstream):
    make_route(name="catalog", paths="/catalog/**", upstream_url=upstream.url, auth="public")
    url = gunicorn_gateway(workers=2, threads=2)
    for index in range(20):
        assert http.get(f"{url}/catalog/{index}").status_code == 200
    deadline = time.monotonic() + 3 * metrics.FLUSH_INTERVAL_SECONDS
    flushed = 0
    while time.monotonic() < deadline and flushed < 20:
        time.sleep(0.5)
        flushed = sum(RouteMinuteStats.objects.filter(route="catalog").values_list("requests", flat=True))
    assert flushed == 20
    heartbeats = WorkerHeartbeat.objects.exclude(pid=os.getpid())
    assert heartbeats.exists()
    assert all(heartbeat.config_version is not None for heartbeat in heartbeats)


@pytest.mark.django_db
def test_store_ignores_histogram_with_other_bounds():
    RouteMinuteStats.objects.create(
        worker="old-release", minute=timezone.now(), route="orders", requests=3, status_2xx=3, latency_counts=[3, 0]
    )
    (entry,) = store.route_windows(timezone.now())
    assert entry.windows[15].requests == 3
    assert entry.windows[15].percentile(0.5) is None
