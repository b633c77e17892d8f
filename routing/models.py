"""Upstreams, their targets, routes and role rules, and the configuration version."""

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from accounts.models import ApiPermission, Role
from routing import patterns
from routing.conf import gateway_owned_segments

NAME_HELP = "Letters, digits, - and _; used in logs, metrics and the YAML file."


def validate_status_list(value):
    """Reject a comma-separated list with anything but HTTP status codes from 100 to 599."""
    for item in value.split(","):
        item = item.strip()
        if item and not (item.isdigit() and 100 <= int(item) <= 599):
            raise ValidationError(
                f"{item!r} is not an HTTP status code; use numbers from 100 to 599 separated by commas.",
                code="invalid_status",
            )


def parse_status_list(value):
    """Return the status codes in a comma-separated list as a frozenset of ints."""
    return frozenset(int(item) for item in value.split(",") if item.strip())


class Upstream(models.Model):
    """A service behind the gateway, reached through one or more targets."""

    name = models.SlugField(max_length=100, unique=True, help_text=NAME_HELP)
    description = models.CharField(max_length=200, blank=True)
    connect_timeout_seconds = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001)],
        help_text="Seconds to wait for a TCP connection; empty uses UPSTREAM_CONNECT_TIMEOUT_SECONDS.",
    )
    read_timeout_seconds = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001)],
        help_text="Seconds to wait between bytes of the response; empty uses UPSTREAM_READ_TIMEOUT_SECONDS.",
    )

    BALANCING_ROUND_ROBIN = "round_robin"
    BALANCING_LEAST_OUTSTANDING = "least_outstanding"
    BALANCING_CHOICES = [
        (BALANCING_ROUND_ROBIN, "weighted round robin"),
        (BALANCING_LEAST_OUTSTANDING, "least outstanding requests (weighted)"),
    ]
    balancing = models.CharField(max_length=20, choices=BALANCING_CHOICES, default=BALANCING_ROUND_ROBIN)
    retries = models.PositiveSmallIntegerField(
        default=1,
        validators=[MaxValueValidator(10)],
        help_text="Further attempts on another target after a connect failure or a retryable status.",
    )
    retry_on_statuses = models.CharField(
        max_length=100,
        blank=True,
        default="502,503,504",
        validators=[validate_status_list],
        help_text="Comma-separated upstream statuses that are retried (idempotent methods only).",
    )
    failure_threshold = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1)],
        help_text="Consecutive failures after which a target is ejected.",
    )
    failure_statuses = models.CharField(
        max_length=100,
        blank=True,
        default="500,502,503,504",
        validators=[validate_status_list],
        help_text="Comma-separated upstream statuses that count as failures, besides connect errors and timeouts.",
    )
    ejection_seconds = models.FloatField(
        default=30,
        validators=[MinValueValidator(0.1)],
        help_text="Seconds an ejected target rests before one trial request may test it again.",
    )
    health_check_path = models.CharField(
        max_length=200,
        blank=True,
        help_text="A path probed on every target (for example /healthz); empty turns active checks off.",
    )
    health_check_interval_seconds = models.FloatField(default=10, validators=[MinValueValidator(0.5)])
    health_check_timeout_seconds = models.FloatField(default=2, validators=[MinValueValidator(0.1)])

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


