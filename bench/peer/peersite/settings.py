"""Settings of the Python peer: django-revproxy behind a simplejwt stateless token check.

Every value comes from the environment that the harness sets. The peer has no
database: JWTStatelessUserAuthentication builds the user from the token alone.
"""

import os

DEBUG = False
SECRET_KEY = os.environ["PEER_SECRET_KEY"]
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "rest_framework_simplejwt",
    "revproxy",
]
MIDDLEWARE = []
ROOT_URLCONF = "peersite.urls"
WSGI_APPLICATION = "peersite.wsgi.application"
DATABASES = {}
USE_TZ = True
# The 1 MiB upload case reads the body into memory, as revproxy does.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

UPSTREAM_URL = os.environ["PEER_UPSTREAM_URL"]
# Keep-alive connections per worker to the upstream; one per gunicorn thread.
UPSTREAM_POOL_SIZE = int(os.environ.get("PEER_UPSTREAM_POOL_SIZE", "8"))

SIMPLE_JWT = {
    "ALGORITHM": "HS256",
    "SIGNING_KEY": os.environ["PEER_SIGNING_KEY"],
    "ISSUER": "jwtgate",
    "USER_ID_CLAIM": "sub",
    "AUTH_HEADER_TYPES": ("Bearer",),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
