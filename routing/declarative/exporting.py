"""Export of the stored configuration as YAML text in the applyconfig format."""

import yaml

from routing.declarative.database import read_configuration

EXPORT_HEADER = (
    "# jwtgate configuration, exported by `manage.py exportconfig`.\n"
    "# Apply it with `manage.py applyconfig FILE`; docs/configuration.md describes the format.\n"
)


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
