"""Security events: failed and throttled logins (and the throttle itself), bad tokens,
permission denials on the API and the pages, rate-limit hits, secret reads, tokens made and
revoked -- each with who, where from and what; refusals counted on one row per kind, address
and caller a minute; readable by admins only, on the API and /metrics."""

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from portal import security, tokens
from portal.auth import system_actor
from portal.models import SecurityEvent
from portal.requestcontext import client_ip_var
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


def test_failed_logins_are_events_and_lock_the_name_out_from_there_even_with_the_right_password(
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
    # Nor is bob from another address: the lock is the name's from there (issue 28, item 10).
    elsewhere = Client(REMOTE_ADDR="198.51.100.20")
    assert login(elsewhere, "bob", "pw").status_code == 302


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
    assert login(Client(REMOTE_ADDR="198.51.100.20"), "bob", "pw").status_code == 302


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
def test_rate_limit_hits_are_counted_on_one_row_per_client_a_minute(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api_read": (60, 2)}
    client = ApiClient("flooding")
    codes = [client.call("GET", "/api/services").status_code for _ in range(10)]
    assert codes.count(429) >= 7
    event = SecurityEvent.objects.get(kind=Kind.RATE_LIMITED)  # a flood is not a flood of rows
    assert event.count == codes.count(429) and event.last_at >= event.at
    assert event.detail["route_class"] == "api_read"
    assert event.who == "anonymous"  # a secret no token has: its caller is its address
    assert event.client_ip == "127.0.0.1"


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
    (event,) = answer.json()["items"]
    assert event["kind"] == "token_invalid" and event["operation"] == "GET /api/services"
    since = (timezone.now() + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert auditor.call("GET", f"/api/security-events?since={since}").json()["items"] == []
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


# --- refusals are counted, not stored one row per request (issue 19, item 4) ---------------
# (Marked sqlite: the embedded mode counts them on SQLite, with the same code.)

MINUTE = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # a window starts


@pytest.mark.sqlite
def test_refusals_of_one_kind_from_one_address_are_counted_on_one_row_a_minute(make_token):
    """Unknown tokens from one address: one row counting them, whatever the secrets; another
    address has its own row, and so has the next minute."""
    with time_machine.travel(MINUTE, tick=False):
        for i in range(7):
            ApiClient(f"svp_guess{i}").call("GET", f"/api/services?n={i}")
        ApiClient("svp_other", REMOTE_ADDR="192.0.2.9").call("GET", "/api/services")
    with time_machine.travel(MINUTE + timedelta(seconds=59.5), tick=False):
        ApiClient("svp_late").call("GET", "/api/services")
    with time_machine.travel(MINUTE + timedelta(seconds=60), tick=False):
        ApiClient("svp_next").call("GET", "/api/services")
    rows = SecurityEvent.objects.filter(kind=Kind.TOKEN_INVALID).order_by("at", "client_ip")
    counted = [(e.client_ip, e.count, e.at, e.last_at) for e in rows]
    assert counted == [
        ("127.0.0.1", 8, MINUTE, MINUTE + timedelta(seconds=59.5)),
        ("192.0.2.9", 1, MINUTE, MINUTE),
        ("127.0.0.1", 1, MINUTE + timedelta(seconds=60), MINUTE + timedelta(seconds=60)),
    ]
    first = rows[0]
    assert first.operation == "GET /api/services" and first.who == "anonymous"
    metrics = ApiClient().get("/metrics").content.decode()
    assert 'portal_security_events_total{kind="token_invalid"} 10.0' in metrics


@pytest.mark.sqlite
def test_the_api_shows_how_often_and_until_when(make_token):
    """A counted event reads as one item with its count and last_at, and a since= after its
    first sighting still finds it (it was seen since)."""
    auditor = ApiClient(make_token(["audit:read"], name="auditor").secret)
    with time_machine.travel(MINUTE, tick=False):
        ApiClient("svp_guess").call("GET", "/api/services")
    with time_machine.travel(MINUTE + timedelta(seconds=40), tick=False):
        for _ in range(4):
            ApiClient("svp_guess").call("GET", "/api/services")
        page = auditor.call("GET", "/api/security-events?kind=token_invalid").json()
    (event,) = page["items"]
    assert event["count"] == 5 and event["at"].startswith("2026-12-07T12:00:00")
    assert event["last_at"].startswith("2026-12-07T12:00:40")
    since = "/api/security-events?kind=token_invalid&since=2026-12-07T12:00:30Z"
    assert [e["count"] for e in auditor.call("GET", since).json()["items"]] == [5]
    later = "/api/security-events?kind=token_invalid&since=2026-12-07T12:00:41Z"
    assert auditor.call("GET", later).json()["items"] == []


@pytest.mark.sqlite
def test_callers_from_one_address_are_not_counted_together(client, bob, make_token):
    """A count never hides who: two tokens denied from one address are two rows."""
    for name in ("reader", "viewer"):
        caller = ApiClient(make_token(["registry:read"], name=name).secret)
        for _ in range(3):
            caller.call("POST", "/api/services", {"name": "x", "team": "t"})
    rows = SecurityEvent.objects.filter(kind=Kind.PERMISSION_DENIED).order_by("who")
    assert [(e.who, e.count) for e in rows] == [("token:reader", 3), ("token:viewer", 3)]


def test_what_is_done_stays_one_row_each():
    actor = system_actor("tests")
    for name in ("one", "two"):
        tokens.issue_token(name, ["registry:read"], issuer=actor)
    created = SecurityEvent.objects.filter(kind=Kind.TOKEN_CREATED)
    assert [e.count for e in created] == [1, 1]


@pytest.mark.django_db(transaction=True)
def test_counting_from_many_connections_at_once_loses_none():
    """Four web processes' worth of connections counting the same refusal at once: one row,
    and every refusal on it (the unique tally lets one insert; the others count)."""
    SecurityEvent.objects.all().delete()
    barrier = threading.Barrier(4)

    def refuse(times: int) -> None:
        token = client_ip_var.set("198.51.100.4")
        try:
            barrier.wait()
            for _ in range(times):
                security.record(Kind.TOKEN_INVALID, "anonymous", "GET /api/services", "refused")
        finally:
            client_ip_var.reset(token)
            connection.close()

    with time_machine.travel(MINUTE, tick=False):
        threads = [threading.Thread(target=refuse, args=(50,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    (row,) = SecurityEvent.objects.filter(kind=Kind.TOKEN_INVALID)
    assert row.count == 200 and row.client_ip == "198.51.100.4"


@pytest.mark.sqlite
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(sorted(security.COUNTED)),
            st.sampled_from(["192.0.2.1", "192.0.2.2", "2001:db8::1"]),
            st.sampled_from(["anonymous", "token:ci", "bob"]),
            st.integers(0, 179),  # seconds into three minutes
        ),
        max_size=40,
    )
)
@hypothesis_settings(max_examples=40, deadline=None)
def test_every_refusal_is_counted_once_on_the_row_of_its_kind_address_caller_and_minute(events):
    """The promise as a property: rows are exactly the distinct (kind, address, caller,
    minute) seen, and their counts add up to the refusals."""
    SecurityEvent.objects.all().delete()
    for kind, address, who, second in events:
        token = client_ip_var.set(address)
        try:
            with time_machine.travel(MINUTE + timedelta(seconds=second), tick=False):
                security.record(kind, who, "GET /x", "refused")
        finally:
            client_ip_var.reset(token)
    expected = Counter((k, str(ip_address(a)), w, s // 60) for k, a, w, s in events)
    rows = SecurityEvent.objects.all()
    got = {
        (e.kind, e.client_ip, e.who, int((e.at - MINUTE).total_seconds() // 60)): e.count
        for e in rows
    }
    assert got == dict(expected) and len(rows) == len(expected)
