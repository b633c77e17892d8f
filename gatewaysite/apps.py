"""The admin app under the console's own site class."""

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    default_site = "gatewaysite.admin.ConsoleAdminSite"
