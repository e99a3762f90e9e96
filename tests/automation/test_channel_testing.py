"""Testing a channel: POST /api/notification-channels/{name}/test sends a [TEST] message now,
the way every notification goes (a delivery and its attempt, the egress guard), once, and
answers with the attempt's outcome -- without the channel's secrets; who may change the
channel may test it; the admin's "Send a test message" does the same and says how it went."""

import html
import json
import re
import string
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug import Response

from automation.models import Delivery, DeliveryState, NotificationChannel
from portal.models import AuditEntry
from services.models import Team
from tests.automation.conftest import channel, send_later
from tests.conftest import ApiClient
from tests.healthchecks.servers import closed_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


def trial(name: str) -> str:
    return f"/api/notification-channels/{name}/test"


def test_a_test_message_reaches_the_channel_and_the_answer_says_so(automation, receiver):
    channel("ops", receiver.url)
    answer = automation.call("post", trial("ops"))
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["ok"] is True and body["error"] is None
    assert 0 <= body["duration_ms"] < 5000
    (sent,) = receiver.bodies
    assert sent["title"].startswith("[TEST] Portal test message from token:")
    assert "Nothing is wrong; if you read this, the channel works." in sent["message"]
    delivery = Delivery.objects.get(id=body["delivery"])
    assert (delivery.event, delivery.kind, delivery.state) == ("test", "notify", "sent")
    assert delivery.attempt_rows.get().ok
    entry = AuditEntry.objects.get(action="channel.test")
    assert entry.target == "ops" and entry.changes["ok"] is True


def test_a_failing_receiver_is_answered_with_its_status_and_not_retried(automation, receiver):
    receiver.status = 503
    channel("ops", receiver.url)
    answer = automation.call("post", trial("ops"))
    assert answer.status_code == 200
    body = answer.json()
    assert (body["ok"], body["http_status"]) == (False, 503)
    assert "503" in body["error"]
    delivery = Delivery.objects.get(id=body["delivery"])
    assert delivery.state == DeliveryState.FAILED
    assert delivery.detail.startswith("a test message is tried once: ")
    assert send_later(3600) == 0  # the sender never tries it again
    assert len(receiver.bodies) == 1
    assert AuditEntry.objects.get(action="channel.test").changes["ok"] is False


def test_a_receiver_that_refuses_the_connection_is_answered_with_the_error(automation):
    channel("gone", f"json://127.0.0.1:{closed_port()}/hook")
    body = automation.call("post", trial("gone")).json()
    assert body["ok"] is False and body["http_status"] is None
    assert "Connection error" in body["error"]


def test_a_destination_the_network_policy_now_refuses_is_not_reached(
    automation, receiver, settings
):
    """The guard judges a test as every send: the receiver's network denied since."""
    channel("ops", receiver.url)
    settings.HEALTH_DENIED_NETWORKS = ["127.0.0.0/8"]
    body = automation.call("post", trial("ops")).json()
    assert body["ok"] is False and "refused by the network policy" in body["error"]
    assert receiver.bodies == []


def test_with_automation_disabled_the_test_says_nothing_was_sent(automation, receiver, settings):
    channel("ops", receiver.url)
    settings.ENABLE_HEALTH_AUTOMATION = False
    body = automation.call("post", trial("ops")).json()
    assert body["ok"] is False
    assert body["error"] == "not sent: automation is disabled (ENABLE_HEALTH_AUTOMATION=false)"
    assert receiver.bodies == []


def test_an_unknown_channel_is_404(automation):
    answer = automation.call("post", trial("nowhere"))
    assert answer.status_code == 404
    assert "no notification channel named 'nowhere'" in answer.json()["error"]["message"]


def test_testing_needs_what_changing_the_channel_needs(make_token, receiver, role_groups_db):
    channel("ops", receiver.url)
    read_only = ApiClient(make_token(["automation:read"]).secret)
    assert read_only.call("post", trial("ops")).status_code == 403
    limited = ApiClient(make_token(["automation:read", "automation:write"], services=["db"]).secret)
    assert limited.call("post", trial("ops")).status_code == 403
    viewer = Client()
    viewer.force_login(_staff("vic", "viewer"))
    assert viewer.post(trial("ops"), content_type="application/json").status_code == 403
    # An operator tests their own teams' channels, not one that hears of every team.
    operator = Client()
    operator.force_login(_staff("olga", "operator"))
    Team.objects.create(name="core").members.add(User.objects.get(username="olga"))
    channel("core-ops", receiver.url, teams=["core"])
    assert operator.post(trial("ops"), content_type="application/json").status_code == 403
    answer = operator.post(trial("core-ops"), content_type="application/json")
    assert answer.status_code == 200 and answer.json()["ok"] is True
    assert receiver.titles() == ["[TEST] Portal test message from user:olga"]


