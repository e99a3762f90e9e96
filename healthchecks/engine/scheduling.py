"""Claiming due checks: each (check, due time) is handed out exactly once, however many
dispatchers run.

One statement claims a batch: it locks due rows of the schedule (``CheckSchedule``, one row
per enabled check) with ``SKIP LOCKED`` (a second dispatcher skips them instead of waiting or
double-claiming) and moves each row's ``next_due_at`` one interval on, returning the due time
it claimed. Checks are claimed a little ahead of time (``horizon``) so a worker can start
each probe exactly when it is due.
"""

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from healthchecks.models import CheckSchedule, CheckState, HealthCheck
from healthchecks.probes.kinds import KINDS
from services.lifecycle import NOT_WATCHED
from services.models import Service

_CLAIM_SQL = """
WITH due AS (
    SELECT health_check_id AS id, next_due_at AS due_at
    FROM healthchecks_checkschedule
    WHERE next_due_at <= %(horizon)s
    ORDER BY next_due_at
    LIMIT %(limit)s
    FOR NO KEY UPDATE SKIP LOCKED
)
UPDATE healthchecks_checkschedule AS s
SET next_due_at = CASE
    -- Far behind (the scheduler was down): run once now, then skip the missed intervals
    -- but keep the check's phase, so checks spread over an interval stay spread out.
    WHEN due.due_at + make_interval(secs => c.interval) < %(now)s
        THEN due.due_at + make_interval(secs => c.interval * ceil(
            extract(epoch FROM %(now)s - due.due_at) / c.interval))
    ELSE due.due_at + make_interval(secs => c.interval)
END
FROM due JOIN healthchecks_healthcheck AS c ON c.id = due.id
    JOIN services_service AS svc ON svc.id = c.service_id
WHERE s.health_check_id = due.id
RETURNING s.health_check_id, due.due_at, c.is_critical OR svc.is_critical
"""


@dataclass(frozen=True, order=True)
class Claim:
    due_at: datetime
    check_id: int
    # A critical check, or any check of a critical service (the portal's own ``backend``
    # among them): sent first, and kept when an overloaded engine sheds load.
    critical: bool = field(default=False, compare=False)


def claim_due(now: datetime, horizon: datetime, limit: int) -> list[Claim]:
    """Claim up to ``limit`` checks due by ``horizon``, earliest first."""
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_CLAIM_SQL, {"now": now, "horizon": horizon, "limit": limit})
            rows = cursor.fetchall()
        return sorted(Claim(due_at, check_id, critical) for check_id, due_at, critical in rows)
    return _claim_due_portable(now, horizon, limit)


def _claim_due_portable(now: datetime, horizon: datetime, limit: int) -> list[Claim]:
    """The same for SQLite (embedded mode), where one writer at a time makes it safe."""
    claims = []
    with transaction.atomic():
        rows = (
            CheckSchedule.objects.filter(next_due_at__lte=horizon)
            .order_by("next_due_at")
            .values_list(
                "health_check_id",
                "next_due_at",
                "health_check__interval",
                "health_check__is_critical",
                "health_check__service__is_critical",
            )[:limit]
        )
        for check_id, due_at, interval, check_critical, service_critical in rows:
            critical = check_critical or service_critical
            missed = max(1, math.ceil((now - due_at).total_seconds() / interval))
            following = due_at + timedelta(seconds=interval * missed)
            CheckSchedule.objects.filter(pk=check_id, next_due_at=due_at).update(
                next_due_at=following
            )
            claims.append(Claim(due_at, check_id, critical))
    return claims


def reschedule(check: HealthCheck, now: datetime, *, interval_changed: bool = False) -> None:
    """Keep a check's schedule in step with its definition (``checks.save`` calls this):
    a new or re-enabled check is due now (a heartbeat: when its first beat is late), a
    disabled one -- or one of a service not watched (stopped) -- is taken off the schedule,
    and a new interval applies from now on: no restart, no waiting out the old interval."""
    watched = Service.objects.filter(pk=check.service_id).exclude(lifecycle_status__in=NOT_WATCHED)
    if not check.enabled or not watched.exists():
        CheckSchedule.objects.filter(health_check=check).delete()
        return
    schedule, created = CheckSchedule.objects.get_or_create(
        health_check=check, defaults={"next_due_at": first_due_at(check, now)}
    )
    if interval_changed and not created:
        following = now + timedelta(seconds=check.interval)
        if schedule.next_due_at > following:
            CheckSchedule.objects.filter(pk=check.pk).update(next_due_at=following)


def first_due_at(check: HealthCheck, now: datetime) -> datetime:
    """When a check put on the schedule is first due: a probe now, but a heartbeat only when
    its first beat would be late (interval + grace from now) -- judged at once it would fail
    for a beat nobody could have sent yet, and open an alert in a service's first minute."""
    if KINDS[check.kind].pushed:
        grace = (check.options or {}).get("grace", 0)
        return now + timedelta(seconds=check.interval + grace)
    return now


