"""Services' derived statuses: from their checks, then from their hard dependencies.

Recomputed for the services whose inputs changed, and for their hard dependents when a
service enters or leaves UNHEALTHY (the only status that spreads), until nothing changes.
Each change is a StatusChange row and opens, worsens or closes an Incident.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.utils import timezone

from healthchecks.models import CheckState, Incident, ServiceHealth, StatusChange
from healthchecks.status import Status, is_waiting, service_status
from services import maintenance
from services.lifecycle import NOT_WATCHED
from services.models import Dependency, DependencyKind, Service


def recompute(service_ids: set[int], now=None) -> list[StatusChange]:
    now = now or timezone.now()
    changes: list[StatusChange] = []
    pending = set(service_ids)
    # The graph is acyclic, so this ends; the bound is a guard, not a rule.
    for _ in range(100):
        if not pending:
            break
        moved = _recompute_batch(sorted(pending), now, changes)
        pending = _hard_dependents(moved)
    return changes


def on_dependencies_changed(sender, service_ids: set[int], **kwargs) -> None:
    """The registry rewired these services: their derived status (and the reason, which
    names unhealthy hard dependencies) follows now, not at the next change of a check."""
    recompute(set(service_ids))


def on_lifecycle_changed(sender, service_id: int, from_status, to_status, **kwargs) -> None:
    """A service stopped or started again: its status follows now (and with it its alert)."""
    if (from_status in NOT_WATCHED) != (to_status in NOT_WATCHED):
        recompute({service_id})


def on_maintenance_changed(sender, service_ids: set[int], **kwargs) -> None:
    """A window was created or removed: its services' status follows now."""
    recompute(set(service_ids))


def not_watched_reason(lifecycle_status: str) -> str:
    """Why a service is not watched (its lifecycle), or "" when it is."""
    if lifecycle_status in NOT_WATCHED:
        return f"lifecycle {lifecycle_status}: not probed, no alerts"
    return ""


def apply_maintenance_windows(now=None) -> int:
    """Windows open and close with time, not with a write: recompute the services whose
    status says otherwise than the windows (run periodically). Returns how many moved."""
    now = now or timezone.now()
    shown = set(
        ServiceHealth.objects.filter(status=Status.MAINTENANCE).values_list("service_id", flat=True)
    )
    covered: set[int] = set()
    for window in maintenance.open_windows(now):
        covered |= maintenance.covered_service_ids(window)
    stale = (covered - shown) | (shown - covered)
    # A service not watched reads so whatever the windows say (service_status): not stale.
    stale &= set(
        Service.objects.filter(id__in=stale)
        .exclude(lifecycle_status__in=NOT_WATCHED)
        .values_list("id", flat=True)
    )
    return len(recompute(stale, now)) if stale else 0


@dataclass
class Inputs:
    """What a service's status is judged on, but its hard dependencies' statuses: its
    checks with a result, those waiting for one, its maintenance window and whether it is
    watched at all (healthchecks.status.service_status)."""

    checks: list = field(default_factory=list)
    waiting: list = field(default_factory=list)
    hard: list[tuple[int, str]] = field(default_factory=list)  # (id, name) it needs
    window: str = ""
    not_watched: str = ""

    def judge(self, statuses: dict[int, int]) -> tuple[int, str]:
        """Its status and reason, its hard dependencies' statuses read from ``statuses``
        (unknown when absent): the engine's rule, for the engine and for "what if"."""
        return service_status(
            self.checks,
            [(name, statuses.get(dep, Status.UNKNOWN)) for dep, name in self.hard],
            self.window,
            waiting=self.waiting,
            not_watched=self.not_watched,
        )


def read_inputs(ids: list[int], now) -> dict[int, Inputs]:
    """The inputs of these services' statuses, in four queries whatever their number."""
    found = {i: Inputs() for i in ids}
    for service_id, name, status, critical, last, failures in CheckState.objects.filter(
        health_check__service_id__in=ids, health_check__enabled=True
    ).values_list(
        "health_check__service_id",
        "health_check__name",
        "status",
        "health_check__is_critical",
        "last_result_at",
        "consecutive_failures",
    ):
        if is_waiting(status, last, failures):
            found[service_id].waiting.append(name)
        else:
            found[service_id].checks.append((name, status, critical))
    for service_id, lifecycle in Service.objects.filter(id__in=ids).values_list(
        "id", "lifecycle_status"
    ):
        found[service_id].not_watched = not_watched_reason(lifecycle)
    for service_id, dep_id, name in Dependency.objects.filter(
        service_id__in=ids, kind=DependencyKind.HARD
    ).values_list("service_id", "depends_on_id", "depends_on__name"):
        found[service_id].hard.append((dep_id, name))
    for service_id, window in maintenance.in_maintenance(ids, now).items():
        found[service_id].window = window
    return found


