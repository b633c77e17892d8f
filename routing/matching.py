"""The in-memory route table: routes compiled once per configuration version, and matching."""

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import DatabaseError, connection

from routing import metrics, patterns
from routing.conf import gateway_settings
from routing.exceptions import MethodNotAllowed, RouteNotFound

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CompiledUpstream:
    name: str
    targets: tuple  # of (url, weight)
    connect_timeout_seconds: float | None
    read_timeout_seconds: float | None
    balancing: str = "round_robin"
    retries: int = 1
    retry_on_statuses: frozenset = frozenset({502, 503, 504})
    failure_threshold: int = 5
    failure_statuses: frozenset = frozenset({500, 502, 503, 504})
    ejection_seconds: float = 30.0
    health_check_path: str = ""
    health_check_interval_seconds: float = 10.0
    health_check_timeout_seconds: float = 2.0


@dataclass(frozen=True, slots=True)
class CompiledRule:
    methods: frozenset | None
    path: str
    path_regex: object
    roles: frozenset
    permissions: frozenset
    shadow: bool = False

    def applies_to(self, method, path):
        """Return whether this rule covers a request with ``method`` and normalized ``path``."""
        if self.methods is not None and method not in self.methods:
            return False
        return self.path_regex is None or self.path_regex.match(path) is not None


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    name: str
    paths: tuple
    methods: frozenset | None
    hosts: tuple
    upstream: CompiledUpstream
    strip_prefix: str
    public: bool
    roles: frozenset
    permissions: frozenset
    priority: int
    rules: tuple
    allow_encoded_slashes: bool = False
    preserve_host: bool = False
    max_body_bytes: int | None = None
    connect_timeout_seconds: float | None = None
    read_timeout_seconds: float | None = None
    retry_non_idempotent: bool = False
    shadow: bool = False

    def allows_method(self, method):
        if self.methods is None:
            return True
        return method in self.methods or (method == "HEAD" and "GET" in self.methods)

    def allowed_methods(self):
        """Return the methods for an ``Allow`` header, HEAD included wherever GET is."""
        methods = set(self.methods or patterns.HTTP_METHODS)
        if "GET" in methods:
            methods.add("HEAD")
        return methods


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: CompiledRoute
    pattern: str


class TrieNode:
    """One segment position in the route trie.

    Each container is created on first use: most nodes of a large table have no
    children or no entries, and 10,000 routes make about 17,000 nodes.
    """

    __slots__ = ("literal", "star", "exact", "rest")

    def __init__(self):
        self.literal = None  # {segment: TrieNode}
        self.star = None
        self.exact = None  # entries of the patterns that end at this node
        self.rest = None  # entries of the patterns whose final "**" starts at this node


