"""Rules: a remediation webhook (secret headers, a body template) called once per cooldown,
escalation of alerts nobody acknowledged, and rules refused with their fields."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from automation import rules
from automation.models import Alert, Delivery, Rule
from tests.automation.conftest import Receiver, Webhook, channel, process, send_later

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


def remediation(webhook, **extra) -> dict:
    return {
        "trigger": "down",
        "scope": {"services": ["db"]},
        "actions": [
            {
                "type": "webhook",
                "url": webhook.url,
                "headers": {"X-Token": "s3cret-token"},
                "body": '{"restart": "$service", "because": "$event"}',
                "timeout": 2,
            }
        ],
        "cooldown_seconds": 600,
        **extra,
    }


def test_a_remediation_webhook_is_called_once_per_cooldown(db_estate, webhook, automation):
    answer = automation.call("put", "/api/automation/rules/restart-db", remediation(webhook))
    assert answer.status_code == 201, answer.json()
    assert answer.json()["actions"][0]["headers"] == ["X-Token"]
    assert "s3cret-token" not in Rule.objects.get().secrets

    db_estate.down("db")
    process()
    send_later()
    (call,) = webhook.calls
    assert call["method"] == "POST" and call["headers"]["X-Token"] == "s3cret-token"
    assert json.loads(call["body"]) == {"restart": "db", "because": "down"}
    attempt = Delivery.objects.get(rule__name="restart-db").attempt_rows.get()
    assert (attempt.ok, attempt.http_status) == (True, 200)

    # Back up and down again inside the cooldown: no second call.
    db_estate.up("db")
    process()
    db_estate.down("db")
    process()
    send_later()
    assert len(webhook.calls) == 1


def test_a_webhook_answering_other_than_expected_is_a_failed_attempt(db_estate, automation):
    hook = Webhook(status=200)
    hook.server.start()
    try:
        body = remediation(hook)
        body["actions"][0]["expect_status"] = 204
        automation.call("put", "/api/automation/rules/restart-db", body)
        db_estate.down("db")
        process()
        send_later()
    finally:
        hook.server.stop()
    attempt = Delivery.objects.get(rule__name="restart-db").attempt_rows.get()
    assert (attempt.ok, attempt.http_status) == (False, 200)
    assert attempt.error == "answered 200, expected 204"


def test_an_alert_nobody_acknowledges_escalates_once(db_estate, receiver, automation):
    pager = Receiver()
    pager.server.start()
    try:
        channel("ops", receiver.url, events=["recovered"])  # the rule notifies it itself
        channel("pager", pager.url, events=["recovered"])
        rule = {
            "trigger": "down",
            "actions": [{"type": "notify", "channel": "ops"}],
            "escalation": [{"type": "notify", "channel": "pager"}],
            "escalate_after_minutes": 5,
        }
        assert automation.call("put", "/api/automation/rules/page", rule).status_code == 201
        db_estate.down("db")
        process()
        send_later()
        assert receiver.titles() == ["[DOWN] db"] and pager.bodies == []
        later = timezone.now() + timedelta(minutes=6)
        assert rules.escalate_due(later) == 1
        assert rules.escalate_due(later) == 0  # once
        send_later(400)
        assert pager.titles() == ["[ESCALATED] [DOWN] db"]
    finally:
        pager.server.stop()


def test_an_acknowledged_alert_does_not_escalate(db_estate, receiver, automation):
    channel("ops", receiver.url, events=["recovered"])
    rule = {
        "trigger": "down",
        "actions": [{"type": "notify", "channel": "ops"}],
        "escalation": [{"type": "notify", "channel": "ops"}],
        "escalate_after_minutes": 5,
    }
    automation.call("put", "/api/automation/rules/page", rule)
    db_estate.down("db")
    process()
    alert = Alert.objects.get(resolved_at=None)
    automation.call("post", f"/api/alerts/{alert.id}/acknowledge")
    assert rules.escalate_due(timezone.now() + timedelta(minutes=6)) == 0


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (
            {"actions": [{"type": "webhook", "url": "http://169.254.169.254/x"}]},
            "actions[0].url",
            "refused by the network policy",
        ),
        (
            {"actions": [{"type": "notify", "channel": "nowhere"}]},
            "actions[0].channel",
            "no notification channel named 'nowhere'",
        ),
        (
            {"actions": [{"type": "webhook", "url": "http://127.0.0.1:9/", "body": "$nope"}]},
            "actions[0].body",
            "unknown placeholder",
        ),
        (
            {"escalation": [{"type": "notify", "channel": "ops"}]},
            "escalate_after_minutes",
            "escalation actions need",
        ),
        ({"escalate_after_minutes": 5}, "escalation", "needs escalation actions"),
        ({"scope": {"services": ["ghost"]}}, "scope.services", "no service named ghost"),
        # A discriminated union's path is the request's, not pydantic's (no "webhook.").
        ({"actions": [{"type": "webhook", "url": 5}]}, "actions[0].url", "string"),
        ({"actions": [{"type": "lifecycle", "to": "sideways"}]}, "actions[0].to", "Input"),
        ({"trigger": "exploded"}, "trigger", "Input should be"),
        ({"actions": []}, "actions", "at least 1"),
    ],
)
def test_a_bad_rule_is_refused_with_its_field(
    db_estate, receiver, automation, change, field, reason
):
    channel("ops", receiver.url)
    body = {"trigger": "down", "actions": [{"type": "notify", "channel": "ops"}], **change}
    answer = automation.call("put", "/api/automation/rules/r1", body)
    assert answer.status_code == 422, answer.json()
    assert reason in answer.json()["error"]["fields"][field]
    assert not Rule.objects.exists()


def test_a_lifecycle_action_moves_the_service_through_the_registry(db_estate, acting_automation):
    from portal.models import AuditEntry
    from services.models import Service

    Service.objects.filter(name="db").update(lifecycle_status="running")
    rule = {
        "trigger": "down",
        "scope": {"services": ["db"]},
        "actions": [{"type": "lifecycle", "to": "degraded"}],
    }
    assert acting_automation.call("put", "/api/automation/rules/mark", rule).status_code == 201
    db_estate.down("db")
    process()
    send_later()
    assert Service.objects.get(name="db").lifecycle_status == "degraded"
    # As the rule, with the rights of the token that wrote it.
    assert AuditEntry.objects.filter(actor__startswith="rule:mark by token:", target="db").exists()


def test_a_checklist_action_starts_the_services_validation(db_estate, receiver, acting_automation):
    """On recovery (announced once a channel was told of the outage) the rule starts the
    post-migration validation, whose verifiable items are answered at once."""
    from django.apps import apps

    from checklists import routines
    from checklists.models import ChecklistRun

    routines.install(apps)  # a transactional test's flush took what the migration made
    channel("ops", receiver.url)
    answer = acting_automation.call(
        "put",
        "/api/automation/rules/validate-db",
        {
            "trigger": "recovered",
            "scope": {"services": ["db"]},
            "actions": [{"type": "checklist", "template": "post-migration"}],
        },
    )
    assert answer.status_code == 201, answer.json()
    db_estate.down("db")
    process()
    send_later()
    db_estate.up("db")
    process()
    send_later()
    run = ChecklistRun.objects.get(service__name="db")
    assert run.template.name == "post-migration"
    assert run.started_by.startswith("rule:validate-db by token:")
    verified = {t.item.text: t.done for t in run.ticks.all()}
    assert verified["Health checks return healthy status"] is True  # it has recovered
    bad = acting_automation.call(
        "put",
        "/api/automation/rules/odd",
        {"trigger": "down", "actions": [{"type": "checklist", "template": "daily"}]},
    )
    assert bad.status_code == 422
    assert "post-migration" in bad.json()["error"]["fields"]["actions[0].template"]
