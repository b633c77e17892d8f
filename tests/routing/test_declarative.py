"""The applyconfig and exportconfig commands and the declarative configuration behind them."""

import io
import sys
import textwrap

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import ApiPermission, Role, User
from routing import declarative
from routing.models import RoleRule, Route, Target, Upstream
from routing.version import current_version

BASE_CONFIG = """\
upstreams:
  - name: orders
    description: Order service
    connect_timeout_seconds: 2
    read_timeout_seconds: 10
    balancing: least_outstanding
    retries: 2
    retry_on_statuses: [504, 503]
    failure_threshold: 3
    failure_statuses: [500, 503]
    ejection_seconds: 15
    health_check_path: /healthz
    health_check_interval_seconds: 5
    health_check_timeout_seconds: 0.5
    targets:
      - url: http://127.0.0.1:8081/v1
        weight: 1
      - url: http://127.0.0.1:8083/v1/
        weight: 3
permissions:
  - codename: orders:write
    description: Create and change orders
roles:
  - name: admin
    description: Full access
    permissions: [orders:read, orders:write]
  - name: reader
    permissions: [orders:read]
routes:
  - name: orders
    paths: [/api/orders, /api/orders/**]
    methods: [get, POST, DELETE]
    hosts: [API.example.com]
    upstream: orders
    strip_prefix: /api/
    auth: required
    roles: [reader, admin]
    permissions: []
    priority: 5
    enabled: true
    preserve_host: true
    allow_encoded_slashes: false
    max_body_bytes: 1048576
    connect_timeout_seconds: 1.5
    read_timeout_seconds: 20
    retry_non_idempotent: true
    shadow: true
    rules:
      - methods: [DELETE]
        path: /api/orders/**
        roles: [admin]
        permissions: []
        shadow: true
      - methods: [POST]
        roles: []
        permissions: [orders:write]
  - name: status
    paths: [/status]
    upstream: orders
    auth: public
"""

# A valid new upstream that every rejected file below also contains: if any part
# of a rejected file were written, this upstream would appear in the database.
BILLING_UPSTREAM = """\
upstreams:
  - name: billing
    targets:
      - url: http://127.0.0.1:8082
"""


def billing_with_routes(*routes):
    """Return BILLING_UPSTREAM followed by a routes section made of the given YAML list items."""
    items = "".join(textwrap.dedent(route) for route in routes)
    return BILLING_UPSTREAM + "routes:\n" + textwrap.indent(items, "  ")


@pytest.fixture
def write_file(tmp_path):
    """Return a function that writes YAML text to a file under tmp_path and returns its path."""
    counter = iter(range(1000))

    def write(text):
        path = tmp_path / f"config-{next(counter)}.yaml"
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


@pytest.fixture
def apply_config(db, write_file):
    """Return a function that runs applyconfig on YAML text with extra options and returns its output."""

    def apply(text, *options):
        stdout = io.StringIO()
        call_command("applyconfig", write_file(text), *options, stdout=stdout)
        return stdout.getvalue()

    return apply


@pytest.fixture
def export_config(db):
    """Return a function that runs exportconfig and returns the YAML it prints."""

    def export():
        stdout = io.StringIO()
        call_command("exportconfig", stdout=stdout)
        return stdout.getvalue()

    return export


@pytest.fixture
def base_applied(apply_config):
    apply_config(BASE_CONFIG)


def snapshot():
    """Return everything that applyconfig can change: the exported configuration and the version."""
    return declarative.export_configuration(), current_version()


def clear_configuration():
    # Routes first, because a route protects its upstream from deletion.
    Route.objects.all().delete()
    Upstream.objects.all().delete()
    Role.objects.all().delete()
    ApiPermission.objects.all().delete()


