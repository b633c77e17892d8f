"""Console pages for upstreams with their targets and routes with their role rules."""

import time

from django.contrib import admin, messages
from django.utils.html import format_html_join

from console.config.links import HistoryLinkMixin
from routing import health
from routing.models import Route, RoleRule, Target, Upstream, duplicate_message, find_duplicates


class TargetInline(admin.TabularInline):
    model = Target
    extra = 1
    min_num = 1


@admin.register(Upstream)
class UpstreamAdmin(HistoryLinkMixin, admin.ModelAdmin):
    list_display = ["name", "target_health", "balancing", "retries", "health_check_path"]
    list_filter = ["balancing"]
    search_fields = ["name", "description", "targets__url"]
    inlines = [TargetInline]
    fieldsets = [
        (None, {"fields": ["name", "description"]}),
        ("Timeouts", {"fields": ["connect_timeout_seconds", "read_timeout_seconds"]}),
        ("Balancing and retries", {"fields": ["balancing", "retries", "retry_on_statuses"]}),
        ("Passive health", {"fields": ["failure_threshold", "failure_statuses", "ejection_seconds"]}),
        ("Active health checks", {"fields": [
            "health_check_path", "health_check_interval_seconds", "health_check_timeout_seconds",
        ]}),
    ]

    @admin.display(description="targets and their health")
    def target_health(self, upstream):
        """List each target with its health as this instance's workers share it (see routing.health)."""
        now = time.time()
        return format_html_join(
            ", ",
            '{} <span class="target-health target-health-{}">({})</span>',
            (
                (target.url, status, status)
                for target in upstream.targets.all()
                for status in [health.target_status(upstream.name, target.url, now)]
            ),
        ) or "-"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("targets")


class RoleRuleInline(admin.TabularInline):
    model = RoleRule
    extra = 0
    fields = ["methods", "path", "roles", "permissions", "shadow"]
    filter_horizontal = ["roles", "permissions"]


@admin.register(Route)
class RouteAdmin(HistoryLinkMixin, admin.ModelAdmin):
    list_display = ["name", "path_patterns", "method_names", "upstream", "auth", "role_names", "priority", "enabled"]
    list_filter = ["enabled", "auth", "upstream"]
    search_fields = ["name", "paths", "hosts", "upstream__name"]
    filter_horizontal = ["roles", "permissions"]
    inlines = [RoleRuleInline]
    actions = ["enable_routes", "disable_routes"]
    fieldsets = [
        (None, {"fields": ["name", "enabled", "upstream", "priority"]}),
        ("Matching", {"fields": ["paths", "methods", "hosts"]}),
        ("Access", {"fields": ["auth", "roles", "permissions", "shadow"]}),
        ("Forwarding", {"fields": [
            "strip_prefix", "preserve_host", "allow_encoded_slashes", "max_body_bytes",
            "connect_timeout_seconds", "read_timeout_seconds", "retry_non_idempotent",
        ]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("upstream").prefetch_related("roles")

    @admin.display(description="paths")
    def path_patterns(self, route):
        return ", ".join(route.paths.split())

    @admin.display(description="methods")
    def method_names(self, route):
        return route.methods or "all"

    @admin.display(description="roles")
    def role_names(self, route):
        return ", ".join(role.name for role in route.roles.all()) or "-"

    @admin.action(description="Enable selected routes")
    def enable_routes(self, request, queryset):
        self.set_enabled(request, queryset, True)

    @admin.action(description="Disable selected routes")
    def disable_routes(self, request, queryset):
        self.set_enabled(request, queryset, False)

    def set_enabled(self, request, queryset, enabled):
        # save() per route, not update(), so that each change bumps the configuration version.
        count = 0
        for route in queryset:
            if route.enabled == enabled:
                continue
            if enabled:
                # The same check as the change form: an enabled route may not claim the requests of another.
                others = Route.objects.filter(enabled=True).exclude(pk=route.pk).order_by("name")
                overlaps = find_duplicates(route, others)
                if overlaps:
                    self.message_user(
                        request, f"Route {route.name!r} stays disabled: {duplicate_message(overlaps[0])}", messages.ERROR
                    )
                    continue
            route.enabled = enabled
            route.save(update_fields=["enabled"])
            count += 1
        self.message_user(request, f"{'Enabled' if enabled else 'Disabled'} {count} route(s).")
