"""The peer's routes, the same three that jwtgate serves in the benchmark."""

from django.urls import re_path

from peersite.views import GatewayProxyView

urlpatterns = [
    re_path(r"^(?P<path>api(?:/.*)?)$", GatewayProxyView.as_view(required_roles={"reader", "admin"})),
    re_path(r"^(?P<path>public/.*)$", GatewayProxyView.as_view(public=True)),
    re_path(r"^(?P<path>ops(?:/.*)?)$", GatewayProxyView.as_view(required_roles={"admin"})),
]
