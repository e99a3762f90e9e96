"""Alerts from real status changes: one notification for a root cause and the services it
takes down, recovery, grouping, suppression that stops notifications only, and the outbox
consumed once by two workers at a time."""

import threading

import pytest
from django.db import transaction

from automation.models import Alert, Delivery, DeliveryState
from healthchecks.engine import service_health
from healthchecks.models import CheckResult, CheckState, StatusChange
from healthchecks.status import Status
from tests.automation.conftest import channel, process, send_later
from tests.factories import make_check

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


@pytest.fixture
def payments_estate(estate):
    """db <- ledger <- api, and db <- payments (all hard)."""
    estate.add("db")
    estate.add("ledger", depends_on=["db"])
    estate.add("payments", depends_on=["db"])
    estate.add("api", depends_on=["ledger"])
    estate.up("db", "ledger", "payments", "api")
    process()
    return estate


def test_a_dependent_two_hops_away_through_a_degraded_service_is_folded_in(estate, receiver):
    """db is down; auth, whose own checks pass, is degraded by it; gateway's own check fails
    (its calls through auth fail). One notification: db's, naming both (a stranger's trial
    got a second DOWN for gateway)."""
    estate.add("db")
    estate.add("auth", depends_on=["db"])
    estate.add("gateway", depends_on=["auth"])
    estate.up("db", "auth", "gateway")
    process()
    channel("ops", receiver.url)
    estate.down("db")
    estate.down("gateway")
    process()
    send_later()
    assert receiver.titles() == ["[DOWN] db"]
    assert "affected: auth, gateway" in receiver.bodies[0]["message"]
    gateway = Alert.objects.get(service__name="gateway", resolved_at=None)
    assert gateway.root.service.name == "db"


def test_a_dependent_down_behind_a_service_degraded_on_its_own_has_its_own_alert(estate, receiver):
    """auth is only slow (degraded by its own check, nothing down under it): gateway's
    outage is not auth's to carry, and gateway is announced itself."""
    estate.add("auth")
    estate.add("gateway", depends_on=["auth"])
    estate.up("auth", "gateway")
    process()
    channel("ops", receiver.url)
    check = estate.checks["auth"]
    CheckState.objects.filter(health_check=check).update(status=Status.DEGRADED)
    with transaction.atomic():  # as a recording flush does
        service_health.recompute({check.service_id})
    estate.down("gateway")
    process()
    send_later()
    assert sorted(receiver.titles()) == ["[DEGRADED] auth", "[DOWN] gateway"]


def test_a_root_cause_and_its_dependents_make_one_notification_then_one_recovery(
    payments_estate, receiver
):
    channel("ops", receiver.url)
    # The dependent's own check notices first (its calls to db fail), then db's.
    payments_estate.down("ledger")
    process()
    payments_estate.down("db")
    process()
    send_later()

    assert receiver.titles() == ["[DOWN] db"]
    body = receiver.bodies[0]["message"]
    assert "db is down since" in body
    assert "Why: critical check failing: http" in body
    assert "Impacted: 3 services that depend on it are affected: api, ledger, payments" in body
    assert "Status and why: https://portal.example/services/db/" in body
    ledger = Alert.objects.get(service__name="ledger", resolved_at=None)
    assert ledger.root.service.name == "db"
    assert Delivery.objects.get(alert=ledger).detail == "folded into the alert of db"

    payments_estate.up("db", "ledger")
    process()
    send_later(0)
    assert receiver.titles() == ["[DOWN] db", "[RECOVERED] db"]
    recovery = receiver.bodies[1]["message"]
    assert "db recovered at" in recovery
    assert "were affected: api, ledger, payments" in recovery
    assert not Alert.objects.filter(resolved_at=None).exists()


def test_suppression_stops_notifications_not_checks(payments_estate, receiver):
    channel("ops", receiver.url)
    before = CheckResult.objects.filter(health_check=payments_estate.checks["payments"]).count()
    payments_estate.down("db", "payments")
    process()
    send_later()
    assert receiver.titles() == ["[DOWN] db"]
    payments = payments_estate.checks["payments"]
    assert CheckResult.objects.filter(health_check=payments).count() == before + 1
    assert Alert.objects.get(service__name="payments", resolved_at=None).status == Status.UNHEALTHY


