"""The stages that decide a request's fate before anything is sent: normalize, match, authenticate, authorize.

The proxy and the console's route tester both call ``decide``, so the tester
shows what the proxy does.
"""

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from routing.exceptions import InvalidPath, NotAuthenticated, PermissionDenied, RouteNotFound
from routing.paths import normalize_path


@dataclass(frozen=True)
class Requirement:
    """Roles (any one) and permissions (all) that a request must meet, and where they come from."""

    source: str
    roles: frozenset
    permissions: frozenset
    shadow: bool = False


@dataclass(frozen=True)
class ShadowDenial:
    """A requirement in shadow mode that would have denied the request."""

    requirement: str
    reason: str


@dataclass
class Decision:
    """Everything the stages found out about an allowed request."""

    path: object  # the NormalizedPath
    match: object  # the RouteMatch
    identity: object
    requirements: list = field(default_factory=list)
    shadow_denials: list = field(default_factory=list)

    @property
    def route(self):
        return self.match.route

    @property
    def forwarded_path(self):
        return forwarded_path(self.match.route, self.path.path)


def decide(table, method, host, raw_path, authenticate, log=None):
    """Return the Decision for a request, or raise the GatewayError that ends it.

    ``authenticate`` is called with the matched route and returns the caller's
    Identity or raises a 401 error. ``log``, when given, receives the route name
    as soon as a route matches.
    """
    path = normalize_path(raw_path)
    try:
        match = table.match(host, path.path, method)
    except RouteNotFound:
        if path.has_encoded_slash:
            raise InvalidPath("The request path contains an encoded slash (%2F).", code="encoded_slash") from None
        raise
    if log is not None:
        log["route"] = match.route.name

    # An encoded slash means one thing to the gateway and maybe another to the upstream.
    if path.has_encoded_slash and not match.route.allow_encoded_slashes:
        raise InvalidPath("The request path contains an encoded slash (%2F).", code="encoded_slash")

    identity = authenticate(match.route)
    requirements = applicable_requirements(match.route, method, path.path)
    shadow_denials = authorize(requirements, identity)
    return Decision(path, match, identity, requirements, shadow_denials)


def applicable_requirements(route, method, path):
    """Return the route's own requirement and those of the role rules that cover ``method`` and ``path``.

    A rule for GET also covers HEAD, because a route that allows GET allows HEAD.
    """
    requirements = [Requirement("route", route.roles, route.permissions, route.shadow)]
    for index, rule in enumerate(route.rules, start=1):
        if rule.applies_to(method, path) or (method == "HEAD" and rule.applies_to("GET", path)):
            methods = ",".join(sorted(rule.methods)) if rule.methods else "any method"
            source = f"rule {index} ({methods} {rule.path or 'any path'})"
            requirements.append(Requirement(source, rule.roles, rule.permissions, rule.shadow))
    return requirements


def unmet(requirement, identity):
    """Return the GatewayError for a requirement that ``identity`` does not meet, or None."""
    from accounts.tokens import ANONYMOUS

    # A requirement with neither roles nor permissions is met by any caller.
    if not requirement.roles and not requirement.permissions:
        return None
    # An anonymous caller on a public route must first present a token.
    if identity is ANONYMOUS:
        return NotAuthenticated("This request requires an access token with a role or permission.")
    if requirement.roles and not requirement.roles & identity.roles:
        return PermissionDenied(f"This request needs one of the roles: {', '.join(sorted(requirement.roles))}.")
    missing = requirement.permissions - identity.permissions
    if missing:
        return PermissionDenied(f"This request needs the permissions: {', '.join(sorted(missing))}.")
    return None


def authorize(requirements, identity):
    """Raise NotAuthenticated (401) or PermissionDenied (403) for the first enforced requirement not met.

    Return a ShadowDenial for each requirement in shadow mode that is not met.
    """
    shadow_denials = []
    for requirement in requirements:
        error = unmet(requirement, identity)
        if error is None:
            continue
        if requirement.shadow:
            shadow_denials.append(ShadowDenial(requirement.source, error.detail))
            continue
        raise error
    return shadow_denials


def forwarded_path(route, path):
    """Return the path to append to the target URL: ``path`` without the route's strip prefix."""
    prefix = route.strip_prefix
    if not prefix:
        return path
    if path == prefix:
        return "/"
    if path.startswith(prefix + "/"):
        return path[len(prefix) :]
    return path


def target_base_path(target):
    """Return the base path of a target URL, such as ``/v1`` for ``http://host:8080/v1``."""
    return urlsplit(target).path.rstrip("/")
