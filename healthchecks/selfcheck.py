"""The portal watches itself: it is the service ``backend``, with checks of its database,
Redis, its Celery workers and its scheduler.

The checks run like any other (history, incidents), and ``/health/service/backend`` also
evaluates them live on every request -- the readiness of the portal must not depend on the
very workers whose absence it has to report.
"""

import time

from django.conf import settings
from django.db import connection
from django.utils import timezone

from healthchecks import reports
from healthchecks.status import Status, service_status
from portal import heartbeats

NAME = "backend"
TEAM = "portal"
CHECKS = [
    # (check name, callable, critical): only the database is needed to serve.
    ("database", "healthchecks.builtin.database", True),
    ("redis", "healthchecks.builtin.redis", False),
    ("workers", "healthchecks.builtin.workers", False),
    ("scheduler", "healthchecks.builtin.scheduler", False),
]


def _timed(fn):
    started = time.perf_counter()
    result = fn()
    result.setdefault("metrics", {})["response_ms"] = round(
        (time.perf_counter() - started) * 1000, 3
    )
    return result


def database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means the same thing here
        connection.close()
        return {"status": "unhealthy", "errors": [f"database: {type(exc).__name__}: {exc}"]}
    return {"status": "healthy", "details": {"vendor": connection.vendor}}


def redis() -> dict:
    if not settings.REDIS_URL:
        return {"status": "healthy", "details": {"mode": "embedded broker, no Redis"}}
    import redis as redis_lib

    try:
        client = redis_lib.Redis.from_url(
            settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        client.ping()
    except redis_lib.RedisError as exc:
        return {
            "status": "unhealthy",
            "errors": [
                f"redis: {type(exc).__name__}: {exc}; health reads continue from the database"
            ],
        }
    finally:
        if "client" in locals():
            client.close()
    return {"status": "healthy"}


def _age_check(
    names: tuple[str, ...], healthy_within: float, degraded_within: float, what: str
) -> dict:
    ages = [a.total_seconds() for a in map(heartbeats.age, names) if a is not None]
    if not ages:
        return {"status": "unhealthy", "errors": [f"{what}: never seen"]}
    age = min(ages)
    metrics = {"age_s": round(age, 1)}
    if age <= healthy_within:
        return {"status": "healthy", "metrics": metrics}
    level = "degraded" if age <= degraded_within else "unhealthy"
    return {"status": level, "metrics": metrics, "errors": [f"{what}: last seen {age:.0f}s ago"]}


def workers() -> dict:
    # A worker writes "worker" after every probe batch and "beat" when it runs beat's
    # heartbeat task: either proves a worker is consuming.
    window = settings.BEAT_HEARTBEAT_SECONDS * 3
    return _age_check(("worker", "beat"), window, window * 3, "Celery workers")


def scheduler() -> dict:
    """Is the dispatcher running on time?"""
    expected = settings.HEALTH_DISPATCH_SECONDS
    return _age_check(("dispatcher",), expected * 3 + 2, 30, "dispatcher (beat)")


LIVE = {"database": database, "redis": redis, "workers": workers, "scheduler": scheduler}


def detail() -> dict:
    """The backend's health document, evaluated now."""
    stored = reports.service_detail(NAME) or {
        "name": NAME,
        "critical": True,
        "checks": [],
        "dependencies": [],
        "since": None,
    }
    rows = []
    for name, _path, critical in CHECKS:
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
    """Register the portal as the service ``backend`` with its checks (idempotent)."""
    from healthchecks.schemas import CheckIn
    from services import registry
    from services.schemas import ManifestIn, ServiceIn, TeamIn

    manifest = ManifestIn.model_construct(
        teams=[TeamIn(name=TEAM, display_name="Service portal")],
        services=[
            ServiceIn(
                name=NAME,
                team=TEAM,
                display_name="Service portal (this site)",
                is_critical=True,
                description="The portal itself: web, database, Redis, Celery workers and beat.",
                checks=[
                    CheckIn(
                        name=name,
                        kind="python",
                        target=path,
                        interval=30,
                        timeout=5,
                        critical=critical,
                    )
                    for name, path, critical in CHECKS
                ],
            )
        ],
    )
    registry.apply_manifest(manifest, actor)
