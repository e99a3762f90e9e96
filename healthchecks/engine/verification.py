"""Verifying a reported deployment on results recorded after it.

A deployment a pipeline reports rolled out (in progress or succeeded) waits for a verdict:
``passed`` once every check that gates the service (its enabled probed critical checks, or
all its enabled probed checks when none is critical) has a usable result (healthy, or
degraded: the service stays usable) due after the bake time ended, with no failure beyond a
check's retries since the report; ``failed`` as soon as a check fails beyond its retries after
the report, or when ``DEPLOY_VERIFY_TIMEOUT_SECONDS`` pass after the bake without a fresh
usable result. Only results due after the report count: a result from before the release
says nothing about it.

A release is not blamed for a hard dependency that was already unhealthy before it: while
one is, a failing check does not fail the verification (it waits, and says why); if the
timeout comes first the verdict is failed with that said in its reason.

The dispatcher judges every pending verification each tick (``verify_pending``); a verdict
is stored once, through ``services.deployments.record_verdict``. The report makes the
service's probed checks due at once; while the verification is pending a gating check runs
at least every ``DEPLOY_VERIFY_INTERVAL_SECONDS`` (or its own interval, if shorter); after the
verdict it returns to its own, counted from its last result. Pending verifications live in
the database, so a restart of the portal resumes them.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from django.conf import settings
from django.db.models import Exists, OuterRef, Q

from healthchecks.models import (
    CheckResult,
    CheckSchedule,
    HealthCheck,
    ResultDetail,
    ServiceHealth,
    StatusChange,
)
from healthchecks.probes.kinds import KINDS
from healthchecks.status import NOT_OBSERVATIONS, ErrorCode, Status, is_usable
from services import deployments
from services.models import Dependency, DependencyKind, Deployment, VerificationState

log = structlog.get_logger(__name__)
# A tick judges at most this many (the oldest first); a newer report supersedes a service's
# pending verification, so there is at most one per service.
PER_TICK = 200


@dataclass
class Verdict:
    state: str  # pending, passed or failed
    reason: str
    evidence: list[dict] = field(default_factory=list)
    # The gating checks, read: hurried while pending, back to their own interval after.
    gates: list["Gate"] = field(default_factory=list)
    # False when the failure may not be the release's (a hard dependency was down before
    # it): no configuration is rolled back for it.
    blamed: bool = True


@dataclass
class Gate:
    """One gating check and what its results since the report say."""

    id: int
    name: str
    retries: int
    interval: int
    timeout: float = 5.0
    enabled: bool = True
    last_probed: datetime | None = None  # when its last probe of any kind started
    latest: tuple | None = None  # (at, status, error_code) of its latest fresh result
    failed: tuple | None = None  # the result that took it past its retries
    streak: int = 0
    excused_failures: int = 0  # failures while a hard dependency down before was still down
    usable_after_bake: bool = False


def verify_pending(now: datetime) -> int:
    """Judge every deployment waiting for a verdict; store the verdicts reached. Returns how
    many were stored. One indexed query when nothing waits."""
    stored = 0
    waiting = Deployment.objects.filter(verification_state=VerificationState.PENDING)
    for deployment in waiting.select_related("service").order_by("created_at")[:PER_TICK]:
        try:
            stored += _verify(deployment, now)
        except Exception:  # one deployment's trouble must not stop the dispatcher's tick
            log.exception("verification failed", deployment=deployment.pk)
    return stored


def _verify(deployment: Deployment, now: datetime) -> int:
    """Judge one deployment: hurry its checks while pending, store its verdict once."""
    verdict = judge(deployment, now)
    if verdict.state == VerificationState.PENDING:
        hurry([g.id for g in verdict.gates], now)
        if verdict.reason != deployment.verification_reason:
            deployments.note_progress(deployment.pk, verdict.reason)
        return 0
    if deployments.record_verdict(
        deployment.pk, verdict.state, verdict.reason, verdict.evidence, now,
        blamed=verdict.blamed,
    ):  # fmt: skip
        unhurry(verdict.gates)
        return 1
    return 0


def judge(deployment: Deployment, now: datetime) -> Verdict:
    gates = gating_checks(deployment.service_id, deployment.created_at)
    if not gates:
        return Verdict(VerificationState.PASSED, "nothing to verify: no enabled probed check")
    baked_at = deployment.created_at + timedelta(seconds=deployment.bake_seconds)
    excused = down_before(deployment)
    _read_results(gates, deployment.created_at, baked_at, excused_until(excused, now))
    failing = [g for g in gates if g.failed]
    if failing:
        names = ", ".join(g.name for g in failing)
        return Verdict(
            VerificationState.FAILED,
            f"failed after the release: {names}",
            evidence(gates),
            gates=gates,
        )
    excusing = [g for g in gates if g.excused_failures]
    timeout = timedelta(seconds=settings.DEPLOY_VERIFY_TIMEOUT_SECONDS)
    waiting = [g.name for g in gates if not g.usable_after_bake]
    if now >= baked_at and not waiting:
        held = f", held for {deployment.bake_seconds} s" if deployment.bake_seconds else ""
        return Verdict(
            VerificationState.PASSED,
            f"every gating check usable after the release{held}",
            evidence(gates),
            gates=gates,
        )
    if now >= baked_at + timeout and (idle := _not_probed_lately(gates, waiting, now)):
        return Verdict(
            VerificationState.PENDING,
            f"waiting for the engine to probe {idle} again (no result lately): its own "
            "downtime is not held against the release",
            gates=gates,
        )
    if now >= baked_at + timeout:
        seconds = int(timeout.total_seconds())
        reason = f"no fresh usable result within {seconds} s after the bake: "
        reason += ", ".join(waiting)
        if excusing:
            reason += _excuse(excused) + " (the release is not blamed)"
        return Verdict(
            VerificationState.FAILED,
            reason,
            evidence(gates),
            gates=gates,
            blamed=not excusing,
        )
    reason = f"waiting for {', '.join(waiting) or 'the bake to end'}"
    if excusing:
        reason += _excuse(excused)
    return Verdict(VerificationState.PENDING, reason, gates=gates)


def _not_probed_lately(gates: list["Gate"], waiting: list[str], now: datetime) -> str:
    """The waiting checks the engine has not probed lately (it was down, or behind): a
    timeout counts the time the engine ran, so an outage of the portal longer than the
    timeout is not a failed release. Lately: one verification interval, the check's own
    timeout and five seconds."""
    idle = []
    for gate in gates:
        if gate.name not in waiting or not gate.enabled:  # a disabled one is not probed
            continue
        lately = settings.DEPLOY_VERIFY_INTERVAL_SECONDS + gate.timeout + 5
        if gate.last_probed is None or gate.last_probed < now - timedelta(seconds=lately):
            idle.append(gate.name)
    return ", ".join(idle)


def gating_checks(service_id: int, since: datetime) -> list[Gate]:
    """The checks a verdict rests on: the enabled probed critical ones, or all enabled
    probed ones when none is critical (as the deploy gate of /health/service/NAME) -- and a
    probed check disabled since the report that already has results after it: disabling a
    failing check does not pass the release."""
    pushed = [name for name, kind in KINDS.items() if kind.pushed]
    since_report = CheckResult.objects.filter(health_check_id=OuterRef("pk"), at__gte=since)
    rows = list(
        HealthCheck.objects.filter(service_id=service_id)
        .filter(Q(enabled=True) | Exists(since_report))
        .exclude(kind__in=pushed)
        .order_by("name")
        .values_list(
            "id",
            "name",
            "retries",
            "interval",
            "is_critical",
            "timeout",
            "state__last_result_at",
            "enabled",
        )
    )
    critical = [r for r in rows if r[4]] or rows
    return [
        Gate(
            id=r[0],
            name=r[1],
            retries=r[2],
            interval=r[3],
            timeout=r[5],
            last_probed=r[6],
            enabled=r[7],
        )
        for r in critical
    ]


def _read_results(
    gates: list[Gate], since: datetime, baked_at: datetime, excused_until: datetime | None
) -> None:
    """Walk each gating check's results due since the report, in order. A failure before
    ``excused_until`` (a hard dependency down since before the report was still down) is
    the dependency's, not the release's: it does not count."""
    by_id = {g.id: g for g in gates}
    rows = (
        CheckResult.objects.filter(health_check_id__in=by_id, at__gte=since)
        .exclude(error_code__in=NOT_OBSERVATIONS)
        .order_by("health_check_id", "at")
        .values_list("health_check_id", "at", "status", "error_code")
    )
    for check_id, at, status, error_code in rows.iterator(chunk_size=2000):
        gate = by_id[check_id]
        gate.latest = (at, status, error_code)
        if status == Status.UNHEALTHY and excused_until is not None and at < excused_until:
            gate.excused_failures += 1
        elif status == Status.UNHEALTHY:
            gate.streak += 1
            if gate.streak > gate.retries and gate.failed is None:
                gate.failed = gate.latest
        else:
            gate.streak = 0
        if at >= baked_at:
            gate.usable_after_bake = is_usable(status)


def down_before(deployment: Deployment) -> list[tuple[str, datetime, datetime | None]]:
    """Hard dependencies that were unhealthy when the release was reported: (name, down
    since, recovered at -- None while still down), from their status changes."""
    found = []
    hard = Dependency.objects.filter(service_id=deployment.service_id, kind=DependencyKind.HARD)
    for dep_id, name in hard.order_by("depends_on__name").values_list(
        "depends_on_id", "depends_on__name"
    ):
        changes = StatusChange.objects.filter(service_id=dep_id, health_check=None)
        last = changes.filter(at__lte=deployment.created_at).order_by("-at").first()
        if last is not None:
            down, since = last.to_status == Status.UNHEALTHY, last.at
        else:  # no change recorded (yet): its status now, if it holds since before
            health = ServiceHealth.objects.filter(service_id=dep_id).first()
            down = bool(
                health
                and health.status == Status.UNHEALTHY
                and health.since <= deployment.created_at
            )
            since = health.since if health else deployment.created_at
        if not down:
            continue
        recovered = (
            changes.filter(at__gt=deployment.created_at, from_status=Status.UNHEALTHY)
            .order_by("at")
            .values_list("at", flat=True)
            .first()
        )
        found.append((name, since, recovered))
    return found


def excused_until(excused: list, now: datetime) -> datetime | None:
    """Until when failures are the dependencies': the last of them to recover (now, while
    one is still down); None when none was down at the report."""
    if not excused:
        return None
    return max((recovered or now) for _, _, recovered in excused)


def _excuse(excused: list) -> str:
    named = ", ".join(f"{name} (since {_iso(since)})" for name, since, _ in excused)
    return f"; hard dependency unhealthy before the release: {named}"


def evidence(gates: list[Gate]) -> list[dict]:
    """Per gating check, the result its part of the verdict rests on: the failure that took
    it past its retries, or its latest result since the report."""
    chosen = {g.id: g.failed or g.latest for g in gates}
    errors = _errors([(i, row[0]) for i, row in chosen.items() if row is not None])
    found = []
    for gate in gates:
        row = chosen[gate.id]
        if row is None:
            missing = "no result since the report"
            found.append({"check": gate.name, "status": "unknown", "at": None, "error": missing})
            continue
        at, status, error_code = row
        error = errors.get((gate.id, at)) or (
            ErrorCode(error_code).label if error_code != ErrorCode.NONE else ""
        )
        found.append(
            {"check": gate.name, "status": Status(status).label, "at": _iso(at), "error": error}
        )
    return found


def _errors(keys: list[tuple[int, datetime]]) -> dict[tuple[int, datetime], str]:
    """The errors a probe reported with these results (kept for results not plainly healthy)."""
    if not keys:
        return {}
    match = Q()
    for check_id, at in keys:
        match |= Q(health_check_id=check_id, at=at)
    found = {}
    for check_id, at, outcome in ResultDetail.objects.filter(match).values_list(
        "health_check_id", "at", "outcome"
    ):
        errors = (outcome or {}).get("errors") or []
        found[(check_id, at)] = "; ".join(str(e) for e in errors)[:500]
    return found


def hurry(check_ids: list[int], now: datetime) -> int:
    """During a verification, a gating check runs at least every DEPLOY_VERIFY_INTERVAL_SECONDS:
    its next slot is brought that close when it lies further away (a probe that was in
    flight at the report, due before it, counts for nothing: the next one comes soon)."""
    if not check_ids:
        return 0
    soon = now + timedelta(seconds=settings.DEPLOY_VERIFY_INTERVAL_SECONDS)
    return CheckSchedule.objects.filter(health_check_id__in=check_ids, next_due_at__gt=soon).update(
        next_due_at=soon
    )


def unhurry(gates: list[Gate]) -> int:
    """After the verdict each gating check goes back to its own interval, counted from its
    last result: the slot a verification brought forward and no longer needs is not probed
    (so a release passed on one fresh round costs that one round)."""
    moved = 0
    for gate in gates:
        if gate.latest is None:
            continue
        own = gate.latest[0] + timedelta(seconds=gate.interval)
        moved += CheckSchedule.objects.filter(health_check_id=gate.id, next_due_at__lt=own).update(
            next_due_at=own
        )
    return moved


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None
