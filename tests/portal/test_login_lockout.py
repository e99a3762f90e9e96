"""The login lockout as docs/operating.md states it, with the shipped defaults (nothing
overridden): failures lock the pair of a name and where they come from -- the address, or a
browser the name signed in from before -- never the name nor the address whole, so that
nobody can lock the owner out by guessing at their name (issue 28, item 10: five wrong
passwords for `admin` locked the real admin out everywhere for 15 minutes, and 20 failures
locked everyone behind one address). Through the login form with REMOTE_ADDR set, the counts
and locks in the real Redis cache (their lifetimes read from Redis itself), the events in
PostgreSQL."""

import time

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from portal import security
from portal.models import SecurityEvent

pytestmark = pytest.mark.django_db
FIFTEEN_MINUTES = 15 * 60
Kind = SecurityEvent.Kind
ATTACKER = "203.0.113.7"
OWNER = "198.51.100.20"


@pytest.fixture(autouse=True)
def _only_this_tests_events():
    SecurityEvent.objects.all().delete()


def attempt(username: str, password: str, address: str = ATTACKER, browser: Client | None = None):
    """One try at the login form from ``address`` (a fresh browser unless one is given)."""
    client = browser or Client()
    client.defaults["REMOTE_ADDR"] = address
    client.post("/accounts/login/", {"username": username, "password": password})
    return client


def counted(kind: str) -> int:
    """Events of a kind, counted rows summed (a row is a minute's)."""
    return sum(SecurityEvent.objects.filter(kind=kind).values_list("count", flat=True))


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def seconds_left(key: str) -> int:
    """The lifetime Redis gives a throttle key (-2: there is none)."""
    full = cache.make_and_validate_key(key)
    return cache._cache.get_client(full).ttl(full)


def pair(name: str, address: str) -> str:
    return security.LoginOrigin(name, address).pair


def browser_that_signed_in(name: str, password: str, address: str) -> Client:
    """A browser the owner signed in from once (then signed out: the session is gone, the
    device cookie stays)."""
    browser = attempt(name, password, address)
    assert logged_in(browser) and browser.cookies[security.DEVICE_COOKIE].value
    browser.post("/accounts/logout/")
    assert not logged_in(browser) and browser.cookies[security.DEVICE_COOKIE].value
    return browser


def test_the_defaults_are_the_readmes():
    from django.conf import settings

    assert (settings.LOGIN_MAX_FAILURES_USER, settings.LOGIN_MAX_FAILURES_ADDRESS) == (5, 20)
    assert settings.LOGIN_FAILURE_WINDOW == settings.LOGIN_LOCK_SECONDS == FIFTEEN_MINUTES


def test_5_failures_on_admin_from_one_address_do_not_stop_admin_signing_in_from_another():
    User.objects.create_user("admin", password="right-password", is_superuser=True)
    for _ in range(5):
        assert not logged_in(attempt("admin", "wrong"))
    assert logged_in(attempt("admin", "right-password", address=OWNER))  # directly, no delay
    # The guesser's address stays locked for that name, the right password included, for
    # 15 minutes from the fifth failure.
    assert not logged_in(attempt("admin", "right-password"))
    left = seconds_left(f"{pair('admin', ATTACKER)}:locked")
    assert FIFTEEN_MINUTES - 5 <= left <= FIFTEEN_MINUTES
    assert seconds_left(f"{pair('admin', OWNER)}:locked") == -2
    assert seconds_left("login-failures:user:admin:locked") == -2  # no name-wide lock
    cache.clear()  # emptying the cache ends every lock early
    assert logged_in(attempt("admin", "right-password"))


