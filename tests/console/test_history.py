"""The change history: what is recorded for console edits and applyconfig, and the history pages."""

import html
import io

import pytest
from django.core.management import call_command
from django.db import transaction

from accounts.models import ApiPermission, Role
from console.config.history import attribute_changes
from console.config.models import ConfigChange
from routing.models import RoleRule, Route, Target, Upstream
from routing.version import current_version
from tests.console.helpers import route_form, service  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def changes_of(model, **lookup):
    """Return the ConfigChanges of the ``model`` row matching ``lookup``, oldest first."""
    row = model.objects.get(**lookup)
    return list(ConfigChange.objects.filter(object_id=str(row.pk), content_type__model=model._meta.model_name)
                .order_by("id"))


def last_change():
    return ConfigChange.objects.order_by("-id").first()


@pytest.fixture
def reader(db):
    return Role.objects.create(name="reader")


# Console edits


def test_history_records_console_add(console, service, reader):
    console.post("/console/routing/route/add/", route_form(service, roles=[str(reader.pk)]))
    [change] = changes_of(Route, name="orders")
    assert (change.action, change.actor, change.source) == ("add", "root", "console")
    assert change.changes["paths"] == [None, "/api/orders\n/api/orders/**"]
    assert change.changes["upstream"] == [None, "service"]
    assert change.changes["roles"] == [[], ["reader"]]


def test_history_records_console_user(console, service, admin_user):
    console.post("/console/routing/route/add/", route_form(service))
    assert last_change().user == admin_user


def test_history_records_request_id(console, service):
    console.post("/console/routing/route/add/", route_form(service), headers={"X-Request-ID": "req-42"})
    assert last_change().request_id == "req-42"


def test_history_records_console_change(console, service, reader):
    console.post("/console/routing/route/add/", route_form(service))
    route = Route.objects.get(name="orders")
    console.post(f"/console/routing/route/{route.pk}/change/", route_form(service, priority="7", roles=[str(reader.pk)]))
    change = changes_of(Route, name="orders")[-1]
    assert change.action == "change"
    assert change.changes == {"priority": [0, 7], "roles": [[], ["reader"]]}


def test_history_skips_unchanged_save(console, service):
    console.post("/console/routing/route/add/", route_form(service))
    route = Route.objects.get(name="orders")
    console.post(f"/console/routing/route/{route.pk}/change/", route_form(service))
    assert len(changes_of(Route, name="orders")) == 1


def test_history_records_inline_rule(console, service, reader):
    data = route_form(service, **{
        "rules-TOTAL_FORMS": "1", "rules-0-methods": "delete", "rules-0-path": "/api/orders/**",
        "rules-0-roles": [str(reader.pk)],
    })
    console.post("/console/routing/route/add/", data)
    rule = RoleRule.objects.get()
    [change] = changes_of(RoleRule, pk=rule.pk)
    assert change.changes["methods"] == [None, "DELETE"]
    assert change.changes["roles"] == [[], ["reader"]]
    assert (change.scope_type.model, change.scope_id, change.scope_repr) == ("route", str(rule.route_id), "orders")


def test_history_records_target_change(make_upstream):
    upstream_row = make_upstream(name="billing", urls=["http://127.0.0.1:8081"])
    target = Target.objects.get()
    target.weight = 3
    target.save()
    change = last_change()
    assert change.changes == {"weight": [1, 3]}
    assert (change.scope_type.model, change.scope_repr) == ("upstream", "billing")
    assert change.scope_id == str(upstream_row.pk)


def test_history_records_route_delete(make_route):
    route = make_route(name="orders", roles=["reader"], rules=[{"methods": "POST", "roles": ["admin"]}])
    route_id = route.pk
    route.delete()
    deleted = {(change.content_type.model, change.action) for change in ConfigChange.objects.filter(action="delete")}
    assert deleted == {("route", "delete"), ("rolerule", "delete")}
    route_change = ConfigChange.objects.get(action="delete", content_type__model="route")
    assert route_change.object_id == str(route_id)
    assert route_change.changes["roles"] == [["reader"], None]
    assert route_change.changes["name"] == ["orders", None]


def test_history_records_role_removed_from_route(make_route):
    make_route(name="orders", roles=["reader", "admin"])
    Role.objects.get(name="admin").delete()
    change = ConfigChange.objects.filter(content_type__model="route").order_by("-id").first()
    assert change.changes == {"roles": [["admin", "reader"], ["reader"]]}


def test_history_records_reverse_m2m_add(make_route):
    route = make_route(name="orders")
    role = Role.objects.create(name="auditor")
    role.routes.add(route)
    change = last_change()
    assert (change.content_type.model, change.object_repr) == ("route", "orders")
    assert change.changes == {"roles": [[], ["auditor"]]}


def test_history_records_role_permissions(db):
    role = Role.objects.create(name="writer")
    role.permissions.add(ApiPermission.objects.create(codename="orders:write"))
    change = last_change()
    assert (change.content_type.model, change.changes) == ("role", {"permissions": [[], ["orders:write"]]})


