"""The console's admin site: Django's admin with throttled logins."""

import logging

from django.contrib import admin
from django.http import HttpResponse
from django.utils.html import escape

from accounts.throttling import login_throttle
from routing.headers import client_address

logger = logging.getLogger(__name__)


class ConsoleAdminSite(admin.AdminSite):
    site_header = "jwtgate console"
    site_title = "jwtgate console"
    index_title = "Routes, upstreams and roles"
    # The admin's app list followed by links to the console's own pages.
    index_template = "console/config/index.html"
    # No "View site" link: the gateway has no site of its own, and "/" is proxied.
    site_url = None

    def get_urls(self):
        """Return the admin's URLs after the console's own pages, which need a staff login too."""
        from console.urls import urlpatterns as console_patterns

        return [*self.wrap_console_patterns(console_patterns), *super().get_urls()]

    def wrap_console_patterns(self, patterns):
        wrapped = []
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                pattern.url_patterns[:] = self.wrap_console_patterns(pattern.url_patterns)
            else:
                pattern.callback = self.admin_view(pattern.callback)
            wrapped.append(pattern)
        return wrapped

    def login(self, request, extra_context=None):
        """Show the login page, or return 429 with Retry-After while the username or address is blocked."""
        if request.method == "POST":
            username = request.POST.get("username", "")
            client_ip, _trusted = client_address(request)
            wait = login_throttle.retry_after(username, client_ip)
            if wait:
                message = f"Too many failed logins. Try again in {wait} seconds."
                response = HttpResponse(
                    f"<!doctype html><title>Too many failed logins</title><p>{escape(message)}</p>",
                    status=429,
                )
                response["Retry-After"] = str(wait)
                logger.warning(
                    "console_login_throttled request_id=%s client=%s retry_after=%s",
                    getattr(request, "request_id", "-"), client_ip, wait,
                )
                return response
        return super().login(request, extra_context)
