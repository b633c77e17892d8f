"""The plan of changes from the stored to the desired configuration, and the writes that carry it out."""

from django.db import transaction

from accounts.models import ApiPermission, Role
from routing.declarative.database import read_configuration
from routing.declarative.loading import load_yaml
from routing.declarative.parsing import ConfigurationParser
from routing.declarative.specs import (
    ADD,
    CHANGE,
    DELETE,
    ROUTE_ROW_FIELDS,
    SECTIONS,
    STATUS_LIST_FIELDS,
    UPSTREAM_ROW_FIELDS,
    ApplyResult,
    Change,
    PlanChanged,
    changed_fields,
)
from routing.models import ConfigVersion, RoleRule, Route, Target, Upstream
from routing.version import current_version, one_bump

# The actor of the changes in the change history when the command applies a file.
ACTOR = "applyconfig"

# Sections in the order they are written: a role needs its permissions, and a route
# needs its upstream, roles and permissions.
WRITE_ORDER = ("permission", "role", "upstream", "route")
# Routes go first because Route.upstream is on_delete=PROTECT.
DELETE_ORDER = ("route", "upstream", "role", "permission")


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
