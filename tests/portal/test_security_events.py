"""Security events: failed and throttled logins (and the throttle itself), bad tokens,
permission denials on the API and the pages, rate-limit hits (once a minute per client),
secret reads, tokens made and revoked -- each with who, where from and what; readable by
admins only, on the API and /metrics."""

from datetime import timedelta

import pytest
from django.utils import timezone

from portal import tokens
from portal.auth import system_actor
from portal.models import SecurityEvent
from tests.conftest import ApiClient
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db
Kind = SecurityEvent.Kind


@pytest.fixture(autouse=True)
def _only_this_tests_events():
    """Servers other tests started in subprocesses commit their events for good."""
    SecurityEvent.objects.all().delete()


def kinds() -> list[str]:
    return list(SecurityEvent.objects.order_by("id").values_list("kind", flat=True))


def login(client, username, password):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_failed_logins_are_events_and_lock_the_name_out_even_with_the_right_password(
    client, bob, settings
):
    settings.LOGIN_MAX_FAILURES_USER = 3
    for _ in range(3):
        assert login(client, "bob", "wrong").status_code == 200  # the form again
    event = SecurityEvent.objects.filter(kind=Kind.LOGIN_FAILED).first()
    assert (event.who, event.outcome, event.operation) == (
        "bob",
        "refused",
        "POST /accounts/login/",
    )
    assert event.client_ip == "127.0.0.1"
    assert login(client, "bob", "pw").status_code == 200  # locked: the right password fails
    assert "_auth_user_id" not in client.session
    assert Kind.LOGIN_THROTTLED in kinds()
    # Another name from the same address is not locked by bob's failures.
    from django.contrib.auth.models import User

    User.objects.create_user("carol", password="pw2")
    assert login(client, "carol", "pw2").status_code == 302


def test_with_the_cache_unreachable_the_throttle_counts_in_the_process(client, bob, settings):
    """Redis gone: the login form still answers (no 500) and still locks a guessed name."""
    from portal import security

    security._LOCAL.clear()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    settings.LOGIN_MAX_FAILURES_USER = 3
    for _ in range(3):
        assert login(client, "bob", "wrong").status_code == 200
    assert login(client, "bob", "pw").status_code == 200  # locked in this process
    assert "_auth_user_id" not in client.session


def test_bad_and_expired_tokens_are_events(make_token):
    assert ApiClient("not-a-token").call("GET", "/api/services").status_code == 401
    old = make_token(["registry:read"], name="old", expires_in=timedelta(seconds=-1))
    assert ApiClient(old.secret).call("GET", "/api/services").status_code == 401
    assert [k for k in kinds() if k != Kind.TOKEN_CREATED] == [
        Kind.TOKEN_INVALID,
        Kind.TOKEN_EXPIRED,
    ]
    expired = SecurityEvent.objects.get(kind=Kind.TOKEN_EXPIRED)
    assert expired.who == "token:old" and expired.operation == "GET /api/services"


def test_refusals_on_the_api_and_on_the_pages_are_events(client, bob, make_token):
    reader = ApiClient(make_token(["registry:read"], name="reader").secret)
    assert reader.call("POST", "/api/services", {"name": "x", "team": "t"}).status_code == 403
    denied = SecurityEvent.objects.get(kind=Kind.PERMISSION_DENIED)
    assert denied.who == "token:reader" and "lacks the scope" in denied.detail["reason"]
    ServiceFactory(name="db")
    client.force_login(bob)  # a viewer
    assert client.post("/services/db/run-checks").status_code == 403
    page = SecurityEvent.objects.filter(kind=Kind.PERMISSION_DENIED).order_by("id").last()
    assert (page.who, page.operation) == ("user:bob", "POST /services/db/run-checks")


