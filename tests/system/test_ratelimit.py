"""The adaptive rate limiter against real Redis: a client over its budget gets 429s with
Retry-After and the RateLimit headers while another client is untouched; a client at three
times its rate for ten seconds gets at most burst + rate x 10 s through; two processes share
one budget; Redis unreachable -> per-process limits, never a 5xx; under stress the lowest
classes tighten to the floor and relax after; the factor is on /metrics."""

import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings as django_settings
from django.contrib.auth.models import AnonymousUser
from django.db import OperationalError
from django.test import Client, RequestFactory
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from healthchecks.models import ServiceHealth
from healthchecks.reads import reports
from healthchecks.status import Status
from healthchecks.tasks import adapt_rate_limits
from healthchecks.watch import stress as pressure
from portal import ratelimit
from portal.models import SecurityEvent
from tests.conftest import ApiClient, database_url
from tests.factories import ServiceFactory, make_check
from tests.healthchecks.test_health_views import record as record_result

pytestmark = [pytest.mark.django_db, pytest.mark.ratelimit, pytest.mark.serial]


@pytest.fixture
def tight(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api_read": (60, 5), "pages": (60, 5)}
    return settings


def test_route_classes_and_the_client_address():
    assert ratelimit.route_class("/api/services", "GET") == "api_read"
    assert ratelimit.route_class("/api/services/x", "PUT") == "api_write"
    assert ratelimit.route_class("/health/service/x", "GET") == "health"
    assert ratelimit.route_class("/health/heartbeat/abc", "POST") == "heartbeat"
    assert ratelimit.route_class("/accounts/login/", "POST") == "login"
    assert ratelimit.route_class("/services/x/", "GET") == "pages"
    meta = {"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7"}
    assert ratelimit.client_address(meta) == "10.0.0.9"  # the peer is no trusted proxy
    django_settings.TRUSTED_PROXIES = ["10.0.0.9"]
    try:
        # The rightmost address the proxy did not add itself: the forged leftmost is ignored.
        assert ratelimit.client_address(meta) == "203.0.113.7"
    finally:
        django_settings.TRUSTED_PROXIES = []


def test_the_demo_targets_are_probed_on_the_probes_budget_not_the_pages(tight):
    """`make run` with 150 extra checks at 10 s on /demo/healthy (one address, 900 a minute):
    two in three answered 429 on the pages' budget, and the checks turned unhealthy."""
    client = Client()
    statuses = [client.get("/demo/healthy").status_code for _ in range(20)]
    assert statuses == [200] * 20
    pages = [client.get("/services/").status_code for _ in range(10)]
    assert 429 in pages  # the pages' budget here: a burst of 5


def test_over_its_budget_a_client_gets_429s_and_another_client_does_not(tight, make_token):
    greedy = ApiClient(make_token(["registry:read"], name="greedy").secret)
    quiet = ApiClient(make_token(["registry:read"], name="quiet").secret)
    answers = [greedy.call("GET", "/api/services") for _ in range(15)]
    codes = [a.status_code for a in answers]
    assert codes[:5] == [200] * 5
    assert codes.count(429) >= 9
    refused = answers[-1]
    assert refused.status_code == 429
    body = refused.json()["error"]
    assert body["code"] == "rate_limited" and "retry in" in body["message"]
    assert int(refused["Retry-After"]) >= 1
    assert refused["RateLimit-Limit"] == "60" and refused["RateLimit-Remaining"] == "0"
    assert [quiet.call("GET", "/api/services").status_code for _ in range(4)] == [200] * 4
    assert answers[0]["RateLimit-Remaining"] == "4"


def test_a_client_at_three_times_its_rate_gets_burst_plus_rate_through(tight):
    client = ApiClient("steady-secret")
    began, accepted, refused = time.monotonic(), 0, 0
    while time.monotonic() - began < 10:
        answer = client.call("GET", "/api/services")
        if answer.status_code == 429:
            refused += 1
            assert answer["Retry-After"]
        else:
            accepted += 1
        time.sleep(1 / 3)  # three a second against one a second allowed
    elapsed = time.monotonic() - began
    assert accepted <= 5 + int(elapsed) + 1, (accepted, elapsed)
    assert accepted >= 5 + int(elapsed) - 2  # and the rate is really granted
    assert refused >= 10


@pytest.mark.postgresql  # the other process reads the settings of a PostgreSQL run
def test_two_processes_share_one_budget(tight):
    """Another process (its own Redis connection, its own interpreter) spends the same
    client's budget (its address: the secret is no token's): between them, the burst and no
    more."""
    script = """
import os, django
os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
django.setup()
from django.test import Client
client = Client(HTTP_AUTHORIZATION="Bearer shared-secret")
print(",".join(str(client.get("/api/services").status_code) for _ in range(4)))
"""
    env = {
        **os.environ,
        "DEBUG": "true",
        "PORTAL_ENV_FILE": "",
        "DATABASE_URL": database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
        "RATE_LIMIT_API_READ": "60/5",
        "ALLOWED_HOSTS": "testserver",
    }
    other = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    theirs = [int(c) for c in other.stdout.strip().splitlines()[-1].split(",")]
    ours = [ApiClient("shared-secret").call("GET", "/api/services").status_code for _ in range(4)]
    allowed = [c for c in theirs + ours if c != 429]
    assert len(allowed) <= 5 + 1, (theirs, ours)  # one more may drip in meanwhile
    assert 429 in ours


def test_with_redis_unreachable_limits_hold_per_process_and_nothing_fails(tight, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    limiter = ratelimit.Limiter()
    saved, ratelimit.LIMITER = ratelimit.LIMITER, limiter
    try:
        codes = [ApiClient("lonely").call("GET", "/api/services").status_code for _ in range(12)]
    finally:
        ratelimit.LIMITER = saved
    assert codes[:5] == [401] * 5 and codes.count(429) >= 6
    assert all(c < 500 for c in codes)


def test_stress_tightens_the_lowest_classes_step_by_step_and_calm_relaxes_them(tight, settings):
    assert pressure.stressed(100, 10, 0, Status.HEALTHY)  # 10 % server errors
    assert pressure.stressed(100, 0, 0, Status.DEGRADED)  # its own backend is not well
    assert not pressure.stressed(10, 5, 5, Status.HEALTHY)  # too few answers to judge
    assert not pressure.stressed(100, 1, 2, Status.HEALTHY)
    backend = ServiceFactory(name="backend")
    ServiceHealth.objects.create(service=backend, status=Status.DEGRADED)
    assert [pressure.adapt() for _ in range(3)] == [0.5, 0.25, 0.25]  # down to the floor
    page = ApiClient("stressed").call("GET", "/api/services")
    assert page["RateLimit-Limit"] == "15"  # 60 a minute x 0.25
    write = ApiClient("stressed").call("POST", "/api/services", {})
    assert write["RateLimit-Limit"] == str(settings.RATE_LIMITS["api_write"][0])  # untouched
    metrics = ApiClient().get("/metrics").content.decode()
    assert "portal_rate_limit_factor 0.25" in metrics
    ServiceHealth.objects.filter(service=backend).update(status=Status.HEALTHY)
    assert [pressure.adapt() for _ in range(3)] == [0.5, 1.0, 1.0]


def test_the_heartbeat_of_each_check_has_its_own_budget(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "heartbeat": (60, 2)}
    one = [ApiClient().call("POST", "/health/heartbeat/" + "a" * 32).status_code for _ in range(4)]
    other = ApiClient().call("POST", "/health/heartbeat/" + "b" * 32).status_code
    assert one.count(429) == 2 and other == 404  # unknown token, but not limited
    assert (
        json.loads(ApiClient().call("POST", "/health/heartbeat/" + "a" * 32).content)["error"][
            "code"
        ]
        == "rate_limited"
    )


# --- a bearer token nobody holds buys no budget of its own (issue 19, item 4) --------------

# The start of a minute, so that every refusal of a test falls in one window of the counted
# security events; time runs on from there.
MINUTE = datetime(2026, 12, 7, 12, 0, 1, tzinfo=UTC)


def test_random_bearer_tokens_are_limited_by_their_address_and_counted_on_one_row():
    """The issue's trial: 400 anonymous requests, each with a bearer secret of its own, at
    the default rate (100 a minute, bursts of 200). Each got a budget of its own and wrote a
    row of its own: 0 x 429 and 400 `token_invalid` rows."""
    SecurityEvent.objects.all().delete()
    with time_machine.travel(MINUTE, tick=True):
        began = time.monotonic()
        codes = [
            ApiClient(f"svp_{secrets.token_urlsafe(30)}").call("GET", "/api/services").status_code
            for _ in range(400)
        ]
        elapsed = time.monotonic() - began
    refused, unknown = codes.count(429), codes.count(401)
    assert refused + unknown == 400
    rate, burst = django_settings.RATE_LIMITS["api_read"]
    dripped = int(rate * elapsed / 60) + 1  # what the rate grants while the burst is spent
    assert burst <= unknown <= burst + dripped, (unknown, elapsed)
    rows = {e.kind: e for e in SecurityEvent.objects.all()}
    assert set(rows) == {SecurityEvent.Kind.TOKEN_INVALID, SecurityEvent.Kind.RATE_LIMITED}
    assert rows["token_invalid"].count == unknown and rows["rate_limited"].count == refused
    assert rows["rate_limited"].who == "anonymous" == rows["token_invalid"].who


def test_a_bearer_header_does_not_lift_the_login_forms_limit(client):
    """The login form counts by address (or the person): a bearer header is nothing there."""
    rate, burst = django_settings.RATE_LIMITS["login"]
    with time_machine.travel(MINUTE, tick=True):
        began = time.monotonic()
        codes = [
            client.post(
                "/accounts/login/",
                {"username": f"guess{i}", "password": "x"},
                HTTP_AUTHORIZATION=f"Bearer svp_{secrets.token_urlsafe(30)}",
            ).status_code
            for i in range(burst + 20)
        ]
        elapsed = time.monotonic() - began
    allowed = len(codes) - codes.count(429)
    assert allowed <= burst + int(rate * elapsed / 60) + 1, (codes, elapsed)


HEADERS = st.one_of(
    st.text(max_size=80),
    st.text(max_size=80).map(lambda s: f"Bearer {s}"),
    st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", max_size=60).map(
        lambda s: f"Bearer svp_{s}"
    ),
)


@given(header=HEADERS, kind=st.sampled_from(sorted(ratelimit.TOKEN_CLASSES)))
@hypothesis_settings(max_examples=200, deadline=None)
def test_a_secret_no_token_has_is_counted_by_its_address(header, kind):
    """Whatever the Authorization header says, unless it is a token's secret, the client is
    the address -- and a token's own secret is that token's budget."""
    request = RequestFactory().get("/api/services", HTTP_AUTHORIZATION=header)
    request.user = AnonymousUser()
    assert ratelimit.client_key(request, kind) == "addr:127.0.0.1"


def test_a_tokens_own_secret_is_its_budget_wherever_it_is_a_credential(make_token):
    issued = make_token(["registry:read"], name="pipeline")
    for kind in sorted(ratelimit.TOKEN_CLASSES):
        request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
        request.user = AnonymousUser()
        assert ratelimit.client_key(request, kind) == f"token:{issued.token.secret_hash[:24]}"
        assert ratelimit.known_as(ratelimit.client_key(request, kind)) == "token:pipeline"
    for kind in ("login", "pages"):  # not a credential there
        request = RequestFactory().post("/", HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
        request.user = AnonymousUser()
        assert ratelimit.client_key(request, kind) == "addr:127.0.0.1"


# --- stress is the portal's own trouble, never an answer it gives on purpose (item 3) -------


@pytest.fixture
def incident():
    """A service whose health gate answers 503 (its one check failing): what every pipeline
    and readiness probe polls during an incident."""
    check = make_check(ServiceFactory(name="ledger"), name="tcp")
    record_result(check, Status.UNHEALTHY, errors=["connection refused"])
    return "/health/service/ledger"


def reads_let_through(reader: ApiClient, count: int) -> tuple[int, float]:
    """``count`` ordinary API reads by one client; how many were answered (not refused),
    and in how long."""
    began = time.monotonic()
    codes = [reader.call("GET", "/api/teams").status_code for _ in range(count)]
    assert set(codes) <= {200, 429}
    return codes.count(200), time.monotonic() - began


def fault(kind: str, monkeypatch) -> str:
    """A genuine fault on an ordinary path; the path that now fails so."""
    if kind == "unhandled API error":
        monkeypatch.setattr("services.api.page_of", lambda *a: 1 / 0)
        return "/api/teams"
    if kind == "unhandled error":  # Django's own 500 (handler500), outside the API
        monkeypatch.setattr(reports, "service_detail", lambda *a: 1 / 0)
        return "/health/service/ledger"
    monkeypatch.setattr(
        reports,
        "service_detail",
        lambda *a: (_ for _ in ()).throw(
            OperationalError("the server closed the connection unexpectedly")
        ),
    )
    return "/health/service/ledger"


def test_a_health_gate_polled_during_an_incident_leaves_reads_their_full_burst(
    incident, make_token
):
    """The issue's trial: the documented 503 of an unusable service, polled all minute long
    (and the demo's failing target), took `make run` to a quarter of its rate: 51 of 260
    reads passed, the burst 50 instead of 200."""
    with time_machine.travel(MINUTE, tick=True):
        gate = [Client().get(incident).status_code for _ in range(200)]
        demo = [Client().get("/demo/down").status_code for _ in range(20)]
    assert set(gate) == {503} and set(demo) == {503}
    with time_machine.travel(MINUTE + timedelta(seconds=61), tick=True):
        assert [adapt_rate_limits(), adapt_rate_limits()] == [1.0, 1.0]  # two beat ticks
        reader = ApiClient(make_token(["registry:read"]).secret)
        allowed, elapsed = reads_let_through(reader, 260)
    rate, burst = django_settings.RATE_LIMITS["api_read"]
    assert burst <= allowed <= burst + int(rate * elapsed / 60) + 1, (allowed, elapsed)


@pytest.mark.parametrize("kind", ["unhandled API error", "unhandled error", "database_unavailable"])
def test_a_genuine_fault_still_lowers_the_factor(incident, monkeypatch, make_token, kind):
    caller = ApiClient(make_token(["registry:read"]).secret, raise_request_exception=False)
    path = fault(kind, monkeypatch)
    with time_machine.travel(MINUTE, tick=True):
        answers = [caller.call("GET", path) for _ in range(30)]
        ok = [Client().get("/health/").status_code for _ in range(30)]
    assert {a.status_code for a in answers} == {503 if kind == "database_unavailable" else 500}
    assert set(ok) == {200}  # half the minute's answers were faults: stress
    monkeypatch.undo()
    with time_machine.travel(MINUTE + timedelta(seconds=61), tick=True):
        assert [adapt_rate_limits(), adapt_rate_limits()] == [0.5, 0.25]
        read = ApiClient().call("GET", "/api/teams")
    assert read["RateLimit-Limit"] == str(django_settings.RATE_LIMITS["api_read"][0] // 4)


# The embedded mode: no Redis, so each process counts its own answers and no beat task can
# read them. The web process adapts its own factor, as beat would.


@pytest.fixture
def embedded(settings):
    settings.REDIS_URL = ""
    saved, ratelimit.LIMITER = ratelimit.LIMITER, ratelimit.Limiter()
    yield ratelimit.LIMITER
    ratelimit.LIMITER = saved


@pytest.mark.sqlite
@pytest.mark.parametrize("kind", ["unhandled API error", "database_unavailable"])
def test_in_the_embedded_mode_the_web_process_adapts_by_itself(
    embedded, incident, monkeypatch, make_token, kind
):
    caller = ApiClient(make_token(["registry:read"]).secret, raise_request_exception=False)
    path = fault(kind, monkeypatch)
    with time_machine.travel(MINUTE, tick=True):
        answered = {caller.call("GET", path).status_code for _ in range(30)}
    assert answered == {500 if kind == "unhandled API error" else 503}
    monkeypatch.undo()
    limits = []
    for later in (61, 76, 91):  # three requests 15 s apart, each a step due
        with time_machine.travel(MINUTE + timedelta(seconds=later), tick=False):
            limits.append(ApiClient().call("GET", "/api/teams")["RateLimit-Limit"])
    rate = django_settings.RATE_LIMITS["api_read"][0]
    # The first request is counted at the factor of its time; each one steps it after.
    assert limits == [str(rate), str(rate // 2), str(rate // 4)]
    assert embedded.factor() == 0.25


@pytest.mark.sqlite
def test_in_the_embedded_mode_a_polled_health_gate_is_no_stress(embedded, incident):
    with time_machine.travel(MINUTE, tick=True):
        assert {Client().get(incident).status_code for _ in range(100)} == {503}
    for later in (61, 76, 91):
        with time_machine.travel(MINUTE + timedelta(seconds=later), tick=False):
            ApiClient().call("GET", "/api/teams")
    assert embedded.factor() == 1.0
