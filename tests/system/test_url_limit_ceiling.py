"""The README's API_MAX_URL_BYTES row: the URI limit may be set to at most 8173, since
gunicorn reads request lines of 8,190 bytes at most ("OPTIONS <URI> HTTP/1.1" must fit). Run
as the image runs it: with the limit at 8173 gunicorn starts, and a URI of that length,
with the longest method, reaches the portal; with 8174 it refuses to start, saying why,
rather than serve a limit gunicorn would answer for in HTML."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.conftest import database_url
from tests.system.test_behind_a_proxy import send, start_gunicorn, stop

pytestmark = pytest.mark.django_db(transaction=True)
CEILING = 8173


def test_at_8173_the_longest_request_line_reaches_the_portal():
    server, port = start_gunicorn(API_MAX_URL_BYTES=str(CEILING))
    try:
        path = "/api/services?x=" + "a" * (CEILING - len("/api/services?x="))
        assert len(path) == CEILING and len(f"OPTIONS {path} HTTP/1.1") == 8190
        status, kind, _ = send(port, "OPTIONS", path, {})
        assert status != 414 and kind.startswith("application/json")  # the portal's answer
        # One byte over (a shorter method, so gunicorn reads the line): the portal's 414.
        status, kind, _ = send(port, "GET", path + "a", {})
        assert status == 414 and kind.startswith("application/json")
    finally:
        stop(server)


def test_above_8173_gunicorn_refuses_to_start_and_says_why():
    env = {
        **os.environ,
        "PORTAL_ENV_FILE": "",
        "DEBUG": "true",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "API_MAX_URL_BYTES": str(CEILING + 1),
    }
    started = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "portal/gunicorn.conf.py", "--check-config"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert f"API_MAX_URL_BYTES is at most {CEILING} behind gunicorn" in (
        started.stdout + started.stderr
    )
