"""YAML loading, the allowed keys of each kind of entry, and the type checks of their raw values."""

import math
from dataclasses import dataclass

import yaml

from routing.declarative.specs import ConfigurationError
from routing.models import Route, Upstream

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
