"""The README's "Rate limits" sentences no other test held, against real Redis:

- every limited answer, of every route class, carries RateLimit-Limit, RateLimit-Remaining
  and RateLimit-Reset;
- a logged-in person has a budget of their own (not their address's);
- under stress pages and API reads tighten, while probes, pings, logins and writes keep their
  rates;
- Redis unreachable: the same limits per process, logged once.
"""

import logging

import pytest
from django.test import Client

from portal import ratelimit
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, make_check

pytestmark = [pytest.mark.django_db, pytest.mark.ratelimit]


@pytest.fixture
def estate():
    check = make_check(ServiceFactory(name="web"), name="cron", kind="heartbeat", target="")
    check.heartbeat_token = "b" * 32
    check.save()


def calls(bob):
    """One request of each route class, as its callers make it."""
    person = Client()
    person.force_login(bob)
    return {
        "api_read": lambda: ApiClient().call("GET", "/api/services"),
        "api_write": lambda: ApiClient().call("POST", "/api/services", {}),
        "health": lambda: Client().get("/health/services"),
        "heartbeat": lambda: Client().post(f"/health/heartbeat/{'b' * 32}"),
        "login": lambda: Client().post("/accounts/login/", {"username": "x", "password": "y"}),
        "pages": lambda: person.get("/"),
    }


def test_every_route_class_answers_with_the_three_headers(estate, bob):
    for kind, call in calls(bob).items():
        answer = call()
        limit, burst = ratelimit.settings.RATE_LIMITS[kind]
        assert answer["RateLimit-Limit"] == str(limit), kind
        assert 0 <= int(answer["RateLimit-Remaining"]) < burst, kind
        assert int(answer["RateLimit-Reset"]) >= 0, kind


def test_under_stress_only_pages_and_api_reads_tighten(estate, bob, settings):
    ratelimit.LIMITER.set_factor(settings.RATE_LIMIT_FLOOR)  # stress at its worst
    for kind, call in calls(bob).items():
        rate = settings.RATE_LIMITS[kind][0]
        tightened = kind in ("pages", "api_read")
        expected = int(rate * settings.RATE_LIMIT_FLOOR) if tightened else rate
        assert call()["RateLimit-Limit"] == str(expected), kind


def test_a_logged_in_person_has_a_budget_of_their_own(bob, alice, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "pages": (60, 3)}
    one, other = Client(REMOTE_ADDR="192.0.2.5"), Client(REMOTE_ADDR="192.0.2.5")
    one.force_login(bob)
    other.force_login(alice)
    assert 429 in [one.get("/").status_code for _ in range(6)]
    assert other.get("/").status_code == 200  # the same address, another person
    assert Client(REMOTE_ADDR="192.0.2.5").get("/accounts/login/").status_code == 200


def test_with_redis_unreachable_the_limits_hold_per_process_logged_once(settings, caplog):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api_read": (60, 5)}
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    saved, ratelimit.LIMITER = ratelimit.LIMITER, ratelimit.Limiter()
    try:
        with caplog.at_level(logging.WARNING, logger="portal.ratelimit"):
            codes = [ApiClient().call("GET", "/api/services").status_code for _ in range(12)]
    finally:
        ratelimit.LIMITER = saved
    assert codes[:5] == [401] * 5 and codes[5:] == [429] * 7  # the same limit, in-process
    said = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(said) == 1
