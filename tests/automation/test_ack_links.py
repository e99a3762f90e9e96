"""Acknowledge links (issue 22, item 1): every DOWN / DEGRADED notification carries one,
signed for its alert only, expiring after AUTOMATION_ACK_LINK_HOURS; a link altered, made
for another alert, signed for another purpose or with another key is refused as forged."""

from datetime import timedelta

import pytest
import time_machine
from django.core import signing
from django.db import transaction
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from automation import acklinks, reminders
from automation.channels import ChannelIn, put_channel
from automation.models import Alert
from healthchecks.engine import service_health
from healthchecks.models import CheckState
from healthchecks.status import Status
from tests.automation.conftest import ACTOR, channel, process, send_later


def test_a_link_is_good_for_its_alert_only():
    token = acklinks.token_for(41)
    assert acklinks.check(41, token) is None
    assert acklinks.check(42, token).code == "forged"
    assert acklinks.check(4, token).code == "forged"  # "41" and "4" + "1..." do not mix


@pytest.mark.parametrize(
    "spoil",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # one character of the signature
        lambda t: t[:-5],  # cut short when copied
        lambda t: t.split(".")[1],  # the signature without its time
        lambda t: "0." + t.split(".")[1],  # another time under the same signature
        lambda t: "",
        lambda t: t + ".extra",
    ],
)
def test_an_altered_token_is_refused_as_forged(spoil):
    token = acklinks.token_for(7)
    refusal = acklinks.check(7, spoil(token))
    assert refusal is not None and refusal.code == "forged"
    assert "not one the portal made for this alert" in refusal.reason


def test_a_value_signed_for_another_purpose_or_key_does_not_pass(settings):
    other_salt = signing.TimestampSigner(salt="another.purpose", sep=".").sign("7")
    assert acklinks.check(7, other_salt.split(".", 1)[1]).code == "forged"
    default = signing.TimestampSigner(sep=".").sign("7")
    assert acklinks.check(7, default.split(".", 1)[1]).code == "forged"
    made_before = acklinks.token_for(7)
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    assert acklinks.check(7, made_before).code == "forged"


def test_a_key_being_rotated_out_still_reads_its_links(settings):
    """SECRET_KEY_FALLBACKS: links sent before a key rotation work until they expire."""
    old = settings.SECRET_KEY
    made_before = acklinks.token_for(7)
    settings.SECRET_KEY = "the-new-secret-key-" + "y" * 40
    settings.SECRET_KEY_FALLBACKS = [old]
    assert acklinks.check(7, made_before) is None
    assert acklinks.check(7, acklinks.token_for(7)) is None


def test_a_link_expires_after_the_hours_set(settings):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        token = acklinks.token_for(9)
    with time_machine.travel(start + timedelta(hours=24) - timedelta(seconds=5), tick=False):
        assert acklinks.check(9, token) is None
    with time_machine.travel(start + timedelta(hours=24, seconds=5), tick=False):
        refusal = acklinks.check(9, token)
        assert refusal.code == "expired" and "works for 24 hours" in refusal.reason
    settings.AUTOMATION_ACK_LINK_HOURS = 2
    with time_machine.travel(start + timedelta(hours=2, seconds=5), tick=False):
        assert acklinks.check(9, token).code == "expired"
    with time_machine.travel(start + timedelta(hours=1), tick=False):
        assert acklinks.check(9, token) is None


@hsettings(max_examples=200, deadline=None)
@given(alert_id=st.integers(1, 2**62), token=st.text(max_size=80))
def test_no_token_but_the_one_made_for_the_alert_passes(alert_id, token):
    made = acklinks.token_for(alert_id)
    assert (acklinks.check(alert_id, token) is None) == (token == made)


@hsettings(max_examples=50, deadline=None)
@given(alert_id=st.integers(1, 2**62), other=st.integers(1, 2**62))
def test_a_token_passes_for_no_other_alert(alert_id, other):
    if other != alert_id:
        assert acklinks.check(other, acklinks.token_for(alert_id)).code == "forged"


@pytest.mark.django_db(transaction=True)
def test_a_down_notification_carries_the_link_and_the_recovery_none(db_estate, receiver):
    channel("ops", receiver.url)
    db_estate.down("db")
    process()
    send_later()
    alert = Alert.objects.get(service__name="db")
    (down,) = receiver.bodies
    prefix = f"Acknowledge (I am on it): https://portal.example/alerts/{alert.id}/ack/"
    (line,) = [x for x in down["message"].splitlines() if x.startswith("Acknowledge")]
    assert line.startswith(prefix) and line.endswith("/")
    assert acklinks.check(alert.id, line.removeprefix(prefix).rstrip("/")) is None
    db_estate.up("db")
    process()
    send_later(0)
    assert receiver.titles() == ["[DOWN] db", "[RECOVERED] db"]
    assert "Acknowledge" not in receiver.bodies[1]["message"]


@pytest.mark.django_db(transaction=True)
def test_a_degraded_notification_carries_the_link_too(db_estate, receiver):
    channel("ops", receiver.url)
    CheckState.objects.filter(health_check=db_estate.checks["db"]).update(status=Status.DEGRADED)
    with transaction.atomic():  # as a recording flush does
        service_health.recompute({db_estate.services["db"].id})
    process()
    send_later()
    assert receiver.titles() == ["[DEGRADED] db"]
    assert "/ack/" in receiver.bodies[0]["message"]


@pytest.mark.django_db(transaction=True)
def test_a_reminder_carries_a_link_made_when_it_is_sent(db_estate, receiver):
    put_channel(
        "ops",
        ChannelIn(url=receiver.url, teams=[], events=["down"], remind_every_minutes=10),
        ACTOR,
    )
    start = timezone.now()
    db_estate.down("db")
    process()
    for minutes in (1, 12):
        with time_machine.travel(start + timedelta(minutes=minutes), tick=True):
            reminders.queue_due()
            send_later(0)
    assert receiver.titles() == ["[DOWN] db", "[REMINDER 1] [DOWN] db"]
    alert = Alert.objects.get(service__name="db")
    links = [
        line.rsplit("/ack/", 1)[1].rstrip("/")
        for body in receiver.bodies
        for line in body["message"].splitlines()
        if line.startswith("Acknowledge (I am on it): ")
    ]
    assert len(links) == 2 and links[0] != links[1]  # each signed when its message was made
    with time_machine.travel(start + timedelta(hours=24, minutes=5), tick=False):
        assert acklinks.check(alert.id, links[0]).code == "expired"
        assert acklinks.check(alert.id, links[1]) is None
