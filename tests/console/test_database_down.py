"""Database down: the proxy keeps serving its last route table, and the console answers 503 with a clear page.

The end-to-end test runs gunicorn on a PostgreSQL database of its own on
127.0.0.1:5432 and takes that database away by refusing new connections and
terminating the open ones, which is what a database outage looks like to the
workers. It needs a local PostgreSQL server with trust authentication for the
current user, as CI starts one, and is skipped when none answers.
"""

import logging
import os
import subprocess
import sys
import time
import uuid

import pytest
import requests
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError

from routing.admin import RouteAdmin
from tests.console.helpers import (
    PASSWORD,
    console_session,
    csrf_token,
    get_with_worker,
    worker_pids,
)
from tests.gunicorn import BASE_DIR, GunicornGateway

POSTGRES = {"host": "127.0.0.1", "port": 5432, "dbname": "test", "connect_timeout": 5}
WORKERS = 2
# Longer than several configuration checks of 0.2 seconds, so that every worker
# has tried, and failed, to read the version while the database was down.
OUTAGE_PROBE_SECONDS = 2.0
PROBE_DEADLINE_SECONDS = 15.0


# The console middleware, with a view that fails as an unreachable database makes it fail


@pytest.fixture
def failing_route_list(monkeypatch):
    """Make the console's route list raise ``error`` from its queryset, as it would without a database."""

    def fail_with(error):
        def get_queryset(self, request):
            raise error

        monkeypatch.setattr(RouteAdmin, "get_queryset", get_queryset)

    return fail_with


@pytest.mark.django_db
@pytest.mark.parametrize("error", [
    pytest.param(OperationalError("connection refused"), id="operational"),
    pytest.param(InterfaceError("connection already closed"), id="interface"),
    pytest.param(DatabaseError("server closed the connection"), id="database"),
])
def test_console_unavailable_database_gives_503(console, failing_route_list, error):
    failing_route_list(error)
    response = console.get("/console/routing/route/")
    assert response.status_code == 503
    assert "Database unavailable" in response.content.decode()
    assert response["Retry-After"] == "10"


@pytest.mark.django_db
def test_console_unavailable_database_logs_once(console, failing_route_list, caplog):
    failing_route_list(OperationalError("connection refused"))
    with caplog.at_level(logging.ERROR):
        console.get("/console/routing/route/", headers={"X-Request-ID": "req-7"})
    records = [record for record in caplog.records if record.name == "console.middleware"]
    assert [record.getMessage() for record in records] == [
        "console_database_unavailable request_id=req-7 path=/console/routing/route/ error=OperationalError"
    ]


