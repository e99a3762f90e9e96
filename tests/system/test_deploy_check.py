"""``manage.py check --deploy --fail-level WARNING`` passes with the settings production runs
with: the Kubernetes ConfigMap as shipped (deploy/k8s), a long random SECRET_KEY, a database
and a broker -- and nothing else from the environment of whoever runs the suite (no .env, no
DEBUG). Weakening one protection makes it fail, so a passing run means something.
"""

import os
import secrets
import subprocess
import sys

import pytest
import yaml
from django.conf import settings

BASE = settings.BASE_DIR
CONFIGMAP = BASE / "deploy" / "k8s" / "configmap.yaml"


def production(tmp_path, **overrides: str) -> dict[str, str]:
    """The process environment of a production web pod, and only that."""
    configmap = yaml.safe_load(CONFIGMAP.read_text())["data"]
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PORTAL_ENV_FILE": "",  # the image has no .env; a checkout's must not count
        **configmap,
        "PORTAL_VAR_DIR": str(tmp_path),
        "SECRET_KEY": secrets.token_urlsafe(64),
        "DATABASE_URL": "postgres://portal:secret@postgres.example.internal:5432/portal",
        "REDIS_URL": "redis://:secret@redis.example.internal:6379/0",
        **overrides,
    }


def check_deploy(environ: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_passes_with_the_shipped_production_settings(tmp_path):
    result = check_deploy(production(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)" in result.stdout


def test_the_defaults_alone_are_production_safe(tmp_path):
    """Without the ConfigMap's extras: DEBUG off, the key, the hosts, a database, a broker."""
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PORTAL_ENV_FILE": "",
        "PORTAL_VAR_DIR": str(tmp_path),
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "portal.example.internal",
        "DATABASE_URL": "postgres://portal:secret@postgres.example.internal:5432/portal",
        "REDIS_URL": "redis://redis.example.internal:6379/0",
    }
    result = check_deploy(environ)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("weakened", "warning"),
    [
        ({"DEBUG": "true"}, "security.W018"),
        ({"SECRET_KEY": "too-short-and-too-plain"}, "security.W009"),
        ({"SECURE_HSTS_SECONDS": "0"}, "security.W004"),
        ({"SECURE_SSL_REDIRECT": "false"}, "security.W008"),
        ({"SESSION_COOKIE_SECURE": "false"}, "security.W012"),
        ({"CSRF_COOKIE_SECURE": "false"}, "security.W016"),
    ],
)
def test_it_fails_when_a_protection_is_off(tmp_path, weakened, warning):
    result = check_deploy(production(tmp_path, **weakened))
    assert result.returncode != 0
    assert warning in result.stderr + result.stdout
