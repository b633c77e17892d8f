"""Target health: passive ejection after consecutive failures, and active health checks.

The state lives in a small memory-mapped file under JWTGATE_VAR_DIR, so every
worker of an instance reads and writes the same table: a target ejected by one
worker is skipped by all of them. Reading a target's state costs no system call.
HealthStore is the interface; a Redis-backed store could replace MmapHealthStore
to share the state between instances too.
"""

import fcntl
import hashlib
import logging
import math
import mmap
import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TargetState:
    """The recorded health of one target."""

    failures: int = 0
    active_down: bool = False
    ejected_until: float = 0.0
    trial_until: float = 0.0

    def status(self, now):
        """Return ``healthy``, ``ejected``, ``half-open`` or ``down`` (failed its active health check)."""
        if self.active_down:
            return "down"
        if self.ejected_until == 0.0:
            return "healthy"
        if now < self.ejected_until:
            return "ejected"
        return "half-open"


def target_key(upstream_name, url):
    """Return the 64-bit key of a target in the health table; 0 is kept for empty slots."""
    digest = hashlib.blake2b(f"{upstream_name}\0{url}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


class HealthStore:
    """Health state of targets, shared by the workers that use the same store."""

    def state(self, key):
        raise NotImplementedError

    def record_success(self, key):
        """Forget a target's failures and end its ejection."""
        raise NotImplementedError

    def record_failure(self, key, threshold, ejection_seconds, now):
        """Count a failure; eject the target when it reaches ``threshold`` in a row. Return whether it was ejected now."""
        raise NotImplementedError

    def claim_trial(self, key, now, hold_seconds):
        """Return whether this caller may send the single trial request to a half-open target."""
        raise NotImplementedError

    def set_active(self, key, healthy):
        """Record the result of an active health check."""
        raise NotImplementedError

    def clear(self):
        raise NotImplementedError


# key (u64), failures (u32), active_down (u32), ejected_until (f64), trial_until (f64)
SLOT = struct.Struct("<QIIdd")
SLOT_COUNT = 4096


class MmapHealthStore(HealthStore):
    """A fixed table of SLOT_COUNT slots in a memory-mapped file, with open addressing.

    Writers hold a thread lock and an flock on the file. Readers take no lock,
    because a torn read only delays a decision by one request.
    """

    def __init__(self, path):
        self.path = Path(path)
        # Reentrant, because update() and clear() open the file while holding it.
        self.lock = threading.RLock()
        self._mmap = None
        self._fd = None

    def open(self):
        if self._mmap is not None:
            return self._mmap
        with self.lock:
            if self._mmap is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                size = SLOT.size * SLOT_COUNT
                if os.fstat(fd).st_size < size:
                    os.ftruncate(fd, size)
                self._fd = fd
                self._mmap = mmap.mmap(fd, size)
        return self._mmap

    def find(self, key, create=False):
        """Return the offset of ``key``'s slot, or None when it has none and ``create`` is false."""
        memory = self.open()
        start = key % SLOT_COUNT
        for step in range(SLOT_COUNT):
            offset = ((start + step) % SLOT_COUNT) * SLOT.size
            stored = struct.unpack_from("<Q", memory, offset)[0]
            if stored == key:
                return offset
            if stored == 0:
                if not create:
                    return None
                SLOT.pack_into(memory, offset, key, 0, 0, 0.0, 0.0)
                return offset
        # NOTE: a full table stops tracking new targets; 4,096 targets per instance is the limit.
        return None

    def state(self, key):
        offset = self.find(key)
        if offset is None:
            return TargetState()
        _key, failures, active_down, ejected_until, trial_until = SLOT.unpack_from(self.open(), offset)
        return TargetState(failures, bool(active_down), ejected_until, trial_until)

    def update(self, key, change):
        """Apply ``change(TargetState) -> TargetState`` to a slot under the locks and return the result."""
        with self.lock:
            memory = self.open()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                offset = self.find(key, create=True)
                if offset is None:
                    return TargetState()
                _key, failures, active_down, ejected_until, trial_until = SLOT.unpack_from(memory, offset)
                new = change(TargetState(failures, bool(active_down), ejected_until, trial_until))
                SLOT.pack_into(
                    memory, offset, key, new.failures, int(new.active_down), new.ejected_until, new.trial_until
                )
                return new
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def record_success(self, key):
        current = self.state(key)
        # The hot path only writes when there is something to forget.
        if current.failures == 0 and current.ejected_until == 0.0:
            return
        self.update(key, lambda state: TargetState(0, state.active_down, 0.0, 0.0))

    def record_failure(self, key, threshold, ejection_seconds, now):
        ejected = []

        def change(state):
            failures = state.failures + 1
            if failures >= threshold:
                ejected.append(state.ejected_until == 0.0 or state.ejected_until <= now)
                return TargetState(failures, state.active_down, now + ejection_seconds, 0.0)
            return TargetState(failures, state.active_down, state.ejected_until, state.trial_until)

        self.update(key, change)
        return bool(ejected and ejected[0])

    def claim_trial(self, key, now, hold_seconds):
        claimed = []

        def change(state):
            if state.ejected_until != 0.0 and state.ejected_until <= now and state.trial_until <= now:
                claimed.append(True)
                return TargetState(state.failures, state.active_down, state.ejected_until, now + hold_seconds)
            return state

        self.update(key, change)
        return bool(claimed)

    def set_active(self, key, healthy):
        if self.state(key).active_down == (not healthy):
            return
        self.update(key, lambda state: TargetState(state.failures, not healthy, state.ejected_until, state.trial_until))

    def clear(self):
        with self.lock:
            memory = self.open()
            memory[:] = bytes(len(memory))


_store = None
_store_lock = threading.Lock()


def get_store():
    """Return the instance's health store, opening it on first use."""
    global _store
    if _store is None:
        with _store_lock:
            if _store is None:
                _store = MmapHealthStore(Path(settings.VAR_DIR) / "run" / "upstream-health")
    return _store


def target_status(upstream_name, url, now=None):
    """Return the health of one target in this instance's table: healthy, ejected, half-open or down."""
    state = get_store().state(target_key(upstream_name, url))
    return state.status(time.time() if now is None else now)


def retry_after_seconds(states, now):
    """Return the whole seconds until the first ejected target may be tried again, at least 1."""
    waits = [state.ejected_until - now for state in states if not state.active_down and state.ejected_until > now]
    return max(1, math.ceil(min(waits))) if waits else 5


class HealthChecker:
    """Probe the targets of upstreams that have a health check path, once per instance.

    Every worker runs this loop, but only the one holding an exclusive flock on
    the checker's lock file probes. The others retry the lock, so another worker
    takes over when the holder exits.
    """

    def __init__(self, lock_path, table_source, clock=time.monotonic, poll_seconds=0.5):
        self.lock_path = Path(lock_path)
        self.table_source = table_source
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.next_probe = {}
        self.session = requests.Session()
        self.session.trust_env = False
        self.lock_fd = None

    def acquire(self):
        """Return whether this process holds the checker lock, taking it if it is free."""
        if self.lock_fd is not None:
            return True
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.lock_fd = fd
        logger.info("health_checker_started pid=%s", os.getpid())
        return True

    def run_forever(self):
        while True:
            try:
                if self.acquire():
                    self.probe_due()
                    time.sleep(self.poll_seconds)
                else:
                    time.sleep(5)
            except Exception:  # noqa: BLE001 - the checker must outlive any one failure
                logger.exception("health_check_loop_failed")
                time.sleep(self.poll_seconds)

    def probe_due(self):
        """Probe every target whose interval has passed and record the results."""
        table = self.table_source()
        if table is None:
            return
        now = self.clock()
        upstreams = {route.upstream.name: route.upstream for route in table.routes}
        for upstream in upstreams.values():
            if not upstream.health_check_path:
                continue
            for url, _weight in upstream.targets:
                key = (upstream.name, url)
                if self.next_probe.get(key, 0) > now:
                    continue
                self.next_probe[key] = now + upstream.health_check_interval_seconds
                self.probe(upstream, url)

    def probe(self, upstream, url):
        """Send one health check request and store whether the target returned 2xx or 3xx."""
        path = upstream.health_check_path if upstream.health_check_path.startswith("/") else "/" + upstream.health_check_path
        try:
            response = self.session.get(
                url + path, timeout=upstream.health_check_timeout_seconds, allow_redirects=False
            )
            response.close()
            healthy = 200 <= response.status_code < 400
            detail = response.status_code
        except requests.RequestException as exc:
            healthy = False
            detail = exc.__class__.__name__
        key = target_key(upstream.name, url)
        was_down = get_store().state(key).active_down
        get_store().set_active(key, healthy)
        if was_down == healthy:
            level = logging.INFO if healthy else logging.WARNING
            logger.log(
                level, "health_check_changed upstream=%s target=%s healthy=%s result=%s",
                upstream.name, url, healthy, detail,
            )


_checker_started = False
_checker_lock = threading.Lock()


def ensure_health_checker():
    """Start this worker's health checker thread once; only the lock holder among the workers probes."""
    global _checker_started
    if _checker_started:
        return
    with _checker_lock:
        if _checker_started:
            return
        from routing.matching import route_tables

        # The checker reads the table that requests built and never queries the database itself.
        checker = HealthChecker(Path(settings.VAR_DIR) / "run" / "health-checker.lock", lambda: route_tables.table)
        threading.Thread(target=checker.run_forever, name="jwtgate-health-checker", daemon=True).start()
        _checker_started = True