def write_queries(queries):
    return [query["sql"] for query in queries if query["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]


RESILIENCE_FIELDS = (
    "balancing", "retries", "retry_on_statuses", "failure_threshold", "failure_statuses", "ejection_seconds",
    "health_check_path", "health_check_interval_seconds", "health_check_timeout_seconds",
)

# Creating


def test_applyconfig_creates_upstream_targets(base_applied):
    targets = {(target.url, target.weight) for target in Target.objects.filter(upstream__name="orders")}
    assert targets == {("http://127.0.0.1:8081/v1", 1), ("http://127.0.0.1:8083/v1", 3)}


def test_applyconfig_creates_upstream_timeouts(base_applied):
    upstream = Upstream.objects.get(name="orders")
    assert upstream.connect_timeout_seconds == 2.0
    assert upstream.read_timeout_seconds == 10.0


def test_applyconfig_creates_upstream_resilience(base_applied):
    upstream = Upstream.objects.get(name="orders")
    stored = {name: getattr(upstream, name) for name in RESILIENCE_FIELDS}
    assert stored == {
        "balancing": "least_outstanding",
        "retries": 2,
        "retry_on_statuses": "503,504",
        "failure_threshold": 3,
        "failure_statuses": "500,503",
        "ejection_seconds": 15.0,
        "health_check_path": "/healthz",
        "health_check_interval_seconds": 5.0,
        "health_check_timeout_seconds": 0.5,
    }


def test_applyconfig_fills_upstream_defaults(apply_config):
    apply_config(BILLING_UPSTREAM)
    upstream = Upstream.objects.get(name="billing")
    stored = {name: getattr(upstream, name) for name in RESILIENCE_FIELDS}
    assert stored == {name: Upstream._meta.get_field(name).get_default() for name in RESILIENCE_FIELDS}


def test_applyconfig_creates_route_normalized(base_applied):
    route = Route.objects.get(name="orders")
    stored = {
        "paths": route.paths,
        "methods": route.methods,
        "hosts": route.hosts,
        "upstream": route.upstream.name,
        "strip_prefix": route.strip_prefix,
        "auth": route.auth,
        "priority": route.priority,
        "enabled": route.enabled,
        "preserve_host": route.preserve_host,
        "allow_encoded_slashes": route.allow_encoded_slashes,
        "max_body_bytes": route.max_body_bytes,
        "connect_timeout_seconds": route.connect_timeout_seconds,
        "read_timeout_seconds": route.read_timeout_seconds,
        "retry_non_idempotent": route.retry_non_idempotent,
        "shadow": route.shadow,
    }
    assert stored == {
        "paths": "/api/orders\n/api/orders/**",
        "methods": "GET,POST,DELETE",
        "hosts": "api.example.com",
        "upstream": "orders",
        "strip_prefix": "/api",
        "auth": "required",
        "priority": 5,
        "enabled": True,
        "preserve_host": True,
        "allow_encoded_slashes": False,
        "max_body_bytes": 1048576,
        "connect_timeout_seconds": 1.5,
        "read_timeout_seconds": 20.0,
        "retry_non_idempotent": True,
        "shadow": True,
    }


def test_applyconfig_fills_route_defaults(base_applied):
    route = Route.objects.get(name="status")
    defaults = {
        "methods": route.methods,
        "hosts": route.hosts,
        "strip_prefix": route.strip_prefix,
        "priority": route.priority,
        "enabled": route.enabled,
        "preserve_host": route.preserve_host,
        "allow_encoded_slashes": route.allow_encoded_slashes,
        "max_body_bytes": route.max_body_bytes,
        "connect_timeout_seconds": route.connect_timeout_seconds,
        "read_timeout_seconds": route.read_timeout_seconds,
        "retry_non_idempotent": route.retry_non_idempotent,
        "shadow": route.shadow,
        "roles": list(route.roles.all()),
        "rules": list(route.rules.all()),
    }
    assert defaults == {
        "methods": "",
        "hosts": "",
        "strip_prefix": "",
        "priority": 0,
        "enabled": True,
        "preserve_host": False,
        "allow_encoded_slashes": False,
        "max_body_bytes": None,
        "connect_timeout_seconds": None,
        "read_timeout_seconds": None,
        "retry_non_idempotent": False,
        "shadow": False,
        "roles": [],
        "rules": [],
    }


def test_applyconfig_creates_route_roles(base_applied):
    assert sorted(Route.objects.get(name="orders").roles.values_list("name", flat=True)) == ["admin", "reader"]


def test_applyconfig_creates_rules_in_order(base_applied):
    rules = [
        (rule.methods, rule.path, sorted(rule.roles.values_list("name", flat=True)),
         sorted(rule.permissions.values_list("codename", flat=True)), rule.shadow)
        for rule in RoleRule.objects.filter(route__name="orders").order_by("id")
    ]
    assert rules == [("DELETE", "/api/orders/**", ["admin"], [], True), ("POST", "", [], ["orders:write"], False)]


def test_applyconfig_creates_role_permissions(base_applied):
    permissions = Role.objects.get(name="admin").permissions.values_list("codename", flat=True)
    assert sorted(permissions) == ["orders:read", "orders:write"]


@pytest.mark.parametrize(
    "codename, description",
    [("orders:write", "Create and change orders"), ("orders:read", "")],
    ids=["listed-with-description", "named-only-in-role"],
)
def test_applyconfig_creates_permissions(base_applied, codename, description):
    assert ApiPermission.objects.get(codename=codename).description == description


def test_applyconfig_bumps_configuration_version(apply_config):
    before = current_version()
    apply_config(BASE_CONFIG)
    assert current_version() > before


def test_applyconfig_prints_added_entries(apply_config):
    output = apply_config(BASE_CONFIG)
    assert "add route orders" in output


def test_applyconfig_reads_standard_input(db, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(BASE_CONFIG))
    call_command("applyconfig", "-", stdout=io.StringIO())
    assert Route.objects.filter(name="orders").exists()


# Applying again


def test_applyconfig_second_run_keeps_version(apply_config, base_applied):
    version = current_version()
    apply_config(BASE_CONFIG)
    assert current_version() == version


def test_applyconfig_second_run_writes_no_rows(apply_config, base_applied):
    with CaptureQueriesContext(connection) as queries:
        apply_config(BASE_CONFIG)
    assert write_queries(queries.captured_queries) == []


def test_applyconfig_second_run_reports_no_changes(apply_config, base_applied):
    assert apply_config(BASE_CONFIG).startswith("No changes")


def test_applyconfig_lists_changed_fields(apply_config, base_applied):
    output = apply_config(BASE_CONFIG.replace("priority: 5", "priority: 7"))
    assert output.splitlines()[0].strip() == "change route orders (priority)"


def test_applyconfig_updates_changed_field(apply_config, base_applied):
    apply_config(BASE_CONFIG.replace("priority: 5", "priority: 7"))
    assert Route.objects.get(name="orders").priority == 7


def test_applyconfig_keeps_unchanged_rules(apply_config, base_applied):
    rule_ids = list(RoleRule.objects.order_by("id").values_list("id", flat=True))
    apply_config(BASE_CONFIG.replace("priority: 5", "priority: 7"))
    assert list(RoleRule.objects.order_by("id").values_list("id", flat=True)) == rule_ids


def test_applyconfig_replaces_changed_rules(apply_config, base_applied):
    apply_config(BASE_CONFIG.replace("methods: [DELETE]", "methods: [DELETE, PUT]"))
    rules = list(RoleRule.objects.filter(route__name="orders").order_by("id").values_list("methods", "path"))
    assert rules == [("DELETE,PUT", "/api/orders/**"), ("POST", "")]


def test_applyconfig_updates_target_weight(apply_config, base_applied):
    apply_config(BASE_CONFIG.replace("weight: 3", "weight: 4"))
    assert Target.objects.get(url="http://127.0.0.1:8083/v1").weight == 4


def test_applyconfig_removes_omitted_target(apply_config, base_applied):
    apply_config(BASE_CONFIG.replace("      - url: http://127.0.0.1:8083/v1/\n        weight: 3\n", ""))
    assert list(Target.objects.values_list("url", flat=True)) == ["http://127.0.0.1:8081/v1"]


def test_applyconfig_keeps_description_of_role_permission(apply_config, base_applied):
    ApiPermission.objects.filter(codename="orders:read").update(description="Read orders")
    apply_config(BASE_CONFIG)
    assert ApiPermission.objects.get(codename="orders:read").description == "Read orders"


# Exporting


def test_exportconfig_then_applyconfig_keeps_version(apply_config, export_config, base_applied):
    exported = export_config()
    version = current_version()
    apply_config(exported)
    assert current_version() == version


def test_exportconfig_then_applyconfig_writes_no_rows(apply_config, export_config, base_applied):
    exported = export_config()
    with CaptureQueriesContext(connection) as queries:
        apply_config(exported)
    assert write_queries(queries.captured_queries) == []


def test_exportconfig_round_trip_gives_identical_text(apply_config, export_config, base_applied):
    first = export_config()
    clear_configuration()
    apply_config(first)
    assert export_config() == first


def test_exportconfig_starts_with_comment(export_config, base_applied):
    assert export_config().startswith("# jwtgate configuration, exported by")


def test_exportconfig_keeps_format_key_order(export_config, base_applied):
    document = yaml.safe_load(export_config())
    assert list(document) == ["upstreams", "permissions", "roles", "routes"]
    assert list(document["upstreams"][0]) == [
        "name", "description", "connect_timeout_seconds", "read_timeout_seconds", "balancing", "retries",
        "retry_on_statuses", "failure_threshold", "failure_statuses", "ejection_seconds", "health_check_path",
        "health_check_interval_seconds", "health_check_timeout_seconds", "targets",
    ]
    assert list(document["routes"][0]) == [
        "name", "paths", "methods", "hosts", "upstream", "strip_prefix", "auth", "roles", "permissions",
        "priority", "enabled", "preserve_host", "allow_encoded_slashes", "max_body_bytes",
        "connect_timeout_seconds", "read_timeout_seconds", "retry_non_idempotent", "shadow", "rules",
    ]
    assert list(document["routes"][0]["rules"][0]) == ["methods", "path", "roles", "permissions", "shadow"]


def test_exportconfig_writes_resilience_fields(export_config, base_applied):
    upstream = yaml.safe_load(export_config())["upstreams"][0]
    assert upstream["retry_on_statuses"] == [503, 504]
    assert upstream["failure_statuses"] == [500, 503]
    assert upstream["ejection_seconds"] == 15.0


def test_exportconfig_writes_route_fields(export_config, base_applied):
    route = yaml.safe_load(export_config())["routes"][0]
    written = {name: route[name] for name in ("connect_timeout_seconds", "read_timeout_seconds",
                                              "retry_non_idempotent", "shadow")}
    assert written == {"connect_timeout_seconds": 1.5, "read_timeout_seconds": 20.0,
                       "retry_non_idempotent": True, "shadow": True}


def test_exportconfig_defaults_apply_as_no_change(apply_config, export_config):
    apply_config(BILLING_UPSTREAM)
    version = current_version()
    apply_config(export_config())
    assert current_version() == version


def test_applyconfig_status_order_is_no_change(apply_config, base_applied):
    output = apply_config(BASE_CONFIG.replace("retry_on_statuses: [504, 503]", "retry_on_statuses: [503, 504]"))
    assert output.startswith("No changes")


@pytest.mark.parametrize("old, new, field", [
    pytest.param("retries: 2", "retries: 3", "retries", id="retries"),
    pytest.param("failure_statuses: [500, 503]", "failure_statuses: [502]", "failure_statuses", id="statuses"),
    pytest.param("health_check_path: /healthz", "health_check_path: /ready", "health_check_path", id="health-path"),
])
def test_applyconfig_lists_changed_upstream_field(apply_config, base_applied, old, new, field):
    output = apply_config(BASE_CONFIG.replace(old, new))
    assert output.splitlines()[0].strip() == f"change upstream orders ({field})"


def test_applyconfig_updates_rule_shadow(apply_config, base_applied):
    apply_config(BASE_CONFIG.replace("        shadow: true\n", ""))
    assert not RoleRule.objects.filter(route__name="orders", shadow=True).exists()


def test_exportconfig_sorts_entries_by_name(apply_config, export_config, base_applied):
    apply_config(BILLING_UPSTREAM)
    document = yaml.safe_load(export_config())
    assert [upstream["name"] for upstream in document["upstreams"]] == ["billing", "orders"]


def test_exportconfig_writes_output_file(export_config, base_applied, tmp_path):
    output = tmp_path / "exported.yaml"
    call_command("exportconfig", "--output", str(output), stdout=io.StringIO())
    assert output.read_text(encoding="utf-8") == export_config()


def test_exportconfig_empty_database_applies_cleanly(apply_config, export_config):
    assert apply_config(export_config()).startswith("No changes")


# Pruning

EXTRA_CONFIG = """\
upstreams:
  - name: legacy
    targets:
      - url: http://127.0.0.1:8090
permissions:
  - codename: legacy:use
roles:
  - name: legacy-user
    permissions: [legacy:use]
routes:
  - name: legacy
    paths: [/legacy/**]
    upstream: legacy
    roles: [legacy-user]
"""


@pytest.fixture
def extra_applied(apply_config, base_applied):
    apply_config(EXTRA_CONFIG)


OMITTED_ENTRIES = [
    pytest.param(Route, {"name": "legacy"}, id="route"),
    pytest.param(Upstream, {"name": "legacy"}, id="upstream"),
    pytest.param(Role, {"name": "legacy-user"}, id="role"),
    pytest.param(ApiPermission, {"codename": "legacy:use"}, id="permission"),
]

NAMED_ENTRIES = [
    pytest.param(Route, {"name": "orders"}, id="route"),
    pytest.param(Upstream, {"name": "orders"}, id="upstream"),
    pytest.param(Role, {"name": "reader"}, id="role"),
    pytest.param(ApiPermission, {"codename": "orders:read"}, id="permission-named-in-role"),
]


@pytest.mark.parametrize("model, lookup", OMITTED_ENTRIES)
def test_applyconfig_prune_deletes_omitted_entries(apply_config, extra_applied, model, lookup):
    apply_config(BASE_CONFIG, "--prune")
    assert not model.objects.filter(**lookup).exists()


@pytest.mark.parametrize("model, lookup", NAMED_ENTRIES)
def test_applyconfig_prune_keeps_named_entries(apply_config, extra_applied, model, lookup):
    apply_config(BASE_CONFIG, "--prune")
    assert model.objects.filter(**lookup).exists()


@pytest.mark.parametrize("model, lookup", OMITTED_ENTRIES)
def test_applyconfig_without_prune_keeps_omitted(apply_config, extra_applied, model, lookup):
    apply_config(BASE_CONFIG)
    assert model.objects.filter(**lookup).exists()


def test_applyconfig_prune_lists_deletions(apply_config, extra_applied):
    output = apply_config(BASE_CONFIG, "--prune")
    deletions = [line.strip() for line in output.splitlines() if line.strip().startswith("delete")]
    assert deletions == [
        "delete route legacy",
        "delete upstream legacy",
        "delete role legacy-user",
        "delete permission legacy:use",
    ]


def test_applyconfig_prune_keeps_users(apply_config, extra_applied):
    user = User.objects.create_user("carol", password="correct horse battery")
    user.roles.set(Role.objects.filter(name__in=["reader", "legacy-user"]))
    apply_config(BASE_CONFIG, "--prune")
    assert list(user.roles.values_list("name", flat=True)) == ["reader"]


def test_applyconfig_prune_rejects_omitted_reference(apply_config, extra_applied):
    routes_only = BASE_CONFIG[BASE_CONFIG.index("routes:"):]
    with pytest.raises(CommandError) as raised:
        apply_config(routes_only, "--prune")
    assert "routes[0] (orders): upstream: upstream 'orders' not defined in the file, and --prune" in str(raised.value)


# Dry run


def test_applyconfig_dry_run_changes_nothing(apply_config, extra_applied):
    before = snapshot()
    apply_config(BASE_CONFIG.replace("priority: 5", "priority: 7"), "--prune", "--dry-run")
    assert snapshot() == before


def test_applyconfig_dry_run_prints_plan(apply_config, extra_applied):
    output = apply_config(BASE_CONFIG.replace("priority: 5", "priority: 7"), "--prune", "--dry-run")
    assert output.splitlines() == [
        "  change route orders (priority)",
        "  delete route legacy",
        "  delete upstream legacy",
        "  delete role legacy-user",
        "  delete permission legacy:use",
        "Dry run: 0 to add, 1 to change, 4 to delete; nothing was written.",
    ]


# Rejected files

VALID_BILLING_ROUTE = """\
- name: billing
  paths: [/billing/**]
  upstream: billing
"""

REJECTED_FILES = [
    pytest.param(
        billing_with_routes("""\
            - name: billing
              paths: [/billing/**]
              upstream: invoices
            """),
        "routes[0] (billing): upstream: upstream 'invoices' not found in the file or the database",
        id="unknown-upstream",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: billing
              paths: [/billing/**]
              upstream: billing
              roles: [reader, ghost]
            """),
        "routes[0] (billing): roles: role 'ghost' not found in the file or the database",
        id="unknown-role",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: billing
              paths: [/billing/**]
              upstream: billing
              rules:
                - methods: [POST]
                  roles: [ghost]
            """),
        "routes[0] (billing): rules[0]: roles: role 'ghost' not found",
        id="unknown-role-in-rule",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: billing
              paths: [/billing/**]
              upstream: billing
              permissions: [billing:pay]
            """),
        "routes[0] (billing): permissions: permission 'billing:pay' not found",
        id="unknown-permission",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: billing
              paths: [/billing/*x]
              upstream: billing
            """),
        "routes[0] (billing): paths: Path pattern '/billing/*x': '*' and '**' must be whole segments",
        id="bad-pattern",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: billing
              paths: [/billing/**/items]
              upstream: billing
            """),
        "routes[0] (billing): paths: Path pattern '/billing/**/items': '**' may only be the last segment",
        id="double-star-not-last",
    ),
    pytest.param(
        billing_with_routes(VALID_BILLING_ROUTE, """\
            - name: tokens
              paths: [/auth/x]
              upstream: billing
            """),
        "routes[1] (tokens): paths: Pattern '/auth/x' would shadow a path that the gateway serves itself",
        id="shadows-auth",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: console
              paths: [/console/**]
              upstream: billing
            """),
        "routes[0] (console): paths: Pattern '/console/**' would shadow",
        id="shadows-console",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: billing
              paths: [/billing/**]
              upstream: billing
              strip_prefix: /invoices
            """),
        "routes[0] (billing): strip_prefix: Strip prefix '/invoices' is not a prefix of pattern '/billing/**'",
        id="strip-prefix-not-prefix",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: billing
              paths: [/billing/**]
              methods: [FETCH]
              upstream: billing
            """),
        "routes[0] (billing): methods: 'FETCH' is not an HTTP method",
        id="unknown-method",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: billing
              paths: [/billing/**]
              upstream: billing
              auth: optional
            """),
        "routes[0] (billing): auth: Value 'optional' is not a valid choice",
        id="unknown-auth-mode",
    ),
    pytest.param(
        """\
upstreams:
  - name: billing
    targets:
      - url: ftp://127.0.0.1:8082
""",
        "upstreams[0] (billing): targets[0]: url: Target URL 'ftp://127.0.0.1:8082' must start with http:// or https://",
        id="target-url-not-http",
    ),
    pytest.param(
        """\
upstreams:
  - name: billing
    targets: []
""",
        "upstreams[0] (billing): targets: enter at least one target",
        id="no-targets",
    ),
    pytest.param(
        """\
upstreams:
  - name: billing
    connect_timeout_seconds: 0
    targets:
      - url: http://127.0.0.1:8082
""",
        "upstreams[0] (billing): connect_timeout_seconds: Ensure this value is greater than or equal to 0.001",
        id="zero-timeout",
    ),
    pytest.param(
        """\
upstreams:
  - name: bill ing
    targets:
      - url: http://127.0.0.1:8082
""",
        "upstreams[0] (bill ing): name: Enter a valid",
        id="name-not-slug",
    ),
    pytest.param(
        BILLING_UPSTREAM + "route: []\n",
        "route: unknown top-level key; expected one of upstreams, permissions, roles, routes",
        id="unknown-top-level-key",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: billing
              path: [/billing/**]
              upstream: billing
            """),
        "routes[0] (billing): path: unknown key",
        id="unknown-entry-key",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: billing
              paths: /billing/**
              upstream: billing
            """),
        "routes[0] (billing): paths: expected a list of strings, got a string ('/billing/**')",
        id="paths-as-string",
    ),
    pytest.param(
        """\
upstreams:
  - name: billing
    targets:
      - url: http://127.0.0.1:8082
        weight: heavy
""",
        "upstreams[0] (billing): targets[0]: weight: expected an integer, got a string ('heavy')",
        id="weight-as-text",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: billing
              paths: [/billing/**]
              upstream: billing
              enabled: "no"
            """),
        "routes[0] (billing): enabled: expected true or false, got a string ('no')",
        id="enabled-as-text",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: billing
              paths: [/billing/**]
              upstream: billing
              max_body_bytes: -1
            """),
        "routes[0] (billing): max_body_bytes: Ensure this value is greater than or equal to 0",
        id="negative-body-limit",
    ),
    pytest.param(
        billing_with_routes(VALID_BILLING_ROUTE, VALID_BILLING_ROUTE),
        "routes[1] (billing): name: duplicate of routes[0]",
        id="duplicate-route-names",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: billing
              paths: [/billing/**]
              paths: [/invoices/**]
              upstream: billing
            """),
        "invalid YAML at line 8, column 5: found the key 'paths' twice",
        id="duplicate-key",
    ),
    pytest.param(
        BILLING_UPSTREAM + "routes: [\n  - name: billing\n",
        "invalid YAML at line 6",
        id="yaml-syntax-error",
    ),
    pytest.param("", "the file contains no YAML document", id="empty-file"),
    pytest.param(
        BILLING_UPSTREAM + "routes:\n  - billing\n",
        "routes[0]: expected a mapping, got a string ('billing')",
        id="entry-not-mapping",
    ),
    pytest.param(
        BILLING_UPSTREAM.replace("    targets:", "    retry_on_statuses: [502, 700]\n    targets:"),
        "upstreams[0] (billing): retry_on_statuses: item 1 (700) is not an HTTP status code",
        id="status-out-of-range",
    ),
    pytest.param(
        BILLING_UPSTREAM.replace("    targets:", "    failure_statuses: 500,502\n    targets:"),
        "upstreams[0] (billing): failure_statuses: expected a list of HTTP status codes such as [502, 503], "
        "got a string ('500,502')",
        id="statuses-as-text",
    ),
    pytest.param(
        BILLING_UPSTREAM.replace("    targets:", "    balancing: random\n    targets:"),
        "upstreams[0] (billing): balancing: Value 'random' is not a valid choice",
        id="unknown-balancing",
    ),
    pytest.param(
        BILLING_UPSTREAM.replace("    targets:", "    retries: 11\n    targets:"),
        "upstreams[0] (billing): retries: Ensure this value is less than or equal to 10",
        id="too-many-retries",
    ),
    pytest.param(
        BILLING_UPSTREAM.replace("    targets:", "    ejection_seconds: null\n    targets:"),
        "upstreams[0] (billing): ejection_seconds: expected a number of seconds, got null",
        id="ejection-null",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: billing
              paths: [/billing/**]
              upstream: billing
              read_timeout_seconds: 0
            """),
        "routes[0] (billing): read_timeout_seconds: Ensure this value is greater than or equal to 0.001",
        id="route-zero-timeout",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: billing
              paths: [/billing/**]
              upstream: billing
              rules:
                - methods: [POST]
                  shadow: "yes"
            """),
        "routes[0] (billing): rules[0]: shadow: expected true or false, got a string ('yes')",
        id="rule-shadow-as-text",
    ),
    pytest.param(
        billing_with_routes(VALID_BILLING_ROUTE, """\
            - name: billing-v2
              paths: [/billing/**, /v2/**]
              methods: [GET]
              upstream: billing
            """),
        "routes[1] (billing-v2): paths: Pattern '/billing/**' for methods GET, HEAD on any host is already served "
        "by the enabled route 'billing'",
        id="duplicate-route-in-file",
    ),
    pytest.param(
        billing_with_routes("""\
            - name: orders-copy
              paths: [/api/orders]
              methods: [DELETE]
              hosts: [api.example.com]
              upstream: billing
            """),
        "routes[0] (orders-copy): paths: Pattern '/api/orders' for method DELETE on hosts api.example.com is "
        "already served by the enabled route 'orders'",
        id="duplicate-of-stored-route",
    ),
]


@pytest.mark.parametrize("text, message", REJECTED_FILES)
def test_applyconfig_rejects_invalid_file(apply_config, base_applied, text, message):
    with pytest.raises(CommandError) as raised:
        apply_config(text)
    assert message in str(raised.value)


@pytest.mark.parametrize("text, message", REJECTED_FILES)
def test_applyconfig_invalid_file_changes_nothing(apply_config, base_applied, text, message):
    before = snapshot()
    with pytest.raises(CommandError):
        apply_config(text)
    assert snapshot() == before


def test_applyconfig_reports_every_error(apply_config, base_applied):
    text = billing_with_routes("""\
        - name: billing
          paths: [/auth/token]
          upstream: invoices
        - name: reports
          paths: /reports
          upstream: billing
        """)
    with pytest.raises(CommandError) as raised:
        apply_config(text)
    problems = [line.strip().split(":")[0] for line in str(raised.value).splitlines()[1:]]
    assert problems == ["routes[0] (billing)", "routes[0] (billing)", "routes[1] (reports)"]


def test_applyconfig_allows_swapping_patterns(apply_config, db):
    apply_config(billing_with_routes(VALID_BILLING_ROUTE, """\
        - name: invoices
          paths: [/invoices/**]
          upstream: billing
        """))
    apply_config(billing_with_routes("""\
        - name: billing
          paths: [/invoices/**]
          upstream: billing
        - name: invoices
          paths: [/billing/**]
          upstream: billing
        """))
    assert Route.objects.get(name="billing").paths == "/invoices/**"


def test_applyconfig_allows_duplicate_of_disabled_route(apply_config, db):
    apply_config(billing_with_routes(VALID_BILLING_ROUTE, """\
        - name: billing-next
          paths: [/billing/**]
          upstream: billing
          enabled: false
        """))
    assert not Route.objects.get(name="billing-next").enabled


def test_applyconfig_prune_ignores_omitted_duplicate(apply_config, base_applied):
    copy = billing_with_routes("""\
        - name: orders-copy
          paths: [/api/orders]
          hosts: [api.example.com]
          upstream: billing
        """)
    apply_config(copy, "--prune")
    assert list(Route.objects.values_list("name", flat=True)) == ["orders-copy"]


def test_applyconfig_failed_write_rolls_back(apply_config, base_applied, monkeypatch):
    def fail(spec, change):
        raise RuntimeError("write failed")

    monkeypatch.setitem(declarative.WRITERS, "route", fail)
    before = snapshot()
    with pytest.raises(RuntimeError):
        apply_config(billing_with_routes(VALID_BILLING_ROUTE))
    assert snapshot() == before


def test_applyconfig_bumps_version_once(apply_config):
    before = current_version()
    apply_config(BASE_CONFIG)
    assert Route.objects.count() > 1
    assert current_version() == before + 1
