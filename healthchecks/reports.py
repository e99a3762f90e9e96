"""Reading health: the documents /health/... serves, built in a fixed number of queries.

Statuses are precomputed (ServiceHealth, CheckState), so these are plain reads; the only
live evaluation is the portal's own service, ``backend`` (see healthchecks.selfcheck).
"""

import time
from datetime import UTC, datetime

from django.db import connection
from django.db.models import Count, Max

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


def _status_groups() -> list[tuple[int, bool, int]]:
    """(status, is_critical, how many services) in one grouped query: all the whole
    estate's status needs, however many services there are."""
    rows = (
        Service.objects.values_list("health__status", "is_critical")
        .annotate(n=Count("id"))
        .values_list("health__status", "is_critical", "n")
    )
    return [(Status.UNKNOWN if st is None else st, critical, n) for st, critical, n in rows]


def overall() -> dict:
    """The estate's status and how many services are in each status (for pages)."""
    groups = _status_groups()
    counts = {word(s): 0 for s in Status}
    for status, _, n in groups:
        counts[word(status)] += n
    status = overall_status([(st, critical) for st, critical, _ in groups])
    return {"status": word(status), "counts": counts}


_CHECK_FIELDS = (
    "name",
    "kind",
    "is_critical",
    "enabled",
    "interval",
    "timeout",
    "state__status",
    "state__status_since",
    "state__last_result_at",
    "state__last_response_us",
    "state__consecutive_failures",
    "state__last_outcome",
)


def service_detail(name: str) -> dict | None:
    # Plain rows rather than model instances: a readiness probe polls this, and a check's
    # own row carries options (encrypted headers) that the document never shows.
    service = (
        Service.objects.filter(name=name)
        .values("id", "name", "is_critical", "health__status", "health__since")
        .first()
    )
    if service is None:
        return None
    now = time.time()
    check_rows = []
    for check in (
        HealthCheck.objects.filter(service_id=service["id"]).order_by("name").values(*_CHECK_FIELDS)
    ):
        status = check["state__status"]
        status = Status.UNKNOWN if status is None else status
        last_at = check["state__last_result_at"]
        last = last_at.timestamp() if last_at else None
        stale = check["enabled"] and is_stale(last, check["interval"], check["timeout"], now)
        if stale:
            status = Status.UNKNOWN
        outcome = check["state__last_outcome"] or {}
        response_us = check["state__last_response_us"]
        check_rows.append(
            {
                "name": check["name"],
                "kind": check["kind"],
                "critical": check["is_critical"],
                "enabled": check["enabled"],
                "status": word(status),
                "since": iso(check["state__status_since"]),
                "last_check_at": iso(last_at),
                "response_ms": None if response_us is None else round(response_us / 1000, 3),
                "consecutive_failures": check["state__consecutive_failures"] or 0,
                "stale": stale,
                "errors": outcome.get("errors", []) + (["no recent result"] if stale else []),
                "warnings": outcome.get("warnings", []),
                "details": outcome.get("details", {}),
                "metrics": outcome.get("metrics", {}),
            }
        )
    deps = [
        {"service": dep, "kind": kind, "status": word(st if st is not None else Status.UNKNOWN)}
        for dep, kind, st in Dependency.objects.filter(service_id=service["id"])
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
    return {
        "name": service["name"],
        "status": word(status),
        "critical": service["is_critical"],
        "since": iso(service["health__since"]) if service["health__status"] == status else None,
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
    return queryset.values(field).annotate(n=Count("*")).values_list(field, "n")


# --- The overview built by PostgreSQL --------------------------------------------------------
# /health/services is the hottest read (dashboards, load balancers). For ten thousand services
# building the document row by row in Python costs ~100 ms; PostgreSQL builds the same JSON
# in a few milliseconds, so on PostgreSQL the document comes out of one statement as text.

_ROWS_SQL = """
WITH last AS (
    SELECT c.service_id, max(s.last_result_at) AS at, max(s.last_response_us) AS us
    FROM healthchecks_checkstate s
    JOIN healthchecks_healthcheck c ON c.id = s.health_check_id
    WHERE c.enabled
    GROUP BY c.service_id
), rows AS (
    SELECT sv.name, sv.is_critical AS critical, coalesce(h.status, 0) AS status,
           h.since, coalesce(h.reason, '') AS reason, last.at, last.us
    FROM services_service sv
    LEFT JOIN healthchecks_servicehealth h ON h.service_id = sv.id
    LEFT JOIN last ON last.service_id = sv.id
)
"""
_ISO = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
_WORD = "(ARRAY['unknown', 'healthy', 'degraded', 'unhealthy', 'maintenance'])[status + 1]"
_OVERVIEW_SQL = (
    _ROWS_SQL
    + f"""
SELECT coalesce(json_agg(json_build_object(
    'name', name, 'status', {_WORD}, 'critical', critical, 'since', {_ISO.format("since")},
    'last_check_at', {_ISO.format("at")}, 'response_ms', round(us / 1000.0, 3),
    'reason', reason) ORDER BY name), '[]')::text
FROM rows
"""  # noqa: S608 - built from constants only
)
_HEALTH_JSON_SQL = (
    _ROWS_SQL
    + f"""
SELECT coalesce(json_object_agg(name || ':status', json_build_array(json_strip_nulls(
    json_build_object(
        'componentId', name, 'componentType', 'service',
        'status', CASE status WHEN 1 THEN 'pass' WHEN 2 THEN 'warn' WHEN 4 THEN 'warn'
                  ELSE 'fail' END,
        'observedValue', {_WORD},
        'time', coalesce({_ISO.format("at")}, {_ISO.format("since")}),
        'output', nullif(reason, '')))) ORDER BY name), '{{}}')::text
FROM rows
"""  # noqa: S608 - built from constants only
)


def overview_text(health_json: bool) -> str:
    """The /health/services document as JSON text, built by PostgreSQL (same content as
    ``services_overview`` / ``healthjson.overview_document``)."""
    with connection.cursor() as cursor:
        cursor.execute(_HEALTH_JSON_SQL if health_json else _OVERVIEW_SQL)
        body = cursor.fetchone()[0]
    status = overall()["status"]
    if health_json:
        from healthchecks.healthjson import status_word

        return f'{{"status": "{status_word(status)}", "checks": {body}}}'
    checked_at = iso(datetime.now(UTC))
    return f'{{"status": "{status}", "checked_at": "{checked_at}", "services": {body}}}'
