"""Paths, the run state shared by the two harness steps, free ports and messages."""

import json
import socket
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
PROJECT_PYTHON = REPO_DIR / ".venv" / "bin" / "python"
# The servers run in bench/.venv-jwtgate, which contains jwtgate's runtime dependencies
# only. manage.py runs in .venv.
JWTGATE_VENV = BENCH_DIR / ".venv-jwtgate"
PROJECT_GUNICORN = JWTGATE_VENV / "bin" / "gunicorn"
PEER_VENV = BENCH_DIR / ".venv-peer"
TOOLS_VENV = BENCH_DIR / ".venv-tools"
GEVENT_VENV = BENCH_DIR / ".venv-gevent"
HOST = "127.0.0.1"

# The jwtgate instances: each has its own JWTGATE_VAR_DIR and SQLite database.
# "jwtgate" serves 10 routes with HS256 and is the one every case measures.
GATEWAY_INSTANCES = {
    "jwtgate": {"routes": 10, "algorithm": "HS256"},
    "jwtgate-rs256": {"routes": 10, "algorithm": "RS256"},
    "jwtgate-1k": {"routes": 1_000, "algorithm": "HS256"},
    "jwtgate-10k": {"routes": 10_000, "algorithm": "HS256"},
}
# Every process that listens on a port, in start order.
SERVER_NAMES = ("upstream", "nginx", "haproxy", "peer", "floor", "floor-gevent", *GATEWAY_INSTANCES)


def say(message):
    """Print one progress line of the harness."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass
class RunState:
    """The data that the prepare step leaves for the run step: ports, keys, credentials and timings."""

    run_dir: str
    ports: dict
    hs256_secret: str
    rsa_private_pem: str
    rsa_public_pem: str
    username: str
    password: str
    prepare_seconds: dict = field(default_factory=dict)

    @property
    def path(self):
        return Path(self.run_dir)

    def save(self):
        target = self.path / "state.json"
        target.write_text(json.dumps(asdict(self), indent=2))
        target.chmod(0o600)

    @classmethod
    def load(cls, run_dir):
        return cls(**json.loads((Path(run_dir) / "state.json").read_text()))

    def var_dir(self, instance):
        """Return the JWTGATE_VAR_DIR of a jwtgate instance."""
        return self.path / "var" / instance

    def url(self, server, path=""):
        return f"http://{HOST}:{self.ports[server]}{path}"


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR as well, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def pick_ports(names, first_port):
    """Return {name: port} with the first free ports on 127.0.0.1 from ``first_port`` upwards."""
    ports = {}
    port = first_port
    for name in names:
        while not port_is_free(port):
            port += 1
            if port > 65535:
                raise RuntimeError(f"No free port on {HOST} between {first_port} and 65535.")
        ports[name] = port
        port += 1
    return ports
