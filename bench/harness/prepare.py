"""The prepare step: ports, throwaway keys, and one SQLite database per jwtgate instance.

It needs only jwtgate's own virtual environment, so run.sh starts it in the
background while it installs the other subjects and tools.
"""

import os
import secrets
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness import routeset
from harness.common import (
    GATEWAY_INSTANCES,
    HOST,
    PROJECT_PYTHON,
    REPO_DIR,
    SERVER_NAMES,
    RunState,
    pick_ports,
    say,
)

USERNAME = "bench-reader"
# Tokens outlive the longest run, so one token serves every round.
ACCESS_TOKEN_LIFETIME_SECONDS = 3600


def gateway_env(state, instance):
    """Return the environment of a jwtgate process (manage.py or gunicorn) for ``instance``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("JWTGATE_")}
    env.update(
        {
            "JWTGATE_VAR_DIR": str(state.var_dir(instance)),
            "JWTGATE_SECRET_KEY": state.hs256_secret + "-django",
            "JWTGATE_DEBUG": "false",
            "JWTGATE_ALLOWED_HOSTS": f"{HOST},localhost",
            "JWTGATE_ACCESS_TOKEN_LIFETIME_SECONDS": str(ACCESS_TOKEN_LIFETIME_SECONDS),
            "JWTGATE_BIND": f"{HOST}:{state.ports[instance]}",
            "DJANGO_SETTINGS_MODULE": "gatewaysite.settings",
        }
    )
    if GATEWAY_INSTANCES[instance]["algorithm"] == "RS256":
        env["JWTGATE_JWT_ALGORITHM"] = "RS256"
        env["JWTGATE_SIGNING_KEY"] = state.rsa_private_pem
        env["JWTGATE_VERIFYING_KEY"] = state.rsa_public_pem
    else:
        env["JWTGATE_SIGNING_KEY"] = state.hs256_secret
    return env


def manage(state, instance, *arguments, extra_env=None):
    """Run ``manage.py`` for a jwtgate instance and return the seconds it took; raise on failure."""
    env = gateway_env(state, instance)
    env["JWTGATE_LOG_LEVEL"] = "WARNING"
    env.update(extra_env or {})
    log_path = state.path / "logs" / f"prepare-{instance}.log"
    started = time.monotonic()
    with open(log_path, "a") as log:
        log.write(f"$ manage.py {' '.join(arguments)}\n")
        log.flush()
        result = subprocess.run(
            [str(PROJECT_PYTHON), "manage.py", *arguments],
            cwd=REPO_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=600,
        )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {arguments[0]} for {instance} failed; see {log_path}.")
    return time.monotonic() - started


def rsa_key_pair():
    """Return a throwaway 2048-bit RSA key pair as (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private_pem, public_pem


def write_configuration(state, route_count):
    """Write the applyconfig file with ``route_count`` routes and return its path."""
    document = routeset.configuration(route_count, state.url("upstream"))
    path = state.path / "config" / f"routes-{route_count}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def prepare(run_dir, first_port):
    """Create the run state and the databases of every jwtgate instance under ``run_dir``."""
    private_pem, public_pem = rsa_key_pair()
    state = RunState(
        run_dir=str(run_dir),
        ports=pick_ports(SERVER_NAMES, first_port),
        hs256_secret=secrets.token_hex(32),
        rsa_private_pem=private_pem,
        rsa_public_pem=public_pem,
        username=USERNAME,
        password=secrets.token_urlsafe(24),
    )
    for folder in ("config", "logs", "var"):
        (state.path / folder).mkdir(parents=True, exist_ok=True)
    state.save()

    base = "jwtgate"
    state.var_dir(base).mkdir(parents=True)
    say(f"preparing the database of {base}")
    timings = {"migrate": manage(state, base, "migrate", "--noinput")}
    timings["applyconfig 10 routes"] = manage(
        state, base, "applyconfig", str(write_configuration(state, GATEWAY_INSTANCES[base]["routes"]))
    )
    manage(
        state, base, "createuser", USERNAME, "--roles", "reader", extra_env={"JWTGATE_PASSWORD": state.password}
    )

    # Every other instance starts from a copy of the base database, user included.
    for instance in GATEWAY_INSTANCES:
        if instance != base:
            shutil.copytree(state.var_dir(base), state.var_dir(instance))

    larger = [name for name, spec in GATEWAY_INSTANCES.items() if spec["routes"] > GATEWAY_INSTANCES[base]["routes"]]

    def apply_larger(instance):
        route_count = GATEWAY_INSTANCES[instance]["routes"]
        say(f"applying {route_count} routes to {instance}")
        seconds = manage(state, instance, "applyconfig", str(write_configuration(state, route_count)))
        return f"applyconfig {route_count} routes", seconds

    with ThreadPoolExecutor(max_workers=len(larger) or 1) as pool:
        for name, seconds in pool.map(apply_larger, larger):
            timings[name] = seconds

    state.prepare_seconds = timings
    state.save()
    say("databases ready: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()))
    return state
