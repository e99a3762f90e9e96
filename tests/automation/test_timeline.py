"""An alert's timeline (issue 22, item 4): opened, who was told, escalated, acknowledged,
notes, resolved -- in the order they happened, read from the rows the automation keeps."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from automation import alerts, notes, reminders, rules, timeline
from automation.channels import ChannelIn, put_channel
from automation.models import Alert
from tests.automation.conftest import ACTOR, channel, process, send_later

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_alerts_story_is_told_in_the_order_it_happened(db_estate, receiver, automation):
    channel("ops", receiver.url, events=["recovered"])  # the rule tells it of down
    channel("pager", receiver.url, events=["recovered"])
    rule = {
        "trigger": "down",
        "actions": [{"type": "notify", "channel": "ops"}],
        "escalation": [{"type": "notify", "channel": "pager"}],
        "escalate_after_minutes": 5,
    }
    assert automation.call("put", "/api/automation/rules/page", rule).status_code == 201
    start = timezone.now()
    with time_machine.travel(start, tick=True):
        db_estate.down("db")
        process()
    alert = Alert.objects.get(service__name="db")
    with time_machine.travel(start + timedelta(minutes=1), tick=True):
        send_later(0)
    with time_machine.travel(start + timedelta(minutes=6), tick=True):
        assert rules.escalate_due() == 1
        send_later(0)
    with time_machine.travel(start + timedelta(minutes=7), tick=True):
        alerts.acknowledge(alert.id, ACTOR, note="looking at the disk")
    with time_machine.travel(start + timedelta(minutes=8), tick=True):
        notes.add_note(alert.id, ACTOR, "disk full: cleaning up", public=True)
    with time_machine.travel(start + timedelta(minutes=9), tick=True):
        db_estate.up("db")
        process()
        send_later(0)

    alert.refresh_from_db()
    entries = timeline.of_alert(alert)
    assert [e.kind for e in entries] == [
        "opened",
        "notified",  # ops told it is down
        "escalated",
        "notified",  # the escalation: pager told
        "acknowledged",
        "note",
        "note",
        "resolved",
        "notified",  # ops and pager told it recovered
        "notified",
    ]
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    texts = [e.text for e in entries]
    assert texts[0] == "opened: down"
    assert texts[1] == "ops was told it is down"
    assert texts[2] == "escalated by the rule page, nobody having acknowledged it in 5 min"
    assert texts[3] == "escalation: pager was told it is down"
    assert (entries[4].author, entries[5].text, entries[5].public) == (
        "system:tests",
        "looking at the disk",
        False,
    )
    assert (entries[6].text, entries[6].public) == ("disk full: cleaning up", True)
    assert sorted(texts[8:]) == ["ops was told it recovered", "pager was told it recovered"]


def test_a_delivery_that_gave_up_is_in_the_story_with_why(db_estate, receiver, settings):
    settings.AUTOMATION_MAX_ATTEMPTS = 1
    receiver.status = 500
    channel("ops", receiver.url)
    db_estate.down("db")
    process()
    send_later()
    (opened, failed) = timeline.of_alert(Alert.objects.get(service__name="db"))
    assert (opened.kind, failed.kind) == ("opened", "failed")
    assert failed.text.startswith("ops was told it is down -- failed: gave up after 1 attempts")


def test_reminders_are_in_the_story(db_estate, receiver):
    put_channel(
        "ops",
        ChannelIn(url=receiver.url, teams=[], events=["down"], remind_every_minutes=10),
        ACTOR,
    )
    start = timezone.now()
    db_estate.down("db")
    process()
    for minutes in (1, 12, 23):
        with time_machine.travel(start + timedelta(minutes=minutes), tick=True):
            reminders.queue_due()
            send_later(0)
    entries = timeline.of_alert(Alert.objects.get(service__name="db"))
    assert [(e.kind, e.text) for e in entries] == [
        ("opened", "opened: down"),
        ("notified", "ops was told it is down"),
        ("reminder", "reminder 1: ops was told it is down"),
        ("reminder", "reminder 2: ops was told it is down"),
    ]
