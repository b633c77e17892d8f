"""Declarative configuration: load a YAML file, validate it, plan the changes, apply them, export.

The file describes upstreams with their targets, API permissions, roles with their
permissions, and routes with their role rules. docs/configuration.md documents the
format. Validation runs each entry through the models' own full_clean(), so the file
and the admin console accept and reject the same values. Applying writes only the
rows that differ, so applying a file that already matches changes nothing and leaves
the configuration version as it is.
"""

import math
from dataclasses import dataclass, fields

import yaml
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction

from accounts.models import ApiPermission, Role
from routing import patterns
from routing.models import (
    ConfigVersion,
    RoleRule,
    Route,
    Target,
    Upstream,
    duplicate_message,
    parse_status_list,
    route_overlap,
)
from routing.version import current_version, one_bump

EXPORT_HEADER = (
    "# jwtgate configuration, exported by `manage.py exportconfig`.\n"
    "# Apply it with `manage.py applyconfig FILE`; docs/configuration.md describes the format.\n"
)

ADD = "add"
CHANGE = "change"
DELETE = "delete"

# The actor of the changes in the change history when the command applies a file.
ACTOR = "applyconfig"

# Sections in the order they are written: a role needs its permissions, and a route
# needs its upstream, roles and permissions.
WRITE_ORDER = ("permission", "role", "upstream", "route")
# Routes go first because Route.upstream is on_delete=PROTECT.
DELETE_ORDER = ("route", "upstream", "role", "permission")
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


# Loading


class UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a mapping with a repeated key.

    PyYAML keeps the last value of a repeated key, so a second ``roles:`` in a
    route would silently replace the first.
    """

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _value_node in node.value:
            # SafeLoader resolves merge keys (<<), which may repeat keys on purpose.
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                continue  # SafeLoader reports unhashable keys itself.
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text, source):
    """Return the YAML document in ``text``, or raise ConfigurationError naming the line of a syntax error."""
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        if mark is not None:
            message = f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}."
        else:
            message = f"invalid YAML: {problem}."
        raise ConfigurationError(source, [message]) from exc
    if data is None:
        # An empty file is far more often a mistake than a wish to delete everything with --prune.
        raise ConfigurationError(source, ["the file contains no YAML document; write {} for an empty configuration."])
    return data


# Type checks of the raw YAML values

REQUIRED = object()


@dataclass(frozen=True)
class Key:
    """An allowed key of an entry: the kind of value it takes and its default (REQUIRED if none)."""

    kind: str
    default: object = REQUIRED


def describe(value):
    """Return the YAML type of ``value`` with an article, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def kind_problem(kind, value):
    """Return a message if ``value`` is not of ``kind``, else None."""
    if kind == "string":
        if not isinstance(value, str):
            return f"expected a string, got {describe(value)}."
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return f"expected an integer, got {describe(value)}."
    elif kind == "integer or null":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            return f"expected an integer or null, got {describe(value)}."
    elif kind == "number or null":
        if value is not None and not is_number(value):
            return f"expected a number of seconds or null, got {describe(value)}."
    elif kind == "number":
        if not is_number(value):
            return f"expected a number of seconds, got {describe(value)}."
    elif kind == "boolean":
        if not isinstance(value, bool):
            return f"expected true or false, got {describe(value)}."
    elif kind == "list of strings":
        if isinstance(value, str):
            return f"expected a list of strings, got {describe(value)}; write it as [{value}]."
        if not isinstance(value, list):
            return f"expected a list of strings, got {describe(value)}."
        for index, item in enumerate(value):
            if not isinstance(item, str):
                return f"expected a list of strings, but item {index} is {describe(item)}."
    elif kind == "list of status codes":
        if not isinstance(value, list):
            return f"expected a list of HTTP status codes such as [502, 503], got {describe(value)}."
        for index, item in enumerate(value):
            if not isinstance(item, int) or isinstance(item, bool):
                return f"expected a list of HTTP status codes, but item {index} is {describe(item)}."
            if not 100 <= item <= 599:
                return f"item {index} ({item}) is not an HTTP status code; use numbers from 100 to 599."
    elif kind == "list of mappings":
        if not isinstance(value, list):
            return f"expected a list of mappings, got {describe(value)}."
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return None


