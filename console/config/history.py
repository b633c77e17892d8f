"""Record every change to upstreams, targets, routes, role rules, roles and API permissions.

Signal receivers write one ConfigChange row per changed object inside the
transaction of the change, so a change that is rolled back leaves no history.
The actor of a change comes from ``attribute_changes``. The console middleware
opens one such block per request, and applyconfig one per run. A change outside
any block is recorded with the actor ``system``. Inside one block, the row save
and the many-to-many updates of one object (a console form saves a route, then
its roles) are merged into one ConfigChange.
"""

import contextvars
from contextlib import contextmanager

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ObjectDoesNotExist
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save

from console.config.models import ConfigChange

ACTOR_SYSTEM = "system"
ACTOR_ANONYMOUS = "anonymous"

# Each tracked model, with the name of the foreign key whose target lists the
# object's changes on its history page (None: the object lists its own).
TRACKED_MODELS = {
    "routing.Upstream": None,
    "routing.Target": "upstream",
    "routing.Route": None,
    "routing.RoleRule": "route",
    "accounts.Role": None,
    "accounts.ApiPermission": None,
}
TRACKED_M2M_FIELDS = {
    "routing.Route": ("roles", "permissions"),
    "routing.RoleRule": ("roles", "permissions"),
    "accounts.Role": ("permissions",),
}

# Attributes set on model instances between a pre_* signal and its post_* signal.
BEFORE_SAVE_ATTRIBUTE = "_config_history_before_save"
BEFORE_DELETE_ATTRIBUTE = "_config_history_before_delete"
BEFORE_M2M_ATTRIBUTE = "_config_history_before_m2m"


class Attribution:
    """The actor, user and source of the changes inside one ``attribute_changes`` block, and the records so far."""

    def __init__(self, source, actor=None, user=None, request=None, request_id=""):
        self.source = source
        self.actor = actor
        self.user = user
        self.request = request
        self.request_id = request_id
        self.records = {}  # (model label, pk as text) -> ConfigChange

    def who(self):
        """Return (actor, user). A console request's user is read only here, after the view has loaded it."""
        if self.request is not None and self.actor is None:
            user = getattr(self.request, "user", None)
            if user is not None and user.is_authenticated:
                self.actor, self.user = user.get_username(), user
            else:
                self.actor = ACTOR_ANONYMOUS
        return self.actor or ACTOR_SYSTEM, self.user


current_attribution = contextvars.ContextVar("config_change_attribution", default=None)


@contextmanager
def attribute_changes(source, actor=None, user=None, request=None, request_id="", keep_outer=False):
    """Attribute the configuration changes made inside the block to ``actor`` (or ``request.user``).

    With ``keep_outer``, a block that is already open keeps its actor and source,
    so that a console upload that runs applyconfig's code stays the console user's.
    """
    outer = current_attribution.get()
    if keep_outer and outer is not None:
        attribution = Attribution(outer.source, outer.actor, outer.user, outer.request, outer.request_id)
    else:
        attribution = Attribution(source, actor, user, request, request_id)
    token = current_attribution.set(attribution)
    try:
        yield attribution
    finally:
        current_attribution.reset(token)


# Snapshots of field values


