"""Load runs with wrk, and single requests that check a subject's response before it is measured."""

import http.client
import json
import os
import shlex
import subprocess
from dataclasses import dataclass

from harness.common import BENCH_DIR, HOST

WRK_SCRIPT = BENCH_DIR / "wrk" / "report.lua"
RESULT_MARKER = "BENCH_RESULT "
# wrk stops itself after its duration; this margin bounds a wrk that hangs.
WRK_GRACE_SECONDS = 30


@dataclass(frozen=True)
class Request:
    """The request of a load case: method, path, an optional Bearer token and a body size."""

    method: str
    path: str
    token: str | None = None
    body_bytes: int = 0

    def headers(self):
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def wrk_command(url, request, seconds, connections, threads):
    """Return the argv and extra environment of one wrk run."""
    argv = [
        "wrk",
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={seconds}s",
        "--timeout=10s",
        f"--script={WRK_SCRIPT}",
    ]
    for name, value in request.headers().items():
        argv += ["--header", f"{name}: {value}"]
    argv.append(url + request.path)
    env = {"BENCH_BODY_BYTES": str(request.body_bytes)} if request.body_bytes else {}
    return argv, env


def printable_command(argv, env):
    """Return the wrk command as a shell line, with the token shortened to a placeholder."""
    quoted = []
    for part in argv:
        if part.startswith("Authorization: Bearer "):
            part = "Authorization: Bearer $TOKEN"
        quoted.append(shlex.quote(part))
    prefix = "".join(f"{name}={value} " for name, value in env.items())
    return prefix + " ".join(quoted)


def run_wrk(url, request, seconds, connections, threads):
    """Run wrk once and return its result dict, or raise RuntimeError with its output."""
    argv, extra_env = wrk_command(url, request, seconds, connections, threads)
    completed = subprocess.run(
        argv,
        env={**os.environ, **extra_env},
        capture_output=True,
        text=True,
        timeout=seconds + WRK_GRACE_SECONDS,
    )
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    raise RuntimeError(
        f"wrk printed no result line (exit status {completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
    )


def send_once(port, request):
    """Send ``request`` once to 127.0.0.1:port and return (status, body length)."""
    body = b"x" * request.body_bytes if request.body_bytes else None
    connection = http.client.HTTPConnection(HOST, port, timeout=15)
    try:
        headers = request.headers()
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        connection.request(request.method, request.path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, len(response.read())
    finally:
        connection.close()
