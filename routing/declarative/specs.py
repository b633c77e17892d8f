"""The desired or current state of each kind of entry, and the planned changes between two states.

The module also defines the row field lists that validation and writing share, the
package's exceptions, and the conversion of a cleaned or stored model instance to its spec.
"""

from dataclasses import dataclass, fields

from routing import patterns
from routing.models import parse_status_list

ADD = "add"
CHANGE = "change"
DELETE = "delete"


SECTIONS = {"upstream": "upstreams", "permission": "permissions", "role": "roles", "route": "routes"}
TOP_LEVEL_KEYS = ("upstreams", "permissions", "roles", "routes")


class ConfigurationError(Exception):
    """A configuration file that cannot be applied, with every problem found in ``messages``."""

    def __init__(self, source, messages):
        self.source = source
        self.messages = list(messages)
        super().__init__(str(self))

    def __str__(self):
        lines = [f"{self.source} is invalid, so nothing was changed:"]
        lines.extend(f"  {message}" for message in self.messages)
        return "\n".join(lines)


class PlanChanged(Exception):
    """The plan of a file differs from the plan that was confirmed; ``changes`` is the new plan."""

    def __init__(self, changes):
        self.changes = changes
        super().__init__("the stored configuration changed since the plan was made")


# The desired or current state of each kind of entry. Lists whose order carries no
# meaning (targets, roles, permissions) are sorted, so that two states compare equal
# exactly when applying one over the other would change nothing.


@dataclass(frozen=True)
class PermissionSpec:
    codename: str
    # None when the file names the permission only inside a role. An existing
    # description is then kept, and a new permission gets an empty one.
    description: str | None


@dataclass(frozen=True)
class RoleSpec:
    name: str
    description: str
    permissions: tuple


@dataclass(frozen=True)
class UpstreamSpec:
    name: str
    description: str
    connect_timeout_seconds: float | None
    read_timeout_seconds: float | None
    balancing: str
    retries: int
    retry_on_statuses: tuple  # of int, sorted
    failure_threshold: int
    failure_statuses: tuple  # of int, sorted
    ejection_seconds: float
    health_check_path: str
    health_check_interval_seconds: float
    health_check_timeout_seconds: float
    targets: tuple  # of (url, weight), sorted by URL


@dataclass(frozen=True)
class RuleSpec:
    methods: tuple
    path: str
    roles: tuple
    permissions: tuple
    shadow: bool


@dataclass(frozen=True)
class RouteSpec:
    name: str
    paths: tuple
    methods: tuple
    hosts: tuple
    upstream: str
    strip_prefix: str
    auth: str
    roles: tuple
    permissions: tuple
    priority: int
    enabled: bool
    preserve_host: bool
    allow_encoded_slashes: bool
    max_body_bytes: int | None
    connect_timeout_seconds: float | None
    read_timeout_seconds: float | None
    retry_non_idempotent: bool
    shadow: bool
    rules: tuple  # of RuleSpec, in order


# Route fields stored in the routing_route row itself, written with one save().
ROUTE_ROW_FIELDS = (
    "paths",
    "methods",
    "hosts",
    "upstream",
    "strip_prefix",
    "auth",
    "priority",
    "enabled",
    "preserve_host",
    "allow_encoded_slashes",
    "max_body_bytes",
    "connect_timeout_seconds",
    "read_timeout_seconds",
    "retry_non_idempotent",
    "shadow",
)
UPSTREAM_ROW_FIELDS = (
    "description",
    "connect_timeout_seconds",
    "read_timeout_seconds",
    "balancing",
    "retries",
    "retry_on_statuses",
    "failure_threshold",
    "failure_statuses",
    "ejection_seconds",
    "health_check_path",
    "health_check_interval_seconds",
    "health_check_timeout_seconds",
)
# Upstream fields stored as comma-separated text and written in the file as lists of integers.
STATUS_LIST_FIELDS = ("retry_on_statuses", "failure_statuses")


@dataclass(frozen=True)
class Configuration:
    """Upstreams, permissions, roles and routes, each a dict keyed by name."""

    upstreams: dict
    permissions: dict
    roles: dict
    routes: dict


def changed_fields(desired, current):
    """Return the names of the fields whose desired value differs from the current one."""
    names = []
    for field in fields(desired):
        value = getattr(desired, field.name)
        if isinstance(desired, PermissionSpec) and field.name == "description" and value is None:
            continue
        if value != getattr(current, field.name):
            names.append(field.name)
    return tuple(names)


@dataclass(frozen=True)
class Change:
    """One planned write: add, change or delete one upstream, route, role or permission."""

    action: str
    kind: str
    name: str
    fields: tuple = ()

    def __str__(self):
        text = f"{self.action} {self.kind} {self.name}"
        if self.fields:
            text += f" ({', '.join(self.fields)})"
        return text


@dataclass(frozen=True)
class ApplyResult:
    """The changes that were applied, or only planned in a dry run, and the version afterwards."""

    changes: tuple
    dry_run: bool
    version: int

    def count(self, action):
        return sum(1 for change in self.changes if change.action == action)


def sorted_unique(values):
    return tuple(sorted(set(values)))


def seconds_or_none(value):
    return None if value is None else float(value)


def upstream_spec(upstream, targets):
    """Return the UpstreamSpec of a cleaned or stored Upstream with ``targets`` as (url, weight) pairs."""
    return UpstreamSpec(
        name=upstream.name,
        description=upstream.description,
        connect_timeout_seconds=seconds_or_none(upstream.connect_timeout_seconds),
        read_timeout_seconds=seconds_or_none(upstream.read_timeout_seconds),
        balancing=upstream.balancing,
        retries=upstream.retries,
        retry_on_statuses=tuple(sorted(parse_status_list(upstream.retry_on_statuses))),
        failure_threshold=upstream.failure_threshold,
        failure_statuses=tuple(sorted(parse_status_list(upstream.failure_statuses))),
        ejection_seconds=float(upstream.ejection_seconds),
        health_check_path=upstream.health_check_path,
        health_check_interval_seconds=float(upstream.health_check_interval_seconds),
        health_check_timeout_seconds=float(upstream.health_check_timeout_seconds),
        targets=tuple(sorted(targets)),
    )


def route_spec(route, upstream_name, role_names, permission_codenames, rules):
    """Return the RouteSpec of a cleaned or stored Route."""
    return RouteSpec(
        name=route.name,
        paths=tuple(patterns.parse_paths(route.paths)),
        methods=tuple(patterns.parse_methods(route.methods)),
        hosts=tuple(patterns.parse_hosts(route.hosts)),
        upstream=upstream_name,
        strip_prefix=route.strip_prefix,
        auth=route.auth,
        roles=sorted_unique(role_names),
        permissions=sorted_unique(permission_codenames),
        priority=route.priority,
        enabled=route.enabled,
        preserve_host=route.preserve_host,
        allow_encoded_slashes=route.allow_encoded_slashes,
        max_body_bytes=route.max_body_bytes,
        connect_timeout_seconds=seconds_or_none(route.connect_timeout_seconds),
        read_timeout_seconds=seconds_or_none(route.read_timeout_seconds),
        retry_non_idempotent=route.retry_non_idempotent,
        shadow=route.shadow,
        rules=tuple(rules),
    )


def rule_spec(rule, role_names, permission_codenames):
    """Return the RuleSpec of a cleaned or stored RoleRule."""
    return RuleSpec(
        methods=tuple(patterns.parse_methods(rule.methods)),
        path=rule.path,
        roles=sorted_unique(role_names),
        permissions=sorted_unique(permission_codenames),
        shadow=rule.shadow,
    )
