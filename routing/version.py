"""The configuration version: bumped on every change, polled by each worker."""

import logging
import threading
from contextlib import contextmanager

from django.db import transaction
from django.db.models import F
from django.db.models.signals import m2m_changed, post_delete, post_save

logger = logging.getLogger(__name__)
_batch = threading.local()


def current_version():
    """Return the stored configuration version, 0 when none was recorded yet."""
    from routing.models import ConfigVersion

    return ConfigVersion.objects.filter(pk=1).values_list("version", flat=True).first() or 0


def bump_version():
    """Increment the configuration version in the current transaction and return the new value."""
    from routing.models import ConfigVersion

    with transaction.atomic():
        updated = ConfigVersion.objects.filter(pk=1).update(version=F("version") + 1)
        if not updated:
            ConfigVersion.objects.get_or_create(pk=1, defaults={"version": 1})
        return current_version()


@contextmanager
def one_bump():
    """Bump the version once at the end of the block, however many changes the block makes.

    applyconfig saves thousands of rows in one transaction; one bump instead of
    one per row saves as many writes.
    """
    if getattr(_batch, "active", False):
        yield
        return
    _batch.active = True
    _batch.changed = False
    try:
        yield
    except BaseException:
        _batch.active = False
        raise
    _batch.active = False
    if _batch.changed:
        bump_version()


def note_change():
    if getattr(_batch, "active", False):
        _batch.changed = True
    else:
        bump_version()


def on_change(sender, raw=False, **kwargs):
    # Fixture loading passes raw=True; loaddata still changes the configuration.
    note_change()


def on_m2m_change(sender, action, **kwargs):
    if action in {"post_add", "post_remove", "post_clear"}:
        note_change()


def watch_model(model):
    """Bump the configuration version whenever a row of ``model`` is saved or deleted."""
    post_save.connect(on_change, sender=model, dispatch_uid=f"config-version-save-{model._meta.label}")
    post_delete.connect(on_change, sender=model, dispatch_uid=f"config-version-delete-{model._meta.label}")


def watch_m2m(through):
    """Bump the configuration version whenever a many-to-many relation changes."""
    m2m_changed.connect(on_m2m_change, sender=through, dispatch_uid=f"config-version-m2m-{through._meta.label}")