def test_a_dependent_down_while_its_dependencies_are_healthy_has_its_own_alert(
    payments_estate, receiver
):
    channel("ops", receiver.url)
    payments_estate.down("ledger")
    process()
    send_later()
    assert receiver.titles() == ["[DOWN] ledger"]
    assert (
        "Impacted: 1 service that depends on it is affected: api" in receiver.bodies[0]["message"]
    )


def test_a_flap_shorter_than_the_grouping_wait_notifies_nobody(payments_estate, receiver):
    channel("ops", receiver.url)
    payments_estate.down("payments")
    process()
    payments_estate.up("payments")
    process()
    send_later()
    assert receiver.bodies == []
    assert Delivery.objects.get().detail == "recovered before it was announced"


def test_a_degraded_root_is_announced_again_when_it_goes_down(payments_estate, receiver):
    """Degraded, then down, is news twice; the same status again is not."""
    channel("ops", receiver.url)
    extra = make_check(
        service=payments_estate.services["payments"],
        name="extra",
        target=payments_estate.targets.url("payments-extra"),
        is_critical=False,
    )
    payments_estate.checks["payments-extra"] = extra
    payments_estate.down("payments-extra")
    process()
    send_later()
    payments_estate.down("payments")
    process()
    send_later()
    payments_estate.down("payments")
    process()
    send_later()
    payments_estate.up("payments", "payments-extra")
    process()
    send_later(0)
    assert receiver.titles() == ["[DEGRADED] payments", "[DOWN] payments", "[RECOVERED] payments"]
    assert "non-critical check failing: extra" in receiver.bodies[0]["message"]


def test_channels_hear_only_their_teams_and_events(estate, receiver):
    other = type(receiver)()
    other.server.start()
    try:
        estate.add("db", team="core")
        estate.add("shop", team="retail")
        estate.up("db", "shop")
        process()
        channel("core-only", receiver.url, teams=["core"])
        channel("recoveries", other.url, events=["recovered"])
        estate.down("db", "shop")
        process()
        send_later()
        assert receiver.titles() == ["[DOWN] db"]
        assert other.bodies == []
        estate.up("db", "shop")
        process()
        send_later(0)
        # shop's fall was announced nowhere, so nobody is told it is over.
        assert other.titles() == ["[RECOVERED] db"]
    finally:
        other.server.stop()


@pytest.mark.postgresql  # row locks and advisory locks: SQLite's embedded mode has one worker
def test_two_automation_workers_act_on_each_change_once(payments_estate, receiver):
    """The outbox under a lock, deliveries claimed row by row: two of each at once still
    open one alert per service and send one notification."""
    channel("ops", receiver.url)
    payments_estate.down("db", "ledger", "payments", "api")
    go = threading.Barrier(2)
    errors = []

    def worker(step):
        from django.db import connections

        try:
            go.wait()
            step()
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    for step in (process, send_later):
        threads = [threading.Thread(target=worker, args=(step,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    process()  # whatever the busy worker left
    send_later()
    assert errors == []
    assert Alert.objects.filter(resolved_at=None).count() == 4
    assert receiver.titles() == ["[DOWN] db"]
    assert not StatusChange.objects.filter(processed_at=None, health_check=None).exists()


def test_automation_disabled_records_every_delivery_as_skipped(payments_estate, receiver, settings):
    settings.ENABLE_HEALTH_AUTOMATION = False
    channel("ops", receiver.url)
    payments_estate.down("db")
    process()
    send_later()
    assert receiver.bodies == []
    delivery = Delivery.objects.get()
    assert delivery.state == DeliveryState.SKIPPED
    assert "ENABLE_HEALTH_AUTOMATION=false" in delivery.detail
    assert Alert.objects.filter(service__name="db", resolved_at=None).exists()


def test_an_alert_open_before_any_channel_is_announced_once_one_exists(payments_estate, receiver):
    """A stranger's trial: `make run`, then a channel -- the demo's down service, whose
    alert opened first, was never announced."""
    payments_estate.down("payments")
    process()
    send_later()
    channel("ops", receiver.url)
    process()  # no new change: the tick still announces what nobody was told
    send_later()
    assert receiver.titles() == ["[DOWN] payments"]
    process()
    send_later()
    assert receiver.titles() == ["[DOWN] payments"]  # once