def test_history_merges_save_and_m2m(make_upstream):
    upstream_row = make_upstream(name="svc")
    with attribute_changes(ConfigChange.SOURCE_OTHER, actor="tester"):
        route = Route.objects.create(name="merged", paths="/m/**", upstream=upstream_row)
        route.roles.set([Role.objects.create(name="reader")])
    [change] = changes_of(Route, name="merged")
    assert change.changes["roles"] == [[], ["reader"]]
    assert change.actor == "tester"


def test_history_without_attribution_names_system(make_upstream):
    make_upstream(name="svc")
    assert last_change().actor == "system"


def test_history_rolled_back_change_leaves_nothing(make_upstream):
    upstream_row = make_upstream(name="svc")
    before = ConfigChange.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        upstream_row.retries = 3
        upstream_row.save()
        raise RuntimeError("rolled back")
    assert ConfigChange.objects.count() == before


def test_history_survives_rolled_back_merge(make_upstream):
    upstream_row = make_upstream(name="svc")
    with attribute_changes(ConfigChange.SOURCE_OTHER, actor="tester"):
        with pytest.raises(RuntimeError), transaction.atomic():
            upstream_row.retries = 3
            upstream_row.save()
            raise RuntimeError("rolled back")
        upstream_row.retries = 4
        upstream_row.save()
    assert changes_of(Upstream, name="svc")[-1].changes == {"retries": [1, 4]}


CONFIG = """\
upstreams:
  - name: billing
    targets:
      - url: http://127.0.0.1:8082
roles:
  - name: payer
routes:
  - name: billing
    paths: [/billing/**]
    upstream: billing
    roles: [payer]
"""


def test_history_names_applyconfig(tmp_path, db):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    call_command("applyconfig", str(path), stdout=io.StringIO())
    actors = set(ConfigChange.objects.values_list("actor", "source"))
    assert actors == {("applyconfig", "applyconfig")}
    [route_change] = changes_of(Route, name="billing")
    assert route_change.changes["roles"] == [[], ["payer"]]


# Configuration version


@pytest.mark.parametrize("model, lookup, field, value", [
    pytest.param(Role, {"name": "reader"}, "name", "viewer", id="role-rename"),
    pytest.param(ApiPermission, {"codename": "orders:read"}, "codename", "orders:view", id="permission-rename"),
])
def test_history_rename_bumps_version(make_route, model, lookup, field, value):
    make_route(name="orders", roles=["reader"], permissions=["orders:read"])
    row = model.objects.get(**lookup)
    before = current_version()
    setattr(row, field, value)
    row.save()
    assert current_version() > before


# Pages


def test_history_page_lists_changes(console, make_route):
    make_route(name="orders")
    response = console.get("/console/config/history/")
    assert response.status_code == 200
    listed = [(change.content_type.model, change.object_repr) for change in response.context["page"].object_list]
    assert listed == [("route", "orders"), ("upstream", "orders-upstream")]


def test_history_page_filters_by_type(console, make_route):
    make_route(name="orders", rules=[{"methods": "POST"}])
    response = console.get("/console/config/history/", {"type": "rolerule"})
    assert {change.content_type.model for change in response.context["page"].object_list} == {"rolerule"}


def test_history_page_filters_by_object(console, make_route):
    route = make_route(name="orders", rules=[{"methods": "POST"}])
    make_route(name="billing", paths="/billing/**")
    response = console.get("/console/config/history/", {"object": f"route:{route.pk}"})
    listed = {(change.content_type.model, change.scope_repr) for change in response.context["page"].object_list}
    assert listed == {("route", "orders"), ("rolerule", "orders")}
    assert response.context["title"] == "History of route orders"


@pytest.mark.parametrize("value", ["route:abc", "ghost:1", "route"])
def test_history_page_ignores_bad_object_filter(console, make_route, value):
    make_route(name="orders")
    response = console.get("/console/config/history/", {"object": value})
    assert response.status_code == 200
    assert response.context["title"] == "Configuration history"


def test_history_detail_shows_diff(console, make_route):
    route = make_route(name="orders")
    route.priority = 9
    route.save()
    response = console.get(f"/console/config/history/{last_change().pk}/")
    assert response.status_code == 200
    assert ("priority", "0", "9") in response.context["rows"]


def test_history_detail_lists_m2m_sets(console, make_route):
    make_route(name="orders", roles=["reader", "admin"])
    change = ConfigChange.objects.filter(content_type__model="route").order_by("-id").first()
    response = console.get(f"/console/config/history/{change.pk}/")
    assert ("roles", "(none)", "admin, reader") in response.context["rows"]


def test_history_button_opens_object_history(console, make_route):
    route = make_route(name="orders")
    response = console.get(f"/console/routing/route/{route.pk}/history/")
    assert response.status_code == 302
    assert response["Location"] == f"/console/config/history/?object=route%3A{route.pk}"


def test_history_link_on_change_page(console, make_route):
    route = make_route(name="orders")
    page = html.unescape(console.get(f"/console/routing/route/{route.pk}/change/").content.decode())
    assert f'href="/console/routing/route/{route.pk}/history/"' in page


def test_history_page_needs_view_permission(client, django_user_model):
    staff = django_user_model.objects.create_user("clerk", password="correct horse battery", is_staff=True)
    client.force_login(staff)
    response = client.get("/console/config/history/")
    assert response.status_code == 403
    assert "routing.view_route" in response.content.decode()


def test_history_page_needs_login(client):
    response = client.get("/console/config/history/")
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")
