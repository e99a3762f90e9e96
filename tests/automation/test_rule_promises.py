"""What the README's "Rules and remediation" promises beyond the examples in test_rules.py:
the defaults a rule gets when it leaves them out (a 300 s cooldown, three failures in a row,
any prediction kind), a scope that selects what every criterion it gives selects, no rule
set off by a folded or silenced service or by its own action, and a webhook action that is
judged again when it calls and never follows a redirect."""

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from werkzeug import Response

from automation import rules, triggers
from automation.models import Delivery, Rule, RuleFiring
from healthchecks.models import Prediction, ServiceHealth
from services.models import Service, Team
from tests.automation.conftest import channel, process, send_later

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


def put_rule(client, name: str, body: dict) -> dict:
    answer = client.call("put", f"/api/automation/rules/{name}", body)
    assert answer.status_code == 201, answer.json()
    return answer.json()


def webhook_rule(webhook, **extra) -> dict:
    return {"trigger": "down", "actions": [{"type": "webhook", "url": webhook.url}], **extra}


def test_a_rule_without_a_cooldown_fires_at_most_once_per_service_in_300_seconds(
    db_estate, webhook, automation
):
    saved = put_rule(automation, "restart", webhook_rule(webhook, scope={"services": ["db"]}))
    assert saved["cooldown_seconds"] == 300
    db_estate.down("db")
    process()
    send_later()
    assert len(webhook.calls) == 1

    def down_again(fired_seconds_ago: int) -> int:
        RuleFiring.objects.update(at=timezone.now() - timedelta(seconds=fired_seconds_ago))
        db_estate.up("db")
        process()
        db_estate.down("db")
        process()
        send_later()
        return len(webhook.calls)

    assert down_again(290) == 1  # still inside the default cooldown
    assert down_again(310) == 2  # past it: fires again


def test_check_failing_without_a_condition_fires_on_the_third_failure_in_a_row(
    db_estate, webhook, automation
):
    saved = put_rule(
        automation,
        "db-failing",
        {
            "trigger": "check_failing",
            "scope": {"services": ["db"]},
            "actions": [{"type": "webhook", "url": webhook.url}],
        },
    )
    assert saved["condition"].get("failures") in (None, 3)
    db_estate.down("db")
    assert triggers.evaluate() == 0  # one failure
    db_estate.probe("db")
    assert triggers.evaluate() == 0  # two
    db_estate.probe("db")
    assert triggers.evaluate() == 1  # three in a row: the default


@pytest.mark.parametrize("kind", ["latency_trend", "error_budget_burn", "tls_expiry", "flapping"])
def test_a_prediction_rule_without_kinds_fires_for_any_kind(db_estate, webhook, automation, kind):
    put_rule(
        automation,
        "foresee",
        {"trigger": "prediction", "actions": [{"type": "webhook", "url": webhook.url}]},
    )
    check = db_estate.checks["db"]
    now = timezone.now()
    Prediction.objects.create(
        health_check=None if kind == "error_budget_burn" else check,
        service=check.service,
        kind=kind,
        message=f"{kind} soon",
        expected_at=now + timedelta(days=3),
        confidence=1.0,
        generated_at=now,
    )
    assert triggers.evaluate() == 1


def test_a_folded_service_sets_no_rule_off(estate, webhook, automation, receiver):
    """db is down and ledger, which hard-depends on it, fails with it: ledger is folded into
    db's alert, and a rule over every service fires for db alone."""
    estate.add("db")
    estate.add("ledger", depends_on=["db"])
    estate.up("db", "ledger")
    process()
    channel("ops", receiver.url)
    put_rule(automation, "everyone", webhook_rule(webhook, cooldown_seconds=0))
    estate.down("db", "ledger")
    process()
    send_later()
    assert len(webhook.calls) == 1
    fired = set(RuleFiring.objects.values_list("service__name", flat=True))
    assert fired == {"db"}


