"""Check triggers: a rule set off by N failures of a check in a row, a missed heartbeat or a
prediction fires once per episode (not once per evaluation), again only after the condition
cleared, never for a service in maintenance, once across two workers, and escalates while
the condition holds."""

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections, connections
from django.utils import timezone

from automation import rules, triggers
from automation.models import Delivery, DeliveryState, RuleFiring
from healthchecks import checks
from healthchecks.engine import service_health
from healthchecks.models import Prediction
from healthchecks.web import pings
from services import maintenance
from tests.automation.conftest import ACTOR, channel, send_later
from tests.factories import make_check

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


def failing_rule(client, webhook, failures=3, **extra):
    body = {
        "trigger": "check_failing",
        "condition": {"failures": failures},
        "scope": {"services": ["db"]},
        "actions": [
            {"type": "webhook", "url": webhook.url, "body": '{"check": "$check", "why": "$cause"}'}
        ],
        "cooldown_seconds": 0,
        **extra,
    }
    answer = client.call("put", "/api/automation/rules/db-failing", body)
    assert answer.status_code == 201, answer.json()
    return answer.json()


def test_n_failures_in_a_row_fire_once_per_episode(db_estate, webhook, automation):
    failing_rule(automation, webhook, failures=2)
    db_estate.down("db")
    assert triggers.evaluate() == 0  # one failure: not yet
    db_estate.probe("db")
    assert triggers.evaluate() == 1
    db_estate.probe("db")
    assert triggers.evaluate() == 0  # the same episode: fired already
    send_later(0)
    assert len(webhook.calls) == 1
    assert b'"check": "http"' in webhook.calls[0]["body"]
    assert b"failed 2 times in a row" in webhook.calls[0]["body"]

    db_estate.up("db")
    triggers.evaluate()
    assert RuleFiring.objects.get().cleared_at is not None
    db_estate.down("db")
    db_estate.probe("db")
    assert triggers.evaluate() == 1  # a new episode
    delivery = Delivery.objects.order_by("-id").first()
    assert delivery.alert is None and delivery.service.name == "db"
    assert delivery.subject["check"] == "http"


def test_a_check_trigger_delivery_is_read_on_the_deliveries_api(db_estate, webhook, automation):
    failing_rule(automation, webhook, failures=1)
    db_estate.down("db")
    triggers.evaluate()
    send_later(0)
    answer = automation.call("get", "/api/automation/deliveries?rule=db-failing")
    assert answer.status_code == 200
    [row] = answer.json()["items"]
    assert (row["alert"], row["service"], row["rule"], row["event"]) == (
        None,
        "db",
        "db-failing",
        "check_failing",
    )
    assert row["state"] == "sent"
    assert row["attempts"][0]["http_status"] == 200
    assert "failed 1 times in a row" in row["subject"]["message"]


def test_a_missed_heartbeat_fires_and_clears_with_the_next_ping(db_estate, receiver):
    channel("ops", receiver.url, events=["down"])
    beat = make_check(
        db_estate.services["db"],
        name="nightly",
        kind="heartbeat",
        target="",
        heartbeat_token="t" * 32,
    )
    rules.put_rule(
        "nightly-missed",
        rules.RuleIn(
            trigger="heartbeat_missed", scope={}, actions=[{"type": "notify", "channel": "ops"}]
        ),
        ACTOR,
    )
    checks.run_now(beat, ACTOR)  # no ping ever came
    assert triggers.evaluate() == 1
    send_later(0)
    assert receiver.titles() == ["[NO HEARTBEAT] db / nightly"]
    assert "no heartbeat for nightly (none ever came)" in receiver.bodies[0]["message"]

    assert pings.receive("t" * 32) is not None
    checks.run_now(beat, ACTOR)  # the same instance: its cached state predates the ping
    triggers.evaluate()
    assert RuleFiring.objects.get().cleared_at is not None


def test_a_prediction_fires_for_its_kinds_only(db_estate, webhook, automation):
    answer = automation.call(
        "put",
        "/api/automation/rules/foresee",
        {
            "trigger": "prediction",
            "condition": {"kinds": ["tls_expiry"]},
            "actions": [{"type": "webhook", "url": webhook.url}],
            "cooldown_seconds": 0,
        },
    )
    assert answer.status_code == 201, answer.json()
    assert answer.json()["condition"] == {"kinds": ["tls_expiry"]}
    check = db_estate.checks["db"]
    now = timezone.now()

    def predict(kind):
        return Prediction.objects.create(
            health_check=check,
            service=check.service,
            kind=kind,
            message=f"{kind} soon",
            expected_at=now + timedelta(days=3),
            confidence=1.0,
            generated_at=now,
        )

    predict("flapping")
    assert triggers.evaluate() == 0  # not a kind this rule wants
    tls = predict("tls_expiry")
    assert triggers.evaluate() == 1
    assert triggers.evaluate() == 0
    tls.delete()  # the trend went away
    triggers.evaluate()
    predict("tls_expiry")
    assert triggers.evaluate() == 1


