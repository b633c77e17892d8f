"""Send every request outside the gateway's own paths down the proxy path, unless the proxy is off."""

from routing import proxy
from routing.conf import gateway_owned_segments, gateway_settings
from routing.problems import problem_response

MODE_PROXY = "proxy"
MODE_CONSOLE = "console"


def served_segments():
    """Return the first path segments that this process serves itself instead of the route table.

    In proxy mode the console is not served, so its prefix goes to the route table
    like any other path. Routes still may not use it (see ``Route.clean``), because
    a process in console or both mode serves it.
    """
    segments = gateway_owned_segments()
    if gateway_settings.MODE == MODE_PROXY:
        segments = segments - {gateway_settings.CONSOLE_PREFIX}
    return segments


def is_gateway_owned(path):
    """Return whether ``path`` lies under a first segment that this process serves itself."""
    first = path[1:].split("/", 1)[0]
    return first in served_segments()


def proxy_disabled(request):
    """Return the 404 problem response for a proxied path in a console-only process."""
    return problem_response(
        404,
        "The proxy is disabled in this process (JWTGATE_MODE=console); send API requests to a gateway "
        "instance in proxy or both mode.",
        request.request_id,
        code="proxy_disabled",
    )


class ProxyDispatchMiddleware:
    """Handle proxied requests here, so that they skip the session, CSRF and admin middleware below."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if is_gateway_owned(request.path_info):
            return self.get_response(request)
        if gateway_settings.MODE == MODE_CONSOLE:
            return proxy_disabled(request)
        return proxy.handle(request).as_django_response()
