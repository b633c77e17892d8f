"""The route tester and the dashboard, served behind the console login."""

from django.contrib import admin
from django.http import HttpResponseForbidden
from django.http.request import split_domain_port
from django.template.response import TemplateResponse
from django.utils import timezone

from console.observe import store
from console.observe.forms import RouteTestForm
from console.observe.tester import explain
from routing import metrics
from routing.models import ConfigVersion, Route

# Both pages show the routes and their rules, so they need the permission to view routes.
VIEW_PERMISSION = "routing.view_route"
WINDOWS_MINUTES = (15, 60)
DASHBOARD_REFRESH_SECONDS = 15


def forbidden_response(request):
    """Return a 403 response when the user may not view routes, else None."""
    if request.user.has_perm(VIEW_PERMISSION):
        return None
    return HttpResponseForbidden(
        f"This page needs the permission to view routes ({VIEW_PERMISSION}); ask a superuser to grant it.",
        content_type="text/plain; charset=utf-8",
    )


def page_context(request, title, **context):
    return {**admin.site.each_context(request), "title": title, **context}


def tester(request):
    """Show the route tester form and, after a POST, what the proxy would do with that request.

    The form is posted, not sent as a query string, because it may carry an access token.
    """
    if forbidden := forbidden_response(request):
        return forbidden
    host, _port = split_domain_port(request.get_host())
    form = RouteTestForm(request.POST or None, initial={"host": host, "target": "/"})
    result = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        result = explain(data["method"], data["host"], data["target"], form.caller_value())
    return TemplateResponse(
        request, "console/observe/tester.html", page_context(request, "Route tester", form=form, result=result)
    )


def dashboard(request):
    """Show requests, status classes, latency and shadow denials per route, and each worker's configuration."""
    if forbidden := forbidden_response(request):
        return forbidden
    now = timezone.now()
    routes = store.route_windows(now, WINDOWS_MINUTES, Route.objects.values_list("name", flat=True))
    shadow_rows = [
        (entry.route, requirement, [entry.windows[minutes].shadow_denials[requirement] for minutes in WINDOWS_MINUTES])
        for entry in routes
        for requirement in sorted(entry.windows[WINDOWS_MINUTES[-1]].shadow_denials)
    ]
    config = ConfigVersion.objects.filter(pk=1).first()
    context = page_context(
        request,
        "Dashboard",
        rows=[dashboard_row(entry) for entry in routes],
        shadow_rows=shadow_rows,
        windows=WINDOWS_MINUTES,
        config_version=config.version if config else 0,
        config_updated_at=config.updated_at if config else None,
        heartbeats=store.recent_heartbeats(now),
        flush_interval_seconds=metrics.aggregator.flush_interval_seconds,
        refresh_seconds=DASHBOARD_REFRESH_SECONDS,
        no_route=metrics.NO_ROUTE,
    )
    return TemplateResponse(request, "console/observe/dashboard.html", context)


def dashboard_row(entry):
    """Return the route name and, per window, the numbers of one dashboard table row."""
    windows = []
    for minutes in WINDOWS_MINUTES:
        stats = entry.windows[minutes]
        windows.append({
            "requests": stats.requests,
            "status_2xx": stats.status_2xx,
            "status_3xx": stats.status_3xx,
            "status_4xx": stats.status_4xx,
            "status_5xx": stats.status_5xx,
            "p50_ms": milliseconds(stats.percentile(0.50)),
            "p95_ms": milliseconds(stats.percentile(0.95)),
            "shadow_denials": entry.shadow_denials(minutes),
        })
    return {"route": entry.route, "windows": windows}


def milliseconds(seconds):
    return None if seconds is None else seconds * 1000
