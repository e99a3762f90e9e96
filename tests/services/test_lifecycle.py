import pytest

from portal.auth import system_actor
from portal.errors import Conflict, NotFound
from portal.models import AuditEntry
from services import lifecycle
from services.models import Dependency, LifecycleTransition, Service
from tests.conftest import ApiClient
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


@pytest.fixture
def stack():
    """ledger needs postgres-main (hard) and cache (soft); both run."""
    db, cache = ServiceFactory(name="postgres-main"), ServiceFactory(name="cache")
    ledger = ServiceFactory(name="ledger")
    Dependency.objects.create(service=ledger, depends_on=db, kind="hard")
    Dependency.objects.create(service=ledger, depends_on=cache, kind="soft")
    for name in ("postgres-main", "cache"):
        lifecycle.transition(name, "running", "", ACTOR)
    return ledger


def test_a_service_starts_only_while_its_hard_dependencies_run(stack):
    lifecycle.transition("postgres-main", "stopping", "", ACTOR)
    with pytest.raises(Conflict) as caught:
        lifecycle.transition("ledger", "starting", "", ACTOR)
    assert caught.value.code == "dependencies_not_running"
    assert caught.value.extra["blocking"] == [
        {"service": "postgres-main", "lifecycle_status": "stopping"}
    ]
    with pytest.raises(Conflict):
        lifecycle.transition("ledger", "running", "", ACTOR)
    lifecycle.transition("postgres-main", "stopped", "", ACTOR)
    lifecycle.transition("postgres-main", "starting", "", ACTOR)
    lifecycle.transition("postgres-main", "running", "", ACTOR)
    lifecycle.transition("cache", "stopping", "", ACTOR)  # soft: no bar either way
    assert lifecycle.transition("ledger", "starting", "", ACTOR).changed


def test_a_service_stops_only_while_no_hard_dependent_runs(stack):
    lifecycle.transition("ledger", "running", "", ACTOR)
    with pytest.raises(Conflict) as caught:
        lifecycle.transition("postgres-main", "stopping", "", ACTOR)
    assert caught.value.code == "has_running_dependents"
    assert caught.value.extra["blocking"] == [{"service": "ledger", "lifecycle_status": "running"}]
    assert Service.objects.get(name="postgres-main").lifecycle_status == "running"
    lifecycle.transition("cache", "stopping", "", ACTOR)  # ledger needs it only softly
    lifecycle.transition("ledger", "stopping", "", ACTOR)
    assert lifecycle.transition("postgres-main", "stopping", "", ACTOR).changed


def test_force_overrides_and_the_audit_log_says_what_it_overrode(stack):
    lifecycle.transition("ledger", "running", "", ACTOR)
    outcome = lifecycle.transition("postgres-main", "stopping", "maintenance", ACTOR, force=True)
    assert outcome.changed
    entry = AuditEntry.objects.filter(action="service.transition", target="postgres-main").first()
    assert entry.changes["forced"] is True
    assert entry.changes["overrode"] == [{"service": "ledger", "lifecycle_status": "running"}]


def test_the_api_answers_409_naming_the_blockers_and_accepts_force(stack, make_token):
    client = ApiClient(make_token(["registry:read", "registry:write"]).secret)
    lifecycle.transition("ledger", "running", "", ACTOR)
    url = "/api/services/postgres-main/transitions"
    res = client.call("POST", url, {"to": "stopping"})
    assert res.status_code == 409
    assert res.json()["error"]["blocking"] == [{"service": "ledger", "lifecycle_status": "running"}]
    assert "ledger (running)" in res.json()["error"]["message"]
    res = client.call("POST", url, {"to": "stopping", "force": True, "reason": "emergency"})
    assert res.status_code == 200 and res.json()["lifecycle_status"] == "stopping"
