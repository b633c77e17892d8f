"""Per-worker request counters, aggregated in memory per minute and route and flushed to the database.

Recording a request takes a lock and updates a few integers, so the proxy path
makes no database query for it. Once ``start_flushing`` was called (the WSGI
entry point does), a background thread in each worker process writes the
counters of the minutes that changed since its last flush, in at most one
transaction per flush interval. The console's dashboard merges the rows of all
workers. Latency is kept as a histogram with fixed bucket bounds, so that
percentiles can be estimated after merging.
"""

import atexit
import bisect
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from django.db import DatabaseError, close_old_connections

logger = logging.getLogger(__name__)

# Upper bounds of the latency buckets in seconds. One more bucket counts the
# requests slower than the last bound.
LATENCY_BOUNDS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FLUSH_INTERVAL_SECONDS = 5.0
# A worker without traffic still writes its heartbeat this often.
HEARTBEAT_INTERVAL_SECONDS = 60.0
# Counters older than this are deleted from the database and from memory. The
# dashboard shows the last hour.
RETENTION_SECONDS = 2 * 3600
PRUNE_INTERVAL_SECONDS = 600
# The route name recorded for requests that ended before a route matched.
NO_ROUTE = "-"
# The requirement recorded when the caller passes a count of shadow denials instead of their sources.
UNNAMED_REQUIREMENT = "-"


def latency_bucket(elapsed_seconds):
    """Return the index of the latency bucket for ``elapsed_seconds``. A bucket includes its upper bound."""
    return bisect.bisect_left(LATENCY_BOUNDS_SECONDS, elapsed_seconds)


def empty_latency_counts():
    return [0] * (len(LATENCY_BOUNDS_SECONDS) + 1)


def estimate_percentile(latency_counts, fraction):
    """Return an estimate in seconds of the ``fraction`` quantile (0.95 for p95), or None without requests.

    The estimate interpolates linearly inside the bucket that contains the quantile,
    as if its requests were spread evenly between the bucket's bounds, so it is
    off by at most the width of that bucket. A quantile in the last, unbounded
    bucket is reported as the last bound, which understates it.
    """
    total = sum(latency_counts)
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for index, count in enumerate(latency_counts):
        if count == 0 or seen + count < rank:
            seen += count
            continue
        if index == len(LATENCY_BOUNDS_SECONDS):
            return LATENCY_BOUNDS_SECONDS[-1]
        lower = LATENCY_BOUNDS_SECONDS[index - 1] if index > 0 else 0.0
        upper = LATENCY_BOUNDS_SECONDS[index]
        return lower + (upper - lower) * (rank - seen) / count
    return LATENCY_BOUNDS_SECONDS[-1]


