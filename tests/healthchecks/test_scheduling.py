"""Claiming due checks: once per due time, however many dispatchers."""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from healthchecks.engine import scheduling
from healthchecks.models import CheckSchedule, CheckState, HealthCheck
from portal.auth import system_actor
from services import deployments
from tests.factories import ServiceFactory, make_check, next_due

# Also on SQLite: these parts have an embedded-mode branch of their own.
pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def test_it_claims_due_checks_and_moves_them_one_interval_on():
    now = timezone.now()
    due = make_check(interval=30, next_due_at=now - timedelta(seconds=1))
    later = make_check(interval=30, next_due_at=now + timedelta(seconds=10))
    make_check(interval=30, next_due_at=now, enabled=False)
    claims = scheduling.claim_due(now, now + timedelta(seconds=2), 100)
    assert claims == [scheduling.Claim(now - timedelta(seconds=1), due.pk)]
    assert next_due(due) == now + timedelta(seconds=29)
    assert scheduling.claim_due(now, now + timedelta(seconds=2), 100) == []
    assert next_due(later) == now + timedelta(seconds=10)


def test_it_claims_ahead_within_the_horizon():
    now = timezone.now()
    check = make_check(interval=5, next_due_at=now + timedelta(milliseconds=1500))
    claims = scheduling.claim_due(now, now + timedelta(seconds=2), 100)
    assert [c.check_id for c in claims] == [check.pk]


def test_a_check_far_behind_runs_once_then_keeps_its_phase():
    now = timezone.now()
    check = make_check(interval=10, next_due_at=now - timedelta(seconds=3603))
    assert len(scheduling.claim_due(now, now, 100)) == 1
    # The missed runs are skipped; the next one keeps the old rhythm (3 s before a 10 s mark).
    assert next_due(check) == now + timedelta(seconds=7)


def test_changing_the_interval_takes_effect_without_a_restart():
    from healthchecks import checks

    now = timezone.now()
    check = make_check(interval=3600, next_due_at=now + timedelta(hours=1))
    state = checks.stored_state(check)
    checks.save(check.service_id, check.name, {**state, "interval": 10}, check, now)
    assert next_due(check) == now + timedelta(seconds=10)


@pytest.mark.postgresql
def test_claims_leave_the_checks_own_rows_alone():
    """The dispatcher rewrites only the schedule: the checks table, which every health read
    goes through, keeps one row version per check however many claims run."""
    now = timezone.now()
    check = make_check(interval=1, next_due_at=now - timedelta(milliseconds=500))
    with connection.cursor() as cursor:
        cursor.execute("SELECT xmin::text FROM healthchecks_healthcheck WHERE id = %s", [check.pk])
        (version,) = cursor.fetchone()
        assert len(scheduling.claim_due(now, now + timedelta(seconds=3), 100)) == 1
        cursor.execute("SELECT xmin::text FROM healthchecks_healthcheck WHERE id = %s", [check.pk])
        assert cursor.fetchone() == (version,)
    assert next_due(check) == now + timedelta(milliseconds=500)


def test_disabling_takes_a_check_off_the_schedule_and_enabling_makes_it_due_now():
    from healthchecks import checks

    now = timezone.now()
    check = make_check(interval=60, next_due_at=now + timedelta(seconds=30))
    state = checks.stored_state(check)
    checks.save(check.service_id, check.name, {**state, "enabled": False}, check, now)
    assert next_due(check) is None
    assert scheduling.claim_due(now, now + timedelta(days=1), 100) == []
    later = now + timedelta(minutes=5)
    check.refresh_from_db()
    checks.save(check.service_id, check.name, {**state, "enabled": True}, check, later)
    assert next_due(check) == later
    assert [c.check_id for c in scheduling.claim_due(later, later, 100)] == [check.pk]


def test_a_new_check_is_due_at_once_and_has_its_state():
    from healthchecks import checks

    service, now = ServiceFactory(), timezone.now()
    state = {**checks.desired_state(_spec(), None)}
    check = checks.save(service.pk, "api", state, None, now)
    assert next_due(check) == now
    assert CheckState.objects.filter(health_check=check).exists()


def _spec():
    from healthchecks.schemas import CheckIn

    return CheckIn(name="api", kind="tcp", target="127.0.0.1:9", interval=30, timeout=2)


