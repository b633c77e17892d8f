"""The createuser command: users with roles, API permissions, flags and a password from the environment or stdin."""

import io
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import ApiPermission, Role, User

PASSWORD = "correct horse battery"


@pytest.fixture
def roles(db):
    """Store the roles reader and admin and the API permissions orders:read and orders:write."""
    read = ApiPermission.objects.create(codename="orders:read")
    write = ApiPermission.objects.create(codename="orders:write")
    Role.objects.create(name="reader").permissions.set([read])
    Role.objects.create(name="admin").permissions.set([read, write])


@pytest.fixture
def password_env(monkeypatch):
    monkeypatch.setenv("JWTGATE_PASSWORD", PASSWORD)


def create_user(*args):
    """Run createuser with ``args`` and return its output."""
    stdout = io.StringIO()
    call_command("createuser", *args, stdout=stdout)
    return stdout.getvalue()


def role_names(username):
    return User.objects.get(username=username).role_names()


def test_createuser_sets_roles(roles, password_env):
    create_user("alice", "--roles", "reader,admin")
    assert role_names("alice") == ["admin", "reader"]


def test_createuser_sets_direct_permissions(roles, password_env):
    create_user("alice", "--roles", "reader", "--permissions", "orders:write")
    permissions = User.objects.get(username="alice").api_permissions.values_list("codename", flat=True)
    assert list(permissions) == ["orders:write"]


def test_createuser_accepts_empty_roles(roles, password_env):
    create_user("bob", "--roles", "")
    assert role_names("bob") == []


def test_createuser_reads_password_from_environment(roles, password_env):
    create_user("alice", "--roles", "reader")
    assert User.objects.get(username="alice").check_password(PASSWORD)


