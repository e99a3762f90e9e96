"""Reading health: the documents /health/... serves, built in a fixed number of queries.

Statuses are precomputed (ServiceHealth, CheckState), so these are plain reads; the only
live evaluation is the portal's own service, ``backend`` (see healthchecks.watch.selfcheck).
"""

import json
import time
from datetime import UTC, datetime

from django.db import connection
from django.db.models import Count, Max

from healthchecks.engine import service_health
from healthchecks.engine.service_health import not_watched_reason
from healthchecks.models import CheckState, HealthCheck, ServiceHealth
from healthchecks.probes.kinds import KINDS
from healthchecks.reads import healthjson
from healthchecks.status import (
    Status,
    is_stale,
    is_waiting,
    overall_status,
    service_status,
)
from services import maintenance
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
    return {"status": _estate_status(groups), "counts": counts}


def _estate_status(groups) -> str:
    """The whole estate's status word from (status, is_critical, count) groups."""
    return word(overall_status([(st, critical) for st, critical, _ in groups]))


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
_DEPENDENCY_FIELDS = ("depends_on__name", "kind", "depends_on__health__status")


def service_detail(name: str, since: datetime | None = None) -> dict | None:
    """A service's status with its checks and dependencies, or None if there is none.
    With ``since`` it is a deploy gate's answer: only results recorded since then count
    (``fresh_results``)."""
    fetch = detail_rows_in_one_statement if connection.vendor == "postgresql" else detail_rows
    rows = fetch(name)
    if rows is None:
        return None
    document = _detail_document(*rows)
    if since is None:
        return document
    return fresh_results(document, since, not_watched_reason(rows[0]["lifecycle_status"]))


def fresh_results(document: dict, since: datetime, not_watched: str = "") -> dict:
    """The document as a deploy gate judges it: a result recorded before ``since`` (the
    release being gated) says nothing about it. Each probed check that gates -- the
    critical ones, or all when none is -- must have a result since then, and counts as its
    own last result (an older healthy streak that retries keep does not carry a failure
    through the gate); until each has one, the service is not usable. Pushed checks
    (heartbeats) keep their state: a release does not make a cron job beat sooner. A
    service not watched (``not_watched``: stopped) reads as it does without a gate."""
    document = {**document, "results_since": iso(since)}
    if document["status"] == word(Status.MAINTENANCE) or not_watched:
        return document
    enabled = [c for c in document["checks"] if c["enabled"]]
    probed = [c for c in enabled if not KINDS[c["kind"]].pushed]
    gating = [c for c in probed if c["critical"]] or probed
    waiting = []
    for check in gating:
        last = check["last_check_at"]
        if last is None or datetime.fromisoformat(last) < since:
            waiting.append(check["name"])
            check["status"] = word(Status.UNKNOWN)
            check["errors"] = [*check["errors"], f"no result since {iso(since)}"]
        elif check["consecutive_failures"]:
            check["status"] = word(Status.UNHEALTHY)
    # The others judged as without a gate: one with no result yet says nothing.
    first = [c["name"] for c in enabled if c["waiting"] and c not in gating]
    hard = [d for d in document["dependencies"] if d["kind"] == DependencyKind.HARD]
    status, reason = service_status(
        [
            (c["name"], Status[c["status"].upper()], c["critical"])
            for c in enabled
            if c["name"] not in first
        ],
        [(d["service"], Status[d["status"].upper()]) for d in hard],
        waiting=first,
    )
    if waiting and status != Status.UNHEALTHY:
        status, reason = Status.UNKNOWN, f"no result since {iso(since)}: {', '.join(waiting)}"
    if word(status) != document["status"]:
        document["since"] = None
    document.update(
        status=word(status),
        reason=reason,
        errors=[f"{c['name']}: {e}" for c in enabled for e in c["errors"]],
    )
    return document


