"""The figures docs/decisions.md states are the ones the portal runs with: a portal started with
nothing set but its database and Redis (a fresh process, as `make run` or the image starts
one) has each documented default; only the tasks the decisions name acknowledge late; and
gunicorn, as the image runs it, refuses only past the ceilings the decisions give, in its own
HTML, while below them the portal answers in its error shape."""

import json

import pytest
from django.conf import settings

from tests.conftest import database_url
from tests.portal.test_settings import run_manage
from tests.system.test_behind_a_proxy import send, start_gunicorn, stop

READ_THEM = """
import json
from django.conf import settings as s
from healthchecks.engine import capacity, trust
from portal import ratelimit
beat = {name: entry["schedule"] for name, entry in s.CELERY_BEAT_SCHEDULE.items()}
print(json.dumps({
    "DB_POOL_SIZE": s.DB_POOL_SIZE,
    "DB_CONNECT_TIMEOUT": s.DB_CONNECT_TIMEOUT,
    "DB_STATEMENT_TIMEOUT": s.DB_STATEMENT_TIMEOUT,
    "DB_POOL_TIMEOUT": s.DB_POOL_TIMEOUT,
    "DB_READ_TIMEOUT": s.DB_READ_TIMEOUT,
    "pool_check_timeout": __import__("portal.database", fromlist=["x"]).CHECK_SECONDS,
    "CONFIG_VALIDATION_SECONDS": s.CONFIG_VALIDATION_SECONDS,
    "HEALTH_VACUUM_SECONDS": s.HEALTH_VACUUM_SECONDS,
    "HEALTH_DISPATCH_LOOKAHEAD": s.HEALTH_DISPATCH_LOOKAHEAD,
    "HEALTH_CHECK_TIMEOUT_MAX": s.HEALTH_CHECK_TIMEOUT_MAX,
    "visibility_timeout": s.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"],
    "unacked_restore_interval": s.CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_interval"],
    "HEALTH_PROBE_WORKER_NICENESS": s.HEALTH_PROBE_WORKER_NICENESS,
    "HEALTH_CHECKER_LAG_MS": s.HEALTH_CHECKER_LAG_MS,
    "HEALTH_ON_TIME_MS": s.HEALTH_ON_TIME_MS,
    "HEALTH_FLUSH_SECONDS": s.HEALTH_FLUSH_SECONDS,
    "AUTOMATION_GROUP_SECONDS": s.AUTOMATION_GROUP_SECONDS,
    "API_MAX_HEADER_BYTES": s.API_MAX_HEADER_BYTES,
    "API_MAX_HEADERS_TOTAL_BYTES": s.API_MAX_HEADERS_TOTAL_BYTES,
    "API_MAX_URL_BYTES": s.API_MAX_URL_BYTES,
    "beat": beat,
    "loop_watch_tick": trust.LoopWatch().tick,
    "decide_window": capacity.DECIDE_WINDOW,
    "on_time_target": capacity.ON_TIME_TARGET,
    "fast_growth": capacity.FAST_GROWTH,
    "slow_growth": capacity.SLOW_GROWTH,
    "ceiling_seconds": capacity.CEILING_SECONDS,
    "local_adapt_seconds": ratelimit.ADAPT_SECONDS,
}))
"""

