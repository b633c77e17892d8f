"""Target selection: weighted round robin or least outstanding requests, over healthy targets only."""

import threading
import time

from routing import health
from routing.exceptions import NoHealthyTarget


class Balancer:
    """Choose targets of one upstream in one worker; health state comes from the shared store."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.urls = [url for url, _weight in upstream.targets]
        self.weights = {url: weight for url, weight in upstream.targets}
        self.keys = {url: health.target_key(upstream.name, url) for url in self.urls}
        self.current = {url: 0 for url in self.urls}
        self.outstanding = {url: 0 for url in self.urls}
        self.lock = threading.Lock()

    def choose(self, exclude=(), hold_seconds=30.0, now=None):
        """Return (target URL, whether it is a half-open trial), or raise NoHealthyTarget (503).

        A half-open target whose trial slot is free gets the request, so that an
        ejected target returns as soon as it works again. Targets in ``exclude``
        (already tried for this request) are used only when no other is healthy.
        """
        if not self.urls:
            raise NoHealthyTarget(f"Upstream {self.upstream.name!r} has no targets configured.")
        store = health.get_store()
        now = time.time() if now is None else now
        states = {url: store.state(self.keys[url]) for url in self.urls}
        statuses = {url: state.status(now) for url, state in states.items()}

        for url in self.urls:
            if url not in exclude and statuses[url] == "half-open" and store.claim_trial(self.keys[url], now, hold_seconds):
                return url, True

        healthy = [url for url in self.urls if statuses[url] == "healthy"]
        candidates = [url for url in healthy if url not in exclude] or healthy
        if not candidates:
            raise NoHealthyTarget(
                "Every target of this route's upstream is failing; try again later.",
                retry_after=health.retry_after_seconds(states.values(), now),
            )
        if self.upstream.balancing == "least_outstanding":
            return self.least_outstanding(candidates), False
        return self.round_robin(candidates), False

    def round_robin(self, candidates):
        """Return the next target by smooth weighted round robin among ``candidates``."""
        with self.lock:
            total = 0
            best = None
            for url in candidates:
                self.current[url] += self.weights[url]
                total += self.weights[url]
                if best is None or self.current[url] > self.current[best]:
                    best = url
            self.current[best] -= total
            return best

    def least_outstanding(self, candidates):
        """Return the target with the fewest requests in flight per unit of weight, round robin on ties."""
        with self.lock:
            lowest = min(self.outstanding[url] / self.weights[url] for url in candidates)
        tied = [url for url in candidates if self.outstanding[url] / self.weights[url] == lowest]
        return tied[0] if len(tied) == 1 else self.round_robin(tied)

    def started(self, url):
        with self.lock:
            self.outstanding[url] += 1

    def finished(self, url):
        with self.lock:
            self.outstanding[url] -= 1


_balancers = {}
_lock = threading.Lock()


def get_balancer(upstream):
    """Return this worker's balancer for an upstream, new when its targets or settings changed."""
    balancer = _balancers.get(upstream.name)
    if balancer is None or balancer.upstream != upstream:
        with _lock:
            balancer = _balancers.get(upstream.name)
            if balancer is None or balancer.upstream != upstream:
                balancer = Balancer(upstream)
                _balancers[upstream.name] = balancer
    return balancer


def clear():
    with _lock:
        _balancers.clear()