# A stand-in for a missing or mistyped value, so that the rest of the entry can still be checked.
PLACEHOLDERS = {
    "string": "",
    "integer": 0,
    "integer or null": None,
    "number or null": None,
    "number": 0.0,
    "list of status codes": [],
    "boolean": False,
    "list of strings": [],
    "list of mappings": [],
}


def read_keys(entry, keys, where, errors):
    """Return the entry's values with defaults filled in, and the set of keys that are invalid.

    Adds a message to ``errors`` for each unknown key, missing required key and value
    of the wrong type. A missing optional key gets its default. An invalid key, which
    is a missing required key or a value of the wrong type, gets a placeholder, so that
    the caller can go on checking the other keys. Returns (None, set()) when the entry
    is not a mapping.
    """
    if not isinstance(entry, dict):
        errors.append(f"{where}: expected a mapping, got {describe(entry)}.")
        return None, set()
    for key in entry:
        if key not in keys:
            errors.append(f"{where}: {key}: unknown key; expected one of {', '.join(keys)}.")
    values = {}
    invalid = set()
    for key, spec in keys.items():
        if key in entry:
            problem = kind_problem(spec.kind, entry[key])
            if problem is None:
                values[key] = entry[key]
                continue
            errors.append(f"{where}: {key}: {problem}")
        elif spec.default is REQUIRED:
            errors.append(f"{where}: {key}: missing; this key is required.")
        else:
            values[key] = list(spec.default) if isinstance(spec.default, list) else spec.default
            continue
        invalid.add(key)
        values[key] = PLACEHOLDERS[spec.kind]
    return values, invalid


PERMISSION_KEYS = {"codename": Key("string"), "description": Key("string", "")}
ROLE_KEYS = {
    "name": Key("string"),
    "description": Key("string", ""),
    "permissions": Key("list of strings", []),
}
UPSTREAM_KEYS = {
    "name": Key("string"),
    "description": Key("string", ""),
    "connect_timeout_seconds": Key("number or null", None),
    "read_timeout_seconds": Key("number or null", None),
    "balancing": Key("string", Upstream.BALANCING_ROUND_ROBIN),
    "retries": Key("integer", 1),
    "retry_on_statuses": Key("list of status codes", [502, 503, 504]),
    "failure_threshold": Key("integer", 5),
    "failure_statuses": Key("list of status codes", [500, 502, 503, 504]),
    "ejection_seconds": Key("number", 30.0),
    "health_check_path": Key("string", ""),
    "health_check_interval_seconds": Key("number", 10.0),
    "health_check_timeout_seconds": Key("number", 2.0),
    "targets": Key("list of mappings"),
}
TARGET_KEYS = {"url": Key("string"), "weight": Key("integer", 1)}
ROUTE_KEYS = {
    "name": Key("string"),
    "paths": Key("list of strings"),
    "methods": Key("list of strings", []),
    "hosts": Key("list of strings", []),
    "upstream": Key("string"),
    "strip_prefix": Key("string", ""),
    "auth": Key("string", Route.AUTH_REQUIRED),
    "roles": Key("list of strings", []),
    "permissions": Key("list of strings", []),
    "priority": Key("integer", 0),
    "enabled": Key("boolean", True),
    "preserve_host": Key("boolean", False),
    "allow_encoded_slashes": Key("boolean", False),
    "max_body_bytes": Key("integer or null", None),
    "connect_timeout_seconds": Key("number or null", None),
    "read_timeout_seconds": Key("number or null", None),
    "retry_non_idempotent": Key("boolean", False),
    "shadow": Key("boolean", False),
    "rules": Key("list of mappings", []),
}
RULE_KEYS = {
    "methods": Key("list of strings", []),
    "path": Key("string", ""),
    "roles": Key("list of strings", []),
    "permissions": Key("list of strings", []),
    "shadow": Key("boolean", False),
}


def entry_name(entry, key):
    """Return the entry's name when it is a string, else None."""
    if isinstance(entry, dict) and isinstance(entry.get(key), str):
        return entry[key]
    return None


