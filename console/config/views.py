"""The configuration pages: change history, and the whole configuration as YAML to download or upload."""

import logging
import re

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.contenttypes.models import ContentType
from django.core import signing
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST

from console.config.forms import HistoryFilterForm, UploadForm
from console.config.history import TRACKED_MODELS, attribute_changes
from console.config.links import history_url
from console.config.models import ConfigChange
from routing.declarative import (
    ADD,
    CHANGE,
    DELETE,
    Change,
    ConfigurationError,
    PlanChanged,
    apply_configuration,
    export_configuration,
)
from routing.version import current_version

logger = logging.getLogger(__name__)

HISTORY_PAGE_SIZE = 50
# A confirmation form older than this is rejected, so that an old plan left open
# in a browser tab cannot be applied by accident.
PLAN_MAX_AGE_SECONDS = 3600
PLAN_SALT = "console.config.plan"


def config_models():
    return [apps.get_model(label) for label in TRACKED_MODELS]


def model_permissions(*actions):
    """Return the permission names for ``actions`` (view, add, change, delete) on every configuration model."""
    return [
        f"{model._meta.app_label}.{action}_{model._meta.model_name}"
        for model in config_models()
        for action in actions
    ]


def forbidden_response(request, permissions, what):
    """Return a 403 response naming the missing permissions when the user lacks any of them, else None."""
    missing = [permission for permission in permissions if not request.user.has_perm(permission)]
    if not missing:
        return None
    return HttpResponseForbidden(
        f"{what} needs these permissions: {', '.join(missing)}; ask a superuser to grant them.",
        content_type="text/plain; charset=utf-8",
    )


def page_context(request, title, **context):
    return {**admin.site.each_context(request), "title": title, **context}


# Download and upload