def validate_target_url(value):
    """Reject a target URL that is not a plain http(s) base URL."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"}:
        raise ValidationError(f"Target URL {value!r} must start with http:// or https://.", code="invalid_scheme")
    if not parts.hostname:
        raise ValidationError(f"Target URL {value!r} has no host.", code="invalid_host")
    if parts.username or parts.password:
        raise ValidationError(
            f"Target URL {value!r} must not contain credentials; add them as headers on the upstream instead.",
            code="credentials",
        )
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValidationError(f"Target URL {value!r} must not contain a query or a fragment.", code="query")
    try:
        parts.port
    except ValueError as exc:
        raise ValidationError(f"Target URL {value!r} has an invalid port.", code="invalid_port") from exc


class Target(models.Model):
    """One address of an upstream: a base URL whose path the forwarded path is appended to."""

    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="targets")
    url = models.CharField(
        "target URL",
        max_length=500,
        validators=[validate_target_url],
        help_text="http(s)://host:port with an optional base path, for example http://127.0.0.1:8081/v1.",
    )
    weight = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Share of requests relative to the other targets."
    )

    class Meta:
        ordering = ["upstream__name", "id"]
        constraints = [models.UniqueConstraint(fields=["upstream", "url"], name="unique_target_url_per_upstream")]

    def __str__(self):
        return self.url

    def clean(self):
        # The same normalization as save(), so that the unique check per upstream
        # treats http://host/v1/ and http://host/v1 as one target URL.
        self.url = self.url.strip().rstrip("/")

    def save(self, *args, **kwargs):
        self.url = self.url.strip().rstrip("/")
        super().save(*args, **kwargs)


class Route(models.Model):
    """A set of path patterns, hosts and methods that sends matching requests to an upstream."""

    AUTH_REQUIRED = "required"
    AUTH_PUBLIC = "public"
    AUTH_CHOICES = [
        (AUTH_REQUIRED, "required: a valid access token is needed"),
        (AUTH_PUBLIC, "public: no token needed, but a presented token is verified"),
    ]

    name = models.SlugField(max_length=100, unique=True, help_text=NAME_HELP)
    enabled = models.BooleanField(default=True)
    paths = models.TextField(
        help_text="One pattern per line: /api/orders matches that path only, /api/orders/** also everything "
        "below it, and * matches one segment."
    )
    methods = models.CharField(
        max_length=100, blank=True, help_text="Comma-separated HTTP methods; empty allows all. GET also allows HEAD."
    )
    hosts = models.TextField(
        blank=True, help_text="Host names, one per line (*.example.com allowed); empty matches any host."
    )
    upstream = models.ForeignKey(Upstream, on_delete=models.PROTECT, related_name="routes")
    strip_prefix = models.CharField(
        max_length=200,
        blank=True,
        help_text="A leading path removed before forwarding, for example /api; it must be a prefix of every pattern.",
    )
    auth = models.CharField(max_length=10, choices=AUTH_CHOICES, default=AUTH_REQUIRED)
    roles = models.ManyToManyField(Role, blank=True, related_name="routes", help_text="The caller needs any one.")
    permissions = models.ManyToManyField(
        ApiPermission, blank=True, related_name="routes", help_text="The caller needs all of them."
    )
    priority = models.IntegerField(
        default=0, help_text="When several routes match a request, the highest priority wins."
    )
    shadow = models.BooleanField(
        "roles and permissions in shadow mode",
        default=False,
        help_text="Let requests through that this route's roles and permissions would deny, and log them.",
    )
    allow_encoded_slashes = models.BooleanField(
        default=False,
        help_text="Forward %2F inside a segment as it is instead of rejecting the request with 400.",
    )
    preserve_host = models.BooleanField(
        default=False, help_text="Send the client's Host header to the upstream instead of the target's host."
    )
    max_body_bytes = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Request bodies above this many bytes get 413; empty uses MAX_REQUEST_BODY_BYTES.",
    )
    connect_timeout_seconds = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001)],
        help_text="Overrides the upstream's connect timeout for this route.",
    )
    read_timeout_seconds = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001)],
        help_text="Overrides the upstream's read timeout for this route.",
    )
    retry_non_idempotent = models.BooleanField(
        default=False,
        help_text="Also retry POST and PATCH. Only safe when the upstream deduplicates them.",
    )

    class Meta:
        ordering = ["-priority", "name"]

    def __str__(self):
        return self.name

    @property
    def path_list(self):
        return patterns.parse_paths(self.paths)

    @property
    def method_list(self):
        return patterns.parse_methods(self.methods)

    @property
    def host_list(self):
        return patterns.parse_hosts(self.hosts)

    def clean(self):
        errors = {}
        try:
            paths = patterns.parse_paths(self.paths)
        except ValidationError as exc:
            errors["paths"] = exc.messages
            paths = []
        else:
            if not paths:
                errors["paths"] = ["Enter at least one path pattern."]
            shadowing = [path for path in paths if shadows_gateway_path(path)]
            if shadowing:
                errors["paths"] = [
                    f"Pattern {path!r} would shadow a path that the gateway serves itself "
                    f"({', '.join('/' + s for s in sorted(gateway_owned_segments()))}); choose another prefix."
                    for path in shadowing
                ]
            self.paths = "\n".join(paths)
        for field, parse in (("methods", patterns.parse_methods), ("hosts", patterns.parse_hosts)):
            try:
                value = parse(getattr(self, field))
            except ValidationError as exc:
                errors[field] = exc.messages
            else:
                setattr(self, field, ",".join(value) if field == "methods" else "\n".join(value))
        if self.strip_prefix:
            prefix = self.strip_prefix.rstrip("/")
            if not prefix.startswith("/") or "*" in prefix:
                errors["strip_prefix"] = [f"Strip prefix {self.strip_prefix!r} must be a literal path such as /api."]
            else:
                self.strip_prefix = prefix
                outside = [path for path in paths if not path_has_prefix(path, prefix)]
                if outside:
                    errors["strip_prefix"] = [
                        f"Strip prefix {prefix!r} is not a prefix of pattern {path!r}." for path in outside
                    ]
        if errors:
            raise ValidationError(errors)

    def validate_unique(self, exclude=None):
        """Also reject an enabled route that matches the same requests as another enabled route.

        Model forms call this after clean(), with the fields that failed validation in
        ``exclude``. applyconfig checks the routes of a file against each other instead,
        because the file may change the other routes too.
        """
        errors = {}
        try:
            super().validate_unique(exclude=exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        exclude = set(exclude or ())
        if self.enabled and not exclude & {"paths", "methods", "hosts", "enabled"}:
            others = Route.objects.filter(enabled=True).exclude(pk=self.pk).order_by("name")
            messages = [duplicate_message(overlap) for overlap in find_duplicates(self, others)]
            if messages:
                errors.setdefault("paths", []).extend(messages)
        if errors:
            raise ValidationError(errors)


@dataclass(frozen=True)
class RouteOverlap:
    """A pattern, methods and hosts that two routes both claim."""

    other: str
    pattern: str
    methods: frozenset
    hosts: frozenset


def effective_methods(methods):
    """Return the methods a route with the method list ``methods`` accepts: all when empty, HEAD wherever GET is."""
    accepted = set(methods) or set(patterns.HTTP_METHODS)
    if "GET" in accepted:
        accepted.add("HEAD")
    return frozenset(accepted)


def route_overlap(paths, methods, hosts, other_name, other_paths, other_methods, other_hosts):
    """Return the RouteOverlap of two routes' normalized values, or None when they can never claim one request.

    Two routes overlap when they have the same set of hosts, a pattern in common
    and at least one method in common. Patterns that merely match some of the same
    paths, such as ``/api/**`` and ``/api/orders``, do not count, because the more
    specific pattern wins.
    """
    if set(hosts) != set(other_hosts):
        return None
    shared_patterns = [pattern for pattern in paths if pattern in set(other_paths)]
    shared_methods = effective_methods(methods) & effective_methods(other_methods)
    if not shared_patterns or not shared_methods:
        return None
    return RouteOverlap(other_name, shared_patterns[0], shared_methods, frozenset(hosts))


def find_duplicates(route, others):
    """Return a RouteOverlap for every route in ``others`` that claims the same requests as ``route``.

    Stored values are parsed again, so a row written without clean() compares in
    normalized form too, and a row whose values do not parse is skipped.
    """
    try:
        values = (route.path_list, route.method_list, route.host_list)
    except ValidationError:
        return []
    overlaps = []
    for other in others:
        try:
            other_values = (
                patterns.parse_paths(other.paths),
                patterns.parse_methods(other.methods),
                patterns.parse_hosts(other.hosts),
            )
        except ValidationError:
            continue
        overlap = route_overlap(*values, other.name, *other_values)
        if overlap is not None:
            overlaps.append(overlap)
    return overlaps


def duplicate_message(overlap):
    """Return the validation message for a RouteOverlap, naming the other route."""
    methods = sorted(overlap.methods)
    if overlap.methods == effective_methods(()):
        method_text = "every method"
    elif len(methods) == 1:
        method_text = f"method {methods[0]}"
    else:
        method_text = "methods " + ", ".join(methods)
    host_text = "hosts " + ", ".join(sorted(overlap.hosts)) if overlap.hosts else "any host"
    return (
        f"Pattern {overlap.pattern!r} for {method_text} on {host_text} is already served by the enabled route "
        f"{overlap.other!r}; change the pattern, methods or hosts, or disable one of the two routes."
    )


def path_has_prefix(pattern, prefix):
    """Return whether every path that ``pattern`` matches starts with the literal segments of ``prefix``."""
    prefix_segments = patterns.split_path(prefix)
    return patterns.literal_prefix(pattern)[: len(prefix_segments)] == prefix_segments


def shadows_gateway_path(pattern):
    """Return whether a pattern names a path under one of the gateway's own first segments.

    Patterns that start with a wildcard, such as ``/**``, are allowed: the gateway
    serves its own paths before it consults the route table.
    """
    prefix = patterns.literal_prefix(pattern)
    return bool(prefix) and prefix[0] in gateway_owned_segments()


class RoleRule(models.Model):
    """An extra requirement for the requests of a route that match its methods and path."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="rules")
    methods = models.CharField(max_length=100, blank=True, help_text="Comma-separated; empty applies to all.")
    path = models.CharField(
        max_length=500, blank=True, help_text="A path pattern such as /api/orders/**; empty applies to every path."
    )
    roles = models.ManyToManyField(Role, blank=True, related_name="rules", help_text="The caller needs any one.")
    permissions = models.ManyToManyField(
        ApiPermission, blank=True, related_name="rules", help_text="The caller needs all of them."
    )
    shadow = models.BooleanField(
        "shadow mode",
        default=False,
        help_text="Let requests through that this rule would deny, and log them.",
    )

    class Meta:
        ordering = ["route__name", "id"]
        verbose_name = "role rule"

    def __str__(self):
        methods = self.methods or "any method"
        return f"{methods} {self.path or 'any path'}"

    def clean(self):
        errors = {}
        try:
            self.methods = ",".join(patterns.parse_methods(self.methods))
        except ValidationError as exc:
            errors["methods"] = exc.messages
        if self.path:
            try:
                patterns.parse_pattern(self.path.strip())
                self.path = self.path.strip()
            except ValidationError as exc:
                errors["path"] = exc.messages
        if errors:
            raise ValidationError(errors)


class ConfigVersion(models.Model):
    """A single row whose number is bumped on every configuration change."""

    version = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "configuration version"

    def __str__(self):
        return f"version {self.version}"
