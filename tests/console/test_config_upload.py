"""The YAML pages of the console: download, the plan of an uploaded file, and applying it on confirmation."""

import html

import pytest
import yaml
from django.contrib.auth.models import Permission
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from console.config import views
from console.config.models import ConfigChange
from routing import declarative
from routing.models import Route, Upstream
from routing.version import current_version

pytestmark = pytest.mark.django_db

STORED = """\
upstreams:
  - name: orders
    targets:
      - url: http://127.0.0.1:8081
  - name: legacy
    targets:
      - url: http://127.0.0.1:8090
roles:
  - name: reader
routes:
  - name: orders
    paths: [/api/orders/**]
    upstream: orders
    roles: [reader]
  - name: legacy
    paths: [/legacy/**]
    upstream: legacy
"""

UPLOADED = """\
upstreams:
  - name: orders
    retries: 2
    targets:
      - url: http://127.0.0.1:8081
  - name: billing
    targets:
      - url: http://127.0.0.1:8082
roles:
  - name: reader
routes:
  - name: orders
    paths: [/api/orders/**]
    upstream: orders
    roles: [reader]
  - name: billing
    paths: [/billing/**]
    upstream: billing
"""


@pytest.fixture
def stored(db):
    declarative.apply_configuration(STORED)


def snapshot():
    return declarative.export_configuration(), current_version()


def yaml_file(text, name="config.yaml"):
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="application/yaml")


def upload(client, text, prune=False, name="config.yaml"):
    data = {"file": yaml_file(text, name)}
    if prune:
        data["prune"] = "on"
    return client.post("/console/config/yaml/", data)


def planned(response):
    """Return the plan on a plan page as {group label: [str(change), ...]}."""
    return {label: [str(change) for change in changes] for label, changes in response.context["groups"]}


# The plan of an uploaded file


def test_plan_lists_additions_and_changes(console, stored):
    response = upload(console, UPLOADED)
    assert planned(response) == {
        "Added": ["add upstream billing", "add route billing"],
        "Changed": ["change upstream orders (retries)"],
    }


def test_plan_with_prune_lists_deletions(console, stored):
    response = upload(console, UPLOADED, prune=True)
    assert planned(response)["Deleted"] == ["delete route legacy", "delete upstream legacy"]


def test_plan_without_prune_keeps_omitted(console, stored):
    assert "Deleted" not in planned(upload(console, UPLOADED))


def test_plan_writes_nothing(console, stored):
    before = snapshot()
    upload(console, UPLOADED, prune=True)
    assert snapshot() == before


def test_plan_of_matching_file_is_empty(console, stored):
    response = upload(console, declarative.export_configuration())
    assert response.context["change_count"] == 0
    assert "already matches the file" in response.content.decode()


def test_plan_counts_changes(console, stored):
    response = upload(console, UPLOADED, prune=True)
    assert response.context["counts"] == {"add": 2, "change": 1, "delete": 2}


def test_plan_names_uploaded_file(console, stored):
    response = upload(console, UPLOADED, name="prod<config>.yaml")
    assert response.context["source"] == "prod_config_.yaml"


INVALID_UPLOADS = [
    pytest.param(
        UPLOADED.replace("upstream: billing", "upstream: invoices"),
        "routes[1] (billing): upstream: upstream 'invoices' not found in the file or the database",
        id="unknown-upstream",
    ),
    pytest.param(
        UPLOADED.replace("paths: [/billing/**]", "paths: [/auth/x]"),
        "routes[1] (billing): paths: Pattern '/auth/x' would shadow a path that the gateway serves itself",
        id="shadows-gateway-path",
    ),
    pytest.param(
        UPLOADED.replace("paths: [/billing/**]", "paths: [/api/orders/**]"),
        "routes[1] (billing): paths: Pattern '/api/orders/**' for every method on any host is already served "
        "by the enabled route 'orders'",
        id="duplicate-route",
    ),
    pytest.param("routes: [\n", "invalid YAML at line 2", id="yaml-syntax"),
]


@pytest.mark.parametrize("text, message", INVALID_UPLOADS)
def test_plan_shows_file_errors(console, stored, text, message):
    response = upload(console, text)
    assert response.status_code == 200
    assert any(message in error for error in response.context["errors"])
    assert message in html.unescape(response.content.decode())


@pytest.mark.parametrize("text, message", INVALID_UPLOADS)
def test_plan_of_bad_file_changes_nothing(console, stored, text, message):
    before = snapshot()
    upload(console, text)
    assert snapshot() == before


def test_upload_rejects_non_utf8(console, stored):
    response = console.post("/console/config/yaml/", {"file": SimpleUploadedFile("c.yaml", b"routes: [\xff]")})
    assert "is not UTF-8 text" in " ".join(response.context["form"].errors["file"])


def test_upload_rejects_large_file(console, stored, monkeypatch):
    monkeypatch.setattr("console.config.forms.MAX_UPLOAD_BYTES", 10)
    response = upload(console, UPLOADED)
    assert "more than the console accepts (10)" in " ".join(response.context["form"].errors["file"])


# Confirming


def plan_token(response):
    return response.context["plan_token"]


