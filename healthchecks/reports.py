"""Reading health: the documents /health/... serves, built in a fixed number of queries.

Statuses are precomputed (ServiceHealth, CheckState), so these are plain reads; the only
live evaluation is the portal's own service, ``backend`` (see healthchecks.selfcheck).
"""

import time
from datetime import UTC, datetime

from django.db.models import Max

from healthchecks.models import CheckState, HealthCheck, ServiceHealth
from healthchecks.status import Status, is_stale, overall_status, service_status
from services.models import Dependency, DependencyKind, Service


def word(status: int) -> str:
    return Status(status).label


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def services_overview() -> dict:
    """Every service's status, since when, last check, response time and reason."""
    rows = list(
        Service.objects.order_by("name").values_list(
            "id", "name", "is_critical", "health__status", "health__since", "health__reason"
        )
    )
    last = {
        sid: (at, us)
        for sid, at, us in CheckState.objects.filter(health_check__enabled=True)
        .values("health_check__service_id")
        .annotate(at=Max("last_result_at"), us=Max("last_response_us"))
        .values_list("health_check__service_id", "at", "us")
    }
    services = []
    for sid, name, critical, status, since, reason in rows:
        status = Status.UNKNOWN if status is None else status
        at, us = last.get(sid, (None, None))
        services.append(
            {
                "name": name,
                "status": word(status),
                "critical": critical,
                "since": iso(since),
                "last_check_at": iso(at),
                "response_ms": None if us is None else round(us / 1000, 3),
                "reason": reason or "",
            }
        )
    overall = overall_status([(Status[s["status"].upper()], s["critical"]) for s in services])
    return {"status": word(overall), "checked_at": iso(datetime.now(UTC)), "services": services}


def overall() -> dict:
    """The estate's status and how many services are in each status (for pages)."""
    rows = Service.objects.values_list("is_critical", "health__status")
    statuses = [(Status.UNKNOWN if st is None else st, critical) for critical, st in rows]
    counts = {word(s): 0 for s in Status}
    for status, _ in statuses:
        counts[word(status)] += 1
    return {"status": word(overall_status(statuses)), "counts": counts}


def service_detail(name: str) -> dict | None:
    service = Service.objects.filter(name=name).select_related("health").first()
    if service is None:
        return None
    now = time.time()
    check_rows = []
    for check in HealthCheck.objects.filter(service=service).select_related("state"):
        state = getattr(check, "state", None)
        status = state.status if state else Status.UNKNOWN
        last = state.last_result_at.timestamp() if state and state.last_result_at else None
        stale = check.enabled and is_stale(last, check.interval, check.timeout, now)
        if stale:
            status = Status.UNKNOWN
        outcome = state.last_outcome if state else {}
        check_rows.append(
            {
                "name": check.name,
                "kind": check.kind,
                "critical": check.is_critical,
                "enabled": check.enabled,
                "status": word(status),
                "since": iso(state.status_since) if state else None,
                "last_check_at": iso(state.last_result_at) if state else None,
                "response_ms": round(state.last_response_us / 1000, 3)
                if state and state.last_response_us is not None
                else None,
                "consecutive_failures": state.consecutive_failures if state else 0,
                "stale": stale,
                "errors": outcome.get("errors", []) + (["no recent result"] if stale else []),
                "warnings": outcome.get("warnings", []),
                "details": outcome.get("details", {}),
                "metrics": outcome.get("metrics", {}),
            }
        )
    deps = [
        {"service": dep, "kind": kind, "status": word(st if st is not None else Status.UNKNOWN)}
        for dep, kind, st in Dependency.objects.filter(service=service)
        .order_by("depends_on__name")
        .values_list("depends_on__name", "kind", "depends_on__health__status")
    ]
    enabled = [c for c in check_rows if c["enabled"]]
    status, reason = service_status(
        [(c["name"], Status[c["status"].upper()], c["critical"]) for c in enabled],
        [
            (d["service"], Status[d["status"].upper()])
            for d in deps
            if d["kind"] == DependencyKind.HARD
        ],
    )
    health = getattr(service, "health", None)
    return {
        "name": service.name,
        "status": word(status),
        "critical": service.is_critical,
        "since": iso(health.since) if health and health.status == status else None,
        "reason": reason,
        "checks": check_rows,
        "dependencies": deps,
        "errors": [f"{c['name']}: {e}" for c in enabled for e in c["errors"]],
        "warnings": [f"{c['name']}: {w}" for c in enabled for w in c["warnings"]],
        "metrics": {
            "response_ms": max(
                (c["response_ms"] for c in enabled if c["response_ms"] is not None), default=None
            )
        },
    }


def status_counts() -> dict[str, int]:
    counts = {word(s): 0 for s in Status}
    for status, n in _count(ServiceHealth.objects, "status"):
        counts[word(status)] += n
    counts["unknown"] += Service.objects.filter(health__isnull=True).count()
    return counts


def check_status_counts() -> dict[str, int]:
    counts = {word(s): 0 for s in Status}
    for status, n in _count(CheckState.objects.filter(health_check__enabled=True), "status"):
        counts[word(status)] += n
    return counts


def _count(queryset, field: str):
    from django.db.models import Count

    return queryset.values(field).annotate(n=Count("*")).values_list(field, "n")