def model_errors(where, exc, skipped=()):
    """Return one message per problem in a model ValidationError, each naming the field.

    Problems of the fields in ``skipped`` are left out, because their values are
    placeholders for keys already reported as missing or invalid.
    """
    messages = []
    for field_name, field_messages in exc.message_dict.items():
        if field_name in skipped:
            continue
        prefix = where if field_name == NON_FIELD_ERRORS else f"{where}: {field_name}"
        messages.extend(f"{prefix}: {message}" for message in field_messages)
    return messages


def sorted_unique(values):
    return tuple(sorted(set(values)))


def entry_label(section, index, name):
    """Return how messages name an entry, such as ``routes[2] (orders)``. The index counts from 0."""
    return f"{section}[{index}] ({name})" if name else f"{section}[{index}]"


# Validation: from the YAML document to the desired Configuration


class ConfigurationParser:
    """Check a YAML document against the format and the models, and build the desired Configuration.

    Every problem is collected, so that one run reports all of them. Names that
    routes, rules and roles refer to must exist in the file or in the database. With
    ``prune`` they must be in the file, because everything else is about to be deleted.
    """

    def __init__(self, source, prune=False):
        self.source = source
        self.prune = prune
        self.errors = []
        self.route_labels = {}  # route name -> how messages name its entry

    def parse(self, document):
        """Return the Configuration in ``document``, or raise ConfigurationError listing every problem."""
        sections = self.read_sections(document)
        self.collect_known_names(sections)
        configuration = Configuration(
            permissions=self.parse_permissions(sections["permissions"], sections["roles"]),
            roles=self.parse_roles(sections["roles"]),
            upstreams=self.parse_upstreams(sections["upstreams"]),
            routes=self.parse_routes(sections["routes"]),
        )
        self.check_duplicate_routes(configuration.routes)
        if self.errors:
            raise ConfigurationError(self.source, self.errors)
        return configuration

    def read_sections(self, document):
        sections = {key: [] for key in TOP_LEVEL_KEYS}
        if not isinstance(document, dict):
            self.errors.append(
                f"expected a mapping with the keys {', '.join(TOP_LEVEL_KEYS)} at the top level, "
                f"got {describe(document)}."
            )
            return sections
        for key, value in document.items():
            if key not in sections:
                self.errors.append(f"{key}: unknown top-level key; expected one of {', '.join(TOP_LEVEL_KEYS)}.")
            elif not isinstance(value, list):
                self.errors.append(f"{key}: expected a list, got {describe(value)}; write {key}: [] for none.")
            else:
                sections[key] = value
        return sections

    def collect_known_names(self, sections):
        """Record the names that references may use: those in the file, plus the database's unless pruning."""
        self.file_upstreams = {entry_name(entry, "name") for entry in sections["upstreams"]} - {None}
        self.file_roles = {entry_name(entry, "name") for entry in sections["roles"]} - {None}
        self.file_permissions = {entry_name(entry, "codename") for entry in sections["permissions"]} - {None}
        for entry in sections["roles"]:
            permissions = entry.get("permissions") if isinstance(entry, dict) else None
            if isinstance(permissions, list):
                self.file_permissions.update(item for item in permissions if isinstance(item, str))

        if self.prune:
            self.database_upstreams = self.database_roles = self.database_permissions = set()
        else:
            self.database_upstreams = set(Upstream.objects.values_list("name", flat=True))
            self.database_roles = set(Role.objects.values_list("name", flat=True))
            self.database_permissions = set(ApiPermission.objects.values_list("codename", flat=True))

    def check_duplicate(self, seen, name, section, index, where, key):
        """Record an error if ``name`` already appeared in ``section``, else remember its index."""
        if name is None:
            return
        if name in seen:
            self.errors.append(f"{where}: {key}: duplicate of {section}[{seen[name]}].")
        else:
            seen[name] = index

    def clean_model(self, instance, where, invalid, exclude=()):
        """Run ``instance.full_clean()`` and record its problems, except for fields in ``invalid``."""
        try:
            instance.full_clean(exclude=[*exclude, *invalid], validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            self.errors.extend(model_errors(where, exc, skipped=invalid))

    def check_references(self, where, key, names, kind):
        """Record an error naming every role, permission or upstream in ``names`` that does not exist."""
        if kind == "upstream":
            known = self.file_upstreams | self.database_upstreams
        elif kind == "role":
            known = self.file_roles | self.database_roles
        else:
            known = self.file_permissions | self.database_permissions
        missing = sorted(set(names) - known)
        if not missing:
            return
        if len(missing) == 1:
            listed, pronoun = f"{kind} {missing[0]!r}", "it"
        else:
            listed, pronoun = f"{kind}s {', '.join(repr(name) for name in missing)}", "them"
        fix = f"define {pronoun} under {SECTIONS[kind]} or correct the name"
        if self.prune:
            self.errors.append(
                f"{where}: {key}: {listed} not defined in the file, and --prune deletes every {kind} "
                f"that the file omits; {fix}."
            )
        else:
            self.errors.append(f"{where}: {key}: {listed} not found in the file or the database; {fix}.")

    def parse_permissions(self, entries, role_entries):
        permissions = {}
        seen = {}
        for index, entry in enumerate(entries):
            codename = entry_name(entry, "codename")
            where = entry_label("permissions", index, codename)
            errors_before = len(self.errors)
            self.check_duplicate(seen, codename, "permissions", index, where, "codename")
            values, invalid = read_keys(entry, PERMISSION_KEYS, where, self.errors)
            if values is None:
                continue
            permission = ApiPermission(codename=values["codename"], description=values["description"])
            self.clean_model(permission, where, invalid)
            if len(self.errors) == errors_before:
                permissions[permission.codename] = PermissionSpec(permission.codename, permission.description)

        # A codename that only a role lists is created when missing, so it must be a valid name.
        codename_field = ApiPermission._meta.get_field("codename")
        checked = set(seen)
        for index, entry in enumerate(role_entries):
            codenames = entry.get("permissions") if isinstance(entry, dict) else None
            if not isinstance(codenames, list):
                continue
            where = entry_label("roles", index, entry_name(entry, "name"))
            for codename in codenames:
                if not isinstance(codename, str) or codename in checked:
                    continue
                checked.add(codename)
                try:
                    codename_field.clean(codename, None)
                except ValidationError as exc:
                    self.errors.extend(f"{where}: permissions: {message}" for message in exc.messages)
                    continue
                permissions[codename] = PermissionSpec(codename, None)
        return permissions

    def parse_roles(self, entries):
        roles = {}
        seen = {}
        for index, entry in enumerate(entries):
            name = entry_name(entry, "name")
            where = entry_label("roles", index, name)
            errors_before = len(self.errors)
            self.check_duplicate(seen, name, "roles", index, where, "name")
            values, invalid = read_keys(entry, ROLE_KEYS, where, self.errors)
            if values is None:
                continue
            role = Role(name=values["name"], description=values["description"])
            self.clean_model(role, where, invalid)
            if len(self.errors) == errors_before:
                roles[role.name] = RoleSpec(role.name, role.description, sorted_unique(values["permissions"]))
        return roles

    def parse_upstreams(self, entries):
        upstreams = {}
        seen = {}
        for index, entry in enumerate(entries):
            name = entry_name(entry, "name")
            where = entry_label("upstreams", index, name)
            errors_before = len(self.errors)
            self.check_duplicate(seen, name, "upstreams", index, where, "name")
            values, invalid = read_keys(entry, UPSTREAM_KEYS, where, self.errors)
            if values is None:
                continue
            row_values = {name: values[name] for name in UPSTREAM_ROW_FIELDS}
            for name in STATUS_LIST_FIELDS:
                row_values[name] = ",".join(str(status) for status in values[name])
            upstream = Upstream(name=values["name"], **row_values)
            self.clean_model(upstream, where, invalid)
            targets = {} if "targets" in invalid else self.parse_targets(values["targets"], where)
            if len(self.errors) == errors_before:
                upstreams[upstream.name] = upstream_spec(upstream, targets.items())
        return upstreams

    def parse_targets(self, entries, upstream_where):
        """Return the upstream's valid targets as {url: weight}, recording the problems of the others."""
        if not entries:
            self.errors.append(f"{upstream_where}: targets: enter at least one target.")
            return {}
        targets = {}
        seen = {}
        for index, entry in enumerate(entries):
            where = f"{upstream_where}: targets[{index}]"
            values, invalid = read_keys(entry, TARGET_KEYS, where, self.errors)
            if values is None:
                continue
            # Target.save() stores the URL stripped of spaces and trailing slashes.
            url = values["url"].strip().rstrip("/")
            target = Target(url=url, weight=values["weight"])
            errors_before = len(self.errors)
            self.clean_model(target, where, invalid, exclude=["upstream"])
            if "url" not in invalid:
                self.check_duplicate(seen, url, "targets", index, where, "url")
            if len(self.errors) == errors_before and not invalid:
                targets[url] = target.weight
        return targets

    def parse_routes(self, entries):
        routes = {}
        seen = {}
        for index, entry in enumerate(entries):
            name = entry_name(entry, "name")
            where = entry_label("routes", index, name)
            errors_before = len(self.errors)
            self.check_duplicate(seen, name, "routes", index, where, "name")
            values, invalid = read_keys(entry, ROUTE_KEYS, where, self.errors)
            if values is None:
                continue
            route = Route(
                name=values["name"],
                paths="\n".join(values["paths"]),
                methods=",".join(values["methods"]),
                hosts="\n".join(values["hosts"]),
                strip_prefix=values["strip_prefix"],
                auth=values["auth"],
                priority=values["priority"],
                enabled=values["enabled"],
                preserve_host=values["preserve_host"],
                allow_encoded_slashes=values["allow_encoded_slashes"],
                max_body_bytes=values["max_body_bytes"],
                connect_timeout_seconds=values["connect_timeout_seconds"],
                read_timeout_seconds=values["read_timeout_seconds"],
                retry_non_idempotent=values["retry_non_idempotent"],
                shadow=values["shadow"],
            )
            # The upstream may be new in this file, so it is checked by name instead.
            self.clean_model(route, where, invalid, exclude=["upstream"])
            if "upstream" not in invalid:
                self.check_references(where, "upstream", [values["upstream"]], "upstream")
            self.check_references(where, "roles", values["roles"], "role")
            self.check_references(where, "permissions", values["permissions"], "permission")
            rules = self.parse_rules(values["rules"], where)
            if len(self.errors) == errors_before:
                routes[route.name] = route_spec(
                    route, values["upstream"], values["roles"], values["permissions"], rules
                )
                self.route_labels[route.name] = where
        return routes

    def check_duplicate_routes(self, routes):
        """Record an error for each enabled route that claims the same requests as an earlier enabled route.

        The file's routes are compared with each other and, unless pruning, with the
        enabled routes in the database that the file leaves out. This replaces the
        database check of Route.validate_unique, which would compare with routes
        that the file is about to change.
        """
        candidates = []
        if not self.prune:
            kept = Route.objects.filter(enabled=True).exclude(name__in=routes).order_by("name")
            for row in kept:
                try:
                    candidates.append((row.name, row.path_list, row.method_list, row.host_list))
                except ValidationError:
                    continue
        for name, spec in routes.items():  # in file order
            if spec.enabled:
                candidates.append((name, spec.paths, spec.methods, spec.hosts))

        # Only routes with the same hosts and a pattern in common can overlap.
        by_key = {}
        for candidate in candidates:
            name, paths, _methods, hosts = candidate
            for pattern in paths:
                by_key.setdefault((frozenset(hosts), pattern), []).append(candidate)
        reported = set()
        for name, paths, methods, hosts in candidates:
            if name not in routes or name in reported:
                continue
            earlier = []
            for pattern in paths:
                for other in by_key[(frozenset(hosts), pattern)]:
                    if other[0] == name:
                        break
                    if other not in earlier:
                        earlier.append(other)
            for other in earlier:
                overlap = route_overlap(paths, methods, hosts, *other)
                if overlap is not None:
                    self.errors.append(f"{self.route_labels[name]}: paths: {duplicate_message(overlap)}")
                    reported.add(name)
                    break

    def parse_rules(self, entries, route_where):
        """Return the route's valid rules as a tuple of RuleSpec, recording the problems of the others."""
        rules = []
        for index, entry in enumerate(entries):
            where = f"{route_where}: rules[{index}]"
            values, invalid = read_keys(entry, RULE_KEYS, where, self.errors)
            if values is None:
                continue
            errors_before = len(self.errors)
            rule = RoleRule(methods=",".join(values["methods"]), path=values["path"], shadow=values["shadow"])
            self.clean_model(rule, where, invalid, exclude=["route"])
            self.check_references(where, "roles", values["roles"], "role")
            self.check_references(where, "permissions", values["permissions"], "permission")
            if len(self.errors) == errors_before and not invalid:
                rules.append(rule_spec(rule, values["roles"], values["permissions"]))
        return tuple(rules)


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


# Reading the database


def read_configuration():
    """Return the Configuration stored in the database."""
    permissions = {
        permission.codename: PermissionSpec(permission.codename, permission.description)
        for permission in ApiPermission.objects.all()
    }
    roles = {
        role.name: RoleSpec(
            role.name, role.description, sorted_unique(permission.codename for permission in role.permissions.all())
        )
        for role in Role.objects.prefetch_related("permissions")
    }
    upstreams = {
        upstream.name: upstream_spec(upstream, ((target.url, target.weight) for target in upstream.targets.all()))
        for upstream in Upstream.objects.prefetch_related("targets")
    }
    routes = {}
    queryset = Route.objects.select_related("upstream").prefetch_related(
        "roles", "permissions", "rules__roles", "rules__permissions"
    )
    for route in queryset:
        rules = [
            rule_spec(
                rule,
                [role.name for role in rule.roles.all()],
                [permission.codename for permission in rule.permissions.all()],
            )
            for rule in sorted(route.rules.all(), key=lambda rule: rule.pk)
        ]
        routes[route.name] = route_spec(
            route,
            route.upstream.name,
            [role.name for role in route.roles.all()],
            [permission.codename for permission in route.permissions.all()],
            rules,
        )
    return Configuration(upstreams=upstreams, permissions=permissions, roles=roles, routes=routes)


# Planning


def plan_changes(desired, current, prune=False):
    """Return the Changes that turn ``current`` into ``desired``, writes in dependency order before deletions."""
    changes = []
    for kind in WRITE_ORDER:
        desired_entries = getattr(desired, SECTIONS[kind])
        current_entries = getattr(current, SECTIONS[kind])
        for name in sorted(desired_entries):
            if name not in current_entries:
                changes.append(Change(ADD, kind, name))
                continue
            names = changed_fields(desired_entries[name], current_entries[name])
            if names:
                changes.append(Change(CHANGE, kind, name, names))
    if prune:
        for kind in DELETE_ORDER:
            omitted = set(getattr(current, SECTIONS[kind])) - set(getattr(desired, SECTIONS[kind]))
            changes.extend(Change(DELETE, kind, name) for name in sorted(omitted))
    return changes


# Writing


def write_permission(spec, change):
    if change.action == ADD:
        ApiPermission.objects.create(codename=spec.codename, description=spec.description or "")
        return
    permission = ApiPermission.objects.get(codename=spec.codename)
    permission.description = spec.description
    permission.save(update_fields=["description"])


def write_role(spec, change):
    if change.action == ADD:
        role = Role.objects.create(name=spec.name, description=spec.description)
        changed = ("permissions",) if spec.permissions else ()
    else:
        role = Role.objects.get(name=spec.name)
        changed = change.fields
    if change.action == CHANGE and "description" in changed:
        role.description = spec.description
        role.save(update_fields=["description"])
    if "permissions" in changed:
        role.permissions.set(ApiPermission.objects.filter(codename__in=spec.permissions))


def upstream_row_values(spec):
    """Return the model attribute values of an UpstreamSpec's row fields."""
    values = {name: getattr(spec, name) for name in UPSTREAM_ROW_FIELDS}
    for name in STATUS_LIST_FIELDS:
        values[name] = ",".join(str(status) for status in values[name])
    return values


def write_upstream(spec, change):
    row_values = upstream_row_values(spec)
    if change.action == ADD:
        upstream = Upstream.objects.create(name=spec.name, **row_values)
        for url, weight in spec.targets:
            Target.objects.create(upstream=upstream, url=url, weight=weight)
        return
    upstream = Upstream.objects.get(name=spec.name)
    update_fields = [name for name in UPSTREAM_ROW_FIELDS if name in change.fields]
    if update_fields:
        for name in update_fields:
            setattr(upstream, name, row_values[name])
        upstream.save(update_fields=update_fields)
    if "targets" in change.fields:
        write_targets(upstream, dict(spec.targets))


def write_targets(upstream, weights):
    """Make the upstream's targets match ``weights`` ({url: weight}), writing only the targets that differ."""
    existing = {target.url: target for target in upstream.targets.all()}
    for url, target in existing.items():
        if url not in weights:
            target.delete()
    for url, weight in weights.items():
        target = existing.get(url)
        if target is None:
            Target.objects.create(upstream=upstream, url=url, weight=weight)
        elif target.weight != weight:
            target.weight = weight
            target.save(update_fields=["weight"])


def route_row_values(spec, names):
    """Return the model attribute values of a RouteSpec's row fields in ``names``."""
    values = {}
    for name in names:
        if name in {"paths", "hosts"}:
            values[name] = "\n".join(getattr(spec, name))
        elif name == "methods":
            values[name] = ",".join(spec.methods)
        elif name == "upstream":
            values[name] = Upstream.objects.get(name=spec.upstream)
        else:
            values[name] = getattr(spec, name)
    return values


def write_route(spec, change):
    if change.action == ADD:
        route = Route.objects.create(name=spec.name, **route_row_values(spec, ROUTE_ROW_FIELDS))
        changed = tuple(name for name in ("roles", "permissions", "rules") if getattr(spec, name))
    else:
        route = Route.objects.get(name=spec.name)
        changed = change.fields
        update_fields = [name for name in ROUTE_ROW_FIELDS if name in changed]
        if update_fields:
            for name, value in route_row_values(spec, update_fields).items():
                setattr(route, name, value)
            route.save(update_fields=update_fields)
    if "roles" in changed:
        route.roles.set(Role.objects.filter(name__in=spec.roles))
    if "permissions" in changed:
        route.permissions.set(ApiPermission.objects.filter(codename__in=spec.permissions))
    if "rules" in changed:
        # Rules have no names to match them by, so a changed list is replaced as a whole.
        for rule in route.rules.all():
            rule.delete()
        for rule in spec.rules:
            write_rule(route, rule)


def write_rule(route, spec):
    rule = RoleRule.objects.create(route=route, methods=",".join(spec.methods), path=spec.path, shadow=spec.shadow)
    if spec.roles:
        rule.roles.set(Role.objects.filter(name__in=spec.roles))
    if spec.permissions:
        rule.permissions.set(ApiPermission.objects.filter(codename__in=spec.permissions))


WRITERS = {"permission": write_permission, "role": write_role, "upstream": write_upstream, "route": write_route}
MODEL_KEYS = {
    "permission": (ApiPermission, "codename"),
    "role": (Role, "name"),
    "upstream": (Upstream, "name"),
    "route": (Route, "name"),
}


def apply_change(change, desired):
    """Write one planned change to the database."""
    if change.action == DELETE:
        model, key = MODEL_KEYS[change.kind]
        # delete() per object sends post_delete, which bumps the configuration version.
        for row in model.objects.filter(**{key: change.name}):
            row.delete()
        return
    spec = getattr(desired, SECTIONS[change.kind])[change.name]
    WRITERS[change.kind](spec, change)


def apply_configuration(text, source="<input>", prune=False, dry_run=False, expected_changes=None):
    """Make the database match the YAML configuration in ``text`` and return an ApplyResult.

    Raises ConfigurationError, listing every problem, when the file is invalid. All
    reads and writes run in one transaction, so an invalid file or a failed write
    changes nothing. With ``dry_run`` the changes are planned but not written. With
    ``expected_changes`` (the changes of an earlier dry run), raises PlanChanged and
    writes nothing when the plan is no longer the same, because the stored
    configuration changed in between.
    """
    from console.config.history import attribute_changes
    from console.config.models import ConfigChange

    document = load_yaml(text, source)
    # The change history names "applyconfig" as the actor, unless the console's
    # upload page runs this for a signed-in user.
    with attribute_changes(ConfigChange.SOURCE_APPLYCONFIG, actor=ACTOR, keep_outer=True), transaction.atomic():
        if not dry_run:
            # On PostgreSQL this row lock makes a second applyconfig wait until the
            # first commits, so that it plans against the state the first one left.
            # SQLite ignores it and allows one writer at a time anyway.
            ConfigVersion.objects.select_for_update().filter(pk=1).first()
        desired = ConfigurationParser(source, prune=prune).parse(document)
        changes = plan_changes(desired, read_configuration(), prune=prune)
        if expected_changes is not None and tuple(changes) != tuple(expected_changes):
            raise PlanChanged(tuple(changes))
        if not dry_run:
            # One version bump for the whole file, not one per row written.
            with one_bump():
                for change in changes:
                    apply_change(change, desired)
        version = current_version()
    return ApplyResult(changes=tuple(changes), dry_run=dry_run, version=version)


# Exporting


class ExportDumper(yaml.SafeDumper):
    """A safe YAML dumper that indents lists under their key and writes lists of scalars on one line."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)

    def ignore_aliases(self, data):
        # Anchors and aliases (&id001, *id001) would make the file harder to read and edit.
        return True


def represent_list(dumper, data):
    flow = all(not isinstance(item, (list, dict)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


ExportDumper.add_representer(list, represent_list)


def configuration_document(configuration):
    """Return ``configuration`` as the YAML file's data, entries sorted by name and keys in file order."""
    upstreams = [
        {
            "name": spec.name,
            "description": spec.description,
            "connect_timeout_seconds": spec.connect_timeout_seconds,
            "read_timeout_seconds": spec.read_timeout_seconds,
            "balancing": spec.balancing,
            "retries": spec.retries,
            "retry_on_statuses": list(spec.retry_on_statuses),
            "failure_threshold": spec.failure_threshold,
            "failure_statuses": list(spec.failure_statuses),
            "ejection_seconds": spec.ejection_seconds,
            "health_check_path": spec.health_check_path,
            "health_check_interval_seconds": spec.health_check_interval_seconds,
            "health_check_timeout_seconds": spec.health_check_timeout_seconds,
            "targets": [{"url": url, "weight": weight} for url, weight in spec.targets],
        }
        for spec in sorted_by_name(configuration.upstreams)
    ]
    permissions = [
        {"codename": spec.codename, "description": spec.description or ""}
        for spec in sorted_by_name(configuration.permissions)
    ]
    roles = [
        {"name": spec.name, "description": spec.description, "permissions": list(spec.permissions)}
        for spec in sorted_by_name(configuration.roles)
    ]
    routes = [route_document(spec) for spec in sorted_by_name(configuration.routes)]
    return {"upstreams": upstreams, "permissions": permissions, "roles": roles, "routes": routes}


def sorted_by_name(entries):
    return [entries[name] for name in sorted(entries)]


def route_document(spec):
    return {
        "name": spec.name,
        "paths": list(spec.paths),
        "methods": list(spec.methods),
        "hosts": list(spec.hosts),
        "upstream": spec.upstream,
        "strip_prefix": spec.strip_prefix,
        "auth": spec.auth,
        "roles": list(spec.roles),
        "permissions": list(spec.permissions),
        "priority": spec.priority,
        "enabled": spec.enabled,
        "preserve_host": spec.preserve_host,
        "allow_encoded_slashes": spec.allow_encoded_slashes,
        "max_body_bytes": spec.max_body_bytes,
        "connect_timeout_seconds": spec.connect_timeout_seconds,
        "read_timeout_seconds": spec.read_timeout_seconds,
        "retry_non_idempotent": spec.retry_non_idempotent,
        "shadow": spec.shadow,
        "rules": [
            {
                "methods": list(rule.methods),
                "path": rule.path,
                "roles": list(rule.roles),
                "permissions": list(rule.permissions),
                "shadow": rule.shadow,
            }
            for rule in spec.rules
        ],
    }


def export_configuration():
    """Return the stored configuration as YAML text in the applyconfig format, the same text for the same data."""
    document = configuration_document(read_configuration())
    body = yaml.dump(document, Dumper=ExportDumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return EXPORT_HEADER + body
