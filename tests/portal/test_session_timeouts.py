"""Sessions end on time, decided on the server (portal.sessions): SESSION_IDLE_SECONDS
without a request, SESSION_MAX_SECONDS after the sign-in whatever happens; the last use is
written at most every tenth of the idle time (at most every minute), so a session ends up to
that much early, never late."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from portal import sessions

pytestmark = pytest.mark.django_db
T = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


@pytest.fixture
def person(db, settings):
    settings.SESSION_IDLE_SECONDS = 600
    settings.SESSION_MAX_SECONDS = 3600
    return User.objects.create_user("olga", password="pw")


def at(seconds: float, client: Client, path: str = "/"):
    with time_machine.travel(T + timedelta(seconds=seconds), tick=False):
        return client.get(path)


def signed_in(person) -> Client:
    client = Client()
    with time_machine.travel(T, tick=False):
        client.force_login(person)
    return client


def test_a_session_used_within_the_idle_time_goes_on(person):
    client = signed_in(person)
    for second in (599, 1198, 1797):  # each just under ten minutes after the last
        assert at(second, client).status_code == 200


def test_a_session_unused_for_the_idle_time_ends_and_the_login_page_says_why(person):
    client = signed_in(person)
    assert at(599, client).status_code == 200
    ended = at(599 + 600, client)
    assert ended.status_code == 302 and ended["Location"].startswith("/accounts/login/")
    page = at(1200, client, ended["Location"])
    assert "Your session ended after a while without use" in page.content.decode()
    assert at(1201, client).status_code == 302  # and it stays ended


def test_a_session_ends_at_its_longest_time_however_busy(person):
    client = signed_in(person)
    for second in range(300, 3600, 300):
        assert at(second, client).status_code == 200, second
    ended = at(3600, client)
    assert ended.status_code == 302
    page = at(3601, client, ended["Location"])
    assert "reached its longest allowed time" in page.content.decode()


def test_the_last_use_is_written_at_most_every_tenth_of_the_idle_time(person):
    """Uses 30 s apart are not written each: the session counts from the last one written
    (at most a minute early), never from after the last use (never late)."""
    client = signed_in(person)
    assert sessions.touch_every() == 60
    assert at(30, client).status_code == 200  # not written: within the minute
    assert at(599, client).status_code == 200  # written: 599 s after the last written use
    assert at(599 + 599, client).status_code == 200
    client2 = signed_in(person)
    assert at(59, client2).status_code == 200  # not written
    assert at(600, client2).status_code == 302  # ten minutes after the sign-in: ended


def test_an_api_call_of_an_ended_session_is_not_signed_in(person):
    client = signed_in(person)
    answer = at(601, client, "/api/services")
    assert answer.status_code == 401


def test_the_cookie_lasts_no_longer_than_the_longest_session(settings):
    assert settings.SESSION_COOKIE_AGE == settings.SESSION_MAX_SECONDS == 1_209_600
    assert settings.SESSION_IDLE_SECONDS == 28_800


def test_an_answer_that_asks_for_no_one_reads_no_session(person, django_assert_num_queries):
    """Found by the fault test (issue 20's CI run): with the database black-holed, liveness
    with a signed-in browser's cookie answered 500 -- the middleware read the session on every
    request. It is judged when the request first asks who is signed in."""
    client = signed_in(person)
    with django_assert_num_queries(0):
        assert client.get("/health/").status_code == 200
    assert at(60, client).status_code == 200  # a page does ask, and the session goes on