def test_a_silenced_service_sets_no_rule_off(db_estate, webhook, automation):
    """A service in a maintenance window opens no alert, so no rule fires for it."""
    put_rule(automation, "restart", webhook_rule(webhook, cooldown_seconds=0))
    now = timezone.now()
    window = automation.call(
        "post",
        "/api/maintenance-windows",
        {
            "services": ["db"],
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(),
        },
    )
    assert window.status_code == 201, window.json()
    db_estate.down("db")
    process()
    send_later()
    assert webhook.calls == [] and not RuleFiring.objects.exists()


def test_an_action_never_sets_its_own_rule_off(db_estate, webhook, acting_automation):
    """A lifecycle action moves the registry's status, never health: with no cooldown, the
    rule fires once for one outage however often the automation runs afterwards."""
    Service.objects.filter(name="db").update(lifecycle_status="running")
    put_rule(
        acting_automation,
        "mark-failed",
        {
            "trigger": "down",
            "scope": {"services": ["db"]},
            "actions": [
                {"type": "lifecycle", "to": "failed"},
                {"type": "webhook", "url": webhook.url},
            ],
            "cooldown_seconds": 0,
        },
    )
    db_estate.down("db")
    process()
    send_later()
    health = ServiceHealth.objects.get(service__name="db").status
    for _ in range(3):
        process()
        triggers.evaluate()
        send_later()
    assert Service.objects.get(name="db").lifecycle_status == "failed"
    assert ServiceHealth.objects.get(service__name="db").status == health
    assert len(webhook.calls) == 1 and RuleFiring.objects.count() == 1


def test_a_webhook_action_does_not_follow_a_redirect(db_estate, automation):
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.expect_request("/restart").respond_with_response(
        Response("", 302, {"Location": "/elsewhere"})
    )
    server.expect_request("/elsewhere").respond_with_data("followed")
    server.start()
    try:
        put_rule(
            automation,
            "restart",
            {
                "trigger": "down",
                "scope": {"services": ["db"]},
                "actions": [{"type": "webhook", "url": server.url_for("/restart")}],
            },
        )
        db_estate.down("db")
        process()
        send_later()
        paths = [request.path for request, _ in server.log]
    finally:
        server.stop()
    assert paths == ["/restart"]
    attempt = Delivery.objects.get(rule__name="restart").attempt_rows.get()
    assert attempt.ok is False and attempt.http_status == 302


def test_a_webhook_action_is_judged_again_when_it_calls(db_estate, webhook, automation, settings):
    """Saved while its host was allowed; the policy changed since: the call is refused with
    the reason and the receiver hears nothing."""
    put_rule(automation, "restart", webhook_rule(webhook, scope={"services": ["db"]}))
    settings.HEALTH_DENIED_PORTS = [str(webhook.server.port)]
    db_estate.down("db")
    process()
    send_later()
    assert webhook.calls == []
    attempt = Delivery.objects.get(rule__name="restart").attempt_rows.get()
    assert attempt.ok is False and "HEALTH_DENIED_PORTS" in attempt.error


# --- scope ---------------------------------------------------------------------------------

NAMES = ["a", "b", "c"]


@hypothesis_settings(max_examples=150, deadline=None)
@given(
    service=st.sampled_from(NAMES),
    team=st.sampled_from(["red", "blue"]),
    tags=st.sets(st.sampled_from(["edge", "db"])),
    critical=st.booleans(),
    scope=st.fixed_dictionaries(
        {},
        optional={
            "services": st.lists(st.sampled_from(NAMES), min_size=1, unique=True),
            "team": st.sampled_from(["red", "blue"]),
            "tag": st.sampled_from(["edge", "db"]),
            "critical_only": st.booleans(),
        },
    ),
)
def test_a_scope_selects_a_service_only_when_every_criterion_it_gives_matches(
    service, team, tags, critical, scope
):
    """services, team, tag and critical_only: all those given must match; none given: every
    service (README "Rules and remediation")."""
    row = Service(name=service, team=Team(id=NAMES.index(service) + 1, name=team))
    row.is_critical = critical
    expected = all(
        [
            service in scope.get("services", [service]),
            scope.get("team", team) == team,
            scope.get("tag") is None or scope["tag"] in tags,
            not scope.get("critical_only") or critical,
        ]
    )
    assert rules.in_scope(Rule(scope=scope), row, tags) is expected
