"""The change history of the gateway's configuration."""

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone


class ConfigChange(models.Model):
    """One added, changed or deleted upstream, target, route, role rule, role or API permission.

    ``changes`` maps each field that changed to ``[before, after]``. Foreign keys
    are stored by the name of the row they point to, many-to-many fields as the
    sorted list of names, and the side that did not exist (before an add, after a
    delete) as null.
    """

    ADD = "add"
    CHANGE = "change"
    DELETE = "delete"
    ACTION_CHOICES = [(ADD, "added"), (CHANGE, "changed"), (DELETE, "deleted")]

    SOURCE_CONSOLE = "console"
    SOURCE_UPLOAD = "upload"
    SOURCE_APPLYCONFIG = "applyconfig"
    SOURCE_OTHER = "other"
    SOURCE_CHOICES = [
        (SOURCE_CONSOLE, "console form"),
        (SOURCE_UPLOAD, "console YAML upload"),
        (SOURCE_APPLYCONFIG, "manage.py applyconfig"),
        (SOURCE_OTHER, "other code"),
    ]

    changed_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(
        max_length=150, help_text="The console user's name, applyconfig for the command, or system."
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=20, choices=SOURCE_CHOICES, default=SOURCE_OTHER)
    request_id = models.CharField(
        max_length=128, blank=True, help_text="The X-Request-ID of the console request that made the change."
    )
    action = models.CharField(max_length=10, choices=ACTION_CHOICES)
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=300)
    # The object whose history page lists this change: the upstream of a target,
    # the route of a role rule, and the object itself for every other kind.
    scope_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    scope_id = models.CharField(max_length=64)
    scope_repr = models.CharField(max_length=300)
    changes = models.JSONField(default=dict)

    class Meta:
        ordering = ["-changed_at", "-id"]
        verbose_name = "configuration change"
        indexes = [
            models.Index(fields=["content_type", "object_id"], name="configchange_object"),
            models.Index(fields=["scope_type", "scope_id"], name="configchange_scope"),
        ]

    def __str__(self):
        return f"{self.get_action_display()} {self.content_type.name} {self.object_repr}"
