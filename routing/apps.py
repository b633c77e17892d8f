"""App configuration for routes, upstreams and the proxy."""

from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Routing"

    def ready(self):
        from routing import version

        for model_name in ("Upstream", "Target", "Route", "RoleRule"):
            version.watch_model(self.get_model(model_name))
        route = self.get_model("Route")
        rule = self.get_model("RoleRule")
        for relation in (route.roles, route.permissions, rule.roles, rule.permissions):
            version.watch_m2m(relation.through)
