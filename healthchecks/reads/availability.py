"""Availability: the share of time a service was usable, from its status timeline, with the
time it was down because of a hard dependency (upstream) or in maintenance told apart.

Check uptime (healthchecks.reads.history) counts results; an objective counts time, and must be
able to leave out what the service's owners do not answer for: planned maintenance, and
downtime whose root cause is upstream. Both are marked on the timeline:

- maintenance: time the service's status was MAINTENANCE (a window was open);
- upstream: time the service was UNHEALTHY while one of its hard dependencies was UNHEALTHY
  or in maintenance (the dependencies as they are now: the graph's history is not kept).

``available`` = 1 - (down + maintenance) / observed, where observed is the window less the
time the status was unknown (no checks, or before the service existed); degraded counts as
available, as readiness says. ``exclude`` takes maintenance and/or upstream time out of both.
"""

import math
from datetime import datetime, timedelta

from django.db.models import OuterRef, Subquery
from django.utils import timezone

from healthchecks.models import ServiceHealth, StatusChange
from healthchecks.reads.history import WINDOWS
from healthchecks.status import Status
from services.models import Dependency, DependencyKind, Service

EXCLUSIONS = ("maintenance", "upstream")
Span = tuple[datetime, datetime]


def timeline(
    changes: list[tuple[datetime, int, int]], current: int, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, int]]:
    """(from, to, status) covering [start, end) from the status changes (at, from, to) in
    time order (pure). Before the first change the status is that change's ``from``; with no
    change at all it is ``current``."""
    spans = []
    status = changes[0][1] if changes else current
    cursor = start
    for at, _, to in changes:
        if at >= end:
            break
        if at > cursor:
            spans.append((cursor, at, status))
            cursor = at
        status = to
    if cursor < end:
        spans.append((cursor, end, status))
    return spans


def merge(spans: list[Span]) -> list[Span]:
    """The union of time spans, as disjoint sorted spans (pure)."""
    merged: list[Span] = []
    for begin, finish in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
        else:
            merged.append((begin, finish))
    return merged


def overlap_seconds(spans: list[Span], others: list[Span]) -> float:
    """Seconds of ``spans`` that fall within ``others`` (both disjoint; pure)."""
    total = 0.0
    for begin, finish in spans:
        for other_begin, other_finish in others:
            low, high = max(begin, other_begin), min(finish, other_finish)
            if high > low:
                total += (high - low).total_seconds()
    return total


def summarise(
    own: list[tuple[datetime, datetime, int]], upstream_bad: list[Span], exclude: set[str]
) -> dict:
    """The figures of one window from the service's timeline and its dependencies' bad
    spans (pure)."""

    def seconds(*statuses):
        return sum((b - a).total_seconds() for a, b, s in own if s in statuses)

    down_spans = [(a, b) for a, b, s in own if s == Status.UNHEALTHY]
    total = sum((b - a).total_seconds() for a, b, _ in own)
    unknown = seconds(Status.UNKNOWN)
    down = seconds(Status.UNHEALTHY)
    resting = seconds(Status.MAINTENANCE)
    upstream = overlap_seconds(down_spans, merge(upstream_bad))
    observed = total - unknown
    unavailable = down + resting
    if "maintenance" in exclude:
        observed, unavailable = observed - resting, unavailable - resting
    if "upstream" in exclude:
        observed, unavailable = observed - upstream, unavailable - upstream
    return {
        "availability": round(1 - unavailable / observed, 6) if observed > 0 else None,
        "observed_s": round(observed),
        "down_s": round(down),
        "upstream_s": round(upstream),
        "maintenance_s": round(resting),
        "unknown_s": round(unknown),
        "excluded": sorted(exclude),
    }


def changes_since(service_ids: list[int], since: datetime) -> dict[int, list]:
    """Each service's status changes (at, from, to) since ``since``, in time order: one
    query whatever the number of services."""
    found: dict[int, list] = {i: [] for i in service_ids}
    rows = StatusChange.objects.filter(
        service_id__in=service_ids, health_check=None, at__gte=since
    ).order_by("at", "id")
    for service_id, at, old, new in rows.values_list(
        "service_id", "at", "from_status", "to_status"
    ):
        found[service_id].append((at, old, new))
    return found