def detail_rows(name: str):
    """(service, checks, dependencies) as plain rows: a readiness probe polls this, and a
    check's own row carries options (encrypted headers) that the document never shows."""
    service = (
        Service.objects.filter(name=name)
        .values("id", "name", "is_critical", "lifecycle_status", "health__status", "health__since")
        .first()
    )
    if service is None:
        return None
    checks = list(
        HealthCheck.objects.filter(service_id=service["id"]).order_by("name").values(*_CHECK_FIELDS)
    )
    dependencies = list(
        Dependency.objects.filter(service_id=service["id"])
        .order_by("depends_on__name")
        .values_list(*_DEPENDENCY_FIELDS)
    )
    return service, checks, dependencies


# The same rows in one round trip: under load every round trip waits for a busy CPU twice
# (the database's process, then ours), and the tail latency of a readiness probe follows the
# number of round trips more than the work done in each.
_DETAIL_SQL = """
SELECT sv.id, sv.name, sv.is_critical, sv.lifecycle_status, h.status, h.since,
    (SELECT coalesce(json_agg(json_build_array(
                c.name, c.kind, c.is_critical, c.enabled, c.interval, c.timeout, s.status,
                s.status_since, s.last_result_at, s.last_response_us, s.consecutive_failures,
                s.last_outcome) ORDER BY c.name), '[]')::text
       FROM healthchecks_healthcheck c
       LEFT JOIN healthchecks_checkstate s ON s.health_check_id = c.id
      WHERE c.service_id = sv.id),
    (SELECT coalesce(json_agg(json_build_array(o.name, d.kind, oh.status)
                              ORDER BY o.name), '[]')::text
       FROM services_dependency d
       JOIN services_service o ON o.id = d.depends_on_id
       LEFT JOIN healthchecks_servicehealth oh ON oh.service_id = o.id
      WHERE d.service_id = sv.id)
FROM services_service sv
LEFT JOIN healthchecks_servicehealth h ON h.service_id = sv.id
WHERE sv.name = %s
"""
_TIMES = {"state__status_since", "state__last_result_at"}


