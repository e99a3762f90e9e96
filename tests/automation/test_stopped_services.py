"""A service stopped on purpose is not alerted (issue 22, item 6): its open alert is resolved
with the reason kept and no "recovered" notice (nothing recovered), what was still queued for
it is not sent, a failure seen while it is stopped opens nothing; started again, it is
watched and alerted as before. And a check that never ran opens no alert."""

import pytest
from django.db import transaction

from automation.models import Alert, Delivery, DeliveryState
from healthchecks import checks
from healthchecks.engine import service_health
from healthchecks.schemas import CheckFieldsIn
from services import lifecycle
from tests.automation.conftest import ACTOR, channel, process, send_later

pytestmark = [pytest.mark.django_db(transaction=True)]

REASON = "resolved: the service was stopped"


def stop(name: str) -> None:
    for step in ("running", "stopping", "stopped"):
        lifecycle.transition(name, step, "tests", ACTOR)


def test_stopping_a_down_service_resolves_its_alert_without_a_recovery_notice(estate, receiver):
    estate.add("api")
    estate.up("api")
    process()
    channel("ops", receiver.url)
    estate.down("api")
    process()
    send_later()
    assert receiver.titles() == ["[DOWN] api"]
    stop("api")
    process()
    alert = Alert.objects.get(service__name="api")
    assert alert.resolved_at is not None and alert.silenced == REASON
    estate.down("api")  # someone runs its checks by hand: still failing, still stopped
    process()
    send_later(600)
    assert receiver.titles() == ["[DOWN] api"]
    assert Alert.objects.filter(service__name="api").count() == 1


def test_what_was_queued_for_a_service_stopped_before_it_was_told_is_not_sent(estate, receiver):
    estate.add("api")
    estate.up("api")
    process()
    channel("ops", receiver.url)
    estate.down("api")
    process()  # queued, held for the grouping wait
    stop("api")
    process()
    send_later()
    assert receiver.titles() == []
    delivery = Delivery.objects.get(alert__service__name="api")
    assert delivery.state == DeliveryState.SKIPPED and delivery.detail == REASON


def test_started_again_it_is_watched_and_alerted_again(estate, receiver):
    estate.add("api")
    stop("api")
    channel("ops", receiver.url)
    lifecycle.transition("api", "starting", "tests", ACTOR)
    estate.down("api")
    process()
    send_later()
    assert receiver.titles() == ["[DOWN] api"]


def test_a_service_whose_only_check_never_ran_opens_no_alert(estate, receiver):
    estate.add("api")
    estate.up("api")
    process()
    channel("ops", receiver.url)
    target = estate.targets.url("api")
    checks.put_one("api", "new", CheckFieldsIn(kind="http", target=target), ACTOR)
    estate.add("fresh")  # a service with one check, never run
    checks.put_one("fresh", "http", CheckFieldsIn(kind="http", target=target), ACTOR)
    with transaction.atomic():  # whatever moves them next, as a recording flush does
        service_health.recompute({s.id for s in estate.services.values()})
    process()
    send_later(600)
    assert receiver.titles() == []
    assert not Alert.objects.exists()