def test_confirm_applies_plan(console, stored):
    token = plan_token(upload(console, UPLOADED, prune=True))
    response = console.post("/console/config/yaml/apply/", {"plan": token})
    assert response.status_code == 302
    assert set(Route.objects.values_list("name", flat=True)) == {"orders", "billing"}
    assert Upstream.objects.get(name="orders").retries == 2


def test_confirm_redirects_to_history(console, stored):
    token = plan_token(upload(console, UPLOADED))
    response = console.post("/console/config/yaml/apply/", {"plan": token})
    assert response["Location"] == "/console/config/history/"


def test_confirm_records_console_user(console, stored):
    token = plan_token(upload(console, UPLOADED))
    console.post("/console/config/yaml/apply/", {"plan": token})
    change = ConfigChange.objects.get(content_type__model="route", object_repr="billing")
    assert (change.actor, change.source) == ("root", "upload")


def test_confirm_result_matches_file(console, stored):
    token = plan_token(upload(console, UPLOADED, prune=True))
    console.post("/console/config/yaml/apply/", {"plan": token})
    assert declarative.apply_configuration(UPLOADED, prune=True, dry_run=True).changes == ()


def test_confirm_rejects_altered_plan(console, stored):
    token = plan_token(upload(console, UPLOADED))
    before = snapshot()
    response = console.post("/console/config/yaml/apply/", {"plan": token[:-2] + "xx"})
    assert response.status_code == 400
    assert "was altered or belongs to another user" in response.context["errors"][0]
    assert snapshot() == before


def test_confirm_rejects_forged_plan(console, stored):
    forged = signing.dumps({"text": UPLOADED, "prune": True, "source": "x", "changes": []}, compress=True)
    before = snapshot()
    response = console.post("/console/config/yaml/apply/", {"plan": forged})
    assert response.status_code == 400
    assert snapshot() == before


def test_confirm_rejects_other_users_plan(console, stored, client, django_user_model):
    token = plan_token(upload(console, UPLOADED))
    other = django_user_model.objects.create_superuser("other", "other@example.com", "correct horse battery")
    client.force_login(other)
    response = client.post("/console/config/yaml/apply/", {"plan": token})
    assert response.status_code == 400


def test_confirm_rejects_expired_plan(console, stored, monkeypatch):
    token = plan_token(upload(console, UPLOADED))
    monkeypatch.setattr(views, "PLAN_MAX_AGE_SECONDS", -1)
    response = console.post("/console/config/yaml/apply/", {"plan": token})
    assert response.status_code == 400
    assert "upload the file again" in response.context["errors"][0]


def test_confirm_replans_after_concurrent_change(console, stored):
    token = plan_token(upload(console, UPLOADED))
    Upstream.objects.filter(name="orders").update(retries=2)
    before = snapshot()
    response = console.post("/console/config/yaml/apply/", {"plan": token})
    assert response.status_code == 200
    assert "changed after the plan was shown" in response.context["notice"]
    assert planned(response) == {"Added": ["add upstream billing", "add route billing"]}
    assert snapshot() == before


def test_confirm_failed_write_changes_nothing(console, stored, monkeypatch):
    token = plan_token(upload(console, UPLOADED, prune=True))

    def fail(spec, change):
        raise RuntimeError("write failed")

    monkeypatch.setitem(declarative.WRITERS, "route", fail)
    before = snapshot()
    console.raise_request_exception = False
    response = console.post("/console/config/yaml/apply/", {"plan": token})
    assert response.status_code == 500
    assert snapshot() == before


def test_confirm_needs_post(console, stored):
    assert console.get("/console/config/yaml/apply/").status_code == 405


# Downloading and permissions


def test_download_returns_export(console, stored):
    response = console.get("/console/config/yaml/export/")
    assert response["Content-Type"] == "application/yaml; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="jwtgate-config-v{current_version()}.yaml"'
    assert response.content.decode() == declarative.export_configuration()


def test_download_applies_as_no_change(console, stored):
    exported = console.get("/console/config/yaml/export/").content.decode()
    assert declarative.apply_configuration(exported, prune=True, dry_run=True).changes == ()


def test_download_lists_every_route(console, stored):
    document = yaml.safe_load(console.get("/console/config/yaml/export/").content)
    assert [route["name"] for route in document["routes"]] == ["legacy", "orders"]


@pytest.fixture
def clerk(django_user_model):
    """A test client of its own, signed in as a staff user with the view permissions only."""
    user = django_user_model.objects.create_user("clerk", password="correct horse battery", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client = Client()
    client.force_login(user)
    return client


def test_upload_needs_change_permissions(clerk, stored):
    response = upload(clerk, UPLOADED)
    assert response.status_code == 403
    assert "routing.add_route" in response.content.decode()


def test_yaml_page_hides_upload_without_permissions(clerk, stored):
    response = clerk.get("/console/config/yaml/")
    assert response.status_code == 200
    assert 'enctype="multipart/form-data"' not in response.content.decode()


def test_download_allowed_with_view_permissions(clerk, stored):
    assert clerk.get("/console/config/yaml/export/").status_code == 200


def test_apply_needs_change_permissions(clerk, stored, console):
    token = plan_token(upload(console, UPLOADED))
    assert clerk.post("/console/config/yaml/apply/", {"plan": token}).status_code == 403
