"""Access and refresh tokens with the gateway's claims, and stateless verification."""

import functools
from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken as SimpleAccessToken
from rest_framework_simplejwt.tokens import RefreshToken as SimpleRefreshToken

ROLES_CLAIM = "roles"
PERMISSIONS_CLAIM = "permissions"


@functools.cache
def get_token_backend():
    """Return the TokenBackend built from the current SIMPLE_JWT settings.

    simplejwt builds its module-level backend once at import; this one is rebuilt
    when a test or a reload changes SIMPLE_JWT.
    """
    options = settings.SIMPLE_JWT
    return TokenBackend(
        algorithm=options["ALGORITHM"],
        signing_key=options["SIGNING_KEY"],
        verifying_key=options.get("VERIFYING_KEY") or "",
        audience=options.get("AUDIENCE"),
        issuer=options.get("ISSUER"),
        leeway=options.get("LEEWAY", 0),
    )


def clear_token_backend(*args, setting, **kwargs):
    if setting == "SIMPLE_JWT":
        get_token_backend.cache_clear()


setting_changed.connect(clear_token_backend)


class AccessToken(SimpleAccessToken):
    """An access token signed and checked with the gateway's current key and issuer."""

    def get_token_backend(self):
        return get_token_backend()


class RefreshToken(SimpleRefreshToken):
    """A refresh token; its access tokens carry the roles and permissions given at issue time."""

    access_token_class = AccessToken
    # Roles and permissions are looked up again on every refresh, so the refresh
    # token does not carry them.
    no_copy_claims = (*SimpleRefreshToken.no_copy_claims, ROLES_CLAIM, PERMISSIONS_CLAIM)

    def get_token_backend(self):
        return get_token_backend()


def issue_access_token(refresh, user):
    """Return an access token derived from ``refresh`` with the user's current roles and permissions."""
    access = refresh.access_token
    access[ROLES_CLAIM] = user.role_names()
    access[PERMISSIONS_CLAIM] = user.api_permission_codenames()
    return access


@dataclass(frozen=True)
class Identity:
    """The caller as an access token describes it."""

    user_id: str
    roles: frozenset
    permissions: frozenset


ANONYMOUS = Identity(user_id="", roles=frozenset(), permissions=frozenset())


def string_set(value):
    """Return ``value`` as a frozenset when it is a list of strings; anything else grants nothing."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    return frozenset()


def verify_access_token(raw_token):
    """Return the Identity in a valid access token, or raise TokenError.

    The signature algorithm comes from the settings, never from the token header;
    ``exp`` and ``jti`` are required, ``iss`` and ``aud`` are checked when
    configured, and a refresh token is rejected by its ``token_type`` claim.
    No database query is made.
    """
    token = AccessToken(raw_token)
    subject = token.get(settings.SIMPLE_JWT.get("USER_ID_CLAIM", "sub"))
    if not isinstance(subject, str) or not subject:
        raise TokenError("Token has no subject.")
    return Identity(
        user_id=subject,
        roles=string_set(token.get(ROLES_CLAIM)),
        permissions=string_set(token.get(PERMISSIONS_CLAIM)),
    )
