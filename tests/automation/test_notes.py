"""Notes on alerts (issue 22, item 4): POST /api/alerts/{id}/notes, 1 to 5,000 characters
(else a 422 naming ``text``), audited, read back with the alert; any text comes back as it
was sent and is escaped wherever it is shown -- the service page, and for a public note of
an ongoing incident the status page."""

import pytest
from django.contrib.auth.models import User
from django.utils.html import escape
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from automation.models import Alert, Note
from healthchecks.models import Incident, ServiceHealth
from healthchecks.status import Status
from portal.models import AuditEntry
from tests.conftest import ApiClient
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alert():
    db = ServiceFactory(name="db")
    ServiceHealth.objects.create(service=db, status=Status.UNHEALTHY, reason="tcp failing")
    Incident.objects.create(
        service=db, opened_at=db.created_at, worst_status=Status.UNHEALTHY, cause="tcp failing"
    )
    return Alert.objects.create(service=db, status=Status.UNHEALTHY, cause="tcp failing")


@pytest.fixture
def writer(make_token):
    return ApiClient(make_token(["automation:read", "automation:write"], name="oncall").secret)


def add(client, alert, body):
    return client.call("post", f"/api/alerts/{alert.id}/notes", body)


def test_a_note_is_added_audited_and_read_back_with_its_alert(alert, writer):
    answer = add(writer, alert, {"text": "failing over to the replica", "public": True})
    assert answer.status_code == 201, answer.content
    note = answer.json()
    assert (note["alert"], note["text"], note["public"], note["author"]) == (
        alert.id,
        "failing over to the replica",
        True,
        "token:oncall",
    )
    private = add(writer, alert, {"text": "the replica lags 3 s"}).json()
    assert private["public"] is False
    detail = writer.call("get", f"/api/alerts/{alert.id}").json()
    assert [n["text"] for n in detail["notes"]] == [note["text"], private["text"]]
    entries = AuditEntry.objects.filter(action="alert.note").order_by("id")
    assert [(e.actor, e.target) for e in entries] == [("token:oncall", f"db#{alert.id}")] * 2
    assert entries[0].changes == {"note": note["id"], "public": True, "characters": 27}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"text": ""}, "at least 1 character"),
        ({"text": "  \n\t "}, "empty"),
        ({"text": "\x1b[31m\x07"}, "empty"),  # nothing left once control characters are out
        ({"text": "x" * 5001}, "at most 5000 characters"),
        ({}, "Field required"),
        ({"text": 12}, "valid string"),
    ],
)
def test_a_bad_note_is_a_422_naming_text(alert, writer, body, reason):
    answer = add(writer, alert, body)
    assert answer.status_code == 422, answer.content
    assert reason in answer.json()["error"]["fields"]["text"]
    assert not Note.objects.exists()


def test_5000_characters_are_taken(alert, writer):
    assert add(writer, alert, {"text": "y" * 5000}).status_code == 201


def test_control_characters_and_terminal_escapes_are_taken_out(alert, writer):
    answer = add(writer, alert, {"text": "db \x1b[31mdown\x1b[0m\r\nstill\x00"})
    # (a NUL is refused whole by the API, as everywhere: 422 naming text)
    assert answer.status_code == 422 and "NUL" in answer.json()["error"]["fields"]["text"]
    answer = add(writer, alert, {"text": "db \x1b[31mdown\x1b[0m\r\nstill"})
    assert answer.json()["text"] == "db down\nstill"


def test_who_may_add_notes_is_who_may_acknowledge(alert, make_token):
    reader = ApiClient(make_token(["automation:read"]).secret)
    refused = add(reader, alert, {"text": "hi"})
    assert refused.status_code == 403
    assert refused.json()["error"]["required_scope"] == "automation:write"
    outside = ApiClient(make_token(["automation:write"], services=["web"]).secret)
    ServiceFactory(name="web")
    assert add(outside, alert, {"text": "hi"}).status_code == 404
    writer = ApiClient(make_token(["automation:write"]).secret)
    assert writer.call("post", "/api/alerts/999999/notes", {"text": "hi"}).status_code == 404
    assert not Note.objects.exists()


def test_a_note_may_follow_a_resolved_alert(alert, writer):
    Alert.objects.filter(id=alert.id).update(resolved_at=alert.opened_at)
    assert add(writer, alert, {"text": "root cause: a full disk"}).status_code == 201


# Text as people type it: anything but control characters (taken out on the way in) and
# lone surrogates (no character at all), with something to say.
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=300).filter(
    lambda t: t.strip()
)


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=TEXT)
def test_any_text_comes_back_as_sent_and_is_escaped_on_every_page(alert, writer, client, text):
    Note.objects.all().delete()
    answer = add(writer, alert, {"text": text, "public": True})
    assert answer.status_code == 201, answer.content
    assert answer.json()["text"] == text
    assert writer.call("get", f"/api/alerts/{alert.id}").json()["notes"][0]["text"] == text
    client.force_login(User.objects.get_or_create(username="bob")[0])
    for path in ("/services/db/", "/status/"):
        html = client.get(path).content.decode()
        assert escape(text) in html, path
        if "<" in text:
            assert text not in html, path


def test_a_script_in_a_note_is_text_on_the_pages(alert, writer, client):
    add(writer, alert, {"text": "<script>alert(1)</script>", "public": True})
    client.force_login(User.objects.create_user("bob"))
    for path in ("/services/db/", "/status/"):
        html = client.get(path).content.decode()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>alert(1)" not in html
