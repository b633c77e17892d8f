"""The Configuration stored in the database."""

from accounts.models import ApiPermission, Role
from routing.declarative.specs import (
    Configuration,
    PermissionSpec,
    RoleSpec,
    route_spec,
    rule_spec,
    sorted_unique,
    upstream_spec,
)
from routing.models import Route, Upstream

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
