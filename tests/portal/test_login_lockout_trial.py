"""Breaking trial of the login lockout (issue 28, item 10): an attacker forging, replaying or
borrowing the device cookie, spoofing X-Forwarded-For, varying the name's case; the right
password refused during a lock without saying it was right. Through the login form with
REMOTE_ADDR, the counts in the real Redis cache, the events in PostgreSQL."""

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from portal import security
from portal.models import SecurityEvent

pytestmark = pytest.mark.django_db
Kind = SecurityEvent.Kind
ATTACKER = "203.0.113.7"
OWNER = "198.51.100.20"


@pytest.fixture(autouse=True)
def _only_this_tests_events():
    SecurityEvent.objects.all().delete()


def attempt(username: str, password: str, address: str = ATTACKER, browser: Client | None = None):
    client = browser or Client()
    client.defaults["REMOTE_ADDR"] = address
    client.post("/accounts/login/", {"username": username, "password": password})
    return client


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def counted(kind: str) -> int:
    return sum(SecurityEvent.objects.filter(kind=kind).values_list("count", flat=True))


def minted_cookie(name: str, password: str, address: str = ATTACKER) -> str:
    """A fresh browser signs in as ``name`` and signs out: its device cookie."""
    browser = attempt(name, password, address)
    assert logged_in(browser)
    return browser.cookies[security.DEVICE_COOKIE].value


def test_x_forwarded_for_from_an_untrusted_peer_gives_no_fresh_pairs(settings):
    settings.TRUSTED_PROXIES = []
    User.objects.create_user("admin", password="right-password")
    for i in range(10):
        client = Client(HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
        attempt("admin", "wrong", browser=client)
    client = Client(HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert not logged_in(attempt("admin", "right-password", browser=client))
    assert counted(Kind.LOGIN_FAILED) == 5 and counted(Kind.LOGIN_THROTTLED) == 5 + 1


def test_the_names_case_and_spaces_give_no_fresh_pairs():
    User.objects.create_user("admin", password="right-password")
    for name in ["Admin", "ADMIN", " admin", "aDmin ", "admin"]:
        attempt(name, "wrong")
    assert not logged_in(attempt("admin", "right-password"))
    assert logged_in(attempt("admin", "right-password", OWNER))


def _page_text(client: Client, username: str, password: str) -> str:
    client.defaults["REMOTE_ADDR"] = ATTACKER
    response = client.post("/accounts/login/", {"username": username, "password": password})
    body = response.content.decode()
    body = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", body)
    body = re.sub(r'"X-CSRFToken": "[^"]*"', "", body)
    return re.sub(r'nonce="[^"]*"', "", body), response.status_code


def test_the_right_password_during_a_lock_is_answered_as_a_wrong_one():
    User.objects.create_user("admin", password="right-password")
    for _ in range(5):
        attempt("admin", "wrong")
    right = _page_text(Client(), "admin", "right-password")
    wrong = _page_text(Client(), "admin", "wrong-again")
    assert right == wrong
    assert counted(Kind.LOGIN_THROTTLED) == 2 and counted(Kind.LOGIN_FAILED) == 5


def test_a_replayed_cookie_of_another_name_is_no_device_for_this_one():
    User.objects.create_user("mallory", password="mallory-password")
    User.objects.create_user("admin", password="right-password")
    cookie = minted_cookie("mallory", "mallory-password")
    for _ in range(8):
        browser = Client()
        browser.cookies[security.DEVICE_COOKIE] = cookie
        attempt("admin", "wrong", browser=browser)
    assert counted(Kind.LOGIN_FAILED) == 5  # the address's pair locked at 5, cookie or not
    assert not logged_in(attempt("admin", "right-password"))


def test_a_cookie_for_a_name_differing_only_in_case_is_no_device_for_it():
    """Django's names are case-sensitive: "Bob" and "bob" are two people. The throttle
    counts names in lower case, so Bob's device cookie held the name "bob" -- and Bob,
    signing in from as many fresh browsers as he liked, minted devices that were counted
    apart for bob: 5 guesses at bob's password each, none counting towards the address or
    the name, past every lock and strict mode. A cookie is the device of the name that
    signed in, exactly."""
    User.objects.create_user("Bob", password="bobs-password")
    User.objects.create_user("bob", password="the-victims-password")
    cookies = [minted_cookie("Bob", "bobs-password") for _ in range(3)]
    for cookie in cookies:
        for _ in range(5):
            browser = Client()
            browser.cookies[security.DEVICE_COOKIE] = cookie
            attempt("bob", "wrong", browser=browser)
    # Without the cookies the address locked the pair (bob, attacker) after 5 failures.
    assert counted(Kind.LOGIN_FAILED) == 5
    assert counted(Kind.LOGIN_THROTTLED) == 10