def test_a_pair_is_locked_after_5_failures_within_15_minutes_for_15_minutes():
    User.objects.create_user("dora", password="right-password")
    for _ in range(4):
        assert not logged_in(attempt("dora", "wrong"))
    assert logged_in(attempt("dora", "right-password"))  # 4 are not enough
    for _ in range(4):  # a sign-in forgave the pair's failures: 4 more are not enough either
        attempt("dora", "wrong")
    assert 0 < seconds_left(pair("dora", ATTACKER)) <= FIFTEEN_MINUTES  # the window
    attempt("dora", "wrong")  # the fifth within the window
    assert not logged_in(attempt("dora", "right-password"))  # locked: the right one fails
    assert seconds_left(f"{pair('dora', ATTACKER)}:locked") >= FIFTEEN_MINUTES - 5
    assert seconds_left(f"{pair('dora', ATTACKER)}:locked") <= FIFTEEN_MINUTES


def test_attempts_while_locked_do_not_lengthen_the_lock_and_are_events():
    """Locked for 15 minutes from the fifth failure: the guesser trying again meanwhile
    (right password or not) is refused, recorded as throttled, and waits no longer for it."""
    User.objects.create_user("erin", password="right-password")
    for _ in range(5):
        attempt("erin", "wrong")
    before = seconds_left(f"{pair('erin', ATTACKER)}:locked")
    time.sleep(2)
    assert not logged_in(attempt("erin", "right-password"))
    assert not logged_in(attempt("erin", "wrong"))
    assert seconds_left(f"{pair('erin', ATTACKER)}:locked") <= before - 1
    assert counted(Kind.LOGIN_FAILED) == 5 and counted(Kind.LOGIN_THROTTLED) == 2
    for event in SecurityEvent.objects.all():
        assert (event.who, event.client_ip) == ("erin", ATTACKER)
    throttled = SecurityEvent.objects.filter(kind=Kind.LOGIN_THROTTLED).first()
    assert throttled.detail["reason"] == "too many failed logins for this name from here"


def test_the_login_form_says_the_name_is_refused_from_here():
    User.objects.create_user("flo", password="right-password")
    for _ in range(5):
        attempt("flo", "wrong")
    client = Client(REMOTE_ADDR=ATTACKER)
    page = client.post("/accounts/login/", {"username": "flo", "password": "right-password"})
    text = page.content.decode()
    assert "This name cannot sign in from here for a while" in text
    assert "did not match" not in text


def test_20_failures_from_one_address_lock_nobody_out_elsewhere_nor_a_clean_pair_there():
    """The address guessing many names is held to one failure per name, not locked: another
    person signs in from another address, and from that one too while their name has not
    failed there."""
    User.objects.create_user("fay", password="right-password")
    User.objects.create_user("gus", password="gus-password")
    for i in range(25):  # a different name each time: no pair reaches its own limit
        attempt(f"guess-{i}", "wrong")
    assert logged_in(attempt("fay", "right-password", address=OWNER))
    assert logged_in(attempt("fay", "right-password"))  # a clean pair passes the throttle
    left = seconds_left(f"login-failures:addr:{ATTACKER}:strict")
    assert FIFTEEN_MINUTES - 5 <= left <= FIFTEEN_MINUTES
    # One guess per name from the throttled address: the first failure locks the pair.
    attempt("gus", "wrong")
    assert not logged_in(attempt("gus", "gus-password"))
    assert logged_in(attempt("gus", "gus-password", address=OWNER))
    assert not logged_in(attempt("guess-3", "wrong"))  # a pair that failed already: refused
    throttled = SecurityEvent.objects.filter(kind=Kind.LOGIN_THROTTLED)
    assert {e.detail["reason"] for e in throttled} == {
        "too many failed logins for this name from here",
        "this address is guessing names: one failure per name",
    }


def test_a_name_guessed_from_5_addresses_gives_each_new_address_one_guess():
    """Guessing from many addresses at five tries each is held to one try per address once
    the name has failed from five; the owner's right password from an address with no
    failure still signs in directly."""
    User.objects.create_user("admin", password="right-password", is_superuser=True)
    for i in range(5):
        attempt("admin", "wrong", address=f"192.0.2.{i}")
    assert 0 < seconds_left("login-failures:name:admin:strict") <= FIFTEEN_MINUTES
    assert logged_in(attempt("admin", "right-password", address=OWNER))  # directly
    attempt("admin", "wrong", address="192.0.2.50")  # a new address: one guess
    assert not logged_in(attempt("admin", "right-password", address="192.0.2.50"))
    assert not logged_in(attempt("admin", "right-password", address="192.0.2.1"))
    assert logged_in(attempt("admin", "right-password", address="192.0.2.51"))


