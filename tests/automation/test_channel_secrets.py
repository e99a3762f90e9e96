"""No channel's secret reaches a reader: several channels fail at once against real local
receivers (an error after a pause, an error at once, a refused connection that names the
URL's path), sent as the automation worker sends them (its task, its threads), and no
secret of any channel -- a password, a path token, a header or query option -- is in any
attempt's error or delivery's detail, in the database, the API or the admin, read with a
read-only token and as a viewer. (A stranger's trial found one channel's full URL, token
and all, in other channels' attempts: apprise's log capture was process-wide.)"""

import html
import json
import re
import string
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from werkzeug import Response

from automation import channels, tasks
from automation.models import Alert, Delivery, DeliveryAttempt, NotificationChannel
from tests.automation.conftest import channel, process
from tests.conftest import ApiClient
from tests.healthchecks.servers import closed_port

pytestmark = [pytest.mark.django_db(transaction=True)]

MODES = ("slow", "refusing", "rejecting")


class Receivers:
    """Local receivers that fail: ``slow`` answers 500 after a pause (its send overlaps the
    others'), ``rejecting`` answers 401 at once, ``refusing`` is a closed port (the socket
    error names the URL's path, its token)."""

    def __init__(self, slow: HTTPServer, rejecting: HTTPServer):
        self.slow = slow
        self.slow.expect_request(re.compile(r"/.*")).respond_with_handler(self._slow)
        self.rejecting = rejecting
        self.rejecting.expect_request(re.compile(r"/.*")).respond_with_response(Response("no", 401))
        self.calls = 0
        self._lock = threading.Lock()

    def _slow(self, request):
        with self._lock:
            self.calls += 1
        time.sleep(0.4)
        return Response("broken", 500)

    def port(self, mode: str) -> int:
        if mode == "refusing":
            return closed_port()
        return {"slow": self.slow, "rejecting": self.rejecting}[mode].port


@dataclass(frozen=True)
class Secrets:
    password: str
    token: str
    header: str
    query: str

    def all(self) -> list[str]:
        return [self.password, self.token, self.header, self.query]


def channel_url(receivers: Receivers, mode: str, secrets: Secrets) -> str:
    return (
        f"json://user:{quote(secrets.password, safe='')}@127.0.0.1:{receivers.port(mode)}"
        f"/hooks/{secrets.token}?+X-Token={secrets.header}&-key={secrets.query}"
    )


@pytest.fixture
def receivers(http_servers):
    with http_servers.borrow() as slow, http_servers.borrow() as rejecting:
        yield Receivers(slow, rejecting)


@pytest.fixture
def viewer(role_groups_db):
    user = User.objects.create_user("vic", "vic@example.invalid", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="viewer"))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def role_groups_db(transactional_db):
    """The role groups, which the flush between transactional tests empties."""
    from django.apps import apps

    from portal.roles import grant_role_permissions

    grant_role_permissions(apps)


@pytest.fixture
def read_only(make_token):
    return ApiClient(make_token(["automation:read"]).secret)


def fail_together(estate, receivers: Receivers, plan: list[tuple[str, Secrets]]) -> Alert:
    """One channel per (mode, secrets); the service goes down and the worker's task sends
    every delivery at once, in its threads (the grouping wait set to nothing)."""
    for n, (mode, secrets) in enumerate(plan):
        channel(f"ch-{n}", channel_url(receivers, mode, secrets))
    estate.down("db")
    process()
    tasks.send_due_deliveries()
    return Alert.objects.get(resolved_at=None)


def reads(alert: Alert, read_only: ApiClient, viewer: Client) -> list[tuple[str, str]]:
    """Everything a reader is shown of the deliveries, by where: the API as a read-only token
    and as a viewer's session, the alert in the admin as a viewer; and the rows themselves."""
    answers = []
    for who, client in (("token", read_only), ("viewer", viewer)):
        for path in (f"/api/alerts/{alert.id}", "/api/automation/deliveries?limit=500"):
            response = client.get(path, **_bearer(client))
            assert response.status_code == 200, (path, response.content[:200])
            answers.append((f"{who} GET {path}", response.content.decode()))
    for path in (f"/admin/automation/alert/{alert.id}/change/", "/admin/automation/alert/"):
        response = viewer.get(path)
        assert response.status_code == 200, path
        answers.append((f"viewer GET {path}", response.content.decode()))
    answers += [("attempt row", e) for e in DeliveryAttempt.objects.values_list("error", flat=True)]
    answers += [("delivery row", d) for d in Delivery.objects.values_list("detail", flat=True)]
    return answers


