"""Rules act through deliveries (docs/decisions.md): a loop -- a rule's action changing health,
which fires the rule again -- needs an action that changes health, and none does: lifecycle
is not an input of health. Every move the lifecycle allows, made through the API, leaves the
service's derived health, its reason and the outbox of status changes as they were."""

import pytest

from healthchecks.models import ServiceHealth, StatusChange
from services.lifecycle import ALLOWED
from services.models import Service
from tests.automation.conftest import process
from tests.conftest import ApiClient

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("down", [False, True])
def test_no_lifecycle_move_changes_health(db_estate, make_token, down):
    registry = ApiClient(make_token(["registry:read", "registry:write"]).secret)
    if down:
        db_estate.down("db")
        process()
    health = ServiceHealth.objects.filter(service__name="db").values_list("status", "reason")
    before, changes = health.get(), StatusChange.objects.count()
    moves = [(frm, to) for frm, nexts in ALLOWED.items() for to in nexts]
    for frm, to in moves:
        Service.objects.filter(name="db").update(lifecycle_status=frm)
        moved = registry.call("POST", "/api/services/db/transitions", {"to": to, "force": True})
        assert moved.status_code == 200, (frm, to, moved.content)
        assert health.get() == before, (frm, to)
    assert StatusChange.objects.count() == changes  # nothing new for the automation to read
