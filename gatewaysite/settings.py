"""Django settings for jwtgate, read from environment variables.

Every variable is optional for a local run: the embedded default is SQLite under
``var/`` with a secret key generated once and kept in ``var/secret-key``. A
production deployment sets ``JWTGATE_SECRET_KEY``, ``JWTGATE_SIGNING_KEY``,
``DATABASE_URL`` and ``JWTGATE_ALLOWED_HOSTS``; docs/configuration.md lists them all.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("JWTGATE_VAR_DIR", BASE_DIR / "var"))


def env_bool(name, default):
    """Return the environment variable ``name`` read as a boolean."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use true or false.")


def env_list(name, default):
    """Return the comma-separated environment variable ``name`` as a list."""
    value = os.environ.get(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def read_or_create_secret(path):
    """Return the secret stored in ``path``, creating it with 0600 mode on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(50)
    # O_EXCL makes two workers that start together agree on one file.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


DEBUG = env_bool("JWTGATE_DEBUG", False)
SECRET_KEY = os.environ.get("JWTGATE_SECRET_KEY") or read_or_create_secret(VAR_DIR / "secret-key")
ALLOWED_HOSTS = env_list("JWTGATE_ALLOWED_HOSTS", ["*"])

INSTALLED_APPS = [
    "gatewaysite.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "accounts",
    "routing",
    "console",
    "console.config",
]

# Proxied requests leave the stack at ProxyDispatchMiddleware, so only the
# gateway-owned paths (tokens, console, health) pass the middleware below it.
MIDDLEWARE = [
    "gatewaysite.middleware.RequestIdMiddleware",
    "gatewaysite.middleware.ProblemExceptionMiddleware",
    "routing.middleware.ProxyDispatchMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "console.middleware.ChangeAttributionMiddleware",
    "console.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gatewaysite.urls"
WSGI_APPLICATION = "gatewaysite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'jwtgate.sqlite3'}",
        conn_max_age=int(os.environ.get("JWTGATE_DB_CONN_MAX_AGE_SECONDS", "60")),
        conn_health_checks=True,
    ),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that a gunicorn process started by a test reads the
    # same test database as the test itself.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Paths that routes never see: proxied traffic never needs a trailing-slash redirect.
APPEND_SLASH = False

CONSOLE_PREFIX = os.environ.get("JWTGATE_CONSOLE_PREFIX", "console").strip("/")
if not CONSOLE_PREFIX or "/" in CONSOLE_PREFIX:
    raise ImproperlyConfigured(
        f"JWTGATE_CONSOLE_PREFIX={CONSOLE_PREFIX!r} must be one non-empty path segment, such as console."
    )

# The parts this process serves: proxy (the route table, no console URLs),
# console (the console, with the proxy off) or both. GATEWAY["MODE"] below carries it.
gateway_mode = os.environ.get("JWTGATE_MODE", "both").strip().lower()
if gateway_mode not in {"proxy", "console", "both"}:
    raise ImproperlyConfigured(f"JWTGATE_MODE={gateway_mode!r} is not a mode; use proxy, console or both.")

STATIC_URL = f"/{CONSOLE_PREFIX}/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True
LOGIN_URL = f"/{CONSOLE_PREFIX}/login/"

# Set JWTGATE_HTTPS=true when clients reach the gateway over TLS, terminated by
# gunicorn or by a proxy in front of it. Cookies then become Secure, and the
# gateway's own pages redirect to https and send HSTS. Proxied traffic is not
# redirected, because the TLS terminator decides that.
HTTPS = env_bool("JWTGATE_HTTPS", False)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and env_bool("JWTGATE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(os.environ.get("JWTGATE_HSTS_SECONDS", "31536000")) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS and env_bool("JWTGATE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = HTTPS and env_bool("JWTGATE_HSTS_PRELOAD", True)
if env_bool("JWTGATE_PROXY_SSL_HEADER", False):
    # Only for a TLS-terminating proxy that sets X-Forwarded-Proto on every request.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env_list("JWTGATE_CSRF_TRUSTED_ORIGINS", [])
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "accounts.views.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SIGNING_KEY = os.environ.get("JWTGATE_SIGNING_KEY") or SECRET_KEY
SIMPLE_JWT = {
    "ALGORITHM": os.environ.get("JWTGATE_JWT_ALGORITHM", "HS256"),
    "SIGNING_KEY": SIGNING_KEY,
    "VERIFYING_KEY": os.environ.get("JWTGATE_VERIFYING_KEY", ""),
    "SIGNING_KEY_ID": os.environ.get("JWTGATE_SIGNING_KEY_ID", ""),
    "ISSUER": os.environ.get("JWTGATE_JWT_ISSUER", "jwtgate"),
    "AUDIENCE": os.environ.get("JWTGATE_JWT_AUDIENCE") or None,
    "LEEWAY": timedelta(seconds=int(os.environ.get("JWTGATE_JWT_LEEWAY_SECONDS", "30"))),
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=int(os.environ.get("JWTGATE_ACCESS_TOKEN_LIFETIME_SECONDS", "900"))),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=int(os.environ.get("JWTGATE_REFRESH_TOKEN_LIFETIME_SECONDS", "86400"))),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "sub",
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "TOKEN_OBTAIN_SERIALIZER": "accounts.serializers.TokenObtainSerializer",
    "TOKEN_REFRESH_SERIALIZER": "accounts.serializers.TokenRefreshSerializer",
}

# The gateway's own settings. routing/conf.py contains the defaults and documents each key.
GATEWAY = {
    "CONSOLE_PREFIX": CONSOLE_PREFIX,
    "MODE": gateway_mode,
    "UPSTREAM_CONNECT_TIMEOUT_SECONDS": float(os.environ.get("JWTGATE_UPSTREAM_CONNECT_TIMEOUT_SECONDS", "5")),
    "UPSTREAM_READ_TIMEOUT_SECONDS": float(os.environ.get("JWTGATE_UPSTREAM_READ_TIMEOUT_SECONDS", "30")),
    "CONFIG_CHECK_INTERVAL_SECONDS": float(os.environ.get("JWTGATE_CONFIG_CHECK_INTERVAL_SECONDS", "1")),
    "TRUSTED_PROXIES": env_list("JWTGATE_TRUSTED_PROXIES", []),
    "EXTRA_IDENTITY_HEADERS": env_list("JWTGATE_EXTRA_IDENTITY_HEADERS", []),
    "MAX_REQUEST_BODY_BYTES": int(os.environ.get("JWTGATE_MAX_REQUEST_BODY_BYTES", str(64 * 1024 * 1024))),
    "MAX_REQUEST_HEADER_BYTES": int(os.environ.get("JWTGATE_MAX_REQUEST_HEADER_BYTES", str(32 * 1024))),
    "ACCESS_TOKEN_MAX_BYTES": int(os.environ.get("JWTGATE_ACCESS_TOKEN_MAX_BYTES", "8192")),
    "RETRY_BUFFER_BYTES": int(os.environ.get("JWTGATE_RETRY_BUFFER_BYTES", str(64 * 1024))),
    "RETRY_BACKOFF_SECONDS": float(os.environ.get("JWTGATE_RETRY_BACKOFF_SECONDS", "0.025")),
    # One pooled connection per request thread by default (gunicorn's threads).
    "UPSTREAM_POOL_SIZE": int(
        os.environ.get("JWTGATE_UPSTREAM_POOL_SIZE") or os.environ.get("JWTGATE_THREADS") or "32"
    ),
    "LOGIN_FAILURE_LIMIT": int(os.environ.get("JWTGATE_LOGIN_FAILURE_LIMIT", "5")),
    "LOGIN_FAILURE_ADDRESS_LIMIT": int(os.environ.get("JWTGATE_LOGIN_FAILURE_ADDRESS_LIMIT", "20")),
    "LOGIN_FAILURE_WINDOW_SECONDS": int(os.environ.get("JWTGATE_LOGIN_FAILURE_WINDOW_SECONDS", "300")),
}

# Shared state of the workers: login-failure counters. The embedded default
# keeps them in a database table, which every worker and instance on the
# same database reads. REDIS_URL moves them to Redis.
REDIS_URL = os.environ.get("REDIS_URL", "")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "jwtgate"}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "jwtgate_cache"}
    ),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("JWTGATE_LOG_LEVEL", "INFO")},
    "loggers": {
        # Proxied requests are logged once by routing.access. On the gateway's
        # own paths Django's request logger would repeat every 4xx as a WARNING.
        "django.request": {"level": "ERROR"},
    },
}