def test_behind_the_attackers_own_address_the_owner_signs_in_from_a_browser_it_used_before():
    """Shared NAT: the owner and the guesser have one address. A browser the owner signed in
    from before holds the name's device cookie and is counted apart, so it signs in while
    the address is locked for the name; a browser that never did cannot be told from the
    guesser and waits out the lock (or signs in from another network)."""
    User.objects.create_user("admin", password="right-password", is_superuser=True)
    laptop = browser_that_signed_in("admin", "right-password", ATTACKER)
    for _ in range(25):  # the guesser at the same address: admin, then many names
        attempt("admin", "wrong")
    for i in range(25):
        attempt(f"guess-{i}", "wrong")
    assert not logged_in(attempt("admin", "right-password"))  # a new browser: locked
    assert logged_in(attempt("admin", "right-password", browser=laptop))
    assert counted(Kind.LOGIN_THROTTLED) == 20 + 1  # admin's refusals; none for the laptop


def test_a_sign_in_gives_the_browser_the_names_device_cookie_for_365_days():
    User.objects.create_user("jo", password="right-password")
    browser = attempt("jo", "right-password", OWNER)
    cookie = browser.cookies[security.DEVICE_COOKIE]
    assert cookie["max-age"] == 365 * 24 * 3600
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    name, device = security._device_of(cookie.value)
    assert name == "jo" and len(device) == 24
    browser.post("/accounts/logout/")
    again = attempt("jo", "right-password", OWNER, browser=browser).cookies[security.DEVICE_COOKIE]
    assert security._device_of(again.value) == ("jo", device)  # renewed, the same browser
    assert attempt("jo", "wrong", OWNER).cookies.get(security.DEVICE_COOKIE) is None


def test_a_browsers_cookie_is_its_own_count_not_a_way_around_it():
    """The browser's failures lock that browser for the name (the cookie buys no more
    guesses) and do not count against its address; a cookie the portal did not sign, or
    one given to another name, counts as none."""
    User.objects.create_user("hal", password="right-password")
    User.objects.create_user("ivy", password="ivy-password")
    laptop = browser_that_signed_in("hal", "right-password", OWNER)
    for _ in range(5):
        attempt("hal", "wrong", address=OWNER, browser=laptop)
    assert not logged_in(attempt("hal", "right-password", address=OWNER, browser=laptop))
    assert logged_in(attempt("hal", "right-password", address=OWNER))  # the address is clean
    for _ in range(5):  # hal's cookie is nothing to ivy's name: counted by the address
        attempt("ivy", "wrong", address=OWNER, browser=laptop)
    assert not logged_in(attempt("ivy", "ivy-password", address=OWNER))
    forged = Client()
    forged.cookies[security.DEVICE_COOKIE] = "admin:made-up"
    for _ in range(5):
        attempt("hal", "wrong", address=ATTACKER, browser=forged)
    assert not logged_in(attempt("hal", "right-password", address=ATTACKER))


def test_behind_a_trusted_proxy_the_pairs_are_the_forwarded_addresses(settings):
    """Through the proxy every peer is the proxy: the pair is the address it forwarded for,
    as the rate limiter and the security events read it, or the owner and the guesser would
    be one address again."""
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    User.objects.create_user("admin", password="right-password", is_superuser=True)

    def through_proxy(address: str, password: str) -> Client:
        client = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"{address}, 10.0.0.1")
        client.post("/accounts/login/", {"username": "admin", "password": password})
        return client

    for _ in range(5):
        through_proxy(ATTACKER, "wrong")
    assert not logged_in(through_proxy(ATTACKER, "right-password"))
    assert logged_in(through_proxy(OWNER, "right-password"))
    assert seconds_left(f"{pair('admin', ATTACKER)}:locked") > 0
    assert seconds_left(f"{pair('admin', '10.0.0.1')}:locked") == -2
