"""The production settings pass Django's deployment checks."""

import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def test_deploy_check_is_clean(tmp_path):
    env = {
        **os.environ,
        "JWTGATE_VAR_DIR": str(tmp_path),
        "JWTGATE_HTTPS": "true",
        "JWTGATE_DEBUG": "false",
        "JWTGATE_ALLOWED_HOSTS": "gateway.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
