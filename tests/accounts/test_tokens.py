"""The token endpoints: obtain, refresh, verify and revoke, and the claims they issue."""

from urllib.parse import urlencode

import jwt
import pytest
from django.conf import settings
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


def decode(token):
    return jwt.decode(
        token, settings.SIMPLE_JWT["SIGNING_KEY"], algorithms=["HS256"], issuer=settings.SIMPLE_JWT["ISSUER"]
    )


@pytest.fixture
def alice(make_user):
    return make_user(username="alice", password=PASSWORD, roles=["reader", "admin"], permissions=["orders:read"])


def obtain(client, username="alice", password=PASSWORD, as_json=True):
    data = {"username": username, "password": password}
    if as_json:
        return client.post(reverse("token-obtain"), data, content_type="application/json")
    return client.post(reverse("token-obtain"), urlencode(data), content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "form"])
def test_token_obtain_returns_pair(client, alice, as_json):
    response = obtain(client, as_json=as_json)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"


def test_token_obtain_is_not_cached(client, alice):
    assert obtain(client)["Cache-Control"] == "no-store"


def test_token_access_carries_claims(client, alice):
    claims = decode(obtain(client).json()["access"])
    assert claims["sub"] == str(alice.pk)
    assert claims["roles"] == ["admin", "reader"]
    assert claims["permissions"] == ["orders:read"]
    assert claims["token_type"] == "access"
    assert claims["iss"] == "jwtgate"
    assert {"iat", "exp", "jti"} <= set(claims)


def test_token_permissions_include_role_grants(client, make_user):
    from accounts.models import ApiPermission, Role

    role = Role.objects.create(name="clerk")
    role.permissions.add(ApiPermission.objects.create(codename="orders:write"))
    make_user(username="carl", password=PASSWORD, roles=["clerk"], permissions=["orders:read"])
    claims = decode(obtain(client, username="carl").json()["access"])
    assert claims["permissions"] == ["orders:read", "orders:write"]


def test_token_refresh_has_no_roles(client, alice):
    claims = decode(obtain(client).json()["refresh"])
    assert claims["token_type"] == "refresh"
    assert "roles" not in claims


def test_token_wrong_password_matches_unknown_user(client, alice):
    wrong_password = obtain(client, password="nope")
    unknown_user = obtain(client, username="mallory", password="nope")
    assert wrong_password.status_code == 401
    assert unknown_user.status_code == 401
    wrong_body = {key: value for key, value in wrong_password.json().items() if key != "request_id"}
    unknown_body = {key: value for key, value in unknown_user.json().items() if key != "request_id"}
    assert wrong_body == unknown_body


def test_token_failure_is_problem_json(client, alice):
    response = obtain(client, password="nope")
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"] == 'Bearer realm="jwtgate"'
    assert response.json()["request_id"] == response["X-Request-ID"]


def test_token_inactive_user_gets_none(client, alice):
    User.objects.filter(pk=alice.pk).update(is_active=False)
    response = obtain(client)
    assert response.status_code == 401
    assert "access" not in response.json()


def test_token_missing_field_gets_400(client, alice):
    response = client.post(reverse("token-obtain"), {"username": "alice"}, content_type="application/json")
    assert response.status_code == 400
    assert "password" in response.json()["detail"]


def test_token_refresh_issues_current_roles(client, alice):
    refresh = obtain(client).json()["refresh"]
    alice.roles.set([])
    response = client.post(reverse("token-refresh"), {"refresh": refresh}, content_type="application/json")
    assert response.status_code == 200
    assert decode(response.json()["access"])["roles"] == []


def test_token_refresh_rotates_refresh_token(client, alice):
    refresh = obtain(client).json()["refresh"]
    first = client.post(reverse("token-refresh"), {"refresh": refresh}, content_type="application/json")
    replay = client.post(reverse("token-refresh"), {"refresh": refresh}, content_type="application/json")
    assert first.json()["refresh"] != refresh
    assert replay.status_code == 401


def test_token_refresh_rejects_access_token(client, alice):
    access = obtain(client).json()["access"]
    response = client.post(reverse("token-refresh"), {"refresh": access}, content_type="application/json")
    assert response.status_code == 401


def test_token_refresh_rejects_inactive_user(client, alice):
    refresh = obtain(client).json()["refresh"]
    User.objects.filter(pk=alice.pk).update(is_active=False)
    response = client.post(reverse("token-refresh"), {"refresh": refresh}, content_type="application/json")
    assert response.status_code == 401


def test_token_refresh_rejects_deleted_user(client, alice):
    refresh = obtain(client).json()["refresh"]
    User.objects.filter(pk=alice.pk).delete()
    response = client.post(reverse("token-refresh"), {"refresh": refresh}, content_type="application/json")
    assert response.status_code == 401


def test_token_verify_accepts_valid_access(client, alice):
    access = obtain(client).json()["access"]
    response = client.post(reverse("token-verify"), {"token": access}, content_type="application/json")
    assert response.status_code == 200


def test_token_verify_rejects_garbage(client, alice):
    response = client.post(reverse("token-verify"), {"token": "x.y.z"}, content_type="application/json")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_token_revoke_blocks_refresh(client, alice):
    refresh = obtain(client).json()["refresh"]
    revoked = client.post(reverse("token-revoke"), {"refresh": refresh}, content_type="application/json")
    response = client.post(reverse("token-refresh"), {"refresh": refresh}, content_type="application/json")
    assert revoked.status_code == 200
    assert response.status_code == 401
