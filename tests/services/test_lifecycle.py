import pytest

from portal.auth import system_actor
from portal.errors import Conflict, NotFound
from services import lifecycle
from services.models import LifecycleTransition, Service
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db
ACTOR = system_actor("test")


def test_it_moves_through_legal_transitions_and_records_each():
    ServiceFactory(name="web")
    for to in ("starting", "running", "degraded", "running", "stopping", "stopped"):
        outcome = lifecycle.transition("web", to, f"going {to}", ACTOR)
        assert outcome.changed
    rows = list(
        LifecycleTransition.objects.order_by("id").values_list(
            "from_status", "to_status", "reason", "actor"
        )
    )
    assert rows[0] == ("registered", "starting", "going starting", "system:test")
    assert rows[-1] == ("stopping", "stopped", "going stopped", "system:test")
    assert Service.objects.get(name="web").lifecycle_status == "stopped"


def test_it_refuses_an_illegal_transition_with_the_allowed_ones():
    ServiceFactory(name="web")
    with pytest.raises(Conflict) as caught:
        lifecycle.transition("web", "stopping", "", ACTOR)
    error = caught.value
    assert error.code == "illegal_transition"
    assert error.extra == {"current": "registered", "allowed": ["starting", "running", "stopped"]}
    assert Service.objects.get(name="web").lifecycle_status == "registered"
    assert not LifecycleTransition.objects.exists()


def test_asking_for_the_current_status_changes_nothing():
    ServiceFactory(name="web")
    outcome = lifecycle.transition("web", "registered", "", ACTOR)
    assert not outcome.changed
    assert not LifecycleTransition.objects.exists()


def test_every_status_has_a_way_out_and_no_self_loop():
    for status, targets in lifecycle.ALLOWED.items():
        assert targets, status
        assert status not in targets


def test_an_unknown_service_is_not_found():
    with pytest.raises(NotFound):
        lifecycle.transition("ghost", "running", "", ACTOR)
