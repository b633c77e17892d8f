"""The route tester: the proxy's decision stages for a request typed into the console, sent nowhere.

``explain`` builds the request that a client would send, then calls the same
functions as routing.proxy in the same order (request_host, decide with the live
route table, query_suffix), so that the console shows what the proxy would do.
"""

from dataclasses import dataclass, field

from django.http import HttpRequest

from accounts.tokens import ANONYMOUS, Identity
from routing import proxy
from routing.decision import ShadowDenial, applicable_requirements, decide, unmet
from routing.exceptions import GatewayError
from routing.matching import route_tables
from routing.paths import normalize_path, raw_request_path

CALLER_CLAIMS = "claims"
CALLER_TOKEN = "token"
CALLER_NONE = "none"
TESTER_USER_ID = "tester"


@dataclass(frozen=True)
class Caller:
    """The sender of the tested request: an access token, the roles and permissions a token would carry, or no token."""

    kind: str
    token: str = ""
    roles: frozenset = frozenset()
    permissions: frozenset = frozenset()

    def authorization_header(self):
        return f"Bearer {self.token}" if self.kind == CALLER_TOKEN else None

    def authenticate(self, request, route):
        """Return the Identity the proxy would see on ``route``, or raise its 400 or 401 error.

        A token, or no token at all, goes through routing.proxy.authenticate. For
        roles and permissions the query string is checked for a token as the
        proxy checks it, and the caller becomes the user ``tester``. With neither
        roles nor permissions on a public route it is anonymous.
        """
        if self.kind != CALLER_CLAIMS:
            return proxy.authenticate(request, route)
        proxy.bearer_token(request)
        if route.public and not self.roles and not self.permissions:
            return ANONYMOUS
        return Identity(user_id=TESTER_USER_ID, roles=self.roles, permissions=self.permissions)


@dataclass(frozen=True)
class RequirementCheck:
    """A requirement that applied, and whether the caller meets it. ``met`` is None when it was not checked."""

    requirement: object  # routing.decision.Requirement
    met: bool | None
    reason: str = ""

    @property
    def roles(self):
        return sorted(self.requirement.roles)

    @property
    def permissions(self):
        return sorted(self.requirement.permissions)

    @property
    def effect(self):
        """Return what an unmet requirement does: deny, or let through in shadow mode."""
        return "shadow" if self.requirement.shadow else "enforce"


@dataclass(frozen=True)
class UpstreamCall:
    """The URL that the proxy would request from one target of the route's upstream."""

    target: str
    weight: int
    url: str


@dataclass
class Explanation:
    """Everything the tester found out about one request."""

    method: str
    host: str
    target: str
    config_version: int
    normalized_path: str = ""
    route: object = None  # routing.matching.CompiledRoute
    pattern: str = ""
    identity: Identity | None = None
    requirements: list = field(default_factory=list)
    shadow_denials: list = field(default_factory=list)
    error: GatewayError | None = None
    forwarded_path: str = ""
    query: str = ""
    upstream_calls: list = field(default_factory=list)

    @property
    def allowed(self):
        return self.error is None

    @property
    def status(self):
        """Return the status of the gateway's own error response, or None when the request is forwarded."""
        return None if self.error is None else self.error.status_code

    @property
    def response_headers(self):
        return sorted(self.error.response_headers().items()) if self.error is not None else []

    @property
    def anonymous(self):
        return self.identity is ANONYMOUS

    @property
    def caller_roles(self):
        return sorted(self.identity.roles) if self.identity is not None else []

    @property
    def caller_permissions(self):
        return sorted(self.identity.permissions) if self.identity is not None else []


def client_request(method, host, query, caller):
    """Return an HttpRequest carrying what the proxy reads from a client: method, Host, query, Authorization."""
    request = HttpRequest()
    request.method = method
    request.META = {
        "REQUEST_METHOD": method,
        "HTTP_HOST": host,
        "SERVER_NAME": "route-tester",
        "SERVER_PORT": "80",
        "QUERY_STRING": query,
    }
    authorization = caller.authorization_header()
    if authorization is not None:
        request.META["HTTP_AUTHORIZATION"] = authorization
    return request


def split_target(target):
    """Return the path and the query of a request target in origin form or absolute form."""
    path = raw_request_path({"RAW_URI": target})
    query = target.split("#", 1)[0].partition("?")[2]
    return path, query


def explain(method, host, target, caller, table=None):
    """Return the Explanation of a request to ``host`` for ``target`` (path and query) sent by ``caller``.

    ``table`` defaults to this worker's live route table. Nothing is sent upstream.
    """
    if table is None:
        table = route_tables.get()
    raw_path, query = split_target(target)
    request = client_request(method, host, query, caller)
    result = Explanation(method=method, host=host, target=target, config_version=table.version)
    identities = []

    def authenticate(route):
        identity = caller.authenticate(request, route)
        identities.append(identity)
        return identity

    log = {}
    request_host = None
    try:
        proxy.check_header_size(request)
        request_host = proxy.request_host(request)
        decision = decide(table, method, request_host, raw_path, authenticate, log)
        query_suffix = proxy.query_suffix(request)
    except GatewayError as exc:
        result.error = exc
        describe_failure(result, table, method, request_host, raw_path, log, identities)
        return result

    result.normalized_path = decision.path.path
    result.route = decision.route
    result.pattern = decision.match.pattern
    result.identity = decision.identity
    result.requirements = [check_requirement(requirement, decision.identity) for requirement in decision.requirements]
    result.shadow_denials = decision.shadow_denials
    result.forwarded_path = decision.forwarded_path
    result.query = query_suffix
    result.upstream_calls = [
        UpstreamCall(target=url, weight=weight, url=url + decision.forwarded_path + query_suffix)
        for url, weight in decision.route.upstream.targets
    ]
    return result


def check_requirement(requirement, identity):
    error = unmet(requirement, identity)
    if error is None:
        return RequirementCheck(requirement, met=True)
    return RequirementCheck(requirement, met=False, reason=error.detail)


def describe_failure(result, table, method, host, raw_path, log, identities):
    """Fill in what the stages found before one of them raised ``result.error``."""
    try:
        result.normalized_path = normalize_path(raw_path).path
    except GatewayError:
        return
    if "route" not in log:
        return
    # The route matched before the error, so matching again returns the same RouteMatch.
    match = table.match(host, result.normalized_path, method)
    result.route = match.route
    result.pattern = match.pattern
    requirements = applicable_requirements(match.route, method, result.normalized_path)
    if not identities:
        result.requirements = [RequirementCheck(requirement, met=None) for requirement in requirements]
        return
    result.identity = identities[0]
    result.requirements = [check_requirement(requirement, result.identity) for requirement in requirements]
    # authorize stops at the first enforced requirement that is not met, so a
    # shadow denial after it would not have been logged.
    for check in result.requirements:
        if check.met is False and not check.requirement.shadow:
            break
        if check.met is False:
            result.shadow_denials.append(ShadowDenial(check.requirement.source, check.reason))
