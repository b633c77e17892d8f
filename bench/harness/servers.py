"""The subjects' server processes: configuration, start, readiness, worker ids and stop."""

import http.client
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from harness.common import (
    BENCH_DIR,
    GATEWAY_INSTANCES,
    GEVENT_VENV,
    HOST,
    PEER_VENV,
    PROJECT_GUNICORN,
    REPO_DIR,
    say,
)
from harness.prepare import gateway_env

CONF_DIR = BENCH_DIR / "conf"
GATEWAY_GUNICORN_CONF = REPO_DIR / "gatewaysite" / "gunicorn.conf.py"
# Used for the Python subjects, and for jwtgate when it ships no gunicorn config.
GUNICORN_WORKERS = 2
GUNICORN_THREADS = 8
BIG_BODY_BYTES = 64 * 1024
STOP_TIMEOUT_SECONDS = 15
PLACEHOLDER_RE = re.compile(r"@@[A-Z0-9_]+@@")


def render(template_name, target, values):
    """Write ``target`` from a template in bench/conf with each @@NAME@@ replaced by ``values[NAME]``."""
    text = (CONF_DIR / template_name).read_text()
    for name, value in values.items():
        text = text.replace(f"@@{name}@@", str(value))
    leftover = PLACEHOLDER_RE.search(text)
    if leftover:
        raise ValueError(f"{template_name}: the placeholder {leftover.group()} has no value.")
    target.write_text(text)
    return target


def child_pids(pid):
    """Return the ids of the processes whose parent is ``pid``."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in brackets may contain spaces; the parent id follows it.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return sorted(children)


def resident_kib(pid):
    """Return VmRSS of a process in KiB, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line.")


