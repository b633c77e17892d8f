"""Users, roles and the API permissions that roles grant."""

import re

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")


def validate_name(value):
    """Reject a role or permission name that would not survive a comma-separated header."""
    if not NAME_RE.match(value):
        raise ValidationError(
            "%(value)r is not a valid name: use letters, digits and _ . : - "
            "(at most 100 characters, starting with a letter or digit).",
            params={"value": value},
            code="invalid_name",
        )


class ApiPermission(models.Model):
    """A permission on the APIs behind the gateway, such as ``orders:write``."""

    codename = models.CharField(max_length=100, unique=True, validators=[validate_name])
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["codename"]
        verbose_name = "API permission"

    def __str__(self):
        return self.codename


class Role(models.Model):
    """A named set of API permissions, assigned to users."""

    name = models.CharField(max_length=100, unique=True, validators=[validate_name])
    description = models.CharField(max_length=200, blank=True)
    permissions = models.ManyToManyField(ApiPermission, blank=True, related_name="roles")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class User(AbstractUser):
    """A user who can obtain tokens; its roles and direct permissions go into each access token."""

    roles = models.ManyToManyField(Role, blank=True, related_name="users")
    api_permissions = models.ManyToManyField(
        ApiPermission,
        blank=True,
        related_name="users",
        verbose_name="direct API permissions",
    )

    def role_names(self):
        """Return the sorted names of the user's roles."""
        return sorted(role.name for role in self.roles.all())

    def api_permission_codenames(self):
        """Return the sorted codenames granted directly or through any of the user's roles."""
        direct = ApiPermission.objects.filter(users=self)
        through_roles = ApiPermission.objects.filter(roles__users=self)
        return sorted(set(direct.values_list("codename", flat=True)) | set(through_roles.values_list("codename", flat=True)))
