"""The gateway's settings object: defaults for the GATEWAY dict, read at call time."""

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS = {
    # The first path segment of the admin console, for example "console" for /console/.
    "CONSOLE_PREFIX": "console",
    # What this process serves: "proxy" (no console), "console" (no proxy) or "both".
    "MODE": "both",
    # Used when an upstream leaves its own timeouts empty.
    "UPSTREAM_CONNECT_TIMEOUT_SECONDS": 5.0,
    "UPSTREAM_READ_TIMEOUT_SECONDS": 30.0,
    # How often a worker reads the configuration version from the database.
    "CONFIG_CHECK_INTERVAL_SECONDS": 1.0,
    # Addresses or CIDR networks whose X-Forwarded-For and X-Forwarded-Proto are trusted.
    "TRUSTED_PROXIES": [],
    # Header names removed from client requests besides every X-User-* header.
    "EXTRA_IDENTITY_HEADERS": [],
    # Connections kept open per upstream in each worker.
    "UPSTREAM_POOL_SIZE": 32,
    # Bytes read from the upstream per chunk while streaming a response.
    "STREAM_CHUNK_BYTES": 64 * 1024,
    # Bytes read from the client per chunk while streaming a request body. gunicorn
    # copies its read buffer on every read, so few large reads cost less CPU.
    "REQUEST_BODY_CHUNK_BYTES": 1024 * 1024,
    # Request bodies above this size get 413, unless a route sets its own limit.
    "MAX_REQUEST_BODY_BYTES": 64 * 1024 * 1024,
    # Request headers (names and values together) above this size get 431.
    "MAX_REQUEST_HEADER_BYTES": 32 * 1024,
    # Bearer tokens above this size get 401 before any decoding work.
    "ACCESS_TOKEN_MAX_BYTES": 8 * 1024,
    # Request bodies up to this size are kept in memory so that a retry can resend them.
    "RETRY_BUFFER_BYTES": 64 * 1024,
    # The pause before the first retry; each further retry doubles it, with jitter.
    "RETRY_BACKOFF_SECONDS": 0.025,
    # Failed logins per username and per client address before 429.
    "LOGIN_FAILURE_LIMIT": 5,
    # Higher than the username limit: many users can share one address (a NAT, an office).
    "LOGIN_FAILURE_ADDRESS_LIMIT": 20,
    "LOGIN_FAILURE_WINDOW_SECONDS": 300,
}

# First path segments served by the gateway itself, besides the console prefix.
FIXED_OWNED_SEGMENTS = frozenset({"auth", ".well-known", "healthz"})


class GatewaySettings:
    """Attribute access to settings.GATEWAY with defaults filled in."""

    def __init__(self, user_settings=None, defaults=None):
        self._user_settings = user_settings
        self.defaults = defaults or DEFAULTS
        self._cached = set()

    @property
    def user_settings(self):
        if self._user_settings is None:
            self._user_settings = getattr(settings, "GATEWAY", {})
        return self._user_settings

    def __getattr__(self, attr):
        if attr not in self.defaults:
            raise AttributeError(f"Invalid gateway setting: {attr!r}")
        value = self.user_settings.get(attr, self.defaults[attr])
        self._cached.add(attr)
        setattr(self, attr, value)
        return value

    def reload(self):
        for attr in self._cached:
            delattr(self, attr)
        self._cached.clear()
        self._user_settings = None


gateway_settings = GatewaySettings()


def reload_gateway_settings(*args, setting, **kwargs):
    if setting == "GATEWAY":
        gateway_settings.reload()


setting_changed.connect(reload_gateway_settings)


def gateway_owned_segments():
    """Return the first path segments that the gateway serves itself and routes may not use."""
    return FIXED_OWNED_SEGMENTS | {gateway_settings.CONSOLE_PREFIX}
