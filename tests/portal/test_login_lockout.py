"""The login lockout as the README states it, with the shipped defaults (nothing overridden):
a user name is locked out after 5 failed logins within 15 minutes, an address after 20, for
15 minutes, the right password included. Through the login form, the counts and the lock in
the real Redis cache (their lifetimes read from Redis itself)."""

import time

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from portal.models import SecurityEvent

pytestmark = pytest.mark.django_db
FIFTEEN_MINUTES = 15 * 60
Kind = SecurityEvent.Kind


@pytest.fixture(autouse=True)
def _only_this_tests_events():
    SecurityEvent.objects.all().delete()


def attempt(username: str, password: str, address: str = "203.0.113.7") -> Client:
    client = Client(REMOTE_ADDR=address)
    client.post("/accounts/login/", {"username": username, "password": password})
    return client


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def seconds_left(key: str) -> int:
    """The lifetime Redis gives a throttle key (-2: there is none)."""
    full = cache.make_and_validate_key(key)
    return cache._cache.get_client(full).ttl(full)


def test_the_defaults_are_the_readmes():
    from django.conf import settings

    assert (settings.LOGIN_MAX_FAILURES_USER, settings.LOGIN_MAX_FAILURES_ADDRESS) == (5, 20)
    assert settings.LOGIN_FAILURE_WINDOW == settings.LOGIN_LOCK_SECONDS == FIFTEEN_MINUTES


def test_a_name_is_locked_after_5_failures_within_15_minutes_for_15_minutes():
    User.objects.create_user("dora", password="right-password")
    for _ in range(4):
        assert not logged_in(attempt("dora", "wrong", address=f"198.51.100.{_}"))
    assert logged_in(attempt("dora", "right-password"))  # 4 are not enough
    assert 0 < seconds_left("login-failures:user:dora") <= FIFTEEN_MINUTES  # the window
    attempt("dora", "wrong", address="198.51.100.9")  # the fifth within the window
    assert not logged_in(attempt("dora", "right-password"))  # locked: the right one fails
    assert seconds_left("login-failures:user:dora:locked") >= FIFTEEN_MINUTES - 5
    assert seconds_left("login-failures:user:dora:locked") <= FIFTEEN_MINUTES
    # From any address: it is the name that is locked.
    assert not logged_in(attempt("dora", "right-password", address="192.0.2.200"))


def test_attempts_while_locked_do_not_lengthen_the_lock():
    """Locked for 15 minutes from the fifth failure: the owner trying again meanwhile (right
    password or not) is refused, recorded as throttled, and waits no longer for it."""
    User.objects.create_user("erin", password="right-password")
    for _ in range(5):
        attempt("erin", "wrong")
    before = seconds_left("login-failures:user:erin:locked")
    time.sleep(2)
    assert not logged_in(attempt("erin", "right-password"))
    assert not logged_in(attempt("erin", "wrong"))
    assert seconds_left("login-failures:user:erin:locked") <= before - 1
    kinds = list(SecurityEvent.objects.order_by("id").values_list("kind", flat=True))
    assert kinds.count(Kind.LOGIN_FAILED) == 1  # the five failures: one counted row
    assert SecurityEvent.objects.get(kind=Kind.LOGIN_FAILED).count == 5
    assert SecurityEvent.objects.get(kind=Kind.LOGIN_THROTTLED).count == 2


def test_an_address_is_locked_after_20_failures_for_15_minutes():
    User.objects.create_user("fay", password="right-password")
    for i in range(19):  # a different name each time: no name reaches its own limit
        attempt(f"guess-{i}", "wrong")
    assert logged_in(attempt("fay", "right-password"))  # 19 are not enough
    attempt("guess-19", "wrong")
    assert not logged_in(attempt("fay", "right-password"))  # the address is locked
    assert logged_in(attempt("fay", "right-password", address="203.0.113.8"))  # not fay
    left = seconds_left("login-failures:addr:203.0.113.7:locked")
    assert FIFTEEN_MINUTES - 5 <= left <= FIFTEEN_MINUTES
