"""Streaming through a real gunicorn gateway: 1 GiB each way in bounded memory, events, disconnects, 100-continue."""

import hashlib
import socket
import time
from pathlib import Path

import pytest
import requests

from routing.models import Route, Target, Upstream

pytestmark = pytest.mark.gunicorn

GIB = 1024 * 1024 * 1024
BLOCK = bytes(range(256)) * 256  # 64 KiB, the pattern FaultyUpstream's download mode sends


@pytest.fixture
def stream_route(transactional_db):
    """Return a function that stores a public route /stream/** to one target, taking bodies up to 2 GiB."""

    def make(url):
        upstream_row = Upstream.objects.create(name="stream", read_timeout_seconds=30)
        Target.objects.create(upstream=upstream_row, url=url)
        return Route.objects.create(name="stream", paths="/stream/**", upstream=upstream_row, auth="public",
                                    max_body_bytes=2 * GIB)

    return make


def worker_pids(gateway_url):
    """Return the pids of the gunicorn workers listening behind ``gateway_url``."""
    port = gateway_url.rsplit(":", 1)[1]
    pids = []
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = status.read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"gunicorn" in command and f"127.0.0.1:{port}".encode() in command:
            pids.append(int(status.parent.name))
    # The master is the parent of the others.
    parents = set()
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                parents.add(int(line.split()[1]))
    return [pid for pid in pids if pid not in parents or len(pids) == 1]


def peak_rss_bytes(pid):
    """Return the peak resident set size (VmHWM) of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


def warm_up(url):
    """Send a few requests so that the worker's imports and route table are in memory before measuring."""
    for _ in range(3):
        requests.post(f"{url}/stream/warm", data=b"x" * 1024 * 1024, timeout=30).close()


def upload_chunks(total):
    sent = 0
    while sent < total:
        piece = BLOCK[: min(len(BLOCK), total - sent)]
        sent += len(piece)
        yield piece


class SizedUpload:
    """A generated body with a known length, so that requests sends Content-Length instead of chunks."""

    def __init__(self, total):
        self.total = total

    def __len__(self):
        return self.total

    def __iter__(self):
        return upload_chunks(self.total)


def test_streaming_upload_one_gib(gunicorn_gateway, faulty, stream_route):
    upstream = faulty("hash", "hash")
    stream_route(upstream.url)
    url = gunicorn_gateway(workers=1, threads=4)
    warm_up(url)
    worker = worker_pids(url)[0]
    before = peak_rss_bytes(worker)

    expected = hashlib.sha256()
    for piece in upload_chunks(GIB):
        expected.update(piece)
    response = requests.post(f"{url}/stream/upload", data=SizedUpload(GIB), timeout=300)

    assert response.status_code == 200
    assert response.text == f"{expected.hexdigest()} {GIB}"
    assert peak_rss_bytes(worker) - before < 50 * 1024 * 1024


def test_streaming_chunked_upload_exact(gunicorn_gateway, faulty, stream_route):
    upstream = faulty("hash", "hash")
    stream_route(upstream.url)
    url = gunicorn_gateway(workers=1, threads=4)
    payload = b"".join(upload_chunks(3 * 1024 * 1024 + 17))
    response = requests.post(f"{url}/stream/chunked", data=iter([payload[:1000], payload[1000:]]), timeout=60)
    assert response.text == f"{hashlib.sha256(payload).hexdigest()} {len(payload)}"


def test_streaming_download_one_gib(gunicorn_gateway, faulty, stream_route):
    upstream = faulty("big", f"download:{GIB}")
    stream_route(upstream.url)
    url = gunicorn_gateway(workers=1, threads=4)
    warm_up(url)
    worker = worker_pids(url)[0]
    before = peak_rss_bytes(worker)

    received = 0
    digest = hashlib.sha256()
    with requests.get(f"{url}/stream/download", stream=True, timeout=300) as response:
        for chunk in response.iter_content(1024 * 1024):
            received += len(chunk)
            digest.update(chunk)
    expected = hashlib.sha256()
    for piece in upload_chunks(GIB):
        expected.update(piece)

    assert received == GIB
    assert digest.hexdigest() == expected.hexdigest()
    assert peak_rss_bytes(worker) - before < 50 * 1024 * 1024


