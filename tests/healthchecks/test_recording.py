"""Recording outcomes: history, states, status changes, service statuses, incidents."""

from datetime import timedelta

import pytest
from django.utils import timezone

from healthchecks.engine import recording
from healthchecks.models import (
    CheckResult,
    CheckRollup,
    CheckState,
    Incident,
    ResultDetail,
    ServiceHealth,
    StatusChange,
)
from healthchecks.probes import ProbeOutcome
from healthchecks.status import ErrorCode, Status
from tests.factories import DependencyFactory, ServiceFactory, make_check

# Also on SQLite: these parts have an embedded-mode branch of their own.
pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
T0 = timezone.now().replace(microsecond=0)


def result(check, seconds, status=Status.HEALTHY, ms=12.5, errors=()):
    due = T0 + timedelta(seconds=seconds)
    outcome = ProbeOutcome(
        status,
        response_ms=ms,
        errors=list(errors),
        error_code=ErrorCode.REFUSED if errors else ErrorCode.NONE,
    )
    return recording.Result(check.pk, due, due + timedelta(milliseconds=40), outcome)


def service_status(service):
    return ServiceHealth.objects.get(service=service).status


def test_it_records_history_and_state():
    check = make_check()
    recording.record([result(check, 0, ms=12.5)])
    row = CheckResult.objects.get()
    assert (row.status, row.response_us, row.lag_ms) == (Status.HEALTHY, 12500, 40)
    state = CheckState.objects.get(health_check=check)
    assert state.status == Status.HEALTHY and state.last_response_us == 12500
    assert not ResultDetail.objects.exists()


def test_recording_the_same_result_twice_changes_nothing():
    check = make_check()
    batch = [result(check, 0), result(check, 30, Status.UNHEALTHY, errors=["refused"])]
    recording.record(batch)
    changes = StatusChange.objects.count()
    recording.record(batch)
    assert CheckResult.objects.count() == 2
    assert ResultDetail.objects.count() == 1
    assert StatusChange.objects.count() == changes


def test_an_older_result_arriving_late_does_not_move_the_state_back():
    check = make_check()
    recording.record([result(check, 30, Status.HEALTHY)])
    recording.record([result(check, 0, Status.UNHEALTHY, errors=["late"])])
    assert CheckState.objects.get(health_check=check).status == Status.HEALTHY
    assert CheckResult.objects.count() == 2


def test_retries_are_visible_as_warnings_not_hidden():
    check = make_check(retries=2)
    recording.record([result(check, 0)])
    recording.record([result(check, 30, Status.UNHEALTHY, errors=["refused"])])
    state = CheckState.objects.get(health_check=check)
    assert state.status == Status.HEALTHY and state.consecutive_failures == 1
    assert "failure 1 of 3" in state.last_outcome["warnings"][0]
    recording.record(
        [
            result(check, 60, Status.UNHEALTHY, errors=["refused"]),
            result(check, 90, Status.UNHEALTHY, errors=["refused"]),
        ]
    )
    assert CheckState.objects.get(health_check=check).status == Status.UNHEALTHY


def test_a_status_change_is_an_event_with_its_cause_and_opens_an_incident():
    check = make_check()
    recording.record([result(check, 0)])
    recording.record([result(check, 30, Status.UNHEALTHY, errors=["connection refused"])])
    change = StatusChange.objects.filter(health_check=check).latest("at")
    assert (change.from_status, change.to_status) == (Status.HEALTHY, Status.UNHEALTHY)
    assert change.cause == "connection refused"
    service_change = StatusChange.objects.filter(health_check=None).latest("at")
    assert service_change.to_status == Status.UNHEALTHY
    incident = Incident.objects.get(service=check.service)
    assert incident.closed_at is None and incident.worst_status == Status.UNHEALTHY
    recording.record([result(check, 60)])
    incident.refresh_from_db()
    assert incident.closed_at is not None and incident.duration > timedelta(0)
    assert service_status(check.service) == Status.HEALTHY


def test_a_non_critical_check_failing_degrades_the_service():
    service = ServiceFactory()
    main = make_check(service, name="main")
    cache = make_check(service, name="cache", is_critical=False)
    recording.record([result(main, 0), result(cache, 0, Status.UNHEALTHY, errors=["x"])])
    health = ServiceHealth.objects.get(service=service)
    assert health.status == Status.DEGRADED
    assert "non-critical check failing: cache" in health.reason


def test_an_unhealthy_hard_dependency_degrades_its_dependents_and_recovers():
    link = DependencyFactory(kind="hard")
    soft = DependencyFactory(depends_on=link.depends_on, kind="soft")
    db, app, other = link.depends_on, link.service, soft.service
    db_check, app_check, other_check = make_check(db), make_check(app), make_check(other)
    recording.record([result(db_check, 0), result(app_check, 0), result(other_check, 0)])
    assert service_status(app) == Status.HEALTHY
    recording.record([result(db_check, 30, Status.UNHEALTHY, errors=["down"])])
    assert service_status(db) == Status.UNHEALTHY
    assert service_status(app) == Status.DEGRADED
    assert db.name in ServiceHealth.objects.get(service=app).reason
    assert service_status(other) == Status.HEALTHY  # a soft dependency does not spread
    recording.record([result(db_check, 60)])
    assert service_status(app) == Status.HEALTHY
    assert Incident.objects.filter(service=app, closed_at__isnull=False).count() == 1


def test_a_deleted_check_is_skipped():
    check = make_check()
    pending = result(check, 0)
    check.delete()
    assert recording.record([pending]) == 0


def test_a_slot_ten_minutes_late_records_its_true_lag():
    check = make_check()
    due = T0
    late = recording.Result(
        check.pk, due, due + timedelta(seconds=603), ProbeOutcome(Status.HEALTHY)
    )
    recording.record([late])
    assert CheckResult.objects.get().lag_ms == 603_000


def test_a_missed_slot_is_history_but_neither_state_nor_uptime():
    from healthchecks.reads import history

    check = make_check()
    recording.record([result(check, 0)])
    missed = ProbeOutcome(Status.UNKNOWN, error_code=ErrorCode.MISSED, errors=["slot missed"])
    due = T0 + timedelta(seconds=30)
    recording.record([recording.Result(check.pk, due, due + timedelta(seconds=90), missed)])
    assert CheckResult.objects.count() == 2
    state = CheckState.objects.get(health_check=check)
    assert state.status == Status.HEALTHY and state.last_due_at == T0
    history.rollup_hours(T0 - timedelta(hours=1))
    assert sum(CheckRollup.objects.values_list("count", flat=True)) == 1


def test_a_nul_in_what_a_target_said_is_recorded_written_out_and_fails_the_check():
    """Breaking trial (issue 21): a health document with a NUL in its output
    ({"status": "fail", "output": "bad\\u0000thing"}) made the flush fail on PostgreSQL, so
    the failure was dropped and the check stayed healthy."""
    check = make_check(retries=0)
    recording.record([result(check, 0)])
    at = timezone.now()
    outcome = ProbeOutcome(
        Status.UNHEALTHY,
        response_ms=3,
        errors=["bad\x00thing"],
        details={"out\x00put": ["x\x00"]},
        error_code=ErrorCode.REPORTED,
    )
    recording.record([recording.Result(check.pk, at, at, outcome)])
    state = CheckState.objects.get(health_check=check)
    assert state.status == Status.UNHEALTHY
    assert state.last_outcome["errors"] == ["bad\\0thing"]
    detail = ResultDetail.objects.get(health_check=check, at=at)
    assert detail.outcome["details"] == {"out\\0put": ["x\\0"]}