def on_lifecycle_changed(sender, service_id: int, from_status, to_status, **kwargs) -> None:
    """A service stopped (lifecycle.NOT_WATCHED): its checks leave the schedule, so the
    dispatcher never claims them. Started again: its enabled checks are back, due now (a
    heartbeat when its next beat is due)."""
    if to_status in NOT_WATCHED:
        CheckSchedule.objects.filter(health_check__service_id=service_id).delete()
    elif from_status in NOT_WATCHED:
        now = timezone.now()
        for check in HealthCheck.objects.filter(service_id=service_id, enabled=True):
            CheckSchedule.objects.get_or_create(
                health_check=check, defaults={"next_due_at": first_due_at(check, now)}
            )


def run_soon(service_id: int, now: datetime) -> int:
    """Make a service's probed checks due at the dispatcher's next run (a release was rolled
    out: its gate waits for results recorded after it) -- those already overdue too, so that
    the slot claimed next is due after the release, not before it. Due one dispatch period
    ahead, not now: the next run claims it ahead of time and the probe starts when due (a
    slot due now would start up to a period late, and count as late against the engine).
    Heartbeats stay as they are: nothing to probe."""
    pushed = [name for name, kind in KINDS.items() if kind.pushed]
    due = now + timedelta(seconds=settings.HEALTH_DISPATCH_SECONDS)
    return (
        CheckSchedule.objects.filter(health_check__service_id=service_id)
        .exclude(health_check__kind__in=pushed)
        .update(next_due_at=due)
    )


def on_deployment_reported(sender, service_id: int, **kwargs) -> None:
    run_soon(service_id, timezone.now())


def postpone(check_id: int, until: datetime) -> None:
    """Next due at ``until`` (a heartbeat just arrived: nothing to probe before then)."""
    CheckSchedule.objects.filter(health_check_id=check_id).update(next_due_at=until)


def batches(claims: list[Claim], size: int) -> list[list[Claim]]:
    """Consecutive runs of claims in due order, at most ``size`` each."""
    ordered = sorted(claims)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


CRITICAL_BATCH_SIZE = 50


@dataclass(frozen=True)
class Dispatched:
    claimed: int
    sent: int
    skipped: list[Claim]


def dispatch(
    now: datetime,
    lookahead: float,
    batch_size: int,
    send,
    limit: int = 5000,
    budget: int | None = None,
) -> Dispatched:
    """Claim everything due by now + ``lookahead`` seconds and hand it to ``send`` in
    batches of (check id, due time ISO) pairs.

    Claims are repeated until a round finds nothing: one statement claims a row once, so a
    check that fell behind (beat's tick drifted, or its row was busy) is handed each of its
    due times up to the horizon and catches up instead of staying late for good.

    With a ``budget`` (the workers are behind: healthchecks.engine.capacity), only that many
    non-critical checks are sent -- the earliest -- and the rest are returned as skipped:
    claimed all the same, so their next due time has moved on and they are not made up.
    Critical checks are never skipped: they go first, in small batches of their own, so the
    first free workers take them and one starved worker holds only a few.
    """
    horizon = now + timedelta(seconds=lookahead)
    claimed: list[Claim] = []
    while claims := claim_due(now, horizon, limit):
        claimed += claims
    critical = [c for c in claimed if c.critical]
    others = sorted(c for c in claimed if not c.critical)
    skipped: list[Claim] = []
    if budget is not None:
        room = max(0, budget - len(critical))
        others, skipped = others[:room], others[room:]  # claims come in due order
    small = min(batch_size, CRITICAL_BATCH_SIZE)
    for batch in batches(critical, small) + batches(others, batch_size):
        send([(c.check_id, c.due_at.isoformat()) for c in batch])
    sent = len(critical) + len(others)
    return Dispatched(claimed=sent + len(skipped), sent=sent, skipped=skipped)


def vacuum_hot_tables() -> list[str]:
    """VACUUM the schedule and the check states, which every claim and every result rewrites.

    At 1,000 checks a second each row is rewritten every second, and a claim changes an
    indexed column, so no claim is a HOT update: without a vacuum every minute or so, a table
    of a few thousand live rows grows by a million dead ones an hour and every read of it
    (the claim, the overview) slows down with it. The server's autovacuum may be tuned for big
    tables, or off, so the portal does not rely on it for these two small, hot tables.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return []  # SQLite needs no vacuum for this; VACUUM cannot run inside a transaction
    tables = [CheckSchedule._meta.db_table, CheckState._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {', '.join(map(connection.ops.quote_name, tables))}")
    return tables