def test_streaming_events_arrive_one_by_one(gunicorn_gateway, faulty, stream_route):
    upstream = faulty("events", "sse:4:0.5")
    stream_route(upstream.url)
    url = gunicorn_gateway(workers=1, threads=4)
    started = time.monotonic()
    arrivals = []
    with requests.get(f"{url}/stream/events", stream=True, timeout=30) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        for line in response.iter_lines():
            if line.startswith(b"data:"):
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 4
    # The first event arrives long before the upstream finishes (4 events, 0.5 s apart).
    assert arrivals[0] < 1.0
    assert arrivals[-1] - arrivals[0] > 1.0


def test_streaming_disconnect_releases_upstream(gunicorn_gateway, faulty, stream_route):
    upstream = faulty("endless", f"download:{50 * GIB}")
    stream_route(upstream.url)
    url = gunicorn_gateway(workers=1, threads=4)
    response = requests.get(f"{url}/stream/endless", stream=True, timeout=30)
    next(response.iter_content(1024 * 1024))
    response.close()
    assert upstream.closed_early.wait(timeout=10)


def test_streaming_expect_continue(gunicorn_gateway, faulty, stream_route):
    upstream = faulty("hash", "hash")
    stream_route(upstream.url)
    url = gunicorn_gateway(workers=1, threads=4)
    port = int(url.rsplit(":", 1)[1])
    body = b"hello continue"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(
            f"POST /stream/expect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\nConnection: close\r\n\r\n".encode()
        )
        interim = connection.recv(1024)
        connection.sendall(body)
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(f"{hashlib.sha256(body).hexdigest()} {len(body)}".encode())


def test_slow_route_does_not_starve_others(gunicorn_gateway, faulty, transactional_db):
    slow, fast = faulty("slow", "slow:6"), faulty("fast")
    for name, server in (("slow", slow), ("fast", fast)):
        upstream_row = Upstream.objects.create(name=name, read_timeout_seconds=30)
        Target.objects.create(upstream=upstream_row, url=server.url)
        Route.objects.create(name=name, paths=f"/{name}/**", upstream=upstream_row, auth="public")
    # The production thread count from gatewaysite/gunicorn.conf.py, with its two workers.
    url = gunicorn_gateway(workers=2, threads=None)
    requests.get(f"{url}/fast/warm", timeout=10)

    import threading

    hanging = [threading.Thread(target=requests.get, args=(f"{url}/slow/x",), kwargs={"timeout": 30})
               for _ in range(20)]
    for thread in hanging:
        thread.start()
    time.sleep(0.5)
    durations = []
    for _ in range(10):
        started = time.monotonic()
        assert requests.get(f"{url}/fast/x", timeout=10).status_code == 200
        durations.append(time.monotonic() - started)
    hanging_count = len(slow.requests)
    for thread in hanging:
        thread.join()

    assert hanging_count == 20
    assert max(durations) < 1.0


def test_reset_mid_body_truncates_response(gunicorn_gateway, faulty, stream_route):
    upstream = faulty("cut", "reset-mid-body")
    stream_route(upstream.url)
    url = gunicorn_gateway(workers=1, threads=4)
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(f"{url}/stream/cut", timeout=10).content


def test_ejection_shared_by_workers(gunicorn_gateway, faulty, transactional_db):
    failing, alive = faulty("failing", "reset"), faulty("alive")
    upstream_row = Upstream.objects.create(name="pair", failure_threshold=2, ejection_seconds=60)
    for server in (failing, alive):
        Target.objects.create(upstream=upstream_row, url=server.url)
    Route.objects.create(name="pair", paths="/pair/**", upstream=upstream_row, auth="public")
    url = gunicorn_gateway(workers=2, threads=4)
    statuses = []
    # A new connection per request spreads the requests over both workers.
    for _ in range(16):
        statuses.append(requests.get(f"{url}/pair/x", headers={"Connection": "close"}, timeout=10).status_code)
    assert statuses == [200] * 16
    # Two failures eject the target for every worker, not two per worker.
    assert len(failing.requests) == 2
