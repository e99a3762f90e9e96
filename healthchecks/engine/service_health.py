"""Services' derived statuses: from their checks, then from their hard dependencies.

Recomputed for the services whose inputs changed, and for their hard dependents when a
service enters or leaves UNHEALTHY (the only status that spreads), until nothing changes.
Each change is a StatusChange row and opens, worsens or closes an Incident.
"""

from collections import defaultdict

from django.utils import timezone

from healthchecks.models import CheckState, Incident, ServiceHealth, StatusChange
from healthchecks.status import Status, service_status
from services import maintenance
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


def on_maintenance_changed(sender, service_ids: set[int], **kwargs) -> None:
    """A window was created or removed: its services' status follows now."""
    recompute(set(service_ids))


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
    stale &= set(Service.objects.filter(id__in=stale).values_list("id", flat=True))
    return len(recompute(stale, now)) if stale else 0


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
    checks = defaultdict(list)
    for service_id, name, status, critical in CheckState.objects.filter(
        health_check__service_id__in=ids, health_check__enabled=True
    ).values_list(
        "health_check__service_id", "health_check__name", "status", "health_check__is_critical"
    ):
        checks[service_id].append((name, status, critical))
    deps = defaultdict(list)
    for service_id, name, status in Dependency.objects.filter(
        service_id__in=ids, kind=DependencyKind.HARD
    ).values_list("service_id", "depends_on__name", "depends_on__health__status"):
        deps[service_id].append((name, status if status is not None else Status.UNKNOWN))
    windows = maintenance.in_maintenance(ids, now)
    moved, updated, batch_changes = set(), [], []
    for service_id in ids:
        row = rows[service_id]
        status, reason = service_status(
            checks[service_id], deps[service_id], windows.get(service_id, "")
        )
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