def minute_start(epoch_seconds):
    """Return the start of the minute that contains ``epoch_seconds``, in whole epoch seconds."""
    return int(epoch_seconds // 60 * 60)


STATUS_FIELDS = ("status_2xx", "status_3xx", "status_4xx", "status_5xx")


@dataclass
class RouteStats:
    """Counters of one route over a period: requests, status classes, latency histogram, shadow denials."""

    requests: int = 0
    status_2xx: int = 0
    status_3xx: int = 0
    status_4xx: int = 0
    status_5xx: int = 0
    latency_counts: list = field(default_factory=empty_latency_counts)
    shadow_denials: Counter = field(default_factory=Counter)

    def add(self, status, elapsed_seconds, shadow_requirements=()):
        """Count one request. A status outside 200 to 599 counts in ``requests`` only."""
        self.requests += 1
        status_field = f"status_{status // 100}xx"
        if status_field in STATUS_FIELDS:
            setattr(self, status_field, getattr(self, status_field) + 1)
        self.latency_counts[latency_bucket(elapsed_seconds)] += 1
        self.shadow_denials.update(shadow_requirements)

    def merge(self, other):
        """Add the counters of ``other`` to these. Both must use LATENCY_BOUNDS_SECONDS."""
        self.requests += other.requests
        for status_field in STATUS_FIELDS:
            setattr(self, status_field, getattr(self, status_field) + getattr(other, status_field))
        self.latency_counts = [mine + theirs for mine, theirs in zip(self.latency_counts, other.latency_counts)]
        self.shadow_denials.update(other.shadow_denials)

    def copy(self):
        return RouteStats(
            self.requests, self.status_2xx, self.status_3xx, self.status_4xx, self.status_5xx,
            list(self.latency_counts), Counter(self.shadow_denials),
        )

    def percentile(self, fraction):
        """Return the estimated ``fraction`` quantile of the latency in seconds, or None."""
        return estimate_percentile(self.latency_counts, fraction)


@dataclass(frozen=True)
class WorkerInfo:
    """The identity of one worker process. ``worker`` is unique even when a process id is reused."""

    worker: str
    hostname: str
    pid: int


def current_worker():
    return WorkerInfo(worker=uuid.uuid4().hex, hostname=socket.gethostname(), pid=os.getpid())


@dataclass
class FlushBatch:
    """The data of one flush: counters per (minute, route), the heartbeat, and the pruning cutoff."""

    worker: WorkerInfo
    now: float
    rows: dict  # (minute start in epoch seconds, route name) -> RouteStats, running totals
    config_version: int | None
    loaded_at: float | None
    prune_before: float | None


class MetricsAggregator:
    """The counters of one worker process, and the thread that flushes them.

    ``writer`` stores a FlushBatch in one transaction and defaults to
    console.observe.store.write_batch. ``clock`` returns epoch seconds.
    """

    def __init__(self, writer=None, clock=time.time, flush_interval_seconds=FLUSH_INTERVAL_SECONDS):
        self.writer = writer
        self.clock = clock
        self.flush_interval_seconds = flush_interval_seconds
        self.flushing = False
        self.reset()

    def reset(self):
        """Forget every counter and the flush thread, as a new worker process starts."""
        self.lock = threading.Lock()
        self.minutes = {}
        self.dirty = set()
        self.worker = current_worker()
        self.config_version = None
        self.loaded_at = None
        self.heartbeat_due = False
        self.heartbeat_written_at = None
        self.pruned_at = None
        self.flusher = None
        self.flusher_lock = threading.Lock()
        self.stopped = threading.Event()

    def record_request(self, route_name, status, elapsed_seconds, shadow_denials=0):
        """Count one proxied request of ``route_name`` (None or - when no route matched).

        ``shadow_denials`` is the list of requirement sources (``route``, ``rule 1
        (GET /api/**)``) that a request let through in shadow mode, or just their number.
        """
        if isinstance(shadow_denials, int):
            shadow_requirements = [UNNAMED_REQUIREMENT] * shadow_denials
        else:
            shadow_requirements = list(shadow_denials)
        with self.lock:
            # The clock is read under the lock, so that no request can land in a
            # minute that forget_old_minutes has already dropped.
            key = (minute_start(self.clock()), route_name or NO_ROUTE)
            stats = self.minutes.get(key)
            if stats is None:
                stats = self.minutes[key] = RouteStats()
            stats.add(status, elapsed_seconds, shadow_requirements)
            self.dirty.add(key)
        self.ensure_flusher()

    def record_table_loaded(self, version, loaded_at=None):
        """Note that this worker built the route table of configuration ``version``, for the next flush to store."""
        with self.lock:
            self.config_version = version
            self.loaded_at = self.clock() if loaded_at is None else loaded_at
            self.heartbeat_due = True
        self.ensure_flusher()

    def snapshot(self, route_name=None):
        """Return the in-memory totals per (minute, route), for ``route_name`` only when given."""
        with self.lock:
            return {
                key: stats.copy()
                for key, stats in self.minutes.items()
                if route_name is None or key[1] == route_name
            }

    def take_batch(self, force_heartbeat=False):
        """Return the FlushBatch that is due, or None when there is nothing to write.

        The batch contains copies of the running totals that changed since the
        last flush, and ``restore`` marks them as due again when the write fails.
        """
        with self.lock:
            now = self.clock()
            heartbeat_due = (
                self.heartbeat_due
                or force_heartbeat
                or self.heartbeat_written_at is None
                or now - self.heartbeat_written_at >= HEARTBEAT_INTERVAL_SECONDS
            )
            if not self.dirty and not heartbeat_due:
                return None
            rows = {key: self.minutes[key].copy() for key in self.dirty}
            self.dirty = set()
            self.heartbeat_due = False
            prune_due = self.pruned_at is None or now - self.pruned_at >= PRUNE_INTERVAL_SECONDS
            return FlushBatch(
                worker=self.worker,
                now=now,
                rows=rows,
                config_version=self.config_version,
                loaded_at=self.loaded_at,
                prune_before=now - RETENTION_SECONDS if prune_due else None,
            )

    def restore(self, batch):
        """Mark the rows and the heartbeat of a batch that failed to be written as due again."""
        with self.lock:
            self.dirty |= batch.rows.keys()
            self.heartbeat_due = True

    def forget_old_minutes(self):
        """Drop the minutes that were written and are over, and every minute beyond the retention."""
        with self.lock:
            now = self.clock()
            current = minute_start(now)
            oldest_kept = now - RETENTION_SECONDS
            for key in list(self.minutes):
                minute = key[0]
                if minute < oldest_kept:
                    if key in self.dirty:
                        logger.warning(
                            "metrics_dropped route=%s minute=%s requests=%s; they could not be written in time",
                            key[1], minute, self.minutes[key].requests,
                        )
                        self.dirty.discard(key)
                    del self.minutes[key]
                elif minute < current and key not in self.dirty:
                    del self.minutes[key]

    def flush(self, force_heartbeat=False):
        """Write the counters and heartbeat that are due in one transaction; return whether it wrote.

        A DatabaseError is logged and the batch is kept for the next flush.
        """
        batch = self.take_batch(force_heartbeat)
        if batch is None:
            return False
        writer = self.writer or default_writer()
        try:
            writer(batch)
        except DatabaseError as exc:
            self.restore(batch)
            logger.warning(
                "metrics_flush_failed worker=%s rows=%s error=%s; retrying at the next flush",
                batch.worker.worker, len(batch.rows), exc.__class__.__name__,
            )
            return False
        with self.lock:
            self.heartbeat_written_at = batch.now
            if batch.prune_before is not None:
                self.pruned_at = batch.now
        self.forget_old_minutes()
        return True

    def start_flushing(self):
        """Flush every ``flush_interval_seconds`` from a thread started in each process at its first record.

        The thread starts lazily because gunicorn may import the application in
        its master process and fork workers afterwards, and threads do not survive
        a fork. A final flush runs when the process exits.
        """
        if not self.flushing:
            self.flushing = True
            atexit.register(self.flush_at_exit)

    def ensure_flusher(self):
        if not self.flushing or self.flusher is not None:
            return
        with self.flusher_lock:
            if self.flusher is not None:
                return
            self.flusher = threading.Thread(target=self.run_flusher, name="jwtgate-metrics-flush", daemon=True)
            self.flusher.start()

    def run_flusher(self):
        logger.info(
            "metrics_flush_started worker=%s pid=%s interval_seconds=%s",
            self.worker.worker, self.worker.pid, self.flush_interval_seconds,
        )
        while not self.stopped.wait(self.flush_interval_seconds):
            self.flush_in_thread()

    def flush_in_thread(self):
        """Flush with this thread's own database connection, closed when it is too old or broken."""
        close_old_connections()
        try:
            self.flush()
        except Exception:
            # The thread must survive any failure, or the worker would stop flushing for good.
            logger.exception("metrics_flush_failed worker=%s", self.worker.worker)
        finally:
            close_old_connections()

    def stop_flushing(self, timeout_seconds=5.0):
        """Stop the flush thread of this process and wait for it; counters stay in memory."""
        self.stopped.set()
        flusher = self.flusher
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join(timeout_seconds)
        self.flusher = None
        self.stopped = threading.Event()

    def flush_at_exit(self):
        if self.flusher is None:
            return
        self.stop_flushing()
        self.flush_in_thread()


def default_writer():
    from console.observe.store import write_batch

    return write_batch


aggregator = MetricsAggregator()
# A forked worker must not write its parent's counters under its own name, nor
# count on a flush thread that stayed behind in the parent.
os.register_at_fork(after_in_child=aggregator.reset)


def record_request(route_name, status, elapsed_seconds, shadow_denials=0):
    """Count one proxied request in this worker's aggregator; see MetricsAggregator.record_request."""
    aggregator.record_request(route_name, status, elapsed_seconds, shadow_denials)


def record_table_loaded(version, loaded_at=None):
    """Note the configuration version of the route table that this worker just built."""
    aggregator.record_table_loaded(version, loaded_at)


def start_flushing():
    """Let each worker process flush its counters from a background thread; see MetricsAggregator."""
    aggregator.start_flushing()
