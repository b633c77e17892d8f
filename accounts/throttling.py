"""Login throttling: failed logins counted per username and per client address."""

import hashlib
import time

from django.core.cache import caches

from routing.conf import gateway_settings

CACHE_ALIAS = "throttle"


class LoginThrottle:
    """A sliding window of failed logins, kept in a cache that all workers share.

    A username with LOGIN_FAILURE_LIMIT failures, or a client address with
    LOGIN_FAILURE_ADDRESS_LIMIT failures, inside the last
    LOGIN_FAILURE_WINDOW_SECONDS is blocked until the oldest of them leaves
    the window. Keys hash the username, so the cache never stores it in clear.
    """

    def __init__(self, clock=time.time):
        self.clock = clock

    @property
    def cache(self):
        return caches[CACHE_ALIAS]

    def keys(self, username, client_ip):
        digest = hashlib.sha256(username.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return [f"login-failures:user:{digest}", f"login-failures:ip:{client_ip}"]

    def recent(self, key, now):
        window = gateway_settings.LOGIN_FAILURE_WINDOW_SECONDS
        return [stamp for stamp in self.cache.get(key, []) if stamp > now - window]

    def retry_after(self, username, client_ip):
        """Return the seconds until a login for ``username`` from ``client_ip`` is allowed again, 0 if it is now."""
        now = self.clock()
        limits = (gateway_settings.LOGIN_FAILURE_LIMIT, gateway_settings.LOGIN_FAILURE_ADDRESS_LIMIT)
        window = gateway_settings.LOGIN_FAILURE_WINDOW_SECONDS
        wait = 0.0
        for key, limit in zip(self.keys(username, client_ip), limits):
            failures = self.recent(key, now)
            if len(failures) >= limit:
                wait = max(wait, failures[-limit] + window - now)
        return int(wait) + 1 if wait > 0 else 0

    def record_failure(self, username, client_ip):
        """Count one failed login against the username and the client address."""
        now = self.clock()
        window = gateway_settings.LOGIN_FAILURE_WINDOW_SECONDS
        for key in self.keys(username, client_ip):
            failures = self.recent(key, now)
            failures.append(now)
            # Only the newest failures can matter, so the list stays bounded.
            limit = max(gateway_settings.LOGIN_FAILURE_LIMIT, gateway_settings.LOGIN_FAILURE_ADDRESS_LIMIT)
            self.cache.set(key, failures[-limit:], timeout=int(window) + 1)

    def reset_username(self, username):
        """Forget the failures of ``username`` after a successful login."""
        self.cache.delete(self.keys(username, "-")[0])


login_throttle = LoginThrottle()
