"""Forwarding with retries: pick a healthy target, send, record the target's health, retry when safe."""

import logging
import random
import time

from routing import balancing, client, health
from routing.conf import gateway_settings
from routing.decision import target_base_path
from routing.exceptions import GatewayError, NoHealthyTarget, UpstreamTimeout, UpstreamUnavailable

logger = logging.getLogger(__name__)

# RFC 9110 section 9.2.2. POST and PATCH are retried only when a route opts in.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class BufferedBody:
    """A small request body read into memory before the first attempt, so that a retry can send it again."""

    def __init__(self, data):
        self.data = data
        self.started = False

    def __len__(self):
        return len(self.data)

    def __iter__(self):
        self.started = True
        yield self.data

    @property
    def replayable(self):
        return True


def buffer_if_small(body):
    """Return ``body`` as a BufferedBody when its length is known and at most RETRY_BUFFER_BYTES."""
    if body is None or not hasattr(body, "__len__"):
        return body
    if len(body) > gateway_settings.RETRY_BUFFER_BYTES:
        return body
    return BufferedBody(b"".join(body))


def can_replay(body):
    """Return whether a retry can send ``body`` again: none, buffered, or not yet read at all."""
    if body is None:
        return True
    return getattr(body, "replayable", False) or not getattr(body, "started", True)


def backoff_seconds(attempt):
    """Return the pause before retry number ``attempt`` (1-based): RETRY_BACKOFF_SECONDS doubled each time, with jitter."""
    base = gateway_settings.RETRY_BACKOFF_SECONDS * (2 ** (attempt - 1))
    return base * (0.5 + random.random() / 2)


def forward(route, method, forwarded_path, query, headers, body, log):
    """Send the request to a target and return (target URL, streamed response, callback for its end).

    The caller runs the callback once the response body is closed, so that the
    balancer counts the request as finished.
    Retries go to another target when one is healthy. A retry happens only for an
    idempotent method (or a route that opts in), while attempts remain, and when
    the request body can be sent again. Raise the GatewayError of the last attempt.
    """
    upstream = route.upstream
    balancer = balancing.get_balancer(upstream)
    timeout = client.timeouts(upstream, route)
    retry_allowed = method in IDEMPOTENT_METHODS or route.retry_non_idempotent
    attempts = 1 + upstream.retries if retry_allowed else 1
    if attempts > 1:
        body = buffer_if_small(body)
    store = health.get_store()
    tried = []

    last_error = None
    for attempt in range(1, attempts + 1):
        try:
            target, _trial = balancer.choose(exclude=tried, hold_seconds=sum(timeout))
        except NoHealthyTarget:
            # A retry that finds every target ejected reports the failure it retried.
            if last_error is not None:
                raise last_error from None
            raise
        tried.append(target)
        log["target"] = target
        log["attempts"] = attempt
        key = balancer.keys[target]
        balancer.started(target)
        try:
            response = client.send(
                upstream, method, target, target_base_path(target) + forwarded_path + query, headers, body,
                timeout=timeout,
            )
        except (UpstreamTimeout, UpstreamUnavailable) as exc:
            balancer.finished(target)
            record_failure(store, upstream, key, target, exc.log_error)
            if attempt < attempts and exc.status_code in upstream.retry_on_statuses and can_replay(body):
                log_retry(log, target, exc.log_error, attempt)
                last_error = exc
                time.sleep(backoff_seconds(attempt))
                continue
            raise

        if response.status in upstream.failure_statuses:
            record_failure(store, upstream, key, target, f"status_{response.status}")
        else:
            store.record_success(key)
        if attempt < attempts and response.status in upstream.retry_on_statuses and can_replay(body):
            response.close()
            response.release_conn()
            balancer.finished(target)
            log_retry(log, target, f"status_{response.status}", attempt)
            time.sleep(backoff_seconds(attempt))
            continue
        return target, response, lambda: balancer.finished(target)

    # The last attempt returns or raises, so the loop never ends here.
    raise GatewayError("The gateway ran out of attempts.")


def record_failure(store, upstream, key, target, reason):
    """Count a failure of ``target`` and log its ejection once, when it happens."""
    if store.record_failure(key, upstream.failure_threshold, upstream.ejection_seconds, time.time()):
        logger.warning(
            "target_ejected upstream=%s target=%s reason=%s ejection_seconds=%s",
            upstream.name, target, reason, upstream.ejection_seconds,
        )


def log_retry(log, target, reason, attempt):
    logger.info(
        "upstream_retry request_id=%s route=%s target=%s reason=%s attempt=%s",
        log.get("request_id", "-"), log.get("route", "-"), target, reason, attempt,
    )
