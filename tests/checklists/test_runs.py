"""Checklist runs: the seed's routines in full, the period a day falls in (and the rollover at
midnight, Monday, the first of a month and of a quarter), ticking and unticking recorded and
audited, sign-off only when all is done, overdue runs, and evidence from live data."""

from datetime import date, datetime

import pytest
import time_machine
from django.utils import timezone

from checklists import evidence, routines, runs
from checklists.models import ChecklistRun, ChecklistTemplate, Tick
from healthchecks.engine import recording
from healthchecks.probes import ProbeOutcome
from healthchecks.status import Status
from portal.auth import system_actor
from portal.errors import Conflict, InvalidInput, NotFound
from portal.models import AuditEntry
from tests.factories import DependencyFactory, ServiceFactory, make_check

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
ACTOR = system_actor("tests")


def test_every_item_of_the_seed_routines_is_installed():
    items = {t.name: [i.text for i in t.items.all()] for t in ChecklistTemplate.objects.all()}
    expected = {
        name: [text for _, section in sections for text, *_ in section]
        for name, _, _, sections in routines.ROUTINES
    }
    assert items == expected
    periodic = ("daily", "weekly", "monthly", "quarterly")
    assert sum(len(items[name]) for name in periodic) == 32
    assert (len(items["pre-migration"]), len(items["post-migration"])) == (14, 9)
    assert "Check for configuration drift" in items["weekly"]


@pytest.mark.parametrize(
    ("period", "day", "start", "end", "label"),
    [
        ("daily", date(2026, 12, 31), date(2026, 12, 31), date(2026, 12, 31), "2026-12-31"),
        ("weekly", date(2026, 12, 2), date(2026, 11, 30), date(2026, 12, 6), "2026-W49"),
        ("weekly", date(2027, 1, 1), date(2026, 12, 28), date(2027, 1, 3), "2026-W53"),
        ("monthly", date(2028, 2, 15), date(2028, 2, 1), date(2028, 2, 29), "2028-02"),
        ("quarterly", date(2026, 12, 2), date(2026, 10, 1), date(2026, 12, 31), "2026-Q4"),
        ("quarterly", date(2027, 4, 1), date(2027, 4, 1), date(2027, 6, 30), "2027-Q2"),
    ],
)
def test_a_day_falls_in_its_calendar_period(period, day, start, end, label):
    assert runs.period_of(period, day) == runs.Bounds(start, end, label)


def test_runs_roll_over_at_midnight_monday_and_the_first_of_month_and_quarter():
    zone = timezone.get_current_timezone()
    with time_machine.travel(datetime(2026, 3, 29, 23, 59, 30, tzinfo=zone), tick=False):
        before = {r.template.period: r.label for r in runs.current_runs()}
    with time_machine.travel(datetime(2026, 3, 30, 0, 0, 30, tzinfo=zone), tick=False):
        after = {r.template.period: r.label for r in runs.current_runs()}
    # Sunday night to Monday morning: a new day and ISO week; March still, Q1 still.
    assert before == {
        "daily": "2026-03-29",
        "weekly": "2026-W13",
        "monthly": "2026-03",
        "quarterly": "2026-Q1",
    }
    assert after == {**before, "daily": "2026-03-30", "weekly": "2026-W14"}
    with time_machine.travel(datetime(2026, 4, 1, 0, 0, 1, tzinfo=zone), tick=False):
        april = {r.template.period: r.label for r in runs.current_runs()}
    assert (april["monthly"], april["quarterly"]) == ("2026-04", "2026-Q2")
    assert ChecklistRun.objects.filter(template__period="quarterly").count() == 2


def daily_run():
    return runs.run_for(ChecklistTemplate.objects.get(period="daily"))


def test_a_tick_and_an_untick_are_both_recorded_and_audited():
    run = daily_run()
    item = run.template.items.first()
    runs.tick(run.id, item.id, True, "all green", ACTOR)
    runs.tick(run.id, item.id, False, "", ACTOR)
    [state, *_] = runs.states(run)
    assert state.done is False and state.tick.by == "system:tests"
    assert list(Tick.objects.filter(item=item).order_by("at").values_list("done", "note")) == [
        (True, "all green"),
        (False, ""),
    ]
    assert list(
        AuditEntry.objects.filter(action__startswith="checklist.")
        .order_by("id")
        .values_list("action", flat=True)
    ) == ["checklist.tick", "checklist.untick"]
    assert runs.progress(run) == (0, 8)