@pytest.mark.ratelimit
def test_rate_limit_hits_are_events_once_a_minute_per_client(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api_read": (60, 2)}
    client = ApiClient("flooding")
    codes = [client.call("GET", "/api/services").status_code for _ in range(10)]
    assert codes.count(429) >= 7
    events = SecurityEvent.objects.filter(kind=Kind.RATE_LIMITED)
    assert events.count() == 1  # a flood is not a flood of rows
    assert events.get().detail["route_class"] == "api_read"
    assert events.get().who == "token:unknown"  # a secret no token has


@pytest.mark.ratelimit
def test_a_rate_limited_token_is_named_as_in_every_other_event(settings, make_token):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api_read": (60, 2)}
    client = ApiClient(make_token(["registry:read"], name="trial").secret)
    assert 429 in [client.call("GET", "/api/services").status_code for _ in range(6)]
    assert SecurityEvent.objects.get(kind=Kind.RATE_LIMITED).who == "token:trial"


def test_tokens_made_and_revoked_and_secrets_read_are_events():
    actor = system_actor("tests")
    issued = tokens.issue_token("deploy", ["registry:read"], issuer=actor)
    tokens.update_token(issued.token, {"is_active": False}, issuer=actor)
    from services import configs

    ServiceFactory(name="app")
    schema = {"type": "object", "properties": {"password": {"type": "string", "writeOnly": True}}}
    configs.put_schema("app", schema, actor)
    configs.publish("app", {"password": "hunter2"}, 0, actor)
    configs.read("app", None, reveal_secrets=True, actor=actor)
    assert kinds() == [Kind.TOKEN_CREATED, Kind.TOKEN_REVOKED, Kind.SECRET_READ]
    read = SecurityEvent.objects.get(kind=Kind.SECRET_READ)
    assert read.detail == {"service": "app", "version": 1}
    assert "hunter2" not in str(list(SecurityEvent.objects.values()))


def test_admins_read_them_on_the_api_and_metrics_count_them(make_token):
    ApiClient("nope").call("GET", "/api/services")
    operator = ApiClient(make_token(["registry:read", "automation:read"], name="ops").secret)
    assert operator.call("GET", "/api/security-events").status_code == 403
    auditor = ApiClient(make_token(["audit:read"], name="auditor").secret)
    answer = auditor.call("GET", "/api/security-events?kind=token_invalid")
    assert answer.status_code == 200
    (event,) = answer.json()
    assert event["kind"] == "token_invalid" and event["operation"] == "GET /api/services"
    since = (timezone.now() + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert auditor.call("GET", f"/api/security-events?since={since}").json() == []
    metrics = ApiClient().get("/metrics").content.decode()
    assert 'portal_security_events_total{kind="token_invalid"} 1.0' in metrics
    assert 'portal_security_events_total{kind="permission_denied"} 1.0' in metrics


def test_tokens_are_listed_with_their_last_use_and_revoked_by_name(make_token, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    used = make_token(["registry:read"], name="ci")
    ApiClient(used.secret).call("GET", "/api/services")
    admin = ApiClient(make_token(["audit:read", "registry:read"], name="admin").secret)
    listed = {t["name"]: t for t in admin.call("GET", "/api/tokens").json()}
    assert listed["ci"]["last_used_at"] and listed["ci"]["is_active"]
    assert used.secret not in str(listed) and listed["ci"]["prefix"]
    answer = admin.call("POST", "/api/tokens/ci/revoke")
    assert answer.status_code == 200 and answer.json()["is_active"] is False
    assert ApiClient(used.secret).call("GET", "/api/services").status_code == 401
    assert admin.call("POST", "/api/tokens/ci/revoke").status_code == 409
    assert admin.call("POST", "/api/tokens/ghost/revoke").status_code == 404
    other = make_token(["config:secrets"], name="vault")
    assert admin.call("POST", "/api/tokens/vault/revoke").status_code == 403  # cannot grant it
    call_command("revoke_api_token", "vault")
    assert "Revoked token 'vault'" in capsys.readouterr().out
    with pytest.raises(CommandError, match="revoked already"):
        call_command("revoke_api_token", "vault")
    assert other.secret not in str(list(SecurityEvent.objects.values()))
    assert [k for k in kinds() if k == Kind.TOKEN_REVOKED] == [Kind.TOKEN_REVOKED] * 2


def test_a_since_with_an_offset_postgresql_refuses_is_read_in_utc(make_token):
    """The fuzzer's case: +22:31 is valid ISO 8601 and Python, not PostgreSQL (was a 500)."""
    auditor = ApiClient(make_token(["audit:read"]).secret)
    answer = auditor.call("GET", "/api/security-events?since=1786-11-15T09%3A10%3A03.3%2B22%3A31")
    assert answer.status_code == 200
    far = auditor.call("GET", "/api/security-events?since=0001-01-01T00%3A00%3A00%2B01%3A00")
    assert far.status_code == 200


def test_a_window_with_such_an_offset_is_stored_in_utc(make_token):
    from datetime import timedelta

    from django.utils import timezone

    from services.models import MaintenanceWindow

    ServiceFactory(name="db")
    day = (timezone.now() + timedelta(days=30)).date().isoformat()
    planner = ApiClient(make_token(["automation:write", "automation:read"]).secret)
    body = {
        "services": ["db"],
        "starts_at": f"{day}T09:00:00+22:31",
        "ends_at": f"{day}T23:00:00Z",
    }
    assert planner.call("POST", "/api/maintenance-windows", body).status_code == 201
    stored = MaintenanceWindow.objects.get()
    assert stored.starts_at.isoformat().endswith("T10:29:00+00:00")  # the day before, in UTC
