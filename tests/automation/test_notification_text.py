"""What a message says: a DOWN notification quotes what the failing check answered (cut
short, the check's secrets never in it); an escalation is titled [ESCALATED] and says after
how long and who the rule told first; one queued before someone acknowledged is not sent."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from werkzeug import Response

from automation import alerts, notify, rules, triggers
from automation.models import Alert, Delivery
from healthchecks.models import HealthCheck
from portal import encryption
from tests.automation.conftest import ACTOR, Receiver, channel, process, send_later
from tests.factories import ServiceFactory, make_check

pytestmark = [pytest.mark.django_db(transaction=True)]

SECRET = "Bearer s3cr3t-t0ken-never-told"


def test_a_down_notification_says_what_the_failing_check_answered(db_estate, receiver):
    channel("ops", receiver.url)
    db_estate.down("db")
    process()
    send_later()
    (body,) = receiver.bodies
    assert body["title"] == "[DOWN] db"
    lines = body["message"].splitlines()
    assert "Why: critical check failing: http" in lines
    assert "Error: http: HTTP 500 (expected 2xx/3xx)" in lines


def test_a_recovery_notice_quotes_no_error(db_estate, receiver):
    channel("ops", receiver.url)
    db_estate.down("db")
    process()
    send_later()
    db_estate.up("db")
    process()
    send_later()
    assert receiver.titles() == ["[DOWN] db", "[RECOVERED] db"]
    assert "Error:" not in receiver.bodies[1]["message"]


@pytest.fixture
def echoing(http_servers):
    """A careless target: it fails with a health document echoing the credentials it was
    sent, in a very long output."""
    with http_servers.borrow() as server:

        def answer(request):
            said = request.headers.get("Authorization", "")
            document = {"status": "fail", "output": f"rejected {said} " + "x" * 5000}
            return Response(json.dumps(document), 503, content_type="application/health+json")

        server.expect_request(re.compile(r"/.*")).respond_with_handler(answer)
        yield server


def test_the_error_quoted_is_cut_short_and_holds_no_secret_of_the_check(echoing, receiver):
    from healthchecks import checks

    service = ServiceFactory(name="api")
    check = make_check(service=service, name="health", target=echoing.url_for("/health"))
    HealthCheck.objects.filter(id=check.id).update(
        secrets=encryption.encrypt({"headers": {"Authorization": SECRET}})
    )
    channel("ops", receiver.url)
    checks.run_now(HealthCheck.objects.get(id=check.id), ACTOR)
    process()
    send_later()
    (body,) = receiver.bodies
    (error,) = [line for line in body["message"].splitlines() if line.startswith("Error: ")]
    assert error.startswith("Error: health: HTTP 503")
    assert "[redacted]" in error and "s3cr3t" not in body["message"]
    assert len(error) <= len("Error: health: ") + notify.ERROR_CHARS
    assert error.endswith("...")


def test_at_most_three_failing_checks_are_quoted(db_estate, receiver):
    service = db_estate.services["db"]
    for n in range(4):
        make_check(service=service, name=f"extra-{n}", target=db_estate.targets.url("db"))
    channel("ops", receiver.url)
    db_estate.targets.down.add("db")
    from healthchecks import checks

    for check in HealthCheck.objects.filter(service=service):
        checks.run_now(check, ACTOR)
    process()
    send_later()
    (error,) = [
        line for line in receiver.bodies[0]["message"].splitlines() if line.startswith("Error: ")
    ]
    assert error.count("HTTP 500") == 3 and error.endswith("and 2 more failing")


def paging_rule(automation, receiver_url: str, webhook_url: str) -> None:
    channel("ops", receiver_url, events=["recovered"])  # the rule notifies it itself
    rule = {
        "trigger": "down",
        "actions": [
            {"type": "notify", "channel": "ops"},
            {"type": "webhook", "url": f"{webhook_url}?token=never-named"},
        ],
        "escalation": [{"type": "notify", "channel": "pager"}],
        "escalate_after_minutes": 5,
    }
    answer = automation.call("put", "/api/automation/rules/page", rule)
    assert answer.status_code == 201, answer.json()


@pytest.fixture
def pager(http_servers):
    with http_servers.borrow() as server:
        yield Receiver(server)


def test_an_escalation_is_titled_and_says_after_how_long_and_who_was_told_first(
    db_estate, receiver, pager, webhook, automation
):
    channel("pager", pager.url, events=["recovered"])
    paging_rule(automation, receiver.url, webhook.url)
    db_estate.down("db")
    process()
    send_later()
    assert receiver.titles() == ["[DOWN] db"] and len(webhook.calls) == 1
    assert rules.escalate_due(timezone.now() + timedelta(minutes=6)) == 1
    send_later(400)
    (body,) = pager.bodies
    assert body["title"] == "[ESCALATED] [DOWN] db"
    first, *rest = body["message"].splitlines()
    assert first.startswith("Escalated by rule page: nobody acknowledged it within 5 min")
    assert first.endswith("UTC: ops, webhook to 127.0.0.1).")
    assert "never-named" not in body["message"]  # a webhook's path and query are not told
    assert rest[0].startswith("db is down since")
    assert "Error: http: HTTP 500 (expected 2xx/3xx)" in rest
    escalation = Delivery.objects.get(channel_name="pager")
    assert escalation.escalation["after_minutes"] == 5
    assert escalation.escalation["first_told"] == ["ops", "webhook to 127.0.0.1"]


def test_an_escalation_acknowledged_before_it_is_sent_is_skipped(
    db_estate, receiver, pager, webhook, automation
):
    channel("pager", pager.url, events=["recovered"])
    paging_rule(automation, receiver.url, webhook.url)
    db_estate.down("db")
    process()
    send_later()
    assert rules.escalate_due(timezone.now() + timedelta(minutes=6)) == 1
    alerts.acknowledge(Alert.objects.get(resolved_at=None).id, ACTOR)
    send_later(400)
    assert pager.bodies == []
    skipped = Delivery.objects.get(channel_name="pager")
    assert (skipped.state, skipped.detail) == (
        "skipped",
        "acknowledged by system:tests before it was sent",
    )


def test_a_check_conditions_escalation_is_titled_too(db_estate, pager, webhook, automation):
    channel("pager", pager.url, events=["down"])
    rule = {
        "trigger": "check_failing",
        "condition": {"failures": 1},
        "scope": {"services": ["db"]},
        "actions": [{"type": "webhook", "url": webhook.url}],
        "escalation": [{"type": "notify", "channel": "pager"}],
        "escalate_after_minutes": 10,
    }
    assert automation.call("put", "/api/automation/rules/failing", rule).status_code == 201
    db_estate.down("db")
    triggers.evaluate()
    assert rules.escalate_due(timezone.now() + timedelta(minutes=11)) == 1
    send_later(700)
    (body,) = pager.bodies
    assert body["title"] == "[ESCALATED] [FAILING] db / http"
    assert body["message"].startswith(
        "Escalated by rule failing: nobody acknowledged it within 10 min"
    )
    assert "webhook to 127.0.0.1" in body["message"].splitlines()[0]
