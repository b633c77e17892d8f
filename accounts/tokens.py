"""Access and refresh tokens with the gateway's claims, and stateless verification."""

import base64
import binascii
import functools
import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import jwt
import jwt.algorithms

from django.conf import settings
from django.core.signals import setting_changed
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken as SimpleAccessToken
from rest_framework_simplejwt.tokens import RefreshToken as SimpleRefreshToken

ROLES_CLAIM = "roles"
PERMISSIONS_CLAIM = "permissions"


class GatewayTokenBackend(TokenBackend):
    """A TokenBackend that writes the key id (``kid``) into the header of every token it signs."""

    def __init__(self, *args, key_id, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_id = key_id

    def encode(self, payload):
        jwt_payload = payload.copy()
        if self.audience is not None:
            jwt_payload["aud"] = self.audience
        if self.issuer is not None:
            jwt_payload["iss"] = self.issuer
        return jwt.encode(
            jwt_payload, self.prepared_signing_key, algorithm=self.algorithm, headers={"kid": self.key_id}
        )


def signing_key_id(options):
    """Return the key id of the configured key: SIGNING_KEY_ID when set, else one derived from the key.

    For an RSA or EC key it is the RFC 7638 thumbprint of the public key. For an
    HMAC secret it is a truncated SHA-256 digest, which does not reveal the secret.
    """
    if options.get("SIGNING_KEY_ID"):
        return options["SIGNING_KEY_ID"]
    algorithm = options["ALGORITHM"]
    if algorithm.startswith("HS"):
        digest = hashlib.sha256(b"jwtgate-kid:" + options["SIGNING_KEY"].encode()).digest()
        return base64.urlsafe_b64encode(digest[:12]).decode().rstrip("=")
    implementation = jwt.algorithms.get_default_algorithms()[algorithm]
    public_jwk = json.loads(implementation.to_jwk(implementation.prepare_key(options["VERIFYING_KEY"])))
    return jwk_thumbprint(public_jwk)


def jwk_thumbprint(public_jwk):
    """Return the RFC 7638 SHA-256 thumbprint of a public JWK, base64url-encoded."""
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
    members = {name: public_jwk[name] for name in required[public_jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).decode().rstrip("=")


@functools.cache
def get_token_backend():
    """Return the TokenBackend built from the current SIMPLE_JWT settings.

    simplejwt builds its module-level backend once at import; this one is rebuilt
    when a test or a reload changes SIMPLE_JWT.
    """
    options = settings.SIMPLE_JWT
    return GatewayTokenBackend(
        algorithm=options["ALGORITHM"],
        signing_key=options["SIGNING_KEY"],
        verifying_key=options.get("VERIFYING_KEY") or "",
        audience=options.get("AUDIENCE"),
        issuer=options.get("ISSUER"),
        leeway=options.get("LEEWAY", 0),
        key_id=signing_key_id(options),
    )


def clear_token_backend(*args, setting, **kwargs):
    if setting == "SIMPLE_JWT":
        get_token_backend.cache_clear()
        verified_tokens.clear()
        rejected_tokens.clear()


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


# Header parameters that point at keys elsewhere or embed one (RFC 7515 section 4.1).
# The gateway verifies with its own key only, so a token naming another key is rejected.
FOREIGN_KEY_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256"})
BASE64URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
DEFAULT_MAX_TOKEN_BYTES = 8192


class MalformedToken(TokenError):
    """A token rejected before its signature is checked."""


def reject_duplicate_keys(pairs):
    """Build a JSON object, raising MalformedToken when a member name repeats (RFC 7515 section 5.2)."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise MalformedToken(f"Token JSON repeats the member {key!r}.")
        result[key] = value
    return result


def decode_segment(segment, name):
    """Return the JSON object in one base64url segment of a compact JWS, or raise MalformedToken."""
    if not segment or not set(segment) <= BASE64URL_ALPHABET:
        raise MalformedToken(f"Token {name} is not base64url.")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(data, object_pairs_hook=reject_duplicate_keys)
    except (binascii.Error, ValueError) as exc:
        raise MalformedToken(f"Token {name} is not base64url-encoded JSON.") from exc
    if not isinstance(value, dict):
        raise MalformedToken(f"Token {name} is not a JSON object.")
    return value


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_string_list(value):
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# The type each claim must have when present; PyJWT would accept a string "exp".
CLAIM_TYPES = {
    "exp": (is_number, "a number"),
    "iat": (is_number, "a number"),
    "nbf": (is_number, "a number"),
    "sub": (lambda value: isinstance(value, str), "a string"),
    "jti": (lambda value: isinstance(value, str), "a string"),
    "iss": (lambda value: isinstance(value, str), "a string"),
    "token_type": (lambda value: isinstance(value, str), "a string"),
    "aud": (lambda value: isinstance(value, str) or is_string_list(value), "a string or a list of strings"),
    ROLES_CLAIM: (is_string_list, "a list of strings"),
    PERMISSIONS_CLAIM: (is_string_list, "a list of strings"),
}


def check_token_structure(raw_token, max_bytes=DEFAULT_MAX_TOKEN_BYTES):
    """Raise MalformedToken unless ``raw_token`` is a well-formed compact JWS for the configured key.

    These checks run before any signature work. They cover the size, three
    base64url segments, JSON objects without repeated members, the ``alg`` of
    the configured key, a ``kid`` equal to the gateway's own, the absence of
    ``crit`` and foreign key headers, and the type of every known claim.
    """
    if len(raw_token) > max_bytes:
        raise MalformedToken(f"Token is longer than {max_bytes} bytes.")
    segments = raw_token.split(".")
    if len(segments) != 3:
        raise MalformedToken("Token does not have three segments.")
    header = decode_segment(segments[0], "header")
    payload = decode_segment(segments[1], "payload")
    if not segments[2]:
        raise MalformedToken("Token has no signature.")

    backend = get_token_backend()
    if header.get("alg") != backend.algorithm:
        raise MalformedToken("Token algorithm is not the gateway's.")
    if "kid" in header and header["kid"] != backend.key_id:
        raise MalformedToken("Token key id is not the gateway's.")
    if "crit" in header or FOREIGN_KEY_HEADERS & header.keys():
        raise MalformedToken("Token header names a key or an extension the gateway does not use.")
    for claim, (check, expected) in CLAIM_TYPES.items():
        if claim in payload and not check(payload[claim]):
            raise MalformedToken(f"Token claim {claim!r} is not {expected}.")


class ExpiringCache:
    """A bounded map whose entries each last until a time of ``clock``; the oldest entry goes first when it is full."""

    def __init__(self, max_entries, clock):
        self.max_entries = max_entries
        self.clock = clock
        self.entries = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        """Return the value stored for ``key``, or None when there is none or it has expired."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if self.clock() >= expires_at:
            with self.lock:
                self.entries.pop(key, None)
            return None
        return value

    def put(self, key, value, expires_at):
        with self.lock:
            self.entries[key] = (value, expires_at)
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)

    def clear(self):
        with self.lock:
            self.entries.clear()


class VerifiedTokenCache(ExpiringCache):
    """A bounded map from access tokens that passed verification to their Identity, each until its ``exp``.

    Clients repeat the same token on every request, so the signature is checked
    once per token and worker. An entry is used only strictly before the token's
    ``exp``, without the leeway, and the oldest entry goes first when the cache is
    full. Only verified tokens enter, so invalid tokens cannot fill it.
    """

    def __init__(self, max_entries=4096, clock=time.time):
        super().__init__(max_entries, clock)


verified_tokens = VerifiedTokenCache()


class RejectedTokenCache(ExpiringCache):
    """A bounded map from access tokens that failed verification for good to the error they raised.

    A forged signature, a malformed token, a wrong issuer or an expired token
    fails the same way every time, so a client that repeats it costs one dictionary
    lookup instead of a parse and a signature check. A token that is only not yet
    valid (``nbf`` or ``iat`` in the future) may become valid and never enters.
    Tokens longer than MAX_TOKEN_CHARS are not kept, so the cache stores at most
    ``max_entries`` times that many characters; the oldest entry goes first.
    An entry lasts ``ttl_seconds``, so that a token rejected as expired while
    the clock ran ahead is verified again once the clock is corrected.
    """

    MAX_TOKEN_CHARS = 2048

    def __init__(self, max_entries=1024, ttl_seconds=60.0, clock=time.monotonic):
        super().__init__(max_entries, clock)
        self.ttl_seconds = ttl_seconds

    def check(self, raw_token):
        """Raise a new error of the kind ``raw_token`` raised before, when it is in the cache."""
        entry = self.get(raw_token)
        if entry is not None:
            error_class, message = entry
            raise error_class(message)

    def add(self, raw_token, error):
        """Remember that ``raw_token`` raised ``error``, unless the token is too long or may pass later."""
        if len(raw_token) > self.MAX_TOKEN_CHARS or not fails_for_good(error):
            return
        message = str(error.args[0]) if error.args else ""
        self.put(raw_token, (error.__class__, message), self.clock() + self.ttl_seconds)


def fails_for_good(error):
    """Return whether a token that raised ``error`` will fail again whenever it is verified.

    Only a token that is not valid yet can pass later; PyJWT reports that as
    ImmatureSignatureError, somewhere in the chain of causes.
    """
    while error is not None:
        if isinstance(error, jwt.ImmatureSignatureError):
            return False
        error = error.__cause__ or error.__context__
    return True


rejected_tokens = RejectedTokenCache()


def verify_access_token_cached(raw_token, max_bytes=DEFAULT_MAX_TOKEN_BYTES):
    """Return the Identity of an access token, from the caches of verified and rejected tokens when it is there.

    Raise TokenError as verify_access_token does. The size limit applies before the lookup.
    """
    if len(raw_token) > max_bytes:
        raise MalformedToken(f"Token is longer than {max_bytes} bytes.")
    identity = verified_tokens.get(raw_token)
    if identity is not None:
        return identity
    rejected_tokens.check(raw_token)
    try:
        identity, expires_at = verify_access_token_with_expiry(raw_token, max_bytes)
    except TokenError as exc:
        rejected_tokens.add(raw_token, exc)
        raise
    verified_tokens.put(raw_token, identity, expires_at)
    return identity


def verify_access_token(raw_token, max_bytes=DEFAULT_MAX_TOKEN_BYTES):
    """Return the Identity in a valid access token, or raise TokenError; see verify_access_token_with_expiry."""
    return verify_access_token_with_expiry(raw_token, max_bytes)[0]


def verify_access_token_with_expiry(raw_token, max_bytes=DEFAULT_MAX_TOKEN_BYTES):
    """Return the Identity in a valid access token and its ``exp``, or raise TokenError.

    The signature algorithm comes from the settings, never from the token header.
    ``exp`` and ``jti`` are required, and ``nbf`` and ``iat`` may not lie in the
    future beyond the leeway. ``iss`` and ``aud`` are checked when configured, and
    a refresh token is rejected by its ``token_type`` claim. No database query is made.
    """
    check_token_structure(raw_token, max_bytes)
    token = AccessToken(raw_token)
    subject = token.get(settings.SIMPLE_JWT.get("USER_ID_CLAIM", "sub"))
    if not isinstance(subject, str) or not subject:
        raise TokenError("Token has no subject.")
    identity = Identity(
        user_id=subject,
        roles=frozenset(token.get(ROLES_CLAIM) or ()),
        permissions=frozenset(token.get(PERMISSIONS_CLAIM) or ()),
    )
    return identity, float(token["exp"])