def _changes(service_ids: list[int], since: datetime) -> dict[int, list]:
    """``changes_since``, plus the status each had then (the last change before it, if
    any): two queries."""
    found = changes_since(service_ids, since)
    last_before = StatusChange.objects.filter(
        service_id=OuterRef("pk"), health_check=None, at__lt=since
    ).order_by("-at", "-id")
    before = Service.objects.filter(id__in=service_ids).annotate(
        then=Subquery(last_before.values("to_status")[:1])
    )
    for service_id, then in before.values_list("id", "then"):
        if then is not None:
            found[service_id].insert(0, (since, then, then))
    return found


def service_availability(service: Service, exclude: set[str], now=None) -> dict[str, dict]:
    """Availability over 24 h, 7 d, 30 d and 90 d, leaving out what ``exclude`` names."""
    now = now or timezone.now()
    oldest = now - max(WINDOWS.values())
    deps = list(
        Dependency.objects.filter(service=service, kind=DependencyKind.HARD).values_list(
            "depends_on_id", flat=True
        )
    )
    ids = [service.id, *deps]
    current = dict(
        ServiceHealth.objects.filter(service_id__in=ids).values_list("service_id", "status")
    )
    changes = _changes(ids, oldest)
    result = {}
    for name, span in WINDOWS.items():
        start = max(now - span, service.created_at)
        if start >= now:
            start = now
        own = timeline(changes[service.id], current.get(service.id, Status.UNKNOWN), start, now)
        upstream_bad = [
            (a, b)
            for dep in deps
            for a, b, s in timeline(changes[dep], current.get(dep, Status.UNKNOWN), start, now)
            if s in (Status.UNHEALTHY, Status.MAINTENANCE)
        ]
        result[name] = summarise(own, upstream_bad, exclude)
    return result


def status_timeline(service: Service, start: datetime, end: datetime | None = None) -> list:
    """(from, to, status) of the service over [start, end): for a page's timeline."""
    end = end or timezone.now()
    current = ServiceHealth.objects.filter(service=service).values_list("status", flat=True).first()
    start = max(start, service.created_at)
    if start >= end:
        return []
    changes = _changes([service.id], start)[service.id]
    return timeline(changes, Status.UNKNOWN if current is None else current, start, end)


# Worst first: a slot of a status strip shows the worst status the service held in it.
SEVERITY = {
    Status.UNHEALTHY: 4,
    Status.DEGRADED: 3,
    Status.MAINTENANCE: 2,
    Status.UNKNOWN: 1,
    Status.HEALTHY: 0,
}


def worst_per_slot(
    changes: list[tuple[datetime, int, int]], current: int, start: datetime, slot, slots: int
) -> list[int]:
    """The worst status in each of ``slots`` slots from ``start`` (pure). ``changes``: (at,
    from, to) in time order, all after ``start``; the status before the first is its
    ``from``, after the last it is ``current``."""
    end = start + slot * slots
    spans = timeline(changes, current, start, end)
    worst = [None] * slots
    for begin, finish, status in spans:
        first = int((begin - start) / slot)
        last = min(slots - 1, math.ceil((finish - start) / slot) - 1)
        for i in range(max(first, 0), last + 1):
            if worst[i] is None or SEVERITY[status] > SEVERITY[worst[i]]:
                worst[i] = status
    return [Status.UNKNOWN if w is None else w for w in worst]


def status_strips(service_ids: list[int], now=None, hours: int = 24) -> dict[int, list[int]]:
    """Each service's worst status per hour over the last ``hours`` (the last slot ends now),
    in two queries whatever the number of services: the changes in the window and the
    current statuses (the status before a change is its ``from``)."""
    now = now or timezone.now()
    slot = timedelta(hours=1)
    start = now - slot * hours
    current = dict(
        ServiceHealth.objects.filter(service_id__in=service_ids).values_list("service_id", "status")
    )
    changes = changes_since(service_ids, start)
    return {
        i: worst_per_slot(changes[i], current.get(i, Status.UNKNOWN), start, slot, hours)
        for i in service_ids
    }


def parse_exclude(raw: str) -> set[str]:
    """``maintenance,upstream`` -> the set; ValueError naming what is not one of them."""
    wanted = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = sorted(wanted - set(EXCLUSIONS))
    if unknown:
        raise ValueError(f"unknown {', '.join(unknown)}; use {' and/or '.join(EXCLUSIONS)}")
    return wanted