@require_GET
def export_yaml(request):
    """Return the whole configuration as a YAML attachment in the applyconfig format."""
    if forbidden := forbidden_response(request, model_permissions("view"), "Downloading the configuration"):
        return forbidden
    response = HttpResponse(export_configuration(), content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="jwtgate-config-v{current_version()}.yaml"'
    response["Cache-Control"] = "no-store"
    return response


def yaml_page(request):
    """Show the download link and the upload form; after an upload, show the plan of the file."""
    if request.method == "POST":
        if forbidden := forbidden_response(
            request, model_permissions("add", "change", "delete"), "Uploading a configuration"
        ):
            return forbidden
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data
            return plan_response(request, upload["file"], upload["prune"], upload_name(request.FILES["file"]))
    else:
        form = UploadForm()
    return yaml_form_response(request, form)


def upload_name(upload):
    """Return the uploaded file's name reduced to safe characters, for messages and the log line."""
    name = re.sub(r"[^\w.\- ]", "_", upload.name or "")[:100].strip()
    return name or "upload.yaml"


def yaml_form_response(request, form, errors=(), source=None, status=200):
    context = page_context(
        request,
        "Configuration as YAML",
        form=form,
        errors=list(errors),
        source=source,
        version=current_version(),
        can_upload=request.user.has_perms(model_permissions("add", "change", "delete")),
    )
    return TemplateResponse(request, "console/config/yaml.html", context, status=status)


def plan_response(request, text, prune, source, notice=""):
    """Show what applying ``text`` would add, change and delete, with a form to confirm it, or the file's errors."""
    try:
        result = apply_configuration(text, source=source, prune=prune, dry_run=True)
    except ConfigurationError as exc:
        return yaml_form_response(request, UploadForm(), errors=exc.messages, source=source)
    token = signing.dumps(
        {
            "text": text,
            "prune": prune,
            "source": source,
            "changes": [[change.action, change.kind, change.name, list(change.fields)] for change in result.changes],
        },
        salt=plan_salt(request),
        compress=True,
    )
    groups = [
        (label, [change for change in result.changes if change.action == action])
        for action, label in ((ADD, "Added"), (CHANGE, "Changed"), (DELETE, "Deleted"))
    ]
    context = page_context(
        request,
        "Plan of the uploaded configuration",
        source=source,
        prune=prune,
        groups=[(label, changes) for label, changes in groups if changes],
        change_count=len(result.changes),
        counts={action: result.count(action) for action in (ADD, CHANGE, DELETE)},
        version=result.version,
        plan_token=token,
        notice=notice,
    )
    return TemplateResponse(request, "console/config/plan.html", context)


def plan_salt(request):
    # Bound to the user, so that one user's confirmation form cannot be posted by another.
    return f"{PLAN_SALT}:{request.user.pk}"


@require_POST
def apply_yaml(request):
    """Apply a planned upload, all or nothing, if its plan is still the one the user confirmed."""
    if forbidden := forbidden_response(
        request, model_permissions("add", "change", "delete"), "Applying a configuration"
    ):
        return forbidden
    try:
        plan = signing.loads(request.POST.get("plan", ""), salt=plan_salt(request), max_age=PLAN_MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        return yaml_form_response(
            request, UploadForm(), errors=[
                f"The plan is older than {PLAN_MAX_AGE_SECONDS // 60} minutes, so it was not applied; "
                "upload the file again to see a current plan."
            ], status=400,
        )
    except signing.BadSignature:
        return yaml_form_response(
            request, UploadForm(), errors=[
                "The confirmation form was altered or belongs to another user, so nothing was applied; "
                "upload the file again."
            ], status=400,
        )

    expected = tuple(Change(action, kind, name, tuple(fields)) for action, kind, name, fields in plan["changes"])
    try:
        with attribute_changes(
            ConfigChange.SOURCE_UPLOAD, request=request, request_id=getattr(request, "request_id", "")
        ):
            result = apply_configuration(
                plan["text"], source=plan["source"], prune=plan["prune"], expected_changes=expected
            )
    except PlanChanged:
        return plan_response(
            request, plan["text"], plan["prune"], plan["source"],
            notice="The stored configuration changed after the plan was shown, so nothing was applied. "
            "Review the new plan below and confirm again.",
        )
    except ConfigurationError as exc:
        return yaml_form_response(request, UploadForm(), errors=exc.messages, source=plan["source"])

    logger.info(
        "config_uploaded request_id=%s user=%s source=%s changes=%s version=%s",
        getattr(request, "request_id", "-"), request.user.get_username(), plan["source"],
        len(result.changes), result.version,
    )
    if result.changes:
        messages.success(
            request,
            f"Applied {plan['source']}: {result.count(ADD)} added, {result.count(CHANGE)} changed, "
            f"{result.count(DELETE)} deleted. The configuration version is now {result.version}.",
        )
    else:
        messages.info(request, f"{plan['source']} matches the stored configuration; nothing was changed.")
    return redirect(history_url())


# History


def parse_object_filter(value):
    """Return (model, pk) for an object filter such as ``route:5``, or None when it names no tracked object."""
    model_name, _, pk = value.partition(":")
    if not pk.isdigit():
        return None
    for model in config_models():
        if model._meta.model_name == model_name:
            return model, pk
    return None


@require_GET
def history_list(request):
    """List configuration changes, newest first, filtered by object type or by one object and its parts."""
    if forbidden := forbidden_response(request, model_permissions("view"), "The change history"):
        return forbidden
    form = HistoryFilterForm(request.GET)
    form.is_valid()
    filters = form.cleaned_data
    changes = ConfigChange.objects.select_related("content_type", "scope_type")
    title = "Configuration history"
    if filters.get("type"):
        model = next(model for model in config_models() if model._meta.model_name == filters["type"])
        changes = changes.filter(content_type=ContentType.objects.get_for_model(model))
    scope = parse_object_filter(filters.get("object") or "")
    if scope is not None:
        model, pk = scope
        changes = changes.filter(scope_type=ContentType.objects.get_for_model(model), scope_id=pk)
        title = f"History of {model._meta.verbose_name} {object_name(model, pk, changes)}"
    page = Paginator(changes, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    context = page_context(
        request,
        title,
        form=form,
        page=page,
        object_filter=filters.get("object") or "",
        object_url=change_url(*scope) if scope else None,
    )
    return TemplateResponse(request, "console/config/history_list.html", context)


def object_name(model, pk, changes):
    """Return the current name of the object, or the name its latest change recorded once it is deleted."""
    row = model._default_manager.filter(pk=pk).first()
    if row is not None:
        return str(row)
    latest = changes.filter(content_type=ContentType.objects.get_for_model(model)).first()
    return latest.object_repr if latest else f"#{pk}"


def change_url(model, pk):
    """Return the admin change page of an existing object, or None when it is gone or has no page of its own."""
    if not model._default_manager.filter(pk=pk).exists():
        return None
    try:
        return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[pk])
    except NoReverseMatch:
        return None


def display_value(value):
    """Return a stored before or after value as text: lists joined by commas, null as an empty string."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_label(model, name):
    try:
        return str(model._meta.get_field(name).verbose_name)
    except LookupError:
        return name


def diff_rows(change):
    """Return (field label, before, after) for each field of a ConfigChange, in the model's field order."""
    model = change.content_type.model_class()
    order = {field.name: index for index, field in enumerate(model._meta.get_fields())} if model else {}
    rows = []
    for name in sorted(change.changes, key=lambda name: (order.get(name, len(order)), name)):
        before, after = change.changes[name]
        rows.append((field_label(model, name) if model else name, display_value(before), display_value(after)))
    return rows


@require_GET
def history_detail(request, change_id):
    """Show one configuration change: who, when, and each field's value before and after."""
    if forbidden := forbidden_response(request, model_permissions("view"), "The change history"):
        return forbidden
    change = get_object_or_404(ConfigChange.objects.select_related("content_type", "scope_type"), pk=change_id)
    model = change.content_type.model_class()
    scope_model = change.scope_type.model_class()
    context = page_context(
        request,
        f"{change.get_action_display().capitalize()} {change.content_type.name} {change.object_repr}",
        change=change,
        rows=diff_rows(change),
        object_url=change_url(model, change.object_id) if model else None,
        scope_url=change_url(scope_model, change.scope_id) if scope_model and scope_model is not model else None,
        scope_history_url=history_url(scope_model, change.scope_id) if scope_model else None,
    )
    return TemplateResponse(request, "console/config/history_detail.html", context)