def detail_rows_in_one_statement(name: str):
    """``detail_rows`` in one round trip (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute(_DETAIL_SQL, [name])
        row = cursor.fetchone()
    if row is None:
        return None
    sid, sname, critical, lifecycle, status, since, checks_json, deps_json = row
    service = {
        "id": sid,
        "name": sname,
        "is_critical": critical,
        "lifecycle_status": lifecycle,
        "health__status": status,
        "health__since": since,
    }
    checks = [
        {
            key: _moment(value) if key in _TIMES else value
            for key, value in zip(_CHECK_FIELDS, values, strict=True)
        }
        for values in json.loads(checks_json)
    ]
    return service, checks, [tuple(d) for d in json.loads(deps_json)]


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _detail_document(service: dict, checks: list[dict], dependencies: list[tuple]) -> dict:
    now = time.time()
    check_rows = []
    for check in checks:
        status = check["state__status"]
        status = Status.UNKNOWN if status is None else status
        last_at = check["state__last_result_at"]
        last = last_at.timestamp() if last_at else None
        stale = check["enabled"] and is_stale(last, check["interval"], check["timeout"], now)
        if stale:
            status = Status.UNKNOWN
        failures = check["state__consecutive_failures"] or 0
        stored = check["state__status"]
        waiting = not stale and (stored is None or is_waiting(stored, last_at, failures))
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
                "consecutive_failures": failures,
                "stale": stale,
                "waiting": waiting,
                "errors": outcome.get("errors", []) + (["no recent result"] if stale else []),
                "warnings": outcome.get("warnings", []),
                "details": outcome.get("details", {}),
                "metrics": outcome.get("metrics", {}),
            }
        )
    deps = [
        {"service": dep, "kind": kind, "status": word(st if st is not None else Status.UNKNOWN)}
        for dep, kind, st in dependencies
    ]
    enabled = [c for c in check_rows if c["enabled"]]
    window = ""
    if service["health__status"] == Status.MAINTENANCE:  # a query only for those in one
        window = maintenance.in_maintenance([service["id"]]).get(service["id"], "")
    status, reason = service_status(
        [
            (c["name"], Status[c["status"].upper()], c["critical"])
            for c in enabled
            if not c["waiting"]
        ],
        [
            (d["service"], Status[d["status"].upper()])
            for d in deps
            if d["kind"] == DependencyKind.HARD
        ],
        window,
        waiting=[c["name"] for c in enabled if c["waiting"]],
        not_watched=not_watched_reason(service["lifecycle_status"]),
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


def statuses_of(names: list[str]) -> dict[str, str]:
    """Service name -> its status word, for a list of neighbours on a page."""
    found = dict(
        ServiceHealth.objects.filter(service__name__in=names).values_list("service__name", "status")
    )
    return {name: word(found.get(name, Status.UNKNOWN)) for name in names}


def if_it_fails(name: str) -> dict[str, tuple[str, str]]:
    """Service name -> (its status were ``name`` healthy, were it unhealthy), for every
    service that needs it through hard dependencies (no other status would move): the
    engine's own rule and spreading (service_health.what_if), not a copy."""
    service_id = Service.objects.filter(name=name).values_list("id", flat=True).first()
    if service_id is None:
        return {}
    fine = service_health.what_if(service_id, Status.HEALTHY)
    failed = service_health.what_if(service_id, Status.UNHEALTHY)
    names = dict(Service.objects.filter(id__in=failed).values_list("id", "name"))
    return {names[i]: (word(fine[i]), word(failed[i])) for i in failed}


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
# The status rules as SQL, built from the same tables Python uses (Status, healthjson):
# a change there changes the statement too.
_WORD = (
    "CASE status "
    + " ".join(f"WHEN {int(s)} THEN '{s.label}'" for s in Status)
    + f" ELSE '{Status.UNKNOWN.label}' END"
)
_HEALTH_JSON_WORD = (
    "CASE status "
    + " ".join(f"WHEN {int(s)} THEN '{healthjson.status_word(s.label)}'" for s in Status)
    + " ELSE 'fail' END"
)
# The estate's status from the same rows, in the same statement: one round trip in all.
_GROUPS = """
SELECT coalesce(json_agg(json_build_array(status, critical, n)), '[]')::text
FROM (SELECT status, critical, count(*) AS n FROM rows GROUP BY status, critical) AS g
"""
# Each entry is a row turned into JSON by json_agg, which looks up how to write each column
# once per statement; json_build_object would do it for every argument of every row (a third
# of the statement's time for 1,000 services).
_OVERVIEW_SQL = (
    _ROWS_SQL  # noqa: S608 - built from constants only
    + f"""
SELECT (SELECT coalesce(json_agg(entry ORDER BY entry.name), '[]')::text FROM (
    SELECT name, {_WORD} AS status, critical, {_ISO.format("since")} AS since,
           {_ISO.format("at")} AS last_check_at, round(us / 1000.0, 3) AS response_ms, reason
    FROM rows) AS entry),
    ({_GROUPS})
"""  # noqa: S608
)
_HEALTH_JSON_SQL = (
    _ROWS_SQL  # noqa: S608 - built from constants only
    + f"""
SELECT (SELECT coalesce(json_object_agg(
        entry."componentId" || ':status', json_build_array(json_strip_nulls(row_to_json(entry)))
        ORDER BY entry."componentId"), '{{}}')::text FROM (
    SELECT name AS "componentId", 'service' AS "componentType",
           {_HEALTH_JSON_WORD} AS status,
           {_WORD} AS "observedValue",
           coalesce({_ISO.format("at")}, {_ISO.format("since")}) AS time,
           nullif(reason, '') AS output
    FROM rows) AS entry),
    ({_GROUPS})
"""  # noqa: S608
)


def overview_text(health_json: bool) -> str:
    """The /health/services document as JSON text, built by PostgreSQL in one statement
    (same content as ``services_overview`` / ``healthjson.overview_document``)."""
    with connection.cursor() as cursor:
        cursor.execute(_HEALTH_JSON_SQL if health_json else _OVERVIEW_SQL)
        body, groups = cursor.fetchone()
    status = _estate_status(json.loads(groups))
    if health_json:
        return f'{{"status": "{healthjson.status_word(status)}", "checks": {body}}}'
    checked_at = iso(datetime.now(UTC))
    return f'{{"status": "{status}", "checked_at": "{checked_at}", "services": {body}}}'