def test_nothing_fires_for_a_service_in_maintenance_until_the_window_ends(
    db_estate, webhook, automation
):
    failing_rule(automation, webhook, failures=1)
    now = timezone.now()
    window = maintenance.create_window(
        maintenance.WindowIn(
            services=["db"],
            team=None,
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=1),
            reason="upgrade",
        ),
        ACTOR,
    )
    service_health.apply_maintenance_windows()
    db_estate.down("db")
    assert triggers.evaluate() == 0
    maintenance.delete_window(window.id, ACTOR)
    service_health.apply_maintenance_windows()
    assert triggers.evaluate() == 1  # it still holds once the window is over


@pytest.mark.postgresql  # SQLite takes one writer at a time: no race to lose
def test_two_workers_evaluating_at_once_fire_an_episode_once(db_estate, webhook, automation):
    failing_rule(automation, webhook, failures=1)
    db_estate.down("db")
    results, barrier = [], threading.Barrier(2)

    def worker():
        close_old_connections()
        try:
            barrier.wait()
            results.append(triggers.evaluate())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Delivery.objects.count() == 1
    assert RuleFiring.objects.count() == 1
    # The one that found the lock held may go again: the episode is fired already.
    assert triggers.evaluate() == 0


def test_a_condition_that_holds_escalates_once(db_estate, webhook, receiver, automation):
    channel("pager", receiver.url, events=["down"])
    failing_rule(
        automation,
        webhook,
        failures=1,
        escalation=[{"type": "notify", "channel": "pager"}],
        escalate_after_minutes=10,
    )
    db_estate.down("db")
    triggers.evaluate()
    assert rules.escalate_due(timezone.now() + timedelta(minutes=5)) == 0
    later = timezone.now() + timedelta(minutes=11)
    assert rules.escalate_due(later) == 1
    assert rules.escalate_due(later + timedelta(minutes=1)) == 0
    escalation = Delivery.objects.get(channel_name="pager")
    assert "still meets the check_failing condition 10 min after" in escalation.subject["message"]


def test_with_automation_disabled_a_check_trigger_is_recorded_and_skipped(
    db_estate, webhook, automation, settings
):
    failing_rule(automation, webhook, failures=1)
    settings.ENABLE_HEALTH_AUTOMATION = False
    db_estate.down("db")
    assert triggers.evaluate() == 1
    send_later(0)
    delivery = Delivery.objects.get()
    assert delivery.state == DeliveryState.SKIPPED
    assert "ENABLE_HEALTH_AUTOMATION" in delivery.detail
    assert webhook.calls == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"trigger": "heartbeat_missed", "condition": {"failures": 2}}, "condition.failures"),
        ({"trigger": "down", "condition": {"kinds": ["flapping"]}}, "condition.kinds"),
        ({"trigger": "prediction", "condition": {"kinds": ["weather"]}}, "condition.kinds[0]"),
        ({"trigger": "check_failing", "condition": {"failures": 0}}, "condition.failures"),
    ],
)
def test_a_condition_that_does_not_fit_its_trigger_is_refused(automation, webhook, body, field):
    rule = {**body, "actions": [{"type": "webhook", "url": webhook.url}]}
    answer = automation.call("put", "/api/automation/rules/odd", rule)
    assert answer.status_code == 422, answer.json()
    assert any(field in key for key in answer.json()["error"]["fields"]), answer.json()


def test_a_prediction_of_the_whole_service_fires_a_rule(db_estate, receiver):
    channel("ops", receiver.url, events=["down"])
    rules.put_rule(
        "budget",
        rules.RuleIn(
            trigger="prediction",
            condition={"kinds": ["error_budget_burn"]},
            scope={},
            actions=[{"type": "notify", "channel": "ops"}],
        ),
        ACTOR,
    )
    now = timezone.now()
    Prediction.objects.create(
        health_check=None,
        service=db_estate.services["db"],
        kind="error_budget_burn",
        message="error budget burning 20x over 1 h",
        expected_at=now + timedelta(hours=5),
        confidence=1.0,
        generated_at=now,
    )
    assert triggers.evaluate() == 1
    assert RuleFiring.objects.get().subject == "service/error_budget_burn"
    send_later(0)
    assert receiver.titles() == ["[PREDICTED] db"]
    assert "error budget burning 20x" in receiver.bodies[0]["message"]
