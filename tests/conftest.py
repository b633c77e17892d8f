"""Shared fixtures: a recording upstream, routes, users with roles and their tokens, and a gunicorn gateway."""

import pytest
import requests

from accounts.models import ApiPermission, Role, User
from accounts.tokens import RefreshToken, issue_access_token, rejected_tokens, verified_tokens
from routing import balancing, health
from routing import client as forwarding_client
from routing.matching import route_tables
from routing.models import Route, RoleRule, Target, Upstream
from tests.faulty import FaultyUpstream
from tests.gunicorn import GunicornGateway
from tests.upstream import RecordingUpstream


@pytest.fixture(autouse=True)
def fresh_route_table():
    """Start every test with no route table and no pooled connections, as a new worker would."""
    route_tables.clear()
    balancing.clear()
    health.get_store().clear()
    verified_tokens.clear()
    rejected_tokens.clear()
    yield
    route_tables.clear()
    forwarding_client.clear()


def read_response(response):
    """Read a response of Django's test client to the end, as a WSGI server would.

    The test client closes a streamed response when its content is exhausted,
    which returns the upstream connection to its pool.
    """
    if response.streaming:
        response.content_bytes = b"".join(response.streaming_content)
    else:
        response.content_bytes = response.content
    return response


@pytest.fixture
def upstream():
    server = RecordingUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def faulty():
    """Return a function that starts a FaultyUpstream with a name and a mode; all stop after the test."""
    started = []

    def start(name, mode="ok"):
        server = FaultyUpstream(name, mode)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def make_upstream(db):
    """Return a function that stores an Upstream with one target per URL."""

    def make(name="service", urls=(), **fields):
        upstream_row = Upstream.objects.create(name=name, **fields)
        for url in urls:
            Target.objects.create(upstream=upstream_row, url=url)
        return upstream_row

    return make


def role_objects(names):
    return [Role.objects.get_or_create(name=name)[0] for name in names]


def permission_objects(codenames):
    return [ApiPermission.objects.get_or_create(codename=codename)[0] for codename in codenames]


@pytest.fixture
def make_route(db, make_upstream):
    """Return a function that stores a validated Route, with its upstream and role rules."""

    def make(name="orders", paths="/api/orders/**", upstream_url=None, upstream_row=None, roles=(),
             permissions=(), rules=(), **fields):
        if upstream_row is None:
            upstream_row = make_upstream(name=f"{name}-upstream", urls=[upstream_url] if upstream_url else [])
        route = Route(name=name, paths=paths, upstream=upstream_row, **fields)
        route.full_clean()
        route.save()
        route.roles.set(role_objects(roles))
        route.permissions.set(permission_objects(permissions))
        for rule_fields in rules:
            rule_fields = dict(rule_fields)
            rule_roles = rule_fields.pop("roles", ())
            rule_permissions = rule_fields.pop("permissions", ())
            rule = RoleRule(route=route, **rule_fields)
            rule.full_clean()
            rule.save()
            rule.roles.set(role_objects(rule_roles))
            rule.permissions.set(permission_objects(rule_permissions))
        return route

    return make


@pytest.fixture
def make_user(db):
    """Return a function that stores an active user with roles and direct API permissions."""

    def make(username="alice", password="correct horse battery", roles=(), permissions=(), **fields):
        user = User.objects.create_user(username=username, password=password, **fields)
        user.roles.set(role_objects(roles))
        user.api_permissions.set(permission_objects(permissions))
        return user

    return make


@pytest.fixture
def admin_user(django_user_model):
    """A superuser "root" with the password "correct horse battery"."""
    return django_user_model.objects.create_superuser("root", "root@example.com", "correct horse battery")


@pytest.fixture
def console(client, admin_user):
    """Django's test client, signed in to the console as a superuser."""
    client.force_login(admin_user)
    return client


@pytest.fixture
def token_for(db):
    """Return a function that issues an access token for a user, as /auth/token would."""

    def issue(user):
        refresh = RefreshToken.for_user(user)
        return str(issue_access_token(refresh, user))

    return issue


@pytest.fixture
def auth_header(make_user, token_for):
    """Return a function that makes a user with the given roles and permissions and returns its Authorization header."""
    counter = iter(range(10_000))

    def header(roles=(), permissions=()):
        user = make_user(username=f"user{next(counter)}", roles=roles, permissions=permissions)
        return {"Authorization": f"Bearer {token_for(user)}"}

    return header


@pytest.fixture
def gateway(live_server, settings):
    """The gateway under Django's live server, checking the configuration version on every request."""
    settings.GATEWAY = {**settings.GATEWAY, "CONFIG_CHECK_INTERVAL_SECONDS": 0}
    return live_server.url


class TimeoutSession(requests.Session):
    """A requests session whose calls time out after 30 s by default, so a hang fails the test."""

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", 30)
        return super().request(*args, **kwargs)


@pytest.fixture
def http():
    with TimeoutSession() as session:
        session.trust_env = False
        yield session


@pytest.fixture
def gunicorn_gateway(transactional_db, tmp_path):
    """Return a function that starts the gateway under gunicorn on the test database and returns its URL."""
    started = []

    def start(workers=2, threads=4, env=None):
        process = GunicornGateway(tmp_path, workers=workers, threads=threads, env=env).start()
        started.append(process)
        return process.url

    start.logs = lambda: "".join(process.logs() for process in started)
    yield start
    for process in started:
        process.stop()
