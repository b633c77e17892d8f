"""The machine and the versions of every subject and tool, for the benchmark record."""

import os
import platform
import subprocess
from pathlib import Path

from harness.common import GEVENT_VENV, JWTGATE_VENV, PEER_VENV, TOOLS_VENV

PROJECT_PACKAGES = ("Django", "djangorestframework", "djangorestframework-simplejwt", "PyJWT", "cryptography",
                    "requests", "urllib3", "gunicorn")
PEER_PACKAGES = ("django-revproxy", "Django", "djangorestframework-simplejwt", "PyJWT", "urllib3", "gunicorn")
TOOLS_PACKAGES = ("pytest", "pytest-benchmark", "py-spy")
GEVENT_PACKAGES = ("gevent", "greenlet", "gunicorn")
DEBIAN_PACKAGES = ("nginx", "haproxy", "wrk")


def read_first(path, prefix):
    """Return the rest of the first line of ``path`` that starts with ``prefix``, or None."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip() if ":" in prefix else line[len(prefix):].strip()
    except OSError:
        return None
    return None


def machine_info():
    """Return the CPU model, core count, memory, kernel and OS of this machine."""
    mem_kib = read_first("/proc/meminfo", "MemTotal:")
    os_name = read_first("/etc/os-release", "PRETTY_NAME=")
    return {
        "nproc": os.cpu_count(),
        "cpu_model": read_first("/proc/cpuinfo", "model name\t:") or platform.processor() or "unknown",
        "memory": f"{int(mem_kib.split()[0]) / 1024 / 1024:.1f} GiB" if mem_kib else "unknown",
        "kernel": platform.release(),
        "os": os_name.strip('"') if os_name else "unknown",
    }


def load_average():
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def package_versions(python, names):
    """Return {name: version} of Python packages installed for the interpreter ``python``."""
    code = (
        "import importlib.metadata as m, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        print(name, m.version(name))\n"
        "    except m.PackageNotFoundError:\n"
        "        print(name, 'missing')\n"
    )
    output = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True, check=True).stdout
    versions = dict(line.split(" ", 1) for line in output.splitlines())
    versions["Python"] = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True
    ).stdout.strip()
    return versions


def debian_versions():
    """Return {package: Debian version} of the native subjects and wrk."""
    versions = {}
    for name in DEBIAN_PACKAGES:
        completed = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True)
        versions[name] = completed.stdout.strip() if completed.returncode == 0 else "not installed"
    return versions


def all_versions():
    return {
        "debian": debian_versions(),
        "jwtgate servers' environment (bench/.venv-jwtgate)": package_versions(JWTGATE_VENV / "bin" / "python",
                                                                              PROJECT_PACKAGES),
        "peer environment (bench/.venv-peer)": package_versions(PEER_VENV / "bin" / "python", PEER_PACKAGES),
        "tools environment (bench/.venv-tools)": package_versions(TOOLS_VENV / "bin" / "python", TOOLS_PACKAGES),
        "gevent floor environment (bench/.venv-gevent)": package_versions(GEVENT_VENV / "bin" / "python",
                                                                          GEVENT_PACKAGES),
    }
