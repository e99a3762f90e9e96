"""The status page's ongoing incidents (issue 22, item 4): each with its service's reason now
-- not the one it opened with -- and the public notes of its alert, oldest first, without
their authors; private notes, and notes of a resolved alert, never."""

import pytest
from django.utils import timezone

from automation import notes
from automation.models import Alert
from healthchecks.engine import recording
from healthchecks.probes import ProbeOutcome
from healthchecks.status import Status
from portal.auth import system_actor
from tests.factories import ServiceFactory, make_check

pytestmark = pytest.mark.django_db
ACTOR = system_actor("tests")


def record(check, status):
    now = timezone.now()
    recording.record([recording.Result(check.pk, now, now, ProbeOutcome(status))])


@pytest.fixture
def db(settings):
    """db, whose tcp check failed: an incident open, and its alert."""
    settings.STATUS_PAGE_PUBLIC = True
    service = ServiceFactory(name="db")
    tcp = make_check(service, name="tcp", is_critical=True)
    http = make_check(service, name="http", is_critical=True)
    record(http, Status.HEALTHY)
    record(tcp, Status.UNHEALTHY)
    alert = Alert.objects.create(service=service, status=Status.UNHEALTHY, cause="opened")
    return {"alert": alert, "tcp": tcp, "http": http}


def incidents(client) -> str:
    html = client.get("/status/").content.decode()
    return html[html.index('id="incidents"') : html.index("</section>")]


def test_an_incident_shows_the_reason_now_not_the_one_it_opened_with(client, db):
    assert "critical check failing: tcp" in incidents(client)
    record(db["http"], Status.UNHEALTHY)  # still down: the incident goes on, its cause kept
    shown = incidents(client)
    assert "critical check failing: http, tcp" in shown


def test_only_public_notes_of_ongoing_incidents_are_shown(client, db):
    alert = db["alert"]
    notes.add_note(alert.id, ACTOR, "We are failing over to the replica.", public=True)
    notes.add_note(alert.id, ACTOR, "the replica's password is in the vault", public=False)
    notes.add_note(alert.id, ACTOR, "Back within the hour.", public=True)
    shown = incidents(client)
    assert shown.index("We are failing over") < shown.index("Back within the hour.")
    assert "vault" not in shown and "system:tests" not in shown  # private notes, authors
    Alert.objects.filter(id=alert.id).update(resolved_at=timezone.now())
    assert "failing over" not in client.get("/status/").content.decode()
