"""Settings come from the environment, with safe production defaults."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from portal import env

BASE = settings.BASE_DIR


def run_manage(*args: str, **environ: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SECRET_KEY", "REDIS_URL", "DATABASE_URL"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE,
        env={**clean, **environ},
        capture_output=True,
        text=True,
        timeout=60,
    )


PRODUCTION = {
    "SECRET_KEY": "k7#Qm2!vR9zX4pL8wT1nB6yH3jF5dS0aG-u_c=e+iO@rMxZqWvNtYbPkLhJgDfSaQ",
    "ALLOWED_HOSTS": "portal.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/portal",
}


def test_check_deploy_is_clean_with_production_settings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_refuses_to_start_without_a_secret_key_in_production():
    result = run_manage("check", **{**PRODUCTION, "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_a_secret_key_can_come_from_a_file(tmp_path):
    secret = tmp_path / "key"
    secret.write_text(PRODUCTION["SECRET_KEY"] + "\n")
    environ = {**PRODUCTION, "SECRET_KEY": "", "SECRET_KEY_FILE": str(secret)}
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **environ)
    assert result.returncode == 0, result.stderr


def test_a_typo_in_a_setting_fails_loudly():
    result = run_manage("check", **{**PRODUCTION, "SECURE_SSL_REDIRECT": "ture"})
    assert result.returncode != 0
    assert "SECURE_SSL_REDIRECT must be true or false" in result.stderr


def test_without_redis_the_broker_is_embedded(tmp_path):
    code = (
        "from django.conf import settings; print(settings.CELERY_BROKER_URL, "
        "settings.DATABASES['default']['ENGINE'])"
    )
    result = run_manage(
        "shell", "--no-imports", "-c", code, DEBUG="true", PORTAL_VAR_DIR=str(tmp_path)
    )
    assert result.stdout.split() == ["filesystem://", "django.db.backends.sqlite3"]
    result = run_manage(
        "shell",
        "--no-imports",
        "-c",
        code,
        DEBUG="true",
        REDIS_URL="redis://127.0.0.1:6379/3",
        DATABASE_URL=PRODUCTION["DATABASE_URL"],
    )
    # PostgreSQL through Django's backend with the portal's bounds (portal.database)
    assert result.stdout.split() == ["redis://127.0.0.1:6379/3", "portal.database"]


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("0", False), ("On", True)])
def test_env_bool_accepts_plain_words(monkeypatch, raw, expected):
    monkeypatch.setenv("X_FLAG", raw)
    assert env.env_bool("X_FLAG") is expected


def test_env_helpers_refuse_nonsense(monkeypatch):
    monkeypatch.setenv("X_NUM", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_NUM must be an integer"):
        env.env_int("X_NUM", 1)
    monkeypatch.setenv("X_NUM", "-1")
    with pytest.raises(ImproperlyConfigured, match="at least 0"):
        env.env_int("X_NUM", 1, minimum=0)
    monkeypatch.setenv("X_LEVEL", "loose")
    with pytest.raises(ImproperlyConfigured, match="strict, lenient, off"):
        env.env_choice("X_LEVEL", ("strict", "lenient", "off"), "strict")
    monkeypatch.setenv("X_LIST", " a, b ,,c ")
    assert env.env_list("X_LIST") == ["a", "b", "c"]
