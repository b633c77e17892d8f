"""The per-worker caches of verified and rejected access tokens."""

import time

import jwt
import pytest
from rest_framework_simplejwt.exceptions import TokenError

from accounts import tokens
from accounts.tokens import (
    Identity,
    MalformedToken,
    RejectedTokenCache,
    VerifiedTokenCache,
    rejected_tokens,
    verify_access_token_cached,
)


def claims(**overrides):
    now = int(time.time())
    base = {"token_type": "access", "sub": "7", "jti": "cache-test", "iat": now, "exp": now + 300,
            "iss": "jwtgate", "roles": ["reader"], "permissions": []}
    base.update(overrides)
    return base


@pytest.fixture
def signing_key(settings):
    return settings.SIMPLE_JWT["SIGNING_KEY"]


@pytest.fixture
def verifications(monkeypatch):
    """Count the full verifications that the cached function falls back to."""
    calls = []
    original = tokens.verify_access_token_with_expiry

    def counting(raw_token, max_bytes=tokens.DEFAULT_MAX_TOKEN_BYTES):
        calls.append(raw_token)
        return original(raw_token, max_bytes)

    monkeypatch.setattr(tokens, "verify_access_token_with_expiry", counting)
    return calls


def test_verified_cache_returns_identity_until_exp():
    now = [1000.0]
    cache = VerifiedTokenCache(clock=lambda: now[0])
    identity = Identity(user_id="7", roles=frozenset({"reader"}), permissions=frozenset())
    cache.put("token", identity, expires_at=1010.0)
    assert cache.get("token") is identity
    now[0] = 1010.0
    assert cache.get("token") is None
    assert "token" not in cache.entries


def test_verified_cache_drops_oldest_when_full():
    cache = VerifiedTokenCache(max_entries=2, clock=lambda: 0.0)
    identity = Identity(user_id="7", roles=frozenset(), permissions=frozenset())
    for name in ("first", "second", "third"):
        cache.put(name, identity, expires_at=100.0)
    assert list(cache.entries) == ["second", "third"]


def test_valid_token_is_verified_once(signing_key, verifications):
    token = jwt.encode(claims(), signing_key)
    assert verify_access_token_cached(token).roles == {"reader"}
    assert verify_access_token_cached(token).user_id == "7"
    assert verifications == [token]


def test_forged_token_verified_once(verifications):
    forged = jwt.encode(claims(roles=["admin"]), "not-the-gateway-key-but-long-enough-for-hs256")
    for _attempt in range(3):
        with pytest.raises(TokenError):
            verify_access_token_cached(forged)
    assert verifications == [forged]


def test_expired_token_is_rejected_from_cache(signing_key, verifications):
    expired = jwt.encode(claims(iat=int(time.time()) - 600, exp=int(time.time()) - 300), signing_key)
    with pytest.raises(TokenError) as first:
        verify_access_token_cached(expired)
    with pytest.raises(TokenError) as second:
        verify_access_token_cached(expired)
    assert second.value.__class__ is first.value.__class__
    assert str(second.value) == str(first.value)
    assert verifications == [expired]


def test_malformed_token_keeps_its_error_class_from_cache(verifications):
    with pytest.raises(MalformedToken):
        verify_access_token_cached("a.b.c")
    with pytest.raises(MalformedToken):
        verify_access_token_cached("a.b.c")
    assert verifications == ["a.b.c"]


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_token_not_yet_valid_is_not_cached(signing_key, verifications, claim):
    early = jwt.encode(claims(**{claim: int(time.time()) + 120}), signing_key)
    for _attempt in range(2):
        with pytest.raises(TokenError):
            verify_access_token_cached(early)
    assert verifications == [early, early]
    assert early not in rejected_tokens.entries


def test_rejected_cache_skips_long_tokens():
    cache = RejectedTokenCache()
    long_token = "a" * (RejectedTokenCache.MAX_TOKEN_CHARS + 1)
    cache.add(long_token, MalformedToken("Token does not have three segments."))
    assert cache.entries == {}


def test_rejected_cache_drops_oldest_when_full():
    cache = RejectedTokenCache(max_entries=2)
    for name in ("first", "second", "third"):
        cache.add(name, MalformedToken("Token does not have three segments."))
    assert list(cache.entries) == ["second", "third"]


def test_key_change_clears_rejected_tokens(settings, verifications):
    new_key = "a-new-signing-key-that-is-long-enough-for-hs256"
    token = jwt.encode(claims(), new_key)
    with pytest.raises(TokenError):
        verify_access_token_cached(token)
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "SIGNING_KEY": new_key}
    assert verify_access_token_cached(token).user_id == "7"
    assert verifications == [token, token]


def test_rejected_cache_entry_expires():
    now = [100.0]
    cache = RejectedTokenCache(ttl_seconds=60.0, clock=lambda: now[0])
    cache.add("token", MalformedToken("Token does not have three segments."))
    with pytest.raises(MalformedToken):
        cache.check("token")
    now[0] = 160.0
    cache.check("token")
    assert cache.entries == {}
