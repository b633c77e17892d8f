"""Validation of the YAML document into the desired Configuration."""

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from accounts.models import ApiPermission, Role
from routing.declarative.loading import (
    PERMISSION_KEYS,
    ROLE_KEYS,
    ROUTE_KEYS,
    RULE_KEYS,
    TARGET_KEYS,
    UPSTREAM_KEYS,
    describe,
    read_keys,
)
from routing.declarative.specs import (
    SECTIONS,
    STATUS_LIST_FIELDS,
    TOP_LEVEL_KEYS,
    UPSTREAM_ROW_FIELDS,
    Configuration,
    ConfigurationError,
    PermissionSpec,
    RoleSpec,
    route_spec,
    rule_spec,
    sorted_unique,
    upstream_spec,
)
from routing.models import RoleRule, Route, Target, Upstream, duplicate_message, route_overlap

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


def entry_label(section, index, name):
    """Return how messages name an entry, such as ``routes[2] (orders)``. The index counts from 0."""
    return f"{section}[{index}] ({name})" if name else f"{section}[{index}]"


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