# What docs/decisions.md says, section by section.
DOCUMENTED = {
    # "The database": DB_POOL_SIZE, 4 per process; DB_CONNECT_TIMEOUT (3 s);
    # DB_STATEMENT_TIMEOUT (30 s); DB_POOL_TIMEOUT (3 s); DB_READ_TIMEOUT (4 s) in a request,
    # 1 s for the pool's check at checkout.
    "DB_POOL_SIZE": 4,
    "DB_CONNECT_TIMEOUT": 3,
    "DB_STATEMENT_TIMEOUT": 30,
    "DB_POOL_TIMEOUT": 3,
    "DB_READ_TIMEOUT": 4,
    "pool_check_timeout": 1,
    # "Schemas are checked whole": CONFIG_VALIDATION_SECONDS, 2 s.
    "CONFIG_VALIDATION_SECONDS": 2,
    # "The portal vacuums its own hot tables": HEALTH_VACUUM_SECONDS (60).
    "HEALTH_VACUUM_SECONDS": 60,
    # "Claim ahead": claims what is due in the next two seconds.
    "HEALTH_DISPATCH_LOOKAHEAD": 2,
    # "A lost worker's batch": the longest check timeout, 60 s; 92 s; swept every 5 s.
    "HEALTH_CHECK_TIMEOUT_MAX": 60,
    "visibility_timeout": 92,
    "unacked_restore_interval": 5,
    # "Probing yields the CPU to the web": nice 10.
    "HEALTH_PROBE_WORKER_NICENESS": 10,
    # "An overloaded checker says so": 250 ms behind; on time within 250 ms; workers report
    # as they record, every 250 ms.
    "HEALTH_CHECKER_LAG_MS": 250,
    "HEALTH_ON_TIME_MS": 250,
    "HEALTH_FLUSH_SECONDS": 0.25,
    # "Alerts act on state": AUTOMATION_GROUP_SECONDS (30 s by default).
    "AUTOMATION_GROUP_SECONDS": 30,
    # "Behind a proxy": a header of 8,192 bytes, 32 KiB in all, a URI of 8,000.
    "API_MAX_HEADER_BYTES": 8192,
    "API_MAX_HEADERS_TOTAL_BYTES": 32 * 1024,
    "API_MAX_URL_BYTES": 8000,
    # "An overloaded checker says so": a task that asks to wake every 50 ms; fewer than 95 %
    # on time over the last 3 s; grows back by a quarter, by a twentieth near the level that
    # proved too much, which it forgets 15 s after the last lateness.
    "loop_watch_tick": 0.05,
    "decide_window": 3,
    "on_time_target": 0.95,
    "fast_growth": 1.25,
    "slow_growth": 1.05,
    "ceiling_seconds": 15,
    # "Stress is the portal's own trouble": without Redis, each web process every 15 s.
    "local_adapt_seconds": 15,
}
DOCUMENTED_BEAT = {
    "dispatch-due-checks": 1,  # "The dispatcher runs every second"
    "vacuum-hot-tables": 60,  # "every HEALTH_VACUUM_SECONDS (60)"
    "apply-maintenance-windows": 15,  # "a beat task every 15 s"
    "adapt-rate-limits": 15,  # the adaptation step, every 15 s
}


def test_a_portal_started_without_settings_runs_with_the_documented_figures():
    started = run_manage(
        "shell",
        "--no-imports",
        "-c",
        READ_THEM,
        PORTAL_ENV_FILE="",
        DEBUG="true",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
    )
    assert started.returncode == 0, started.stderr
    running = json.loads(started.stdout)
    beat = running.pop("beat")
    assert running == DOCUMENTED
    assert {name: beat.get(name) for name in DOCUMENTED_BEAT} == DOCUMENTED_BEAT


def test_only_probe_batches_and_the_dispatcher_acknowledge_late():
    """A late-acknowledged task whose worker is lost is handed out again after the
    visibility timeout (or at once, when its process died): right for a probe batch and the
    dispatcher, whose slots would be lost; wrong for housekeeping and automation, whose next
    run (beat sends them every few seconds) does the same work from the database."""
    from portal.celery import app

    app.loader.import_default_modules()
    late = sorted(
        name
        for name, task in app.tasks.items()
        if not name.startswith("celery.") and task.acks_late
    )
    assert late == ["healthchecks.tasks.dispatch_due_checks", "healthchecks.tasks.probe_batch"]


@pytest.fixture(scope="module")
def gunicorn(django_db_setup):
    server, port = start_gunicorn()
    yield port
    stop(server)


def _is_the_portals(answer: tuple[int, str, bytes]) -> bool:
    _status, kind, body = answer
    return kind == "application/json" and "error" in json.loads(body)


def test_gunicorn_as_shipped_has_the_documented_ceilings(gunicorn):
    """Past gunicorn's ceilings (a request line over 8,190 bytes, one header over 33 KiB, more
    than 100 header fields) gunicorn answers, not in the error shape; at them, the portal
    answers (here: its own 414 and 431, in the error shape)."""
    line = len("GET  HTTP/1.1")
    at_ceiling = send(gunicorn, "GET", "/api/" + "a" * (8190 - line - 5), {})
    assert at_ceiling[0] == 414 and _is_the_portals(at_ceiling), at_ceiling[:2]
    over = send(gunicorn, "GET", "/api/" + "a" * (8191 - line - 5), {})
    assert over[0] >= 400 and not _is_the_portals(over), over[:2]

    field = len("X-Big: ") + len("\r\n")
    at_ceiling = send(gunicorn, "GET", "/api/services", {"X-Big": "a" * (33 * 1024 - field)})
    assert at_ceiling[0] == 431 and _is_the_portals(at_ceiling), at_ceiling[:2]
    over = send(gunicorn, "GET", "/api/services", {"X-Big": "a" * (33 * 1024 - field + 1)})
    assert over[0] >= 400 and not _is_the_portals(over), over[:2]

    # The Host header the client sends is one of the fields.
    many = {f"X-F{i}": "1" for i in range(99)}
    answered = send(gunicorn, "GET", "/api/nothing-here", many)
    assert answered[0] == 404 and _is_the_portals(answered), answered[:2]
    over = send(gunicorn, "GET", "/api/nothing-here", {**many, "X-F99": "1"})
    assert over[0] >= 400 and not _is_the_portals(over), over[:2]
