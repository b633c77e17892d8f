"""The WSGI entry of a gateway process: proxied requests bypass Django's request handler.

Django's handler wraps every request in its middleware chain, the
request_started and request_finished signals and a response object. A proxied
request needs none of that: ProxyDispatchMiddleware, second in the chain, hands
it to routing.proxy anyway. ``GatewayApplication`` makes that decision before
Django's handler runs, builds the same request object and sends the proxy's
GatewayResponse to the server as it is. Paths that the gateway serves itself
(login, console, health) and every path of a console-only process still go
through Django, and so does any server that loads Django's own handler (the
development server, the test client).
"""

import logging

from django.core.handlers.wsgi import WSGIRequest, get_path_info

from gatewaysite.middleware import request_id_for
from routing import proxy
from routing.conf import gateway_settings
from routing.middleware import MODE_CONSOLE, is_gateway_owned

logger = logging.getLogger(__name__)


class GatewayApplication:
    """A WSGI application that sends proxied paths to routing.proxy and every other path to ``django_application``."""

    def __init__(self, django_application):
        self.django_application = django_application

    def __call__(self, environ, start_response):
        if gateway_settings.MODE == MODE_CONSOLE or is_gateway_owned(get_path_info(environ)):
            return self.django_application(environ, start_response)
        return self.proxy_request(environ, start_response)

    def proxy_request(self, environ, start_response):
        request_id = "-"
        try:
            request = WSGIRequest(environ)
            request.request_id = request_id = request_id_for(request)
            response = proxy.handle(request)
        except Exception:
            # routing.proxy.handle turns every failure into a response, so this
            # is a failure to build the request itself.
            logger.exception("proxy_entry_failed request_id=%s", request_id)
            response = proxy.problem(500, "The gateway failed to handle the request.", request_id,
                                     code="internal_error")
        try:
            start_response(response.status_line, response.headers)
        except Exception:
            # The server rejected the status line or a header. The body would
            # never be iterated or closed, so its upstream connection and the
            # balancer's count of requests in flight are released here.
            close = getattr(response.body, "close", None)
            if close is not None:
                close()
            raise
        return response.body
