"""Maintenance windows: the one write path (validated, audited), and which services are in
one now.

A window names services, or a team (every service of it, those added later included), and a
time span -- once, or recurring: an RFC 5545 RRULE in a time zone, the span being its first
occurrence (services.recurrence). While it (or one of its occurrences) is open the services'
derived health is MAINTENANCE (health recomputes them: at the write through
``signals.maintenance_changed``, at each opening and closing through its periodic task), and
the automation pages nobody for them or for what they take down. A window, or one occurrence
of it, is cancelled rather than deleted: it stays listed, as cancelled.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal import audit
from portal.auth import check_ownership
from portal.errors import Conflict, InvalidInput, NotFound
from services import recurrence, signals
from services.models import MaintenanceWindow, Service, Team

LONGEST = timedelta(days=31)
FARTHEST = timedelta(days=366)  # how far ahead a window may be planned
NEXT = 5  # occurrences shown ahead
LISTED_AFTER = timedelta(days=7)  # the page lists a window this long after it ended


@dataclass(frozen=True)
class WindowIn:
    services: list[str]
    team: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    rrule: str = ""  # RFC 5545; empty: the window happens once
    tz: str = "UTC"


@dataclass(frozen=True)
class Occurrence:
    """One time a window is open: the window itself, or one occurrence of a recurring one."""

    window: MaintenanceWindow
    starts_at: datetime
    ends_at: datetime
    cancelled: bool = False

    @property
    def reason(self) -> str:
        return self.window.reason


def covered_service_ids(window: MaintenanceWindow) -> set[int]:
    ids = set(window.services.values_list("id", flat=True))
    if window.team_id:
        ids |= set(Service.objects.filter(team_id=window.team_id).values_list("id", flat=True))
    return ids


def validate(
    data: WindowIn,
) -> tuple[list[Service], Team | None, recurrence.Series | None]:
    """The window's services, team and (recurring) series, or InvalidInput with a reason per
    field."""
    fields: dict[str, str] = {}
    for name in ("starts_at", "ends_at"):
        if timezone.is_naive(getattr(data, name)):
            fields[name] = "needs a time zone (Z or +hh:mm)"
    if fields:
        raise InvalidInput("the maintenance window was not created", fields=fields)
    now = timezone.now()
    if not data.services and not data.team:
        fields["services"] = "name services, a team, or both"
    if data.ends_at <= data.starts_at:
        fields["ends_at"] = "must be after starts_at"
    elif not data.rrule and data.ends_at <= now:
        fields["ends_at"] = "is in the past: a window must end in the future"
    elif data.ends_at - data.starts_at > LONGEST:
        fields["ends_at"] = f"a window lasts at most {LONGEST.days} days"
    elif data.starts_at - now > FARTHEST:
        fields["starts_at"] = f"a window is planned at most {FARTHEST.days} days ahead"
    try:
        recurrence.zone(data.tz)
    except recurrence.RecurrenceError as exc:
        fields[exc.field] = exc.reason
    series = None
    if data.rrule and not fields:
        try:
            series = recurrence.plan(data.rrule, data.tz, data.starts_at, data.ends_at, now)
        except recurrence.RecurrenceError as exc:
            fields[exc.field] = exc.reason
    services = list(Service.objects.filter(name__in=data.services))
    missing = sorted(set(data.services) - {s.name for s in services})
    if missing:
        fields["services"] = f"no service named {', '.join(missing)}"
    team = Team.objects.filter(name=data.team).first() if data.team else None
    if data.team and team is None:
        fields["team"] = f"no team named {data.team}"
    if fields:
        raise InvalidInput("the maintenance window was not created", fields=fields)
    return services, team, series


def create_window(data: WindowIn, actor) -> MaintenanceWindow:
    """Validate and store a window; its services' health follows at once if it is open.
    A window changes what its services report: only their owners plan it."""
    services, team, series = validate(data)
    check_ownership(actor, [s.name for s in services], [team.name] if team else [])
    span: dict[str, object] = {"starts_at": data.starts_at, "ends_at": data.ends_at}
    if series is not None:  # whole seconds, as the rule's times are
        span = {"starts_at": series.first, "ends_at": series.first + series.duration}
        span |= {"rrule": series.rule, "series_ends_at": series.last + series.duration}
    with transaction.atomic():
        window = MaintenanceWindow.objects.create(
            team=team,
            reason=data.reason,
            tz=data.tz,
            created_by=str(actor)[:200],
            **span,
        )
        window.services.set(services)
        audit.record(
            actor, "maintenance.create", "maintenance_window", str(window.id), describe(window)
        )
        signals.maintenance_changed.send(MaintenanceWindow, service_ids=covered_service_ids(window))
    return window


def delete_window(window_id: int, actor) -> None:
    """Remove a window and its record (the admin's delete; the API cancels instead)."""
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


def cancel_window(window_id: int, actor, occurrence: datetime | None = None) -> MaintenanceWindow:
    """Cancel the window (every occurrence of a recurring one), or one occurrence of it by its
    start. Kept and listed as cancelled; an open occurrence cancelled ends now."""
    with transaction.atomic():
        window = MaintenanceWindow.objects.select_for_update().filter(id=window_id).first()
        if window is None:
            raise NotFound(f"no maintenance window {window_id}")
        names = window.services.values_list("name", flat=True)
        check_ownership(actor, names, [window.team.name] if window.team is not None else [])
        if window.cancelled_at is not None:
            raise Conflict(
                f"maintenance window {window_id} was cancelled at "
                f"{window.cancelled_at:%Y-%m-%d %H:%M} UTC by {window.cancelled_by}",
                code="already_cancelled",
            )
        now = timezone.now()
        if occurrence is None:
            window.cancelled_at, window.cancelled_by = now, str(actor)[:200]
            window.save(update_fields=["cancelled_at", "cancelled_by"])
            changes = describe(window)
            action = "maintenance.cancel"
        else:
            start = _occurrence_to_cancel(window, occurrence, now)
            window.cancelled_occurrences = sorted([*window.cancelled_occurrences, _key(start)])
            window.save(update_fields=["cancelled_occurrences"])
            changes = {"id": window.id, "occurrence": _key(start), "reason": window.reason}
            action = "maintenance.cancel_occurrence"
        audit.record(actor, action, "maintenance_window", str(window.id), changes)
        signals.maintenance_changed.send(MaintenanceWindow, service_ids=covered_service_ids(window))
    return window


def _key(start: datetime) -> str:
    return start.astimezone(UTC).isoformat()


def _occurrence_to_cancel(window: MaintenanceWindow, occurrence: datetime, now) -> datetime:
    """The occurrence's start (UTC) if it is one of the window's, not ended, not cancelled."""
    if not window.rrule:
        raise InvalidInput(
            "the occurrence was not cancelled",
            fields={"occurrence": "a one-off window has no occurrences: cancel the window"},
        )
    series = series_of(window)
    # Compared before converting: a moment at the calendar's ends (year 1, 9999) has no UTC,
    # and no series of 10 years reaches it.
    start = occurrence.astimezone(UTC) if series.first <= occurrence <= series.last else None
    if start is None or not recurrence.is_start(series, start):
        if start is not None:
            after = recurrence.upcoming(series, start, 1)
        else:
            after = [series.first] if occurrence < series.first else []
        said = f"; the next starts at {after[0]:%Y-%m-%dT%H:%M:%SZ}" if after else ""
        raise InvalidInput(
            "the occurrence was not cancelled",
            fields={"occurrence": f"is not the start of an occurrence of this window{said}"},
        )
    if start + series.duration <= now:
        raise InvalidInput(
            "the occurrence was not cancelled",
            fields={"occurrence": "has already ended"},
        )
    if start in cancelled_starts(window):
        raise Conflict(
            f"the occurrence at {_key(start)} is already cancelled", code="already_cancelled"
        )
    return start


def describe(window: MaintenanceWindow) -> dict:
    return {
        "id": window.id,
        "services": sorted(window.services.values_list("name", flat=True)),
        "team": window.team.name if window.team is not None else None,
        "starts_at": window.starts_at.isoformat(),
        "ends_at": window.ends_at.isoformat(),
        "rrule": window.rrule or None,
        "tz": window.tz,
        "series_ends_at": window.series_ends_at.isoformat() if window.series_ends_at else None,
        "reason": window.reason,
        "created_by": window.created_by,
        "cancelled_at": window.cancelled_at.isoformat() if window.cancelled_at else None,
        "cancelled_by": window.cancelled_by,
        "cancelled_occurrences": list(window.cancelled_occurrences),
    }


# --- Reading: which windows are open, and when they will be ---------------------------------


def series_of(window: MaintenanceWindow) -> recurrence.Series:
    """A recurring window's series, as planned when it was created."""
    assert window.series_ends_at is not None, "a recurring window has its series' end"
    duration = window.ends_at - window.starts_at
    return recurrence.Series(
        rule=window.rrule,
        tz=window.tz,
        first=window.starts_at.astimezone(UTC),
        duration=duration,
        last=(window.series_ends_at - duration).astimezone(UTC),
    )


def cancelled_starts(window: MaintenanceWindow) -> frozenset[datetime]:
    return frozenset(datetime.fromisoformat(s) for s in window.cancelled_occurrences)


def current_occurrence(window: MaintenanceWindow, now: datetime) -> Occurrence | None:
    """The window's occurrence open at ``now``, if any: the rule asked for the one occurrence
    that may cover ``now`` (services.recurrence.covering), never the series expanded."""
    if window.cancelled_at is not None:
        return None
    if not window.rrule:
        if window.starts_at <= now < window.ends_at:
            return Occurrence(window, window.starts_at, window.ends_at)
        return None
    series = series_of(window)
    start = recurrence.covering(series, now, cancelled_starts(window))
    return Occurrence(window, start, start + series.duration) if start is not None else None


def next_occurrences(window: MaintenanceWindow, now: datetime, count: int = NEXT):
    """The window's next occurrences not ended at ``now`` (the open one first), cancelled
    ones marked; none for a cancelled window."""
    if window.cancelled_at is not None:
        return []
    if not window.rrule:
        return (
            [Occurrence(window, window.starts_at, window.ends_at)] if window.ends_at > now else []
        )
    series, cancelled = series_of(window), cancelled_starts(window)
    return [
        Occurrence(window, s, s + series.duration, s in cancelled)
        for s in recurrence.upcoming(series, now, count)
    ]


def state(window: MaintenanceWindow, now: datetime) -> str:
    """cancelled, open, planned (an occurrence is still to come) or ended."""
    if window.cancelled_at is not None:
        return "cancelled"
    if current_occurrence(window, now) is not None:
        return "open"
    return "planned" if any(not o.cancelled for o in next_occurrences(window, now)) else "ended"


def upcoming_for(service: Service, now: datetime, count: int = NEXT) -> list[Occurrence]:
    """The next occurrences (not cancelled, not ended) of every window covering the service,
    soonest first."""
    windows = _may_be_open_after(now).filter(Q(services=service) | Q(team_id=service.team_id))
    found = [
        o
        for window in windows.distinct().select_related("team")
        for o in next_occurrences(window, now, count)
        if not o.cancelled
    ]
    return sorted(found, key=lambda o: (o.starts_at, o.window.id))[:count]


def listing(now: datetime):
    """The windows the maintenance page lists: not ended (or ended, or cancelled, within the
    last week), open ones first, then by their next start; cancelled ones last."""
    since = now - LISTED_AFTER
    rows = (
        MaintenanceWindow.objects.filter(
            Q(cancelled_at=None, rrule="", ends_at__gt=since)
            | Q(cancelled_at=None, series_ends_at__gt=since)
            | Q(cancelled_at__gt=since)
        )
        .select_related("team")
        .prefetch_related("services")
    )
    found = []
    for window in rows[:200]:
        ahead = next_occurrences(window, now)
        found.append({"window": window, "state": state(window, now), "next": ahead})
    rank = {"open": 0, "planned": 1, "ended": 2, "cancelled": 3}
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(
        found,
        key=lambda r: (
            rank[r["state"]],
            r["next"][0].starts_at if r["next"] else far,
            r["window"].id,
        ),
    )


def _may_be_open_after(now):
    """Windows not cancelled whose span (a recurring one's: its series) has not ended: one
    indexed query, before any rule is asked."""
    return MaintenanceWindow.objects.filter(cancelled_at=None).filter(
        Q(rrule="", ends_at__gt=now) | Q(series_ends_at__gt=now)
    )


def _may_be_open(now):
    return _may_be_open_after(now).filter(starts_at__lte=now)


def open_windows(now=None) -> list[MaintenanceWindow]:
    """The windows open at ``now`` (a recurring one: one of its occurrences is)."""
    now = now or timezone.now()
    return [w for w in _may_be_open(now) if current_occurrence(w, now) is not None]


def in_maintenance(service_ids, now=None) -> dict[int, str]:
    """Service id -> why it is in maintenance now (the window's reason and the end of its open
    occurrence), for those of ``service_ids`` an open window covers."""
    now = now or timezone.now()
    ids = set(service_ids)
    found: dict[int, str] = {}
    windows = _may_be_open(now).filter(Q(services__id__in=ids) | Q(team__services__id__in=ids))
    occurrences = [o for w in windows.distinct() if (o := current_occurrence(w, now)) is not None]
    for occurrence in sorted(occurrences, key=lambda o: (o.ends_at, o.window.id)):
        why = f"maintenance until {occurrence.ends_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        if occurrence.reason:
            why += f": {occurrence.reason}"
        for service_id in covered_service_ids(occurrence.window) & ids:
            found.setdefault(service_id, why)
    return found
