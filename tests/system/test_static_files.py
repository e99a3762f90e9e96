"""docs/dependencies.md (whitenoise): gunicorn serves the static files itself, with caching
headers, so the image needs no nginx. As the image does it: `collectstatic` with the build's
throwaway key, then gunicorn as the Dockerfile runs it, DEBUG off, behind a TLS proxy."""

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.conf import settings

from tests.conftest import database_url
from tests.healthchecks.servers import closed_port
from tests.system.test_database_outage import image_command

pytestmark = pytest.mark.django_db


def fetch(url: str) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_gunicorn_serves_the_collected_static_files_with_long_caching(tmp_path):
    static_root = tmp_path / "staticfiles"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PORTAL_ENV_FILE": "",
        "PORTAL_VAR_DIR": str(tmp_path),
        "STATIC_ROOT": str(static_root),
    }
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=settings.BASE_DIR,
        env={**env, "SECRET_KEY": "collectstatic-only"},  # as the Dockerfile's build step
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stderr
    manifest = json.loads((static_root / "staticfiles.json").read_text())["paths"]
    plain = next(
        name
        for name in sorted(manifest)
        if name.startswith("vendor/htmx/") and name.endswith(".js")
    )
    hashed = manifest[plain]
    port = closed_port()
    server = subprocess.Popen(
        [sys.executable, "-m", *image_command(), "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=settings.BASE_DIR,
        env={
            **env,
            "SECRET_KEY": secrets.token_urlsafe(64),
            "ALLOWED_HOSTS": "127.0.0.1",
            "TRUST_X_FORWARDED_PROTO": "true",
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "LOG_LEVEL": "warning",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/health/", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        status, head, body = fetch(f"{base}/static/{hashed}")
        assert status == 200, (status, body[:200])
        assert body == (static_root / hashed).read_bytes()
        assert "immutable" in head["Cache-Control"] and "max-age=315360000" in head["Cache-Control"]
        status, head, _ = fetch(f"{base}/static/{plain}")  # the name without its hash
        assert status == 200 and "immutable" not in head.get("Cache-Control", "")
    finally:
        server.terminate()
        server.wait(timeout=20)