def test_createuser_reads_first_line_of_stdin(roles, monkeypatch):
    monkeypatch.delenv("JWTGATE_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(" stdin horse battery \nsecond line\n"))
    create_user("alice", "--roles", "reader", "--password-stdin")
    assert User.objects.get(username="alice").check_password(" stdin horse battery ")


def test_createuser_prefers_stdin_over_environment(roles, password_env, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("stdin horse battery\r\n"))
    create_user("alice", "--roles", "reader", "--password-stdin")
    assert User.objects.get(username="alice").check_password("stdin horse battery")


def test_createuser_reports_created_user(roles, password_env):
    assert create_user("alice", "--roles", "reader").startswith("Created user alice")


@pytest.mark.parametrize(
    "options, expected",
    [
        ([], {"is_staff": False, "is_superuser": False, "is_active": True, "email": ""}),
        (["--staff"], {"is_staff": True, "is_superuser": False, "is_active": True, "email": ""}),
        (["--superuser"], {"is_staff": True, "is_superuser": True, "is_active": True, "email": ""}),
        (["--inactive"], {"is_staff": False, "is_superuser": False, "is_active": False, "email": ""}),
        (["--email", "a@example.com"], {"is_staff": False, "is_superuser": False, "is_active": True,
                                        "email": "a@example.com"}),
    ],
    ids=["defaults", "staff", "superuser-implies-staff", "inactive", "email"],
)
def test_createuser_sets_flags(roles, password_env, options, expected):
    create_user("alice", "--roles", "reader", *options)
    user = User.objects.get(username="alice")
    assert {name: getattr(user, name) for name in expected} == expected


# Updating an existing user


@pytest.fixture
def existing_alice(roles, password_env):
    create_user("alice", "--roles", "admin", "--permissions", "orders:write", "--staff", "--email", "a@example.com")
    return User.objects.get(username="alice")


def update_alice(monkeypatch):
    monkeypatch.setenv("JWTGATE_PASSWORD", "another horse battery")
    return create_user("alice", "--roles", "reader")


def test_createuser_update_keeps_one_user(existing_alice, monkeypatch):
    update_alice(monkeypatch)
    assert list(User.objects.filter(username="alice").values_list("pk", flat=True)) == [existing_alice.pk]


def test_createuser_update_replaces_roles(existing_alice, monkeypatch):
    update_alice(monkeypatch)
    assert role_names("alice") == ["reader"]


def test_createuser_update_clears_omitted_permissions(existing_alice, monkeypatch):
    update_alice(monkeypatch)
    assert not User.objects.get(username="alice").api_permissions.exists()


def test_createuser_update_sets_password(existing_alice, monkeypatch):
    update_alice(monkeypatch)
    assert User.objects.get(username="alice").check_password("another horse battery")


def test_createuser_update_resets_omitted_flags(existing_alice, monkeypatch):
    update_alice(monkeypatch)
    user = User.objects.get(username="alice")
    assert user.is_staff is False
    assert user.email == ""


def test_createuser_update_reports_updated_user(existing_alice, monkeypatch):
    assert update_alice(monkeypatch).startswith("Updated user alice")


# Rejections


@pytest.mark.parametrize(
    "options, message",
    [
        (["--roles", "reader,ghost,phantom"], "unknown roles: ghost, phantom"),
        (["--roles", "reader", "--permissions", "orders:pay"], "unknown API permissions: orders:pay"),
    ],
    ids=["role", "permission"],
)
def test_createuser_rejects_unknown_names(roles, password_env, options, message):
    with pytest.raises(CommandError) as raised:
        create_user("alice", *options)
    assert message in str(raised.value)


def test_createuser_unknown_role_creates_nothing(roles, password_env):
    with pytest.raises(CommandError):
        create_user("alice", "--roles", "ghost")
    assert not User.objects.filter(username="alice").exists()


def test_createuser_unknown_role_keeps_existing_user(existing_alice, monkeypatch):
    monkeypatch.setenv("JWTGATE_PASSWORD", "another horse battery")
    with pytest.raises(CommandError):
        create_user("alice", "--roles", "ghost")
    assert User.objects.get(username="alice").check_password(PASSWORD)


def test_createuser_rejects_missing_password(roles, monkeypatch):
    monkeypatch.delenv("JWTGATE_PASSWORD", raising=False)
    with pytest.raises(CommandError) as raised:
        create_user("alice", "--roles", "reader")
    assert "No password given: set the environment variable JWTGATE_PASSWORD" in str(raised.value)


def test_createuser_missing_password_creates_nothing(roles, monkeypatch):
    monkeypatch.delenv("JWTGATE_PASSWORD", raising=False)
    with pytest.raises(CommandError):
        create_user("alice", "--roles", "reader")
    assert not User.objects.exists()


@pytest.mark.parametrize("stdin", ["", "\n"], ids=["stdin-closed", "stdin-empty-line"])
def test_createuser_rejects_empty_stdin_password(roles, monkeypatch, stdin):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(CommandError) as raised:
        create_user("alice", "--roles", "reader", "--password-stdin")
    assert "The password from standard input is empty" in str(raised.value)


def test_createuser_rejects_empty_environment_password(roles, monkeypatch):
    monkeypatch.setenv("JWTGATE_PASSWORD", "")
    with pytest.raises(CommandError) as raised:
        create_user("alice", "--roles", "reader")
    assert "The password from JWTGATE_PASSWORD is empty" in str(raised.value)


def test_createuser_rejects_weak_password(roles, monkeypatch):
    monkeypatch.setenv("JWTGATE_PASSWORD", "alice")
    with pytest.raises(CommandError) as raised:
        create_user("alice", "--roles", "reader")
    assert "password: This password is too short" in str(raised.value)


def test_createuser_no_validate_accepts_weak_password(roles, monkeypatch):
    monkeypatch.setenv("JWTGATE_PASSWORD", "alice")
    create_user("alice", "--roles", "reader", "--no-validate")
    assert User.objects.get(username="alice").check_password("alice")


def test_createuser_rejects_invalid_email(roles, password_env):
    with pytest.raises(CommandError) as raised:
        create_user("alice", "--roles", "reader", "--email", "not-an-address")
    assert "email: Enter a valid email address." in str(raised.value)
