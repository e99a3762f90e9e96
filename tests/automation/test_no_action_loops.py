"""Rules act through deliveries (docs/decisions.md): a loop -- a rule's action changing health,
which fires the rule again -- needs an action that changes health in a way a rule hears. Every
lifecycle move the lifecycle allows, made through the API, leaves the service's derived health,
its reason and the outbox of status changes as they were -- but a move into or out of
``stopped`` (issue 22: a stopped service is not watched). A move into it is silent (its alert
resolved with no event, so no rule fires); a move out of it can only follow a move into it. So
no action sets its own rule off again."""

import pytest

from automation.models import Delivery, RuleFiring
from healthchecks.models import ServiceHealth, StatusChange
from services.lifecycle import ALLOWED, NOT_WATCHED
from services.models import Service
from tests.automation.conftest import channel, process, send_later
from tests.conftest import ApiClient

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("down", [False, True])
def test_no_lifecycle_move_changes_health_but_into_and_out_of_stopped(db_estate, make_token, down):
    registry = ApiClient(make_token(["registry:read", "registry:write"]).secret)
    if down:
        db_estate.down("db")
        process()
    health = ServiceHealth.objects.filter(service__name="db").values_list("status", "reason")
    before = health.get()
    moves = [(frm, to) for frm, nexts in ALLOWED.items() for to in nexts]
    for frm, to in moves:
        if frm in NOT_WATCHED:  # only a transition leaves it (and puts its checks back)
            continue
        Service.objects.filter(name="db").update(lifecycle_status=frm)
        changes = StatusChange.objects.count()
        moved = registry.call("POST", "/api/services/db/transitions", {"to": to, "force": True})
        assert moved.status_code == 200, (frm, to, moved.content)
        if to in NOT_WATCHED:
            assert health.get() == (0, "lifecycle stopped: not probed, no alerts"), (frm, to)
            again = registry.call("POST", "/api/services/db/transitions", {"to": "starting"})
            assert again.status_code == 200, again.content
        assert health.get() == before, (frm, to)
        if to not in NOT_WATCHED:
            assert StatusChange.objects.count() == changes, (frm, to)  # nothing to read


def test_a_rule_that_stops_its_service_fires_once_and_is_heard_once(
    db_estate, acting_automation, receiver
):
    """On down, stop the service (it was stopping): its alert is resolved, silently -- no
    recovery, no event -- so the rule is not set off again however often the automation runs."""
    Service.objects.filter(name="db").update(lifecycle_status="stopping")
    channel("ops", receiver.url)
    rule = {
        "trigger": "down",
        "scope": {"services": ["db"]},
        "actions": [{"type": "lifecycle", "to": "stopped"}],
        "cooldown_seconds": 0,
    }
    answer = acting_automation.call("put", "/api/automation/rules/stop-it", rule)
    assert answer.status_code == 201, answer.json()
    db_estate.down("db")
    process()
    send_later()
    assert Service.objects.get(name="db").lifecycle_status == "stopped"
    for _ in range(3):
        process()
        send_later(600)
    assert RuleFiring.objects.count() == 1
    assert receiver.titles() == ["[DOWN] db"]
    assert not Delivery.objects.filter(event="recovered").exists()