class Server:
    """One server process group that the harness starts, checks and stops."""

    def __init__(self, name, argv, log_path, env=None, cwd=None, ready_path="/", description=""):
        self.name = name
        self.argv = [str(part) for part in argv]
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.ready_path = ready_path
        self.description = description
        self.process = None
        self.pid_file = None

    @property
    def pid(self):
        return self.process.pid

    def start(self, pid_registry):
        """Start the process in its own session, and record its process group id for run.sh's exit trap.

        ``pid_registry`` is a folder with one file per running server; stop() removes the file.
        """
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        pid_registry.mkdir(exist_ok=True)
        self.pid_file = pid_registry / self.name
        self.pid_file.write_text(f"{self.process.pid}\n")

    def wait_ready(self, port, timeout_seconds=60):
        """Wait until the server responds to an HTTP request on ``port``, or raise RuntimeError."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.process.returncode}; see {self.log_path}.")
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            try:
                connection.request("GET", self.ready_path)
                connection.getresponse().read()
                return
            except OSError:
                time.sleep(0.2)
            finally:
                connection.close()
        raise RuntimeError(f"{self.name} did not respond on {HOST}:{port} within {timeout_seconds} s; see {self.log_path}.")

    def worker_pids(self):
        return child_pids(self.process.pid)

    def stop(self):
        """Send SIGTERM to the process group, then SIGKILL if it is still running after the stop timeout."""
        if self.process is None:
            return
        if self.process.poll() is not None:
            self.pid_file.unlink(missing_ok=True)
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop within {STOP_TIMEOUT_SECONDS} s; sending SIGKILL")
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        # Stopped: run.sh must not signal this process group id, which the system may reuse.
        self.pid_file.unlink(missing_ok=True)


def write_big_body(path):
    """Write a JSON document of exactly BIG_BODY_BYTES bytes."""
    head, tail = b'{"padding":"', b'"}\n'
    path.write_bytes(head + b"x" * (BIG_BODY_BYTES - len(head) - len(tail)) + tail)
    path.chmod(0o644)


NGINX_DESCRIPTIONS = {
    "upstream": "nginx as the upstream of every subject, {workers} worker processes",
    "proxy": "nginx as a plain reverse proxy with keep-alive upstream connections, {workers} worker processes",
}


def nginx_server(state, name, role, workers):
    """Return the nginx Server ``name`` from bench/conf/nginx-ROLE.conf.in; ``role`` is "upstream" or "proxy"."""
    prefix = state.path / f"nginx-{role}"
    prefix.mkdir(exist_ok=True)
    # nginx workers run as an unprivileged user when the master runs as root:
    # they need to traverse the run folder and read the 64 KiB body.
    prefix.chmod(0o755)
    state.path.chmod(0o711)
    www = state.path / "www"
    www.mkdir(exist_ok=True)
    www.chmod(0o755)
    write_big_body(www / "big.json")
    config = render(
        f"nginx-{role}.conf.in",
        state.path / f"nginx-{role}.conf",
        {
            "WORKERS": workers,
            "RUN_DIR": state.path,
            "HOST": HOST,
            "PORT": state.ports[name],
            "UPSTREAM_PORT": state.ports["upstream"],
        },
    )
    error_log = state.path / "logs" / f"nginx-{role}.error.log"
    return Server(
        name,
        ["nginx", "-c", config, "-p", f"{prefix}/", "-e", error_log],
        state.path / "logs" / f"{name}.log",
        description=NGINX_DESCRIPTIONS[role].format(workers=workers),
    )


def haproxy_server(state, threads):
    config = render(
        "haproxy.cfg.in",
        state.path / "haproxy.cfg",
        {
            "THREADS": threads,
            "HOST": HOST,
            "PORT": state.ports["haproxy"],
            "UPSTREAM_PORT": state.ports["upstream"],
            "HS256_SECRET": state.hs256_secret,
        },
    )
    config.chmod(0o600)
    return Server(
        "haproxy",
        ["haproxy", "-db", "-f", config],
        state.path / "logs" / "haproxy.log",
        ready_path="/public/small",
        description=f"HAProxy, {threads} threads, jwt_verify HS256 and a role check",
    )


def peer_server(state):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PEER_SECRET_KEY": state.hs256_secret + "-peer",
        "PEER_SIGNING_KEY": state.hs256_secret,
        "PEER_UPSTREAM_URL": state.url("upstream"),
        "PEER_UPSTREAM_POOL_SIZE": str(GUNICORN_THREADS),
        "DJANGO_SETTINGS_MODULE": "peersite.settings",
    }
    return Server(
        "peer",
        [
            PEER_VENV / "bin" / "gunicorn",
            "--chdir", BENCH_DIR / "peer",
            "--bind", f"{HOST}:{state.ports['peer']}",
            "--worker-class", "gthread",
            "--workers", GUNICORN_WORKERS,
            "--threads", GUNICORN_THREADS,
            "--keep-alive", "5",
            "peersite.wsgi",
        ],
        state.path / "logs" / "peer.log",
        env=env,
        ready_path="/public/small",
        description=f"django-revproxy + simplejwt, gunicorn gthread {GUNICORN_WORKERS} workers x {GUNICORN_THREADS} threads",
    )


def floor_server(state, name, worker_class):
    """Return bench/floor/floorapp.py under gunicorn with jwtgate's gunicorn settings and ``worker_class``.

    The gthread floor runs in the environment of the jwtgate servers, the gevent floor in its own.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "JWTGATE_BIND": f"{HOST}:{state.ports[name]}",
        "FLOOR_UPSTREAM_URL": state.url("upstream"),
    }
    gunicorn = PROJECT_GUNICORN if worker_class == "gthread" else GEVENT_VENV / "bin" / "gunicorn"
    return Server(
        name,
        [
            gunicorn, "-c", GATEWAY_GUNICORN_CONF, "--worker-class", worker_class,
            "--chdir", BENCH_DIR / "floor", "floorapp:application",
        ],
        state.path / "logs" / f"{name}.log",
        env=env,
        cwd=REPO_DIR,
        ready_path="/public/small",
        description=f"bench/floor/floorapp.py: http.client forwarding without any check, gunicorn {worker_class} "
        "worker with the workers (and threads) of gatewaysite/gunicorn.conf.py",
    )


def gateway_server(state, instance):
    """Return the jwtgate Server ``instance`` under gunicorn with production settings."""
    if GATEWAY_GUNICORN_CONF.exists():
        options = ["-c", GATEWAY_GUNICORN_CONF]
        workers = "gatewaysite/gunicorn.conf.py"
    else:
        options = [
            "--bind", f"{HOST}:{state.ports[instance]}",
            "--worker-class", "gthread",
            "--workers", GUNICORN_WORKERS,
            "--threads", GUNICORN_THREADS,
        ]
        workers = f"gthread {GUNICORN_WORKERS} workers x {GUNICORN_THREADS} threads"
    spec = GATEWAY_INSTANCES[instance]
    return Server(
        instance,
        [PROJECT_GUNICORN, *options, "--chdir", REPO_DIR, "gatewaysite.wsgi"],
        state.path / "logs" / f"{instance}.log",
        env=gateway_env(state, instance),
        cwd=REPO_DIR,
        ready_path="/healthz",
        description=f"jwtgate, {spec['routes']:,} routes, {spec['algorithm']}, gunicorn with {workers}",
    )
