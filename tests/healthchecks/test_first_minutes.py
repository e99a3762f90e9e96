"""The first minutes and stopped services (issue 22, item 6): a check with no result yet says
nothing of its service ("waiting for first result", never down or degraded); a service whose
lifecycle is stopped is not probed (its checks leave the schedule, the dispatcher claims none
of them) and reads unknown with the reason; a heartbeat is first judged when its first beat
would be late."""

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from healthchecks import checks
from healthchecks.engine import recording, scheduling
from healthchecks.models import CheckSchedule, ServiceHealth
from healthchecks.probes import ProbeOutcome
from healthchecks.schemas import CheckFieldsIn
from healthchecks.status import WAITING, Status, is_waiting, service_status
from portal.auth import system_actor
from services import lifecycle
from tests.factories import ServiceFactory, make_check

ACTOR = system_actor("tests")
H, D, U, K = Status.HEALTHY, Status.DEGRADED, Status.UNHEALTHY, Status.UNKNOWN


def record(check, status, at=None):
    at = at or timezone.now()
    errors = ["HTTP 503"] if status == U else []
    recording.record([recording.Result(check.pk, at, at, ProbeOutcome(status, errors=errors))])


def health(service) -> tuple[int, str]:
    row = ServiceHealth.objects.get(service=service)
    return row.status, row.reason


# --- The rule, without the database ----------------------------------------------------------


def test_a_service_whose_only_checks_never_ran_is_waiting_not_down():
    assert service_status([], [], waiting=["tcp", "http"]) == (K, f"{WAITING}: http, tcp")


def test_a_check_waiting_beside_a_healthy_one_degrades_nothing():
    assert service_status([("http", H, True)], [], waiting=["tcp"]) == (H, "")


def test_a_waiting_check_is_named_beside_a_failing_one():
    assert service_status([("http", U, True)], [], waiting=["tcp"]) == (
        U,
        f"critical check failing: http; {WAITING}: tcp",
    )


def test_never_run_or_held_by_retries_is_waiting_a_settled_or_unreadable_one_is_not():
    now = timezone.now()
    assert is_waiting(K, None, 0)  # never probed
    assert is_waiting(K, now, 1)  # its first failure held back by retries
    assert not is_waiting(K, now, 0)  # probed, answered unknown (unreadable secrets)
    assert not is_waiting(H, now, 0)
    assert not is_waiting(U, now, 3)


CHECKS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d", "e"]),
        st.sampled_from([H, D, U, K]),
        st.booleans(),
    ),
    max_size=5,
    unique_by=lambda c: c[0],
)
DEPS = st.lists(st.tuples(st.sampled_from(["x", "y"]), st.sampled_from([H, D, U, K])), max_size=2)


@given(checks=CHECKS, deps=DEPS, waiting=st.sets(st.sampled_from(["v", "w"]), min_size=1))
def test_checks_waiting_for_a_first_result_never_change_the_status(checks, deps, waiting):
    """Whatever the other checks and the hard dependencies say, adding checks that wait for
    their first result changes the status of none (a service with only such checks reads as
    one with no checks: unknown, or degraded by an unhealthy hard dependency)."""
    status, reason = service_status(checks, deps, waiting=sorted(waiting))
    assert status == service_status(checks, deps)[0]
    if status != H:
        assert f"{WAITING}: {', '.join(sorted(waiting))}" in reason


# --- Through the engine ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_new_check_reads_waiting_on_its_service_and_opens_nothing(client):
    service = ServiceFactory(name="api")
    checks.put_one("api", "http", CheckFieldsIn(kind="http", target="http://127.0.0.1:9/"), ACTOR)
    assert health(service) == (K, f"{WAITING}: http")
    answer = client.get("/health/service/api").json()
    assert answer["status"] == "unknown" and answer["reason"] == f"{WAITING}: http"
    assert answer["checks"][0]["waiting"] is True
    overview = client.get("/health/services").json()["services"]
    assert overview[0]["reason"] == f"{WAITING}: http"


@pytest.mark.django_db
def test_a_second_check_added_to_a_healthy_service_does_not_degrade_it(client):
    service = ServiceFactory(name="api")
    first = make_check(service, name="http")
    record(first, H)
    assert health(service) == (H, "")
    checks.put_one("api", "tcp", CheckFieldsIn(kind="tcp", target="127.0.0.1:9"), ACTOR)
    record(first, H)  # any recompute: the new check, never run, still says nothing
    make_check(service, name="other")  # made behind the write path: recomputed on a result
    record(first, D)
    record(first, H)
    assert health(service) == (H, "")
    assert client.get("/health/service/api").json()["status"] == "healthy"


@pytest.mark.django_db
def test_a_first_failure_held_back_by_retries_is_still_waiting():
    service = ServiceFactory(name="api")
    ok, new = make_check(service, name="http"), make_check(service, name="tcp", retries=2)
    record(ok, H)
    record(new, U)  # failure 1 of 3: the check stays unknown, and so says nothing
    record(ok, D)
    record(ok, H)
    assert health(service) == (H, "")
    record(new, U)
    record(new, U)
    assert health(service) == (U, "critical check failing: tcp")


# --- Stopped services are not probed ----------------------------------------------------------


def _run_then_stop(name: str):
    for step in ("running", "stopping", "stopped"):
        lifecycle.transition(name, step, "tests", ACTOR)


def _claimed(now, ahead=timedelta(hours=2)) -> set[int]:
    return {c.check_id for c in scheduling.claim_due(now, now + ahead, 1000)}


@pytest.mark.django_db
def test_a_stopped_service_is_not_dispatched_and_reads_so(client):
    service, other = ServiceFactory(name="api"), ServiceFactory(name="web")
    check = make_check(service, name="http")
    make_check(service, name="off", enabled=False)
    kept = make_check(other, name="http")
    record(check, U)
    _run_then_stop("api")
    assert not CheckSchedule.objects.filter(health_check__service=service).exists()
    assert _claimed(timezone.now()) == {kept.pk}
    reason = "lifecycle stopped: not probed, no alerts"
    assert health(service) == (K, reason)
    answer = client.get("/health/service/api")
    assert answer.status_code == 503  # not usable: a deploy gate does not pass it
    assert answer.json()["status"] == "unknown" and answer.json()["reason"] == reason


@pytest.mark.django_db
def test_a_check_written_while_stopped_stays_off_the_schedule_until_it_starts():
    service = ServiceFactory(name="api")
    _run_then_stop("api")
    checks.put_one("api", "http", CheckFieldsIn(kind="http", target="http://127.0.0.1:9/"), ACTOR)
    assert not CheckSchedule.objects.filter(health_check__service=service).exists()
    before = timezone.now()
    lifecycle.transition("api", "starting", "tests", ACTOR)
    due = CheckSchedule.objects.get(health_check__service=service).next_due_at
    assert before <= due <= timezone.now()  # probed at once
    assert health(service) == (K, f"{WAITING}: http")


@pytest.mark.django_db
def test_a_new_heartbeat_is_first_judged_when_its_first_beat_would_be_late():
    ServiceFactory(name="cron")
    before = timezone.now()
    checks.put_one(
        "cron", "nightly", CheckFieldsIn(kind="heartbeat", interval=600, grace=60), ACTOR
    )
    due = CheckSchedule.objects.get(health_check__name="nightly").next_due_at
    assert before + timedelta(seconds=660) <= due <= timezone.now() + timedelta(seconds=660)
    # Ten minutes on, nobody could have missed a beat yet: nothing to judge.
    assert _claimed(timezone.now(), ahead=timedelta(seconds=600)) == set()