def _current(ids) -> dict[int, int]:
    return dict(
        ServiceHealth.objects.filter(service_id__in=ids).values_list("service_id", "status")
    )


def what_if(service_id: int, status: int, now=None) -> dict[int, int]:
    """What the engine would make of every service that needs this one through hard
    dependencies, were it to turn ``status`` now: their statuses, judged by the engine's rule
    (``Inputs.judge``) and spread as ``recompute`` spreads them -- only a service entering or
    leaving UNHEALTHY moves its hard dependents. Reads only; the service page's "If it
    fails" (unhealthy, against healthy)."""
    now = now or timezone.now()
    dependents: dict[int, set[int]] = defaultdict(set)
    reach, frontier = set(), {service_id}
    while frontier:  # the graph is acyclic; ``reach`` guards anyway
        rows = Dependency.objects.filter(depends_on_id__in=frontier, kind=DependencyKind.HARD)
        frontier = set()
        for dependent, upstream in rows.values_list("service_id", "depends_on_id"):
            dependents[upstream].add(dependent)
            if dependent not in reach and dependent != service_id:
                reach.add(dependent)
                frontier.add(dependent)
    inputs = read_inputs(sorted(reach), now)
    needed = {service_id} | reach | {dep for i in inputs.values() for dep, _ in i.hard}
    statuses = _current(needed)
    before = statuses.get(service_id, Status.UNKNOWN)
    moved = {service_id} if Status.UNHEALTHY in (before, status) and before != status else set()
    statuses[service_id] = status
    for _ in range(100):
        if not moved:
            break
        pending = sorted({d for m in moved for d in dependents[m]})
        seen, moved = dict(statuses), set()  # a round reads what the one before wrote
        for dependent in pending:
            before = seen.get(dependent, Status.UNKNOWN)
            status, _ = inputs[dependent].judge(seen)
            if status != before and Status.UNHEALTHY in (before, status):
                moved.add(dependent)
            statuses[dependent] = status
    return {i: statuses.get(i, Status.UNKNOWN) for i in reach}


def _recompute_batch(ids: list[int], now, changes: list) -> set[int]:
    ServiceHealth.objects.bulk_create(
        [ServiceHealth(service_id=i, since=now) for i in ids], ignore_conflicts=True
    )
    rows = {
        h.service_id: h
        for h in ServiceHealth.objects.select_for_update()
        .filter(service_id__in=ids)
        .order_by("service_id")
    }
    inputs = read_inputs(ids, now)
    upstream = {dep for i in inputs.values() for dep, _ in i.hard}
    statuses = _current(upstream)
    moved, updated, batch_changes = set(), [], []
    for service_id in ids:
        row = rows[service_id]
        status, reason = inputs[service_id].judge(statuses)
        if status == row.status and reason == row.reason:
            continue
        if status != row.status:
            batch_changes.append(
                StatusChange(
                    service_id=service_id,
                    from_status=row.status,
                    to_status=status,
                    at=now,
                    cause=reason,
                )
            )
            if Status.UNHEALTHY in (row.status, status):
                moved.add(service_id)
            row.since = now
        row.status, row.reason, row.updated_at = status, reason, now
        updated.append(row)
    ServiceHealth.objects.bulk_update(
        updated, ["status", "reason", "since", "updated_at"], batch_size=500
    )
    StatusChange.objects.bulk_create(batch_changes)
    _track_incidents(batch_changes, now)
    changes.extend(batch_changes)
    return moved


def _hard_dependents(service_ids: set[int]) -> set[int]:
    return set(
        Dependency.objects.filter(
            depends_on_id__in=service_ids, kind=DependencyKind.HARD
        ).values_list("service_id", flat=True)
    )


def _track_incidents(service_changes: list[StatusChange], now) -> None:
    """Open an incident when a service leaves healthy, note when it gets worse, close it when
    it is healthy again -- in a few statements for a whole flush."""
    if not service_changes:
        return
    bad = (Status.DEGRADED, Status.UNHEALTHY)
    open_ = {
        i.service_id: i
        for i in Incident.objects.filter(
            service_id__in=[c.service_id for c in service_changes], closed_at=None
        )
    }
    new, worse, closed = [], [], []
    for change in service_changes:
        incident = open_.get(change.service_id)
        if change.to_status in bad and incident is None:
            new.append(
                Incident(
                    service_id=change.service_id,
                    opened_at=now,
                    worst_status=change.to_status,
                    cause=change.cause,
                )
            )
        elif (
            incident is not None
            and change.to_status in bad
            and change.to_status > incident.worst_status
        ):
            incident.worst_status, incident.cause = change.to_status, change.cause
            worse.append(incident)
        elif incident is not None and change.to_status == Status.HEALTHY:
            incident.closed_at = now
            closed.append(incident)
    Incident.objects.bulk_create(new)
    Incident.objects.bulk_update(worse, ["worst_status", "cause"])
    Incident.objects.bulk_update(closed, ["closed_at"])
