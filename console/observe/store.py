"""The database side of the request counters: one flush written per transaction, and windows read back."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import transaction

from console.models import RouteMinuteStats, WorkerHeartbeat
from routing.metrics import STATUS_FIELDS, RouteStats, empty_latency_counts, minute_start

# Heartbeats of workers not seen for this long are deleted at the next pruning.
HEARTBEAT_RETENTION = timedelta(days=1)


def epoch_to_datetime(epoch_seconds):
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)


def write_batch(batch):
    """Store a routing.metrics.FlushBatch in one transaction.

    Each (worker, minute, route) row is inserted or overwritten with the running
    totals in one statement, and the worker's heartbeat row likewise.
    """
    rows = [
        RouteMinuteStats(
            worker=batch.worker.worker,
            minute=epoch_to_datetime(minute),
            route=route,
            requests=stats.requests,
            status_2xx=stats.status_2xx,
            status_3xx=stats.status_3xx,
            status_4xx=stats.status_4xx,
            status_5xx=stats.status_5xx,
            latency_counts=stats.latency_counts,
            shadow_denials=dict(stats.shadow_denials),
        )
        for (minute, route), stats in sorted(batch.rows.items())
    ]
    heartbeat = WorkerHeartbeat(
        worker=batch.worker.worker,
        hostname=batch.worker.hostname,
        pid=batch.worker.pid,
        config_version=batch.config_version,
        loaded_at=epoch_to_datetime(batch.loaded_at) if batch.loaded_at is not None else None,
        last_seen=epoch_to_datetime(batch.now),
    )
    with transaction.atomic():
        if rows:
            RouteMinuteStats.objects.bulk_create(
                rows,
                update_conflicts=True,
                unique_fields=["worker", "minute", "route"],
                update_fields=["requests", *STATUS_FIELDS, "latency_counts", "shadow_denials"],
            )
        WorkerHeartbeat.objects.bulk_create(
            [heartbeat],
            update_conflicts=True,
            unique_fields=["worker"],
            update_fields=["hostname", "pid", "config_version", "loaded_at", "last_seen"],
        )
        if batch.prune_before is not None:
            RouteMinuteStats.objects.filter(minute__lt=epoch_to_datetime(batch.prune_before)).delete()
            WorkerHeartbeat.objects.filter(last_seen__lt=epoch_to_datetime(batch.now) - HEARTBEAT_RETENTION).delete()


def latency_counts(row):
    """Return the latency histogram of a row, or an empty one for a row written with other bucket bounds.

    Such a row comes from a release with other LATENCY_BOUNDS_SECONDS, so its
    buckets cannot be merged. Its requests still count, but not in the percentiles.
    """
    counts = list(row.latency_counts)
    if len(counts) != len(empty_latency_counts()):
        return empty_latency_counts()
    return counts


@dataclass
class RouteWindows:
    """One route's merged counters over each dashboard window, keyed by the window's length in minutes."""

    route: str
    windows: dict = field(default_factory=dict)

    def shadow_denials(self, minutes):
        return sum(self.windows[minutes].shadow_denials.values())


def route_windows(now, windows_minutes=(15, 60), routes=()):
    """Return a RouteWindows per route with counters in the longest window, plus one for each name in ``routes``.

    A window of N minutes covers the current minute and the N - 1 minutes before
    it, as flushed by every worker.
    """
    current = minute_start(now.timestamp())
    starts = {minutes: current - (minutes - 1) * 60 for minutes in windows_minutes}
    oldest = epoch_to_datetime(min(starts.values()))
    result = {name: RouteWindows(name, {minutes: RouteStats() for minutes in windows_minutes}) for name in routes}
    for row in RouteMinuteStats.objects.filter(minute__gte=oldest).order_by():
        stats = RouteStats(
            requests=row.requests,
            status_2xx=row.status_2xx,
            status_3xx=row.status_3xx,
            status_4xx=row.status_4xx,
            status_5xx=row.status_5xx,
            latency_counts=latency_counts(row),
            shadow_denials=Counter(row.shadow_denials),
        )
        entry = result.get(row.route)
        if entry is None:
            entry = result[row.route] = RouteWindows(row.route, {minutes: RouteStats() for minutes in windows_minutes})
        for minutes, start in starts.items():
            if row.minute.timestamp() >= start:
                entry.windows[minutes].merge(stats)
    return sorted(result.values(), key=lambda entry: entry.route)


def recent_heartbeats(now, within=timedelta(hours=1)):
    """Return the heartbeats of the workers that flushed within ``within`` of ``now``, latest first."""
    return list(WorkerHeartbeat.objects.filter(last_seen__gte=now - within).order_by("-last_seen", "hostname", "pid"))
