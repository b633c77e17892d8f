"""Send every request outside the gateway's own paths down the proxy path."""

from routing import proxy
from routing.conf import gateway_owned_segments


def is_gateway_owned(path):
    """Return whether ``path`` lies under a first segment that the gateway serves itself."""
    first = path[1:].split("/", 1)[0]
    return first in gateway_owned_segments()


class ProxyDispatchMiddleware:
    """Answer proxied requests here, so that they skip the session, CSRF and admin middleware below."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if is_gateway_owned(request.path_info):
            return self.get_response(request)
        return proxy.handle(request)
