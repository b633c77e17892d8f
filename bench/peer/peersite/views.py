"""The peer's proxy view: a simplejwt stateless token check and a role check in front of revproxy's ProxyView."""

import urllib3
from django.conf import settings
from django.http import JsonResponse
from revproxy.views import ProxyView
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication

# revproxy's module-level PoolManager keeps one connection per upstream host, so
# with eight threads most requests would open a new connection. A pool with one
# connection per thread is what a production deployment would configure.
UPSTREAM_POOLS = urllib3.PoolManager(
    maxsize=settings.UPSTREAM_POOL_SIZE, timeout=urllib3.Timeout(connect=5.0, read=30.0)
)

authenticator = JWTStatelessUserAuthentication()


def problem(status, title, **headers):
    response = JsonResponse({"status": status, "title": title}, status=status, content_type="application/problem+json")
    for name, value in headers.items():
        response[name] = value
    return response


class GatewayProxyView(ProxyView):
    """Forward to the upstream after checking the Bearer token and, unless ``public``, the caller's roles.

    As in jwtgate, a token that is presented is always verified, on public routes too.
    """

    upstream = settings.UPSTREAM_URL
    add_x_forwarded = True
    required_roles = frozenset()
    public = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = UPSTREAM_POOLS
        self.user_id = None

    def dispatch(self, request, path):
        try:
            result = authenticator.authenticate(request)
        except AuthenticationFailed:
            return problem(401, "Unauthorized", **{"WWW-Authenticate": 'Bearer realm="bench", error="invalid_token"'})
        if result is None:
            if not self.public:
                return problem(401, "Unauthorized", **{"WWW-Authenticate": 'Bearer realm="bench"'})
        else:
            _user, token = result
            roles = token.get("roles")
            if self.required_roles and not (isinstance(roles, list) and self.required_roles.intersection(roles)):
                return problem(403, "Forbidden")
            self.user_id = str(token.get("sub", ""))
        return super().dispatch(request, path)

    def get_request_headers(self):
        """Return the upstream request headers without client-supplied identity headers, plus X-User-Id."""
        headers = {
            name: value for name, value in super().get_request_headers().items() if not name.lower().startswith("x-user-")
        }
        if self.user_id:
            headers["X-User-Id"] = self.user_id
        return headers
