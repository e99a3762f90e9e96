"""Counted security events benchmark: how many refusals a second one hot row takes.

A refusal (an unknown token, a rate-limited request...) from the same address and caller
within a minute is one row with a count (docs/decisions.md, "Counted security events"), so a
flood of them is one UPDATE each on the same row. Four connections -- four web processes'
worth -- count the same refusal as fast as they can for a fixed time, twice:

- **statement**: the UPDATE the portal sends, from four psycopg connections in autocommit --
  what the row itself takes, with the server's fsync and synchronous_commit as they are
  (reported);
- **portal**: ``portal.security.record`` as the middleware calls it (the tally's digest, the
  ORM), four threads of one process -- what one web process can spend on it at most.

Checked after each: every refusal is on the row, none lost.
"""

import threading
import time

import psycopg

from bench import support

NAME = "security_events"
DESCRIPTION = "refusals a second counted on one hot security-event row, 4 connections"
CONNECTIONS = 4
SECONDS = {"full": 20.0, "quick": 3.0}


ADDRESS = "198.51.100.4"


def through_the_portal(counts: list[int], slot: int, until: list[float], barrier) -> None:
    from django.db import connection

    from portal import security
    from portal.requestcontext import client_ip_var

    token = client_ip_var.set(ADDRESS)
    try:
        barrier.wait()
        while time.monotonic() < until[0]:
            security.record(security.Kind.TOKEN_INVALID, "anonymous", "GET /api/services", "x")
            counts[slot] += 1
    finally:
        client_ip_var.reset(token)
        connection.close()


def as_statements(url: str, tally: str):
    """The portal's UPDATE for a repeat, sent as is from a connection of its own."""
    statement = (
        'UPDATE "portal_securityevent" SET "count" = ("portal_securityevent"."count" + 1), '
        '"last_at" = now() WHERE "portal_securityevent"."tally" = %s'
    )

    def send(counts: list[int], slot: int, until: list[float], barrier) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            barrier.wait()
            while time.monotonic() < until[0]:
                conn.execute(statement, [tally])
                counts[slot] += 1

    return send


def hammer(seconds: float, work) -> tuple[int, float]:
    """(refusals counted, seconds taken) by CONNECTIONS threads running ``work``."""
    counts = [0] * CONNECTIONS
    barrier = threading.Barrier(CONNECTIONS + 1)
    until = [0.0]
    threads = [
        threading.Thread(target=work, args=(counts, i, until, barrier)) for i in range(CONNECTIONS)
    ]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    until[0] = started + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    return sum(counts), time.monotonic() - started


def server_settings() -> dict[str, str]:
    from django.db import connection

    with connection.cursor() as cursor:
        found = {}
        for name in ("fsync", "synchronous_commit", "server_version"):
            cursor.execute(f"SHOW {name}")
            found[name] = cursor.fetchone()[0]
    return found


def run(options) -> None:
    url = support.create_database("bench_security_events")
    support.setup_django(url)
    from django.db import connection
    from django.db.models import Sum

    from portal.models import SecurityEvent

    seconds = SECONDS["quick" if options.quick else "full"]
    phases = {}
    for phase in ("portal", "statement"):
        SecurityEvent.objects.all().delete()
        # The first refusal makes the row (and says which tally the statements update).
        through_the_portal([0], 0, [time.monotonic() + 0.001], threading.Barrier(1))
        tally = SecurityEvent.objects.get().tally
        work = through_the_portal if phase == "portal" else as_statements(url, tally)
        connection.close()  # back to the pool: the four threads need its DB_POOL_SIZE (4)
        support.settle(options.wait_idle)
        print(f"{phase}: {CONNECTIONS} connections, one refusal, {seconds:g} s ...", flush=True)
        with support.cpu_usage() as cpu:
            counted, took = hammer(seconds, work)
        stored = SecurityEvent.objects.aggregate(n=Sum("count"))["n"] - 1
        phases[phase] = {
            "seconds": round(took, 2),
            "refusals": counted,
            "rows": SecurityEvent.objects.count(),  # one a minute the phase spans
            "lost": counted - stored,
            "refusals_per_s": round(counted / took),
            "machine_busy_pct": cpu["machine_busy_pct"],
        }
    results = {
        "benchmark": NAME,
        "machine": support.machine_info(url),
        "server": server_settings(),
        "connections": CONNECTIONS,
        "phases": phases,
    }
    support.finish(NAME, results, report, quick=options.quick, smoke=f"({seconds:g} s)")


def report(results: dict) -> None:
    support.print_table(
        f"Counted security events: one hot row, {results['connections']} connections, "
        f"fsync {results['server']['fsync']}, synchronous_commit "
        f"{results['server']['synchronous_commit']}",
        ["phase", "refusals", "seconds", "refusals/s", "lost", "rows", "machine busy %"],
        [
            [
                phase,
                found["refusals"],
                found["seconds"],
                found["refusals_per_s"],
                found["lost"],
                found["rows"],
                found["machine_busy_pct"],
            ]
            for phase, found in results["phases"].items()
        ],
    )
