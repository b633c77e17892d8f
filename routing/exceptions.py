"""Failures on the proxy path, one class per HTTP error the gateway returns."""

from django.utils.translation import gettext_lazy as _


class GatewayError(Exception):
    """A failure that the gateway returns itself, with ``status_code`` and a problem+json body."""

    status_code = 500
    default_detail = _("The gateway failed to handle the request.")
    default_code = "gateway_error"

    def __init__(self, detail=None, code=None, log_error=None):
        self.detail = str(detail if detail is not None else self.default_detail)
        self.code = code or self.default_code
        # The error named in the access log; it may contain a target URL, which
        # the client must not see.
        self.log_error = log_error or self.code
        super().__init__(self.detail)

    def response_headers(self):
        """Return the extra headers that this error's response carries."""
        return {}


class BadRequest(GatewayError):
    status_code = 400
    default_detail = _("The request is malformed.")
    default_code = "bad_request"


class InvalidPath(BadRequest):
    default_detail = _("The request path is not allowed.")
    default_code = "invalid_path"


class NotAuthenticated(GatewayError):
    status_code = 401
    default_detail = _("This route requires an access token; send it as 'Authorization: Bearer <token>'.")
    default_code = "not_authenticated"

    def response_headers(self):
        # RFC 6750 section 3: no error code when the request carried no token.
        return {"WWW-Authenticate": 'Bearer realm="jwtgate"'}


class InvalidToken(GatewayError):
    status_code = 401
    default_detail = _("The access token is invalid or expired; obtain a new one at /auth/token.")
    default_code = "invalid_token"

    def response_headers(self):
        description = self.detail.replace("\\", "").replace('"', "'")
        return {"WWW-Authenticate": f'Bearer realm="jwtgate", error="invalid_token", error_description="{description}"'}


class PermissionDenied(GatewayError):
    status_code = 403
    default_detail = _("The access token lacks a role or permission that this request needs.")
    default_code = "insufficient_scope"

    def response_headers(self):
        return {"WWW-Authenticate": 'Bearer realm="jwtgate", error="insufficient_scope"'}


class RouteNotFound(GatewayError):
    status_code = 404
    default_detail = _("No route matches this host and path.")
    default_code = "route_not_found"


class MethodNotAllowed(GatewayError):
    status_code = 405
    default_code = "method_not_allowed"

    def __init__(self, method, allowed, route_name=None):
        self.allowed = allowed
        detail = f"Method {method} is not allowed on this path; allowed: {', '.join(allowed)}."
        super().__init__(detail)

    def response_headers(self):
        return {"Allow": ", ".join(self.allowed)}


class RequestBodyTooLarge(GatewayError):
    status_code = 413
    default_detail = _("The request body is larger than this route accepts.")
    default_code = "body_too_large"


class RequestHeadersTooLarge(GatewayError):
    status_code = 431
    default_detail = _("The request header fields are too large.")
    default_code = "headers_too_large"


class UpstreamUnavailable(GatewayError):
    status_code = 502
    default_detail = _("The upstream could not be reached.")
    default_code = "upstream_unavailable"


class NoHealthyTarget(GatewayError):
    status_code = 503
    default_detail = _("The upstream has no target to send the request to.")
    default_code = "no_healthy_target"

    def __init__(self, detail=None, retry_after=5):
        self.retry_after = retry_after
        super().__init__(detail)

    def response_headers(self):
        return {"Retry-After": str(self.retry_after)}


class UpstreamTimeout(GatewayError):
    status_code = 504
    default_detail = _("The upstream did not answer in time.")
    default_code = "upstream_timeout"
