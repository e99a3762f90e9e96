"""The sign-in settings are read strictly at start (portal/settings.py): what cannot work
stops the start with the reason, and the client secret may come from a file."""

from tests.portal.test_settings import PRODUCTION, run_manage

SHOW = "from django.conf import settings as s; print(repr(s.OIDC_CLIENT_SECRET), s.LOCAL_LOGIN)"


def test_the_client_secret_can_come_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-the-file\n")
    environ = {
        **PRODUCTION,
        "OIDC_ISSUER": "https://id.example.com/realms/ops",
        "OIDC_CLIENT_ID": "portal",
        "OIDC_CLIENT_SECRET_FILE": str(secret),
        "LOCAL_LOGIN": "false",
    }
    result = run_manage("shell", "--no-imports", "-c", SHOW, **environ)
    assert result.stdout.split() == ["'from-the-file'", "False"], result.stderr


def test_local_login_off_without_an_issuer_stops_the_start():
    result = run_manage("check", **{**PRODUCTION, "LOCAL_LOGIN": "false"})
    assert result.returncode != 0
    assert "LOCAL_LOGIN=false needs OIDC_ISSUER: nobody could sign in" in result.stderr


def test_an_issuer_needs_https_and_a_client_id():
    plain = {**PRODUCTION, "OIDC_ISSUER": "http://id.example.com", "OIDC_CLIENT_ID": "portal"}
    result = run_manage("check", **plain)
    assert result.returncode != 0 and "OIDC_ISSUER must be an https:// URL" in result.stderr
    loopback = {**plain, "OIDC_ISSUER": "http://127.0.0.1:8080"}
    assert run_manage("check", **loopback).returncode == 0
    result = run_manage("check", **{**PRODUCTION, "OIDC_ISSUER": "https://id.example.com"})
    assert result.returncode != 0 and "OIDC_CLIENT_ID must be set" in result.stderr


def test_a_role_map_naming_no_role_stops_the_start():
    environ = {**PRODUCTION, "OIDC_ROLE_MAP": "portal-admins=superuser"}
    result = run_manage("check", **environ)
    assert result.returncode != 0
    assert "OIDC_ROLE_MAP: 'superuser' (for 'portal-admins') must be one of" in result.stderr


def test_session_times_under_a_minute_stop_the_start():
    for name in ("SESSION_IDLE_SECONDS", "SESSION_MAX_SECONDS"):
        result = run_manage("check", **{**PRODUCTION, name: "59"})
        assert result.returncode != 0 and f"{name} must be at least 60" in result.stderr
        assert run_manage("check", **{**PRODUCTION, name: "60"}).returncode == 0