@pytest.mark.django_db
def test_console_statement_error_stays_500(console, failing_route_list):
    failing_route_list(IntegrityError("duplicate key"))
    console.raise_request_exception = False
    response = console.get("/console/routing/route/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"


# End to end: gunicorn on PostgreSQL, then the database goes away


def connect_postgres(dbname):
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(**{**POSTGRES, "dbname": dbname}, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server with trust authentication on 127.0.0.1:5432 ({exc})")


def manage(*args, env):
    """Run manage.py with ``env`` and return its output, failing the test with the output on error."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


class PostgresDatabase:
    """A throwaway database on the local PostgreSQL server, which the test can take away and give back."""

    def __init__(self):
        self.name = f"jwtgate_down_{uuid.uuid4().hex[:12]}"
        self.admin = connect_postgres("postgres")
        self.admin.execute(f'CREATE DATABASE "{self.name}"')

    @property
    def url(self):
        return f"postgres://{POSTGRES['host']}:{POSTGRES['port']}/{self.name}"

    def take_down(self):
        """Refuse new connections and terminate the open ones, as an outage does."""
        self.admin.execute(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS false')
        self.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [self.name]
        )

    def bring_back(self):
        self.admin.execute(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS true')

    def drop(self):
        self.admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.close()


CONFIG = """\
upstreams:
  - name: orders
    targets:
      - url: {upstream_url}
routes:
  - name: orders
    paths: [/api/orders/**]
    upstream: orders
    auth: public
"""


@pytest.fixture
def postgres_gateway(tmp_path, upstream):
    """A gunicorn gateway with 2 workers on a fresh PostgreSQL database with one public route and a superuser."""
    database = PostgresDatabase()
    gateway = None
    try:
        env = {**os.environ, "DATABASE_URL": database.url, "JWTGATE_VAR_DIR": str(tmp_path)}
        manage("migrate", "--noinput", env=env)
        config = tmp_path / "config.yaml"
        config.write_text(CONFIG.format(upstream_url=upstream.url))
        manage("applyconfig", str(config), env=env)
        manage("createuser", "operator", "--superuser", "--no-validate", env={**env, "JWTGATE_PASSWORD": PASSWORD})
        gateway = GunicornGateway(tmp_path, workers=WORKERS, env={"DATABASE_URL": database.url}).start()
        yield gateway, database
    finally:
        if gateway is not None:
            gateway.stop()
        database.drop()


def probe_workers(gateway, pids, seconds):
    """Send requests for ``seconds``, and on until every worker has answered; return {pid: [status, ...]}.

    Probing stops after PROBE_DEADLINE_SECONDS even when a worker was never reached.
    """
    statuses = {}
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if elapsed > PROBE_DEADLINE_SECONDS or (elapsed > seconds and set(statuses) >= set(pids)):
            return statuses
        status, _body, pid = get_with_worker(gateway.port, "/api/orders/1", pids)
        statuses.setdefault(pid, []).append(status)


def wait_for_workers(gateway):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = worker_pids(gateway.process.pid)
        if len(pids) == WORKERS:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"gunicorn did not start {WORKERS} workers")


@pytest.mark.gunicorn
def test_database_down_end_to_end(postgres_gateway, http, upstream):
    gateway, database = postgres_gateway
    pids = wait_for_workers(gateway)
    before = probe_workers(gateway, pids, 1.0)
    assert set(before) == set(pids), "every worker serves the route while the database is up"
    session = console_session(gateway.url, "operator")
    assert session.get(f"{gateway.url}/console/", timeout=10).status_code == 200

    database.take_down()
    try:
        during = probe_workers(gateway, pids, OUTAGE_PROBE_SECONDS)
        console_page = session.get(f"{gateway.url}/console/routing/route/", timeout=10)
        login_page_status, login_status = login_statuses(gateway.url)
        health = http.get(f"{gateway.url}/healthz", timeout=10)
    finally:
        database.bring_back()

    assert set(during) == set(pids), "every worker was reached during the outage"
    assert {status for statuses in during.values() for status in statuses} == {200}
    assert console_page.status_code == 503
    assert "Database unavailable" in console_page.text
    assert login_page_status == 200
    assert login_status == 503
    assert health.status_code == 200
    logs = gateway.logs()
    assert "config_check_failed" in logs
    assert "console_database_unavailable" in logs
    assert "Traceback" not in logs


@pytest.mark.gunicorn
def test_database_down_console_recovers(postgres_gateway):
    gateway, database = postgres_gateway
    session = console_session(gateway.url, "operator")
    database.take_down()
    try:
        assert session.get(f"{gateway.url}/console/", timeout=10).status_code == 503
    finally:
        database.bring_back()
    assert session.get(f"{gateway.url}/console/", timeout=10).status_code == 200


def login_statuses(base_url):
    """Return the statuses of a new browser session's login page and of its login form's POST."""
    with requests.Session() as session:
        session.trust_env = False
        page = session.get(f"{base_url}/console/login/", timeout=10)
        form = {"csrfmiddlewaretoken": csrf_token(page.text), "username": "operator", "password": PASSWORD}
        response = session.post(f"{base_url}/console/login/", data=form, timeout=10)
        return page.status_code, response.status_code
