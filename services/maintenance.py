"""Maintenance windows: the one write path (validated, audited), and which services are in
one now.

A window names services, or a team (every service of it, those added later included), and a
time span. While it is open the services' derived health is MAINTENANCE (health recomputes
them: at the write through ``signals.maintenance_changed``, at the window's start and end
through its periodic task), and the automation pages nobody for them or for what they take
down.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal import audit
from portal.auth import check_ownership
from portal.errors import InvalidInput, NotFound
from services import signals
from services.models import MaintenanceWindow, Service, Team

LONGEST = timedelta(days=31)
FARTHEST = timedelta(days=366)  # how far ahead a window may be planned


@dataclass(frozen=True)
class WindowIn:
    services: list[str]
    team: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str


def covered_service_ids(window: MaintenanceWindow) -> set[int]:
    ids = set(window.services.values_list("id", flat=True))
    if window.team_id:
        ids |= set(Service.objects.filter(team_id=window.team_id).values_list("id", flat=True))
    return ids


def validate(data: WindowIn) -> tuple[list[Service], Team | None]:
    """The window's services and team, or InvalidInput with a reason per field."""
    fields: dict[str, str] = {}
    for name in ("starts_at", "ends_at"):
        if timezone.is_naive(getattr(data, name)):
            fields[name] = "needs a time zone (Z or +hh:mm)"
    if fields:
        raise InvalidInput("the maintenance window was not created", fields=fields)
    if not data.services and not data.team:
        fields["services"] = "name services, a team, or both"
    if data.ends_at <= data.starts_at:
        fields["ends_at"] = "must be after starts_at"
    elif data.ends_at <= timezone.now():
        fields["ends_at"] = "is in the past: a window must end in the future"
    elif data.ends_at - data.starts_at > LONGEST:
        fields["ends_at"] = f"a window lasts at most {LONGEST.days} days"
    elif data.starts_at - timezone.now() > FARTHEST:
        fields["starts_at"] = f"a window is planned at most {FARTHEST.days} days ahead"
    services = list(Service.objects.filter(name__in=data.services))
    missing = sorted(set(data.services) - {s.name for s in services})
    if missing:
        fields["services"] = f"no service named {', '.join(missing)}"
    team = Team.objects.filter(name=data.team).first() if data.team else None
    if data.team and team is None:
        fields["team"] = f"no team named {data.team}"
    if fields:
        raise InvalidInput("the maintenance window was not created", fields=fields)
    return services, team


def create_window(data: WindowIn, actor) -> MaintenanceWindow:
    """Validate and store a window; its services' health follows at once if it is open.
    A window changes what its services report: only their owners plan it."""
    services, team = validate(data)
    check_ownership(actor, [s.name for s in services], [team.name] if team else [])
    with transaction.atomic():
        window = MaintenanceWindow.objects.create(
            team=team,
            starts_at=data.starts_at,
            ends_at=data.ends_at,
            reason=data.reason,
            created_by=str(actor)[:200],
        )
        window.services.set(services)
        audit.record(
            actor, "maintenance.create", "maintenance_window", str(window.id), describe(window)
        )
        signals.maintenance_changed.send(MaintenanceWindow, service_ids=covered_service_ids(window))
    return window


def delete_window(window_id: int, actor) -> None:
    with transaction.atomic():
        window = MaintenanceWindow.objects.select_for_update().filter(id=window_id).first()
        if window is None:
            raise NotFound(f"no maintenance window {window_id}")
        names = window.services.values_list("name", flat=True)
        check_ownership(actor, names, [window.team.name] if window.team is not None else [])
        covered = covered_service_ids(window)
        described = describe(window)
        window.delete()
        audit.record(actor, "maintenance.delete", "maintenance_window", str(window_id), described)
        signals.maintenance_changed.send(MaintenanceWindow, service_ids=covered)


def describe(window: MaintenanceWindow) -> dict:
    return {
        "id": window.id,
        "services": sorted(window.services.values_list("name", flat=True)),
        "team": window.team.name if window.team is not None else None,
        "starts_at": window.starts_at.isoformat(),
        "ends_at": window.ends_at.isoformat(),
        "reason": window.reason,
        "created_by": window.created_by,
    }


def windows_for(service: Service):
    """Every window that covers the service, by name or through its team."""
    return MaintenanceWindow.objects.filter(
        Q(services=service) | Q(team_id=service.team_id)
    ).distinct()


def open_windows(now=None):
    now = now or timezone.now()
    return MaintenanceWindow.objects.filter(starts_at__lte=now, ends_at__gt=now)


def in_maintenance(service_ids, now=None) -> dict[int, str]:
    """Service id -> why it is in maintenance now (the window's reason and end), for those of
    ``service_ids`` an open window covers."""
    ids = set(service_ids)
    found: dict[int, str] = {}
    windows = open_windows(now).filter(Q(services__id__in=ids) | Q(team__services__id__in=ids))
    for window in windows.distinct().order_by("ends_at"):
        why = f"maintenance until {window.ends_at:%Y-%m-%d %H:%M} UTC"
        if window.reason:
            why += f": {window.reason}"
        for service_id in covered_service_ids(window) & ids:
            found.setdefault(service_id, why)
    return found