def test_a_run_is_signed_off_only_when_every_item_is_ticked_and_then_closes():
    run = daily_run()
    items = list(run.template.items.all())
    for item in items[:-1]:
        runs.tick(run.id, item.id, True, "", ACTOR)
    with pytest.raises(Conflict, match="1 of 8 items are not ticked"):
        runs.sign_off(run.id, ACTOR)
    runs.tick(run.id, items[-1].id, True, "", ACTOR)
    signed = runs.sign_off(run.id, ACTOR)
    assert signed.signed_off_by == "system:tests" and signed.signed_off_at
    with pytest.raises(Conflict, match="signed off"):
        runs.tick(run.id, items[0].id, False, "", ACTOR)


def test_an_item_of_another_routine_or_a_missing_run_is_not_found():
    run = daily_run()
    weekly_item = ChecklistTemplate.objects.get(period="weekly").items.first()
    with pytest.raises(NotFound):
        runs.tick(run.id, weekly_item.id, True, "", ACTOR)
    with pytest.raises(NotFound):
        runs.tick(10**9, weekly_item.id, True, "", ACTOR)


def test_yesterdays_run_left_unsigned_is_overdue_today():
    template = ChecklistTemplate.objects.get(period="daily")
    runs.run_for(template, date(2026, 12, 1))
    overdue = runs.overdue(date(2026, 12, 2))
    assert [(r.template.period, r.label) for r in overdue] == [("daily", "2026-12-01")]
    assert runs.overdue(date(2026, 12, 4)) == []  # the day before that had no run at all


def test_evidence_reads_what_the_portal_knows():
    db = ServiceFactory(name="db")
    DependencyFactory(service__name="app", depends_on=db, kind="hard")
    check = make_check(db, name="tcp", is_critical=True)
    now = timezone.now()
    recording.record(
        [recording.Result(check.pk, now, now, ProbeOutcome(Status.UNHEALTHY, errors=["refused"]))]
    )
    found = evidence.evidence_for({"failing_checks", "dependencies", "health", "drift"})
    assert [r.name for r in found["failing_checks"].rows] == ["db / tcp"]
    assert [(r.name, r.detail) for r in found["dependencies"].rows] == [
        ("app", "needs db, which is unhealthy")
    ]
    assert "db" in [r.name for r in found["health"].rows]
    assert found["drift"].total == 0 and found["drift"].empty


def test_a_post_migration_validation_answers_what_the_portal_knows_with_evidence():
    db = ServiceFactory(name="db")
    app = ServiceFactory(name="app")
    DependencyFactory(service=app, depends_on=db, kind="hard")
    down = make_check(db, name="tcp", is_critical=True)
    up = make_check(app, name="http", is_critical=True)
    now = timezone.now()
    recording.record(
        [
            recording.Result(down.pk, now, now, ProbeOutcome(Status.UNHEALTHY, errors=["x"])),
            recording.Result(up.pk, now, now, ProbeOutcome(Status.HEALTHY)),
        ]
    )
    run = runs.start_for_service("post-migration", "app", ACTOR)
    verified = {s.item.text: (s.done, s.tick.note, s.tick.by) for s in runs.states(run) if s.tick}
    assert verified == {
        "All services start successfully": (False, "hard dependencies: db unhealthy", "portal"),
        "Health checks return healthy status": (
            True,
            "service degraded; checks: http healthy",
            "portal",
        ),
        "Configuration is loaded and validated": (
            False,
            "no configuration version stored",
            "portal",
        ),
    }
    assert runs.progress(run) == (1, 9)
    assert str(run).startswith("Post-migration validation of app")
    assert AuditEntry.objects.filter(action="checklist.start", target="post-migration app").exists()


def test_a_service_checklist_that_does_not_exist_is_refused_with_its_field():
    ServiceFactory(name="app")
    with pytest.raises(InvalidInput) as refused:
        runs.start_for_service("daily", "app", ACTOR)  # a routine, not a service's checklist
    assert "post-migration" in refused.value.fields["template"]
    with pytest.raises(NotFound):
        runs.start_for_service("post-migration", "ghost", ACTOR)


def test_a_configuration_not_deployed_yet_is_not_counted_as_loaded():
    """A stranger's trial: payments' validation said "valid" while its deployment ran the
    previous version (drifting)."""
    from checklists import verify
    from services import configs, deployments

    app = ServiceFactory(name="app")
    configs.publish("app", {"workers": 2}, 0, ACTOR)
    deployments.report(
        "app",
        version="1.0",
        status="succeeded",
        config_version=1,
        config_hash="",
        link="",
        actor=ACTOR,
    )
    assert verify.config_valid(app) == (
        True,
        "version 1 stored; no schema to validate it against, and deployed",
    )
    configs.publish("app", {"workers": 3}, 1, ACTOR)
    ok, said = verify.config_valid(app)
    assert not ok and "the last deployment applied version 1: not loaded" in said
