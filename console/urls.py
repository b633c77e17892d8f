"""Console pages served under the console prefix, each behind the admin login."""

from django.urls import include, path

urlpatterns = [
    path("config/", include("console.config.urls")),
    path("observe/", include("console.observe.urls")),
]
