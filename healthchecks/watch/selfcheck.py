"""The portal watches itself: it is the service ``backend``, with checks of its database,
Redis, its Celery workers and its scheduler.

The checks run like any other (history, incidents), and ``/health/service/backend`` also
evaluates them live on every request -- the readiness of the portal must not depend on the
very workers whose absence it has to report.
"""

import time

from django.db import transaction
from django.utils import timezone

from healthchecks import checks
from healthchecks.reads import reports
from healthchecks.schemas import CheckIn
from healthchecks.status import Status, service_status
from healthchecks.watch import builtin
from services import registry
from services.schemas import ServiceIn, TeamIn

NAME = "backend"
TEAM = "portal"
CHECKS = [
    # (check name, callable, critical): only the database is needed to serve. ``backend`` is
    # a critical service, so an overloaded engine sheds none of these (scheduling.Claim).
    ("database", "healthchecks.watch.builtin.database", True),
    ("redis", "healthchecks.watch.builtin.redis", False),
    ("workers", "healthchecks.watch.builtin.workers", False),
    ("scheduler", "healthchecks.watch.builtin.scheduler", False),
    ("capacity", "healthchecks.watch.builtin.probe_capacity", False),
]


def _timed(fn):
    started = time.perf_counter()
    result = fn()
    result.setdefault("metrics", {})["response_ms"] = round(
        (time.perf_counter() - started) * 1000, 3
    )
    return result


LIVE = {
    "database": builtin.database,
    "redis": builtin.redis,
    "workers": builtin.workers,
    "scheduler": builtin.scheduler,
    "capacity": builtin.probe_capacity,
}


# Read from heartbeats in the database (capacity is read from Redis).
NEEDS_DATABASE = {"workers", "scheduler"}


def _not_checked(reason: str):
    return lambda: {"status": "unknown", "errors": [f"not checked: {reason}"]}


def detail() -> dict:
    """The backend's health document, evaluated now. The database is checked first, within
    its own short budget; without it nothing else is read from it, so the answer (503)
    comes in about a second whether PostgreSQL refuses, hangs or is gone."""
    database = _timed(LIVE["database"])
    database_up = database["status"] == "healthy"
    stored = (reports.service_detail(NAME) if database_up else None) or {
        "name": NAME,
        "critical": True,
        "checks": [],
        "dependencies": [],
        "since": None,
    }
    rows = []
    for name, _path, critical in CHECKS:
        if name == "database":
            result = database
        elif name in NEEDS_DATABASE and not database_up:
            result = _timed(_not_checked("its heartbeats are kept in the database"))
        else:
            result = _timed(LIVE[name])
        rows.append(
            {
                "name": name,
                "kind": "python",
                "critical": critical,
                "enabled": True,
                "status": result["status"],
                "since": None,
                "last_check_at": reports.iso(timezone.now()),
                "response_ms": result["metrics"]["response_ms"],
                "consecutive_failures": 0,
                "stale": False,
                "waiting": False,  # evaluated live: never without a result
                "errors": result.get("errors", []),
                "warnings": result.get("warnings", []),
                "details": result.get("details", {}),
                "metrics": result["metrics"],
            }
        )
    status, reason = service_status(
        [(r["name"], Status[r["status"].upper()], r["critical"]) for r in rows], []
    )
    return {
        **stored,
        "name": NAME,
        "status": reports.word(status),
        "reason": reason,
        "checks": rows,
        "errors": [f"{r['name']}: {e}" for r in rows for e in r["errors"]],
        "warnings": [f"{r['name']}: {w}" for r in rows for w in r["warnings"]],
        "metrics": {"response_ms": max(r["response_ms"] for r in rows)},
    }


def register(actor) -> None:
    """Register the portal as the service ``backend`` with its checks (idempotent), through
    the registry's write path and the checks' own, in one transaction."""
    manifest = registry.manifest_of(
        teams=[TeamIn(name=TEAM, display_name="Service portal")],
        services=[
            ServiceIn(
                name=NAME,
                team=TEAM,
                display_name="Service portal (this site)",
                is_critical=True,
                description="The portal itself: web, database, Redis, Celery workers and beat.",
            )
        ],
    )
    specs = [
        CheckIn(name=name, kind="python", target=path, interval=30, timeout=5, critical=critical)
        for name, path, critical in CHECKS
    ]
    with transaction.atomic():
        registry.apply_manifest(manifest, actor)
        checks.replace_all(NAME, specs, actor)
