"""Root URLconf: the gateway's own paths. Every other path is proxied by routing.middleware.

A process in proxy mode (JWTGATE_MODE=proxy) has no console URLs at all.
"""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from routing import views
from routing.conf import gateway_settings

handler500 = "gatewaysite.middleware.server_error"

urlpatterns = [
    path("auth/", include("accounts.urls")),
    path(".well-known/jwks.json", views.jwks, name="jwks"),
    path("healthz", views.healthz, name="healthz"),
]
if gateway_settings.MODE != "proxy":
    urlpatterns.append(path(f"{settings.CONSOLE_PREFIX}/", admin.site.urls))