def _bearer(client) -> dict:
    secret = getattr(client, "secret", None)
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret else {}


def leaks(plan: list[tuple[str, Secrets]], texts: list[tuple[str, str]]) -> list[str]:
    """Every (channel's secret, place) where a reader would see it."""
    found = []
    for n, (_, secrets) in enumerate(plan):
        for secret in secrets.all():
            for variant in {secret, quote(secret, safe=""), html.escape(secret), _json(secret)}:
                found += [f"ch-{n}'s {variant!r} in {place}" for place, t in texts if variant in t]
    return found


def _json(text: str) -> str:
    return json.dumps(text)[1:-1]


def assert_all_failed_with_errors(count: int) -> None:
    attempts = list(DeliveryAttempt.objects.all())
    assert len(attempts) == count
    assert all(not a.ok and a.error for a in attempts), [a.error for a in attempts]


@pytest.fixture
def now_estate(db_estate, settings):
    settings.AUTOMATION_GROUP_SECONDS = 0
    return db_estate


def test_channels_failing_at_once_keep_each_others_secrets_out(
    now_estate, receivers, read_only, viewer
):
    plan = [
        (mode, Secrets(f"pw-{n}-secret", f"tok{n}abcdefghij", f"hdr-{n}-secret", f"q-{n}-secret"))
        for n, mode in enumerate(["slow", "refusing", "slow", "refusing", "rejecting", "slow"])
    ]
    alert = fail_together(now_estate, receivers, plan)
    assert_all_failed_with_errors(len(plan))
    found = leaks(plan, reads(alert, read_only, viewer))
    assert not found, f"{len(found)} secrets shown: {found[:5]}"


# Path segments and option values: URL-safe; a password may hold anything (percent-encoded).
SECRET = st.text(string.ascii_letters + string.digits + "-._~", min_size=8, max_size=20)
PASSWORD = st.text(string.ascii_letters + string.digits + string.punctuation, min_size=8)


@st.composite
def plans(draw):
    modes = draw(st.lists(st.sampled_from(MODES), min_size=2, max_size=5))
    words = draw(st.lists(SECRET, min_size=3 * len(modes), max_size=3 * len(modes), unique=True))
    passwords = draw(st.lists(PASSWORD, min_size=len(modes), max_size=len(modes), unique=True))
    return [
        (mode, Secrets(f"k{passwords[n]}", *(f"k{w}" for w in words[3 * n : 3 * n + 3])))
        for n, mode in enumerate(modes)
    ]


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=plans())
def test_no_channels_secret_reaches_any_reader(now_estate, receivers, read_only, viewer, plan):
    try:
        alert = fail_together(now_estate, receivers, plan)
        assert_all_failed_with_errors(len(plan))
        found = leaks(plan, reads(alert, read_only, viewer))
        assert not found, f"{len(found)} secrets shown: {found[:5]}"
    finally:
        now_estate.up("db")
        process()
        Delivery.objects.all().delete()
        NotificationChannel.objects.all().delete()


def test_a_path_segment_that_looks_masked_is_still_cut():
    """apprise's own masks are at most 8 characters: a longer segment holding "..." is the
    user's (a token), not a mask, and is cut and redacted like any other."""
    url = "json://127.0.0.1:9/hooks/ab...cdefghij"
    assert channels.masked(channels.plugin_for(url)) == "json://127.0.0.1:9/hooks/a...j"
    said = "Max retries exceeded with url: /hooks/ab...cdefghij; see json://u:pw-of-another@h/"
    assert (
        channels.redact(said, url)
        == "Max retries exceeded with url: /hooks/****; see json://u:****@h/"
    )
