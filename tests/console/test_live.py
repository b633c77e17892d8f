"""A change saved in the console reaches every worker of every gateway instance on the database within 2 seconds.

Two gunicorn processes with 2 workers each share the SQLite test database and
check the configuration version every second, the default. The test edits a
route through the console's HTML form over HTTP, as a browser would, and
identifies the worker behind each response from /proc (Linux only).
"""

import threading
import time

import pytest
import requests

from routing.models import Route
from tests.console.helpers import console_session, csrf_token, get_with_worker, route_form, worker_pids
from tests.gunicorn import GunicornGateway
from tests.upstream import RecordingUpstream

pytestmark = [pytest.mark.gunicorn, pytest.mark.django_db(transaction=True)]

WORKERS_PER_INSTANCE = 2
PROPAGATION_LIMIT_SECONDS = 2.0
# Probing stops after this many seconds even when a worker was never reached.
PROBE_DEADLINE_SECONDS = 15.0
PATH = "/api/orders/1"


@pytest.fixture
def colored_upstreams():
    """Two upstreams that answer every request with their own name: blue and green."""
    servers = {}
    for color in ("blue", "green"):
        server = RecordingUpstream().start()
        server.respond("/", status=200, headers=[("Content-Type", "text/plain")], body=color.encode())
        servers[color] = server
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def instances(tmp_path):
    """Two gateway instances under gunicorn, with the default configuration check interval of 1 second."""
    started = []
    try:
        for index in range(2):
            directory = tmp_path / f"instance-{index}"
            directory.mkdir()
            gateway = GunicornGateway(
                directory, workers=WORKERS_PER_INSTANCE, env={"JWTGATE_CONFIG_CHECK_INTERVAL_SECONDS": "1"}
            )
            started.append(gateway.start())
        yield started
    finally:
        for gateway in started:
            gateway.stop()


def workers_of(gateway):
    """Return the worker pids of a started instance, waiting until all of its workers have started."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = worker_pids(gateway.process.pid)
        if len(pids) == WORKERS_PER_INSTANCE:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"gunicorn on port {gateway.port} did not start {WORKERS_PER_INSTANCE} workers")


def probe_until_every_worker(instances, pids, accept, deadline_seconds, since=None):
    """Send requests to the instances in turn until every worker has answered once with a body in ``accept``.

    ``pids`` maps each instance's port to its worker pids.
    Returns {pid: (seconds since ``since``, body)} of each worker's first accepted
    answer, and every (pid, body, seconds) probe answer on the way. ``since`` is a
    time.monotonic() value, by default the start of probing.
    """
    started = time.monotonic() if since is None else since
    worker_count = sum(len(instance_pids) for instance_pids in pids.values())
    first = {}
    answers = []
    while len(first) < worker_count and time.monotonic() - started < deadline_seconds:
        for gateway in instances:
            status, body, pid = get_with_worker(gateway.port, PATH, pids[gateway.port])
            elapsed = time.monotonic() - started
            assert status == 200, f"probe got {status}: {body[:200]!r}"
            answers.append((pid, body, elapsed))
            if pid is not None and body in accept and pid not in first:
                first[pid] = (elapsed, body)
    return first, answers


class ClientLoop(threading.Thread):
    """Requests sent without pause to both instances, half on kept-alive and half on new connections."""

    def __init__(self, base_urls, limit_seconds=60):
        super().__init__(daemon=True)
        self.base_urls = base_urls
        self.limit_seconds = limit_seconds
        self.stop_event = threading.Event()
        self.results = []  # (status or exception name, body)

    def run(self):
        deadline = time.monotonic() + self.limit_seconds
        with requests.Session() as kept_alive:
            kept_alive.trust_env = False
            index = 0
            while not self.stop_event.is_set() and time.monotonic() < deadline:
                url = self.base_urls[index % len(self.base_urls)] + PATH
                client = kept_alive if index % 2 == 0 else requests
                index += 1
                try:
                    response = client.get(url, timeout=10, headers={} if client is kept_alive else {"Connection": "close"})
                    self.results.append((response.status_code, response.content))
                except requests.RequestException as exc:
                    self.results.append((exc.__class__.__name__, b""))

    def stop(self):
        self.stop_event.set()
        self.join(timeout=15)


def test_console_change_reaches_every_worker(colored_upstreams, make_upstream, make_route, django_user_model,
                                             instances):
    blue = make_upstream(name="blue", urls=[colored_upstreams["blue"].url])
    green = make_upstream(name="green", urls=[colored_upstreams["green"].url])
    route = make_route(name="orders", paths="/api/orders\n/api/orders/**", upstream_row=blue, auth="public")
    django_user_model.objects.create_superuser("operator", "operator@example.com", "correct horse battery")
    pids = {gateway.port: workers_of(gateway) for gateway in instances}
    all_pids = {pid for worker_list in pids.values() for pid in worker_list}

    # Every worker serves the old route before the change.
    warmed, _ = probe_until_every_worker(instances, pids, {b"blue"}, PROBE_DEADLINE_SECONDS)
    assert set(warmed) == all_pids, f"workers never reached before the change: {all_pids - set(warmed)}"

    session = console_session(instances[0].url, "operator")
    change_url = f"{instances[0].url}/console/routing/route/{route.pk}/change/"
    form = route_form(green, paths="/api/orders\r\n/api/orders/**", auth="public")
    form["csrfmiddlewaretoken"] = csrf_token(session.get(change_url, timeout=10).text)

    loops = [ClientLoop([gateway.url for gateway in instances]) for _ in range(2)]
    for loop in loops:
        loop.start()
    try:
        time.sleep(0.3)  # the loop runs against the old configuration first
        changed_at = time.monotonic()
        response = session.post(change_url, data=form, allow_redirects=False, timeout=10)
        assert response.status_code == 302, f"the change form was rejected: {response.text[:2000]}"
        first_green, answers = probe_until_every_worker(
            instances, pids, {b"green"}, PROBE_DEADLINE_SECONDS, since=changed_at
        )
        time.sleep(0.3)  # and against the new one afterwards
    finally:
        for loop in loops:
            loop.stop()

    assert Route.objects.get(pk=route.pk).upstream == green
    assert set(first_green) == all_pids, f"workers that never served the change: {all_pids - set(first_green)}"
    # Counted from the moment the change form was posted.
    slowest = max(elapsed for elapsed, _body in first_green.values())
    assert slowest < PROPAGATION_LIMIT_SECONDS, f"the slowest worker served the change after {slowest:.2f} s"

    # A worker that served the new route never serves the old one again.
    for pid, (switched, _body) in first_green.items():
        stale = [elapsed for answer_pid, body, elapsed in answers if answer_pid == pid and elapsed > switched
                 and body != b"green"]
        assert stale == [], f"worker {pid} served the old route after the new one"

    results = [result for loop in loops for result in loop.results]
    assert len(results) >= 20, f"the client loops sent only {len(results)} requests"
    outcomes = set(results)
    assert outcomes <= {(200, b"blue"), (200, b"green")}, f"unexpected answers during the switch: {outcomes}"
    assert (200, b"blue") in outcomes
    assert (200, b"green") in outcomes