def test_batches_keep_due_order():
    now = timezone.now()
    claims = [scheduling.Claim(now + timedelta(seconds=i % 3), i) for i in range(7)]
    batches = scheduling.batches(claims, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = [c for b in batches for c in b]
    assert flat == sorted(claims)


def test_dispatch_sends_batches_of_ids_and_due_times():
    now = timezone.now()
    service = ServiceFactory()
    for i in range(5):
        make_check(service, name=f"c{i}", next_due_at=now)
    sent = []
    assert scheduling.dispatch(now, 2.0, 2, sent.append).sent == 5
    assert [len(b) for b in sent] == [2, 2, 1]
    assert all(isinstance(cid, int) and isinstance(due, str) for b in sent for cid, due in b)


def test_critical_checks_go_first_in_batches_of_their_own():
    """The first free worker takes the critical checks -- and every check of a critical
    service -- whatever their due order."""
    now = timezone.now()
    service = ServiceFactory(is_critical=False)
    others = [
        make_check(service, name=f"o{i}", is_critical=False, next_due_at=now - timedelta(seconds=3))
        for i in range(3)
    ]
    important = ServiceFactory(name="important", is_critical=True)
    critical = [
        make_check(service, name="c0", is_critical=True, next_due_at=now),
        make_check(important, name="c1", is_critical=False, next_due_at=now),
    ]
    sent = []
    scheduling.dispatch(now, 2.0, 2, sent.append)
    assert [{cid for cid, _ in batch} for batch in sent] == [
        {c.pk for c in critical},
        {others[0].pk, others[1].pk},
        {others[2].pk},
    ]


def test_a_budget_never_skips_critical_checks_and_spreads_them_over_small_batches():
    now = timezone.now()
    service = ServiceFactory(is_critical=False)
    for i in range(60):
        make_check(service, name=f"c{i}", is_critical=True, next_due_at=now)
    others = [
        make_check(service, name=f"o{i}", is_critical=False, next_due_at=now - timedelta(seconds=i))
        for i in range(3)
    ]
    sent = []
    done = scheduling.dispatch(now, 2.0, 500, sent.append, budget=10)
    assert [len(b) for b in sent] == [scheduling.CRITICAL_BATCH_SIZE, 10]  # critical only
    assert (done.claimed, done.sent) == (63, 60)
    assert {c.check_id for c in done.skipped} == {o.pk for o in others}


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgresql
def test_concurrent_dispatchers_never_claim_the_same_due_time():
    now = timezone.now()
    service = ServiceFactory()
    checks = HealthCheck.objects.bulk_create(
        [
            HealthCheck(
                service=service, name=f"c{i}", kind="tcp", target="127.0.0.1:9", interval=60
            )
            for i in range(400)
        ]
    )
    CheckSchedule.objects.bulk_create(
        CheckSchedule(health_check=c, next_due_at=now - timedelta(milliseconds=i))
        for i, c in enumerate(checks)
    )
    barrier, claimed = threading.Barrier(4), []

    def dispatcher():
        barrier.wait()
        try:
            for _ in range(10):
                claimed.extend(scheduling.claim_due(now, now, 25))
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = Counter((c.check_id, c.due_at) for c in claimed)
    assert len(counts) == 400
    assert max(counts.values()) == 1


def test_a_check_that_fell_behind_gets_every_due_time_up_to_the_horizon():
    """One claim statement hands a row out once; dispatch repeats until nothing is left, so
    a check whose claims lag (beat drifted) catches up instead of staying late."""
    now = timezone.now()
    check = make_check(interval=1, next_due_at=now - timedelta(milliseconds=500))
    sent = []
    assert scheduling.dispatch(now, 2.0, 100, sent.append).sent == 3
    dues = [due for batch in sent for _, due in batch]
    assert dues == [(now + timedelta(milliseconds=ms)).isoformat() for ms in (-500, 500, 1500)]
    assert next_due(check) == now + timedelta(milliseconds=2500)


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgresql
def test_recording_a_result_does_not_hide_its_check_from_the_dispatcher():
    """Inserting a result takes a key-share lock on its check until commit; the claim must
    not treat that as "being claimed elsewhere"."""
    from healthchecks.models import CheckResult

    now = timezone.now()
    check = make_check(interval=60, next_due_at=now)
    inserted, release = threading.Event(), threading.Event()

    def recorder():
        from django.db import transaction

        try:
            with transaction.atomic():
                CheckResult.objects.create(
                    health_check=check, at=now - timedelta(minutes=1), status=1
                )
                inserted.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=recorder)
    thread.start()
    try:
        assert inserted.wait(10)
        claims = scheduling.claim_due(now, now, 100)
        assert [c.check_id for c in claims] == [check.pk]
    finally:
        release.set()
        thread.join()


def _vacuum_stats(table: str) -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT vacuum_count, n_dead_tup FROM pg_stat_user_tables WHERE relname = %s",
            [table],
        )
        return cursor.fetchone()


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgresql
def test_the_hot_tables_are_vacuumed_even_without_autovacuum():
    first = timezone.now()
    check = make_check(interval=30, next_due_at=first)
    for _ in range(20):  # as many claims: each leaves a dead row version behind
        assert scheduling.claim_due(first, first + timedelta(days=1), limit=10)
    before, _ = _vacuum_stats("healthchecks_checkschedule")
    assert scheduling.vacuum_hot_tables() == [
        "healthchecks_checkschedule",
        "healthchecks_checkstate",
    ]
    after, dead_after = _vacuum_stats("healthchecks_checkschedule")
    assert after == before + 1
    assert dead_after == 0
    assert next_due(check) == first + timedelta(seconds=20 * 30)  # the live row is kept


def test_no_vacuum_inside_a_transaction(db):
    assert scheduling.vacuum_hot_tables() == []


def test_a_reported_release_makes_its_services_probed_checks_due_at_once():
    """A deploy gate counts only results after the report: the checks run now rather than
    at their next interval (heartbeats have nothing to probe; failed reports change nothing)."""
    later = timezone.now() + timedelta(minutes=5)
    web, other = ServiceFactory(name="web"), ServiceFactory(name="other")
    http = make_check(web, name="http", interval=600, next_due_at=later)
    beat = make_check(web, name="beat", kind="heartbeat", target="", next_due_at=later)
    elsewhere = make_check(other, name="http", interval=600, next_due_at=later)

    def report(status):
        deployments.report(
            "web", version="2", status=status, config_version=None, config_hash="", link="",
            actor=system_actor("ci"),
        )  # fmt: skip

    report("failed")
    assert next_due(http) == later
    before = timezone.now()
    report("in_progress")
    # At the dispatcher's next run: claimed ahead of time, the probe starts when due.
    period = timedelta(seconds=settings.HEALTH_DISPATCH_SECONDS)
    assert before + period <= next_due(http) <= timezone.now() + period
    assert next_due(beat) == later and next_due(elsewhere) == later
