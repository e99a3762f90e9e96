"""The first login in production (README "Running it for real", docs/operating.md "First
login"): ``manage.py upgrade`` -- what the web pods' init container and compose's ``migrate``
run -- makes the administrator DJANGO_SUPERUSER_USERNAME / _EMAIL / _PASSWORD name, once; the
person then signs in with that password. Run as the deployment runs it: a process of its own
with a production environment (the ConfigMap, a real key, DEBUG off), on this run's
database. Run again, it changes nothing; several at once migrate one at a time."""

import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError
from django.db import connection

from portal import release
from portal.models import AuditEntry
from tests.conftest import database_url

ROOT = Path(settings.BASE_DIR)
pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "Correct-horse-battery-" + secrets.token_hex(8)


def as_deployed(tmp_path, **extra: str) -> dict[str, str]:
    configmap = yaml.safe_load((ROOT / "deploy" / "k8s" / "configmap.yaml").read_text())["data"]
    return {
        "PATH": os.environ["PATH"],
        "PORTAL_ENV_FILE": "",
        **configmap,
        "PORTAL_VAR_DIR": str(tmp_path),
        "LOG_FORMAT": "console",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": database_url(),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
        **extra,
    }


def upgrade(environ: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "upgrade"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_upgrade_makes_the_first_admin_once_and_they_sign_in(tmp_path, client):
    environ = as_deployed(
        tmp_path,
        DJANGO_SUPERUSER_USERNAME="ops-lead",
        DJANGO_SUPERUSER_EMAIL="ops-lead@example.com",
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )
    first = upgrade(environ)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "first administrator: 'ops-lead' made" in first.stdout

    response = client.post(
        "/accounts/login/", {"username": "ops-lead", "password": PASSWORD}, follow=True
    )
    assert response.status_code == 200
    assert response.wsgi_request.user.get_username() == "ops-lead"
    assert client.get("/admin/").status_code == 200  # an administrator: the admin opens
    assert AuditEntry.objects.filter(action="user.create", target="ops-lead").count() == 1

    # Every later start runs it again: nothing changes, not even a new password.
    again = upgrade({**environ, "DJANGO_SUPERUSER_PASSWORD": "Another-" + PASSWORD})
    assert again.returncode == 0, again.stderr
    assert "'ops-lead' exists, left as it is" in again.stdout
    user = get_user_model().objects.get(username="ops-lead")
    assert user.check_password(PASSWORD) and user.is_superuser
    assert get_user_model().objects.count() == 1


def test_a_first_admin_deleted_since_is_not_made_again(tmp_path):
    """The first administrator leaves and is deleted in the admin, the optional Secret still in
    the cluster: the next rollout's upgrade does not bring the account back with the password
    its holder knew."""
    environ = as_deployed(
        tmp_path, DJANGO_SUPERUSER_USERNAME="first-ops", DJANGO_SUPERUSER_PASSWORD=PASSWORD
    )
    assert "'first-ops' made" in release.first_admin_from_environment(environ)
    get_user_model().objects.filter(username="first-ops").delete()

    result = upgrade(environ)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "'first-ops' was made once and has been deleted since; not made again" in result.stdout
    assert not get_user_model().objects.filter(username="first-ops").exists()
    assert AuditEntry.objects.filter(action="user.create", target="first-ops").count() == 1


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("replace-me-with-a-long-password-from-a-secret-manager", "placeholder"),
        # From a file (kubectl create secret --from-file, a mounted Secret): its newline.
        ("replace-me-with-a-long-password-from-a-secret-manager\n", "placeholder"),
        ("1234567", "too short"),
        ("", "must be set"),
    ],
)
def test_a_placeholder_or_weak_password_makes_no_admin(password, why):
    environ = {"DJANGO_SUPERUSER_USERNAME": "admin", "DJANGO_SUPERUSER_PASSWORD": password}
    with pytest.raises(CommandError, match=why):
        release.first_admin_from_environment(environ)
    assert not get_user_model().objects.exists()


def test_without_the_variables_upgrade_migrates_and_makes_no_one(tmp_path):
    result = upgrade(as_deployed(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "none asked for" in result.stdout
    assert not get_user_model().objects.exists()
    assert "Registered the portal as the service 'backend'" in result.stdout


def test_upgrades_started_together_run_one_at_a_time(tmp_path):
    """While one holds the release lock, another waits; it goes on once the lock is free."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [release.UPGRADE_LOCK])
    outcome = {}
    waiter = threading.Thread(target=lambda: outcome.update(result=upgrade(as_deployed(tmp_path))))
    started = time.monotonic()
    waiter.start()
    try:
        waiter.join(timeout=6)
        assert waiter.is_alive(), "upgrade did not wait for the lock"
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [release.UPGRADE_LOCK])
    waiter.join(timeout=120)
    assert outcome["result"].returncode == 0, outcome["result"].stderr
    assert time.monotonic() - started >= 6
