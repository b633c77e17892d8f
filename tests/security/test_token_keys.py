"""Key handling: RS256 key confusion, the kid header, leeway and the JWKS document."""

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from rest_framework_simplejwt.exceptions import TokenError

from accounts.tokens import AccessToken, get_token_backend, verify_access_token

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC_PEM = KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides):
    now = int(time.time())
    base = {"token_type": "access", "sub": "1", "jti": "k", "iat": now, "exp": now + 300, "iss": "jwtgate",
            "roles": ["admin"], "permissions": []}
    base.update(overrides)
    return base


@pytest.fixture
def rs256(settings):
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "ALGORITHM": "RS256", "SIGNING_KEY": PRIVATE_PEM,
                           "VERIFYING_KEY": PUBLIC_PEM}
    return get_token_backend()


def test_rs256_accepts_own_token(rs256):
    token = str(AccessToken())
    assert jwt.get_unverified_header(token)["alg"] == "RS256"


def test_rs256_rejects_hs256_signed_with_public_key(rs256):
    # The classic confusion: the public key's PEM bytes used as an HMAC secret.
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims()).encode())
    signature = hmac.new(PUBLIC_PEM.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(TokenError):
        verify_access_token(f"{header}.{payload}.{b64url(signature)}")


def test_rs256_rejects_token_with_matching_alg_but_foreign_key(rs256):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(TokenError):
        verify_access_token(jwt.encode(claims(), other, algorithm="RS256"))


def test_rs256_kid_is_thumbprint(rs256):
    token = jwt.encode(claims(), PRIVATE_PEM, algorithm="RS256", headers={"kid": rs256.key_id})
    assert verify_access_token(token).roles == frozenset({"admin"})


def test_jwks_publishes_rs256_key(client, rs256):
    keys = client.get("/.well-known/jwks.json").json()["keys"]
    assert len(keys) == 1
    assert keys[0]["kid"] == rs256.key_id
    assert keys[0]["alg"] == "RS256"
    assert "d" not in keys[0]


def test_jwks_is_empty_for_hs256(client):
    assert client.get("/.well-known/jwks.json").json() == {"keys": []}


def test_issued_token_carries_kid():
    token = str(AccessToken())
    assert jwt.get_unverified_header(token)["kid"] == get_token_backend().key_id


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_future_claim_within_leeway_accepted(settings, claim):
    token = jwt.encode(claims(**{claim: int(time.time()) + 10}), settings.SIMPLE_JWT["SIGNING_KEY"])
    assert verify_access_token(token).user_id == "1"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_future_claim_beyond_leeway_rejected(settings, claim):
    token = jwt.encode(claims(**{claim: int(time.time()) + 120}), settings.SIMPLE_JWT["SIGNING_KEY"])
    with pytest.raises(TokenError):
        verify_access_token(token)


def test_audience_checked_when_configured(settings):
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "AUDIENCE": "orders-api"}
    key = settings.SIMPLE_JWT["SIGNING_KEY"]
    assert verify_access_token(jwt.encode(claims(aud="orders-api"), key)).user_id == "1"
    with pytest.raises(TokenError):
        verify_access_token(jwt.encode(claims(aud="billing-api"), key))
    with pytest.raises(TokenError):
        verify_access_token(jwt.encode(claims(), key))
