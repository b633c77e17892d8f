"""A gateway process under gunicorn that shares the test database, and a raw HTTP/1.1 client."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class GunicornGateway:
    """``gunicorn gatewaysite.wsgi`` on an ephemeral port of 127.0.0.1, with the test process's keys."""

    def __init__(self, directory, workers=2, threads=4, env=None):
        self.directory = Path(directory)
        self.workers = workers
        self.threads = threads
        self.env = env or {}
        self.port = free_port()
        self.log_path = self.directory / f"gunicorn-{self.port}.log"
        self.process = None
        self.log = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_seconds=20):
        database = settings.DATABASES["default"]
        if database["ENGINE"] != "django.db.backends.sqlite3":
            pytest.skip("the gunicorn fixture shares the SQLite test database only")
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{database['NAME']}",
            "JWTGATE_SECRET_KEY": settings.SECRET_KEY,
            "JWTGATE_SIGNING_KEY": settings.SIMPLE_JWT["SIGNING_KEY"],
            "JWTGATE_CONFIG_CHECK_INTERVAL_SECONDS": "0.2",
            "JWTGATE_VAR_DIR": str(self.directory),
            **self.env,
        }
        self.log = open(self.log_path, "wb")
        command = [
            sys.executable, "-m", "gunicorn", "-c", str(BASE_DIR / "gatewaysite" / "gunicorn.conf.py"),
            "gatewaysite.wsgi:application", "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
            "--graceful-timeout", "2", "--timeout", "30",
        ]
        # Without threads, the count comes from gatewaysite/gunicorn.conf.py, as in production.
        if self.threads is not None:
            command += ["--threads", str(self.threads)]
        self.process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_for_port(timeout_seconds)
        return self

    def wait_for_port(self, timeout_seconds):
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with status {self.process.returncode}: {self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"gunicorn did not listen on port {self.port} within {timeout_seconds} s")

    def logs(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self):
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def raw_request(base_url, request_line, headers=(), body=b"", host_header=True):
    """Send a hand-written HTTP/1.1 request and return (status, head text, body bytes)."""
    host, port = base_url.split("//")[1].split(":")
    lines = [request_line]
    if host_header:
        lines.append(f"Host: {host}:{port}")
    lines += ["Connection: close", *headers]
    payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        try:
            connection.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while chunk := connection.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    head, _, response_body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode("latin-1"), response_body
