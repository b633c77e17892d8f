"""Console pages for users, roles and API permissions."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group

from accounts.models import ApiPermission, Role, User
from console.config.links import HistoryLinkMixin

# Roles replace Django groups for API access; hiding groups avoids two similar lists.
admin.site.unregister(Group)


@admin.register(ApiPermission)
class ApiPermissionAdmin(HistoryLinkMixin, admin.ModelAdmin):
    list_display = ["codename", "description"]
    search_fields = ["codename", "description"]


@admin.register(Role)
class RoleAdmin(HistoryLinkMixin, admin.ModelAdmin):
    list_display = ["name", "description", "permission_codenames"]
    search_fields = ["name", "description"]
    filter_horizontal = ["permissions"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("permissions")

    @admin.display(description="permissions")
    def permission_codenames(self, role):
        return ", ".join(permission.codename for permission in role.permissions.all()) or "-"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "email", "role_list", "is_active", "is_staff"]
    list_filter = ["is_active", "is_staff", "is_superuser", "roles"]
    filter_horizontal = ["roles", "api_permissions", "user_permissions"]
    fieldsets = [
        *DjangoUserAdmin.fieldsets[:2],
        ("API access", {"fields": ["roles", "api_permissions"]}),
        *DjangoUserAdmin.fieldsets[2:],
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("roles")

    @admin.display(description="roles")
    def role_list(self, user):
        return ", ".join(role.name for role in user.roles.all()) or "-"