@dataclass
class RouteTable:
    """An immutable set of compiled routes, indexed by host and then by path segment.

    Routes without hosts share one trie, each exact host has its own, and each
    wildcard host such as ``*.example.com`` has one keyed by ``.example.com``.
    A request only walks the tries of its own host, so 10,000 routes that differ
    only by host cost no more to match than a few.
    """

    version: int
    routes: tuple
    root: TrieNode = field(default_factory=TrieNode)
    host_roots: dict = field(default_factory=dict)
    wildcard_roots: dict = field(default_factory=dict)
    loaded_at: float = 0.0

    @classmethod
    def build(cls, version, routes):
        table = cls(version=version, routes=tuple(routes), loaded_at=time.time())
        specificities = {}
        for route in table.routes:
            for root in table.roots_for(route):
                for pattern in route.paths:
                    table.insert(root, pattern, route, specificities)
        return table

    def roots_for(self, route):
        """Return the tries that a route belongs to: one per host pattern, or the shared one."""
        if not route.hosts:
            return [self.root]
        roots = []
        for host in route.hosts:
            if host.startswith("*."):
                roots.append(self.wildcard_roots.setdefault(host[1:], TrieNode()))
            else:
                roots.append(self.host_roots.setdefault(host, TrieNode()))
        return roots

    def insert(self, root, pattern, route, specificities):
        """Add ``pattern`` of ``route`` below ``root``; ``specificities`` shares equal sort keys between entries."""
        node = root
        specificity = patterns.pattern_specificity(pattern)
        specificity = specificities.setdefault(specificity, specificity)
        entry = (route, pattern, specificity)
        for segment in patterns.parse_pattern(pattern):
            if segment == patterns.DOUBLE_STAR:
                if node.rest is None:
                    node.rest = []
                node.rest.append(entry)
                return
            if segment == patterns.STAR:
                if node.star is None:
                    node.star = TrieNode()
                node = node.star
                continue
            if node.literal is None:
                node.literal = {}
            child = node.literal.get(segment)
            if child is None:
                child = node.literal[segment] = TrieNode()
            node = child
        if node.exact is None:
            node.exact = []
        node.exact.append(entry)

    def roots_of_host(self, host):
        """Return (trie, host rank) for each trie whose routes accept ``host``: 2 exact, 1 wildcard, 0 any."""
        roots = [(self.root, 0)]
        exact = self.host_roots.get(host)
        if exact is not None:
            roots.append((exact, 2))
        if self.wildcard_roots:
            # "*.example.com" accepts "a.example.com" and "a.b.example.com", never "example.com".
            dot = host.find(".")
            while dot != -1:
                wildcard = self.wildcard_roots.get(host[dot:])
                if wildcard is not None:
                    roots.append((wildcard, 1))
                dot = host.find(".", dot + 1)
        return roots

    def candidates(self, path, host=""):
        """Return (route, pattern, specificity, host rank) for every route whose host and pattern match."""
        segments = patterns.split_path(path)
        found = []
        for root, rank in self.roots_of_host(host):
            stack = [(root, 0)]
            while stack:
                node, index = stack.pop()
                if node.rest:
                    found.extend((*entry, rank) for entry in node.rest)
                if index == len(segments):
                    if node.exact:
                        found.extend((*entry, rank) for entry in node.exact)
                    continue
                segment = segments[index]
                child = node.literal.get(segment) if node.literal else None
                if child is not None:
                    stack.append((child, index + 1))
                if node.star is not None and segment != "":
                    stack.append((node.star, index + 1))
        return found

    def match(self, host, path, method):
        """Return the RouteMatch for a request, or raise RouteNotFound (404) or MethodNotAllowed (405).

        Among the routes whose host and pattern match, the highest priority wins,
        then an exact host over a wildcard host over none, then the more specific pattern.
        """
        matching = self.candidates(path, host)
        if not matching:
            raise RouteNotFound()
        allowed = [entry for entry in matching if entry[0].allows_method(method)]
        if not allowed:
            methods = set()
            for route, _pattern, _specificity, _rank in matching:
                methods |= route.allowed_methods()
            raise MethodNotAllowed(method, sorted(methods))
        route, pattern, _specificity, _rank = max(
            allowed, key=lambda entry: (entry[0].priority, entry[3], entry[2], entry[0].name)
        )
        return RouteMatch(route, pattern)


UPSTREAM_FIELDS = (
    "id", "name", "connect_timeout_seconds", "read_timeout_seconds", "balancing", "retries", "retry_on_statuses",
    "failure_threshold", "failure_statuses", "ejection_seconds", "health_check_path",
    "health_check_interval_seconds", "health_check_timeout_seconds",
)
ROUTE_FIELDS = (
    "id", "name", "paths", "methods", "hosts", "upstream_id", "strip_prefix", "auth", "priority",
    "allow_encoded_slashes", "preserve_host", "max_body_bytes", "connect_timeout_seconds",
    "read_timeout_seconds", "retry_non_idempotent", "shadow",
)


class Interner:
    """Share one object among equal frozensets, so that 10,000 routes with the same roles hold one set."""

    def __init__(self):
        self.values = {}

    def __call__(self, items):
        value = frozenset(items)
        return self.values.setdefault(value, value)


def group_names(rows):
    """Return {owner id: [name, ...]} from (owner id, name) rows."""
    grouped = {}
    for owner_id, name in rows:
        grouped.setdefault(owner_id, []).append(name)
    return grouped


def compile_upstream(row, targets):
    """Return the CompiledUpstream for an upstream's field values and its (url, weight) targets."""
    from routing.models import parse_status_list

    return CompiledUpstream(
        name=row["name"],
        targets=tuple(targets),
        connect_timeout_seconds=row["connect_timeout_seconds"],
        read_timeout_seconds=row["read_timeout_seconds"],
        balancing=row["balancing"],
        retries=row["retries"],
        retry_on_statuses=parse_status_list(row["retry_on_statuses"]),
        failure_threshold=row["failure_threshold"],
        failure_statuses=parse_status_list(row["failure_statuses"]),
        ejection_seconds=row["ejection_seconds"],
        health_check_path=row["health_check_path"],
        health_check_interval_seconds=row["health_check_interval_seconds"],
        health_check_timeout_seconds=row["health_check_timeout_seconds"],
    )


