"""Built-in callables for "python" checks (the default HEALTH_CALLABLE_PREFIXES).

A check callable takes no arguments and returns a bool, a Status, a status word ("healthy",
"degraded", "unhealthy") or a dict {"status", "details", "errors", "warnings", "metrics"};
it may be async. The portal's own checks (service ``backend``, healthchecks.watch.selfcheck) are
here: they must be defined in this module, since only callables defined under an allowed
prefix may run.
"""

import asyncio
import time

import psycopg
import redis as redis_lib
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from healthchecks.engine import capacity
from portal import heartbeats

# A minute of the engine's reports: long enough that a second's hiccup is not an incident.
CAPACITY_WINDOW = 60.0


def always_healthy() -> bool:
    """A check that always passes: proves the python-check path works end to end."""
    return True


# How long the database may take to accept a connection and answer SELECT 1 before it is
# reported unhealthy: the portal's readiness (/health/service/backend) must answer a probe
# within two seconds even when PostgreSQL hangs.
DATABASE_PING_SECONDS = 1.0
# Connection parameters Django adds that are not libpq's (and would not suit an async
# connection): everything else is passed as is.
_NOT_CONNINFO = {"cursor_factory", "context", "prepare_threshold", "server_side_binding", "pool"}


def database() -> dict:
    """A fresh connection and ``SELECT 1`` within DATABASE_PING_SECONDS. On PostgreSQL it runs
    on its own event loop, so a server that accepts connections and never answers costs
    exactly the budget, and nothing (no thread, no pooled connection) is left waiting."""
    if connection.vendor != "postgresql":
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception as exc:  # any driver error means the same thing here
            return {"status": "unhealthy", "errors": [f"database: {type(exc).__name__}: {exc}"]}
        return _with_schema({"status": "healthy", "details": {"vendor": connection.vendor}})
    params = {k: v for k, v in connection.get_connection_params().items() if k not in _NOT_CONNINFO}
    try:
        asyncio.run(_ping(params))
    except TimeoutError:
        message = f"database: no answer within {DATABASE_PING_SECONDS:g}s"
        return {"status": "unhealthy", "errors": [message]}
    except Exception as exc:  # refused, unknown host, authentication...
        reason = " ".join(str(exc).split())[:300]
        return {"status": "unhealthy", "errors": [f"database: {type(exc).__name__}: {reason}"]}
    return _with_schema({"status": "healthy", "details": {"vendor": connection.vendor}})


# How long a process trusts its last look at the migrations: readiness is probed every few
# seconds by every pod, and the plan reads the migration files' graph and a table each time.
MIGRATIONS_CACHE_SECONDS = 10.0
_migrations_seen: tuple[float, list[str]] | None = None


def unapplied_migrations() -> list[str]:
    """The migrations this code has that the database has not applied ("app.name"), as
    ``migrate`` would run them; looked at again after MIGRATIONS_CACHE_SECONDS."""
    global _migrations_seen
    now = time.monotonic()
    if _migrations_seen is not None and now - _migrations_seen[0] < MIGRATIONS_CACHE_SECONDS:
        return _migrations_seen[1]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    pending = [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]
    _migrations_seen = (now, pending)
    return pending


def forget_migrations_seen() -> None:
    """Look at the migrations afresh on the next check (tests, after migrate)."""
    global _migrations_seen
    _migrations_seen = None


def _with_schema(result: dict) -> dict:
    """A database this code cannot use yet -- a migration not applied, as when pods of a new
    release start before its migrations ran -- is no database to serve from: unhealthy, so
    readiness keeps the pod out of the Service until ``manage.py upgrade`` has run."""
    try:
        pending = unapplied_migrations()
    except Exception as exc:  # the plan's read failed: the database is not usable either
        reason = " ".join(str(exc).split())[:300]
        return {"status": "unhealthy", "errors": [f"migrations unreadable: {reason}"]}
    if not pending:
        return result
    shown = ", ".join(pending[:5]) + (f" and {len(pending) - 5} more" if len(pending) > 5 else "")
    return {
        "status": "unhealthy",
        "details": {**result["details"], "unapplied_migrations": pending},
        "errors": [f"{len(pending)} migration(s) not applied: {shown} (run manage.py upgrade)"],
    }


async def _ping(params: dict) -> None:
    async with asyncio.timeout(DATABASE_PING_SECONDS):
        conn = await psycopg.AsyncConnection.connect(autocommit=True, **params)
        try:
            await conn.execute("SELECT 1")
        finally:
            await conn.close()


def redis() -> dict:
    if not settings.REDIS_URL:
        return {"status": "healthy", "details": {"mode": "embedded broker, no Redis"}}
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


def probe_capacity() -> dict:
    """Can the probe workers start what comes due on time? When they cannot -- the engine
    sheds load, or outcomes are not believed -- the portal says so, as itself: the targets'
    statuses stay what the probes could vouch for."""
    seen = capacity.pressure(CAPACITY_WINDOW)
    if seen is None:
        return {"status": "healthy", "details": {"measured": "no (embedded mode, no Redis)"}}
    metrics = {
        "due_per_s": round(seen.due_per_s, 1),
        "started_on_time_per_s": round(seen.on_time_per_s, 1),
        "skipped_per_s": round(seen.skipped_per_s, 1),
        "overloaded_per_s": round(seen.overloaded_per_s, 1),
        "loop_lag_ms": seen.loop_lag_ms,
    }
    if seen.behind or seen.skipped_per_s or seen.overloaded_per_s:
        return {"status": "degraded", "metrics": metrics, "errors": [seen.describe()]}
    return {"status": "healthy", "metrics": metrics}


def scheduler() -> dict:
    """Is the dispatcher running on time?"""
    expected = settings.HEALTH_DISPATCH_SECONDS
    return _age_check(("dispatcher",), expected * 3 + 2, 30, "dispatcher (beat)")