def _staff(username: str, role: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.invalid", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def role_groups_db(transactional_db):
    """The role groups, which the flush between transactional tests empties."""
    from django.apps import apps

    from portal.roles import grant_role_permissions

    grant_role_permissions(apps)


# --- the admin's button -------------------------------------------------------------------------


def test_the_admin_button_sends_a_test_and_says_how_it_went(receiver, role_groups_db):
    ok = channel("ok", receiver.url)
    admin = Client()
    admin.force_login(
        User.objects.create_superuser("root", "root@example.invalid", "pw", is_staff=True)
    )
    page = f"/admin/automation/notificationchannel/{ok.pk}/change/"
    assert b"Send a test message" in admin.get(page).content
    answer = admin.post(
        page, {"CHANGE_FORM-action": "send_test", "_selected_action": ok.pk}, follow=True
    )
    assert answer.status_code == 200
    said = [str(m) for m in answer.context["messages"]]
    assert len(said) == 1 and said[0].startswith("ok: test message sent (")
    assert receiver.titles() == ["[TEST] Portal test message from user:root"]

    receiver.status = 500
    answer = admin.post(
        "/admin/automation/notificationchannel/",
        {"action": "send_test", "_selected_action": [ok.pk]},
        follow=True,
    )
    said = [str(m) for m in answer.context["messages"]]
    assert len(said) == 1 and said[0].startswith("ok: test message failed after ")
    assert "500" in said[0]
    assert AuditEntry.objects.filter(action="channel.test", actor="user:root").count() == 2


def test_a_viewer_is_not_offered_the_button_and_cannot_press_it(receiver, role_groups_db):
    ok = channel("ok", receiver.url)
    viewer = Client()
    viewer.force_login(_staff("vic", "viewer"))
    page = f"/admin/automation/notificationchannel/{ok.pk}/change/"
    shown = viewer.get(page)
    assert shown.status_code == 200 and b"Send a test message" not in shown.content
    viewer.post(page, {"CHANGE_FORM-action": "send_test", "_selected_action": ok.pk})
    viewer.post(
        "/admin/automation/notificationchannel/",
        {"action": "send_test", "_selected_action": [ok.pk]},
    )
    assert receiver.bodies == [] and not Delivery.objects.exists()


# --- no secret of the channel in the answer -----------------------------------------------------

SECRET = st.text(string.ascii_letters + string.digits + "-._~", min_size=8, max_size=20)
PASSWORD = st.text(string.ascii_letters + string.digits + string.punctuation, min_size=8)


@pytest.fixture
def rejecting(http_servers):
    """A receiver that answers 401 and says the URL it was called at, token and all."""
    with http_servers.borrow() as server:
        server.expect_request(re.compile(r"/.*")).respond_with_handler(
            lambda request: Response(f"no: {request.full_path}", 401)
        )
        yield server


def _shown(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), html.escape(secret), json.dumps(secret)[1:-1]}


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    password=PASSWORD,
    words=st.lists(SECRET, min_size=3, max_size=3, unique=True),
    refusing=st.booleans(),
)
def test_no_secret_of_the_channel_is_in_the_answer(
    automation, rejecting, password, words, refusing
):
    token, header, query = (f"k{w}" for w in words)
    port = closed_port() if refusing else rejecting.port
    url = (
        f"json://user:{quote('k' + password, safe='')}@127.0.0.1:{port}"
        f"/hooks/{token}?+X-Token={header}&-key={query}"
    )
    try:
        channel("trial", url)
        answer = automation.call("post", trial("trial"))
        assert answer.status_code == 200
        body = answer.json()
        assert body["ok"] is False and body["error"]
        text = answer.content.decode()
        for secret in ("k" + password, token, header, query):
            assert not [v for v in _shown(secret) if v in text], (secret, text)
    finally:
        NotificationChannel.objects.all().delete()
        Delivery.objects.all().delete()
