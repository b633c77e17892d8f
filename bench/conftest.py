"""Configure jwtgate's Django settings for the micro-benchmarks, with a private temporary JWTGATE_VAR_DIR."""

import os
import shutil
import tempfile

import django

_VAR_DIR = tempfile.mkdtemp(prefix="jwtgate-micro-")
os.environ["JWTGATE_VAR_DIR"] = _VAR_DIR
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gatewaysite.settings")
# A throwaway key, so that settings do not write var/secret-key.
os.environ.setdefault("JWTGATE_SECRET_KEY", "micro-benchmark-secret-key-not-for-production-use")
# One access-log line per request is not what these benchmarks measure.
os.environ.setdefault("JWTGATE_LOG_LEVEL", "ERROR")
django.setup()


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_VAR_DIR, ignore_errors=True)