def compile_routes():
    """Read the enabled routes from the database and return them compiled.

    Plain value queries, one per table, instead of model instances: with 10,000
    routes, model instances and their prefetch caches cost a worker over 200 MB
    of memory that Python keeps after the build.
    """
    from routing.models import Route, RoleRule, Target, Upstream

    targets = {}
    for upstream_id, url, weight in Target.objects.order_by("id").values_list("upstream_id", "url", "weight"):
        targets.setdefault(upstream_id, []).append((url, weight))
    upstreams = {
        row["id"]: compile_upstream(row, targets.get(row["id"], ()))
        for row in Upstream.objects.values(*UPSTREAM_FIELDS)
    }

    enabled = {"route__enabled": True}
    route_roles = group_names(Route.roles.through.objects.filter(**enabled).values_list("route_id", "role__name"))
    route_permissions = group_names(
        Route.permissions.through.objects.filter(**enabled).values_list("route_id", "apipermission__codename")
    )
    rule_filter = {"rolerule__route__enabled": True}
    rule_roles = group_names(RoleRule.roles.through.objects.filter(**rule_filter).values_list("rolerule_id", "role__name"))
    rule_permissions = group_names(
        RoleRule.permissions.through.objects.filter(**rule_filter).values_list(
            "rolerule_id", "apipermission__codename"
        )
    )

    intern = Interner()
    rules = {}
    for row in RoleRule.objects.filter(**enabled).order_by("id").values("id", "route_id", "methods", "path", "shadow"):
        rules.setdefault(row["route_id"], []).append(
            CompiledRule(
                methods=intern(patterns.parse_methods(row["methods"])) or None,
                path=row["path"],
                path_regex=patterns.compile_pattern(row["path"]) if row["path"] else None,
                roles=intern(rule_roles.get(row["id"], ())),
                permissions=intern(rule_permissions.get(row["id"], ())),
                shadow=row["shadow"],
            )
        )

    compiled = []
    for row in Route.objects.filter(enabled=True).order_by("-priority", "name").values(*ROUTE_FIELDS):
        compiled.append(
            CompiledRoute(
                name=row["name"],
                paths=tuple(patterns.parse_paths(row["paths"])),
                methods=intern(patterns.parse_methods(row["methods"])) or None,
                hosts=tuple(patterns.parse_hosts(row["hosts"])),
                upstream=upstreams[row["upstream_id"]],
                strip_prefix=row["strip_prefix"].rstrip("/"),
                public=row["auth"] == Route.AUTH_PUBLIC,
                roles=intern(route_roles.get(row["id"], ())),
                permissions=intern(route_permissions.get(row["id"], ())),
                priority=row["priority"],
                rules=tuple(rules.get(row["id"], ())),
                allow_encoded_slashes=row["allow_encoded_slashes"],
                preserve_host=row["preserve_host"],
                max_body_bytes=row["max_body_bytes"],
                connect_timeout_seconds=row["connect_timeout_seconds"],
                read_timeout_seconds=row["read_timeout_seconds"],
                retry_non_idempotent=row["retry_non_idempotent"],
                shadow=row["shadow"],
            )
        )
    return compiled


@contextmanager
def managed_connection():
    """Drop this thread's database connection before and after the block when it is broken or past CONN_MAX_AGE.

    Proxied requests bypass Django's handler (routing.wsgi), whose
    request_started and request_finished signals do this for every other
    request. Without it each request thread would keep its connection open for
    good. Inside a transaction the connection is in use and stays.
    """
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()
    try:
        yield
    finally:
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


class RouteTableHolder:
    """The worker's current route table, rebuilt when the configuration version changes.

    The version is read at most once per CONFIG_CHECK_INTERVAL_SECONDS, so the
    request path makes no database query in between. If the database cannot be
    reached, the last table built keeps serving.
    """

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.table = None
        self.checked_at = None
        self.lock = threading.Lock()

    def get(self):
        """Return the current route table, rebuilding it first if it is due and out of date."""
        table = self.table
        now = self.clock()
        interval = gateway_settings.CONFIG_CHECK_INTERVAL_SECONDS
        if table is not None and self.checked_at is not None and now - self.checked_at < interval:
            return table
        # One thread checks; the others keep serving the table they have.
        if not self.lock.acquire(blocking=table is None):
            return table
        try:
            if self.table is not None and self.checked_at is not None and self.clock() - self.checked_at < interval:
                return self.table
            self.refresh()
            return self.table
        finally:
            self.lock.release()

    def refresh(self):
        from routing.version import current_version

        self.checked_at = self.clock()
        try:
            with managed_connection():
                version = current_version()
                if self.table is not None and self.table.version == version:
                    return
                table = RouteTable.build(version, compile_routes())
        except DatabaseError as exc:
            if self.table is None:
                raise
            logger.warning(
                "config_check_failed version=%s error=%s; serving the last route table",
                self.table.version,
                exc.__class__.__name__,
            )
            return
        previous = self.table.version if self.table is not None else None
        self.table = table
        metrics.record_table_loaded(table.version, table.loaded_at)
        logger.info("route_table_loaded version=%s previous=%s routes=%s", version, previous, len(table.routes))

    def clear(self):
        """Forget the current table, so that the next request rebuilds it."""
        with self.lock:
            self.table = None
            self.checked_at = None


route_tables = RouteTableHolder()