def json_value(value):
    """Return ``value`` as it is stored in ConfigChange.changes: JSON scalars as they are, anything else as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def related_name_or_id(instance, field):
    """Return the name of the row a foreign key points to, or its id when that row is already gone."""
    related_id = getattr(instance, field.attname)
    if related_id is None:
        return None
    try:
        return str(getattr(instance, field.name))
    except ObjectDoesNotExist:
        return f"#{related_id}"


def row_snapshot(instance):
    """Return {field name: value} for the row fields of ``instance``, without the primary key."""
    values = {}
    for field in instance._meta.concrete_fields:
        if field.primary_key:
            continue
        if field.is_relation:
            values[field.name] = related_name_or_id(instance, field)
        else:
            values[field.name] = json_value(field.value_from_object(instance))
    return values


def m2m_snapshot(instance, field_name):
    """Return the sorted names of the rows that ``instance`` is related to through ``field_name``.

    The query bypasses any prefetched list on the instance, which may predate the change.
    """
    field = instance._meta.get_field(field_name)
    related = field.related_model._default_manager.filter(**{field.related_query_name(): instance.pk})
    return sorted(str(row) for row in related)


def tracked_m2m_fields(model):
    return TRACKED_M2M_FIELDS.get(model._meta.label, ())


# Writing ConfigChange rows


def scope_of(instance):
    """Return (model, pk, text) of the object whose history page lists changes of ``instance``."""
    scope_field = TRACKED_MODELS[instance._meta.label]
    if scope_field is None:
        return type(instance), instance.pk, str(instance)
    field = instance._meta.get_field(scope_field)
    return field.related_model, getattr(instance, field.attname), related_name_or_id(instance, field)


def merge_changes(action, recorded, new):
    """Return the changes of one record after a later change of the same object: first before, last after."""
    merged = {name: list(values) for name, values in recorded.items()}
    for name, (before, after) in new.items():
        if name in merged:
            merged[name][1] = after
        else:
            merged[name] = [before, after]
    if action == ConfigChange.CHANGE:
        merged = {name: values for name, values in merged.items() if values[0] != values[1]}
    return merged


def record(action, instance, changes):
    """Write or extend the ConfigChange for ``action`` on ``instance``; skip a change that changed nothing."""
    if action == ConfigChange.CHANGE and not changes:
        return
    attribution = current_attribution.get()
    key = (instance._meta.label, str(instance.pk))
    if attribution is not None and action != ConfigChange.DELETE:
        existing = attribution.records.get(key)
        if existing is not None and existing.action != ConfigChange.DELETE:
            if extend_record(existing, changes, str(instance)):
                return

    actor, user = attribution.who() if attribution is not None else (ACTOR_SYSTEM, None)
    scope_model, scope_id, scope_repr = scope_of(instance)
    change = ConfigChange.objects.create(
        actor=actor,
        user=user,
        source=attribution.source if attribution is not None else ConfigChange.SOURCE_OTHER,
        request_id=attribution.request_id if attribution is not None else "",
        action=action,
        content_type=ContentType.objects.get_for_model(instance),
        object_id=str(instance.pk),
        object_repr=str(instance)[:300],
        scope_type=ContentType.objects.get_for_model(scope_model),
        scope_id=str(scope_id),
        scope_repr=str(scope_repr)[:300],
        changes=changes,
    )
    if attribution is not None:
        attribution.records[key] = change


def extend_record(existing, changes, object_repr):
    """Merge ``changes`` into an earlier ConfigChange of the same block; return False when that row is gone.

    The row is gone when the transaction that wrote it was rolled back. A change
    whose fields all returned to their values before the block is deleted.
    """
    merged = merge_changes(existing.action, existing.changes, changes)
    rows = ConfigChange.objects.filter(pk=existing.pk)
    if not merged and existing.action == ConfigChange.CHANGE:
        return rows.delete()[0] > 0
    if not rows.update(changes=merged, object_repr=object_repr[:300]):
        return False
    existing.changes = merged
    existing.object_repr = object_repr[:300]
    return True


# Signal receivers


def remember_row(sender, instance, raw=False, **kwargs):
    before = None
    if instance.pk is not None:
        stored = sender._base_manager.filter(pk=instance.pk).first()
        before = row_snapshot(stored) if stored is not None else None
    setattr(instance, BEFORE_SAVE_ATTRIBUTE, before)


def record_save(sender, instance, created, raw=False, **kwargs):
    before = getattr(instance, BEFORE_SAVE_ATTRIBUTE, None)
    after = row_snapshot(instance)
    if created or before is None:
        record(ConfigChange.ADD, instance, {name: [None, value] for name, value in after.items()})
        return
    changes = {name: [before.get(name), value] for name, value in after.items() if before.get(name) != value}
    record(ConfigChange.CHANGE, instance, changes)


def related_m2m_fields(model):
    """Yield (model, field name) for every tracked many-to-many field that points to ``model``."""
    for label, field_names in TRACKED_M2M_FIELDS.items():
        owner = apps.get_model(label)
        for field_name in field_names:
            if owner._meta.get_field(field_name).related_model is model:
                yield owner, field_name


def remember_deleted(sender, instance, **kwargs):
    values = row_snapshot(instance)
    for field_name in tracked_m2m_fields(sender):
        values[field_name] = m2m_snapshot(instance, field_name)
    # Deleting a role or permission removes it from routes, rules and roles without
    # an m2m_changed signal, so those objects are recorded as changed here.
    related = []
    for owner, field_name in related_m2m_fields(sender):
        for row in owner._default_manager.filter(**{field_name: instance.pk}):
            related.append((row, field_name, m2m_snapshot(row, field_name)))
    setattr(instance, BEFORE_DELETE_ATTRIBUTE, (values, related))


def record_delete(sender, instance, **kwargs):
    values, related = getattr(instance, BEFORE_DELETE_ATTRIBUTE, (row_snapshot(instance), []))
    record(ConfigChange.DELETE, instance, {name: [value, None] for name, value in values.items()})
    for row, field_name, before in related:
        after = m2m_snapshot(row, field_name)
        if after != before:
            record(ConfigChange.CHANGE, row, {field_name: [before, after]})


def m2m_field_for(through):
    """Return (owner model, field name) of the tracked many-to-many field with the through model ``through``."""
    for label, field_names in TRACKED_M2M_FIELDS.items():
        owner = apps.get_model(label)
        for field_name in field_names:
            if owner._meta.get_field(field_name).remote_field.through is through:
                return owner, field_name
    raise LookupError(f"{through._meta.label} is not the through model of a tracked field")


def changed_m2m_owners(instance, owner, field_name, reverse, pk_set):
    """Return the objects whose ``field_name`` set a many-to-many change affects."""
    if not reverse:
        return [instance]
    if pk_set is None:  # clear() from the related side
        return list(owner._default_manager.filter(**{field_name: instance.pk}))
    return list(owner._default_manager.filter(pk__in=pk_set))


def record_m2m(sender, instance, action, reverse, pk_set, **kwargs):
    owner, field_name = m2m_field_for(sender)
    if action.startswith("pre_"):
        owners = changed_m2m_owners(instance, owner, field_name, reverse, pk_set)
        pending = getattr(instance, BEFORE_M2M_ATTRIBUTE, {})
        pending[field_name] = [(row, m2m_snapshot(row, field_name)) for row in owners]
        setattr(instance, BEFORE_M2M_ATTRIBUTE, pending)
        return
    for row, before in getattr(instance, BEFORE_M2M_ATTRIBUTE, {}).pop(field_name, []):
        after = m2m_snapshot(row, field_name)
        if after != before:
            record(ConfigChange.CHANGE, row, {field_name: [before, after]})


def connect_signals():
    """Connect the receivers for every tracked model and many-to-many field. Called once from AppConfig.ready()."""
    for label in TRACKED_MODELS:
        model = apps.get_model(label)
        uid = f"config-history-{label}"
        pre_save.connect(remember_row, sender=model, dispatch_uid=f"{uid}-pre-save")
        post_save.connect(record_save, sender=model, dispatch_uid=f"{uid}-post-save")
        pre_delete.connect(remember_deleted, sender=model, dispatch_uid=f"{uid}-pre-delete")
        post_delete.connect(record_delete, sender=model, dispatch_uid=f"{uid}-post-delete")
    for label, field_names in TRACKED_M2M_FIELDS.items():
        owner = apps.get_model(label)
        for field_name in field_names:
            through = owner._meta.get_field(field_name).remote_field.through
            m2m_changed.connect(record_m2m, sender=through, dispatch_uid=f"config-history-{through._meta.label}")
