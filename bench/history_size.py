"""How much PostgreSQL a day of health history takes per 1,000 checks (for docs/operating.md).

Not one of `make bench`'s benchmarks: a measurement of storage only, fast enough to repeat.
On a database of its own (``portal_bench_history``), 1,000 services with one HTTP check each
get ``--hours`` of results at ``--interval`` seconds, written by the engine's own recording
(``healthchecks.engine.recording.record``, a flush of 1,000 results per slot, as a worker writes
them), ``--fail-pct`` of them failures with an error text (those also write a detail row, a
status change and incident rows). Then the hourly and daily rollups are computed as beat does,
the tables are vacuumed, and ``pg_total_relation_size`` (table, indexes and TOAST) of each
history table is divided by its rows. The figures are scaled to one day and to the default
retention.

    .venv/bin/python -m bench.history_size                  # 1,000 checks, 2 h at 30 s
    .venv/bin/python -m bench.history_size --hours 1 --interval 60

Results: bench/results/history-size.json.
"""

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

from bench import support

CHECKS = 1000
TABLES = {
    "raw": "healthchecks_checkresult",
    "detail": "healthchecks_resultdetail",
    "rollup": "healthchecks_checkrollup",
    "status_change": "healthchecks_statuschange",
    "incident": "healthchecks_incident",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=2.0, help="history to write (default 2)")
    parser.add_argument("--interval", type=int, default=30, help="check interval, s (30)")
    parser.add_argument("--fail-pct", type=float, default=1.0, help="failing results, %% (1)")
    return parser.parse_args()


def make_checks(interval: int) -> list[int]:
    from healthchecks.models import CheckState, HealthCheck
    from services.models import Service, Team

    team = Team.objects.create(name="bench")
    services = Service.objects.bulk_create(
        Service(name=f"svc-{i:04d}", team=team) for i in range(CHECKS)
    )
    checks = HealthCheck.objects.bulk_create(
        HealthCheck(
            service=s,
            name="http",
            kind="http",
            target=f"http://10.0.0.1/{s.name}",
            interval=interval,
        )
        for s in services
    )
    CheckState.objects.bulk_create(CheckState(health_check=c) for c in checks)
    return [c.pk for c in checks]


def write_history(
    ids: list[int], start: datetime, slots: int, interval: int, fail_pct: float
) -> int:
    from healthchecks.engine import recording
    from healthchecks.probes import ProbeOutcome
    from healthchecks.status import ErrorCode, Status

    rng = random.Random(1)
    healthy = ProbeOutcome(Status.HEALTHY, response_ms=12.5)
    failed = ProbeOutcome(
        Status.UNHEALTHY,
        response_ms=3000.0,
        errors=["connection refused"],
        error_code=ErrorCode.REFUSED,
    )
    failed_count = 0
    for slot in range(slots):
        due = start + timedelta(seconds=slot * interval)
        results = []
        for check_id in ids:
            outcome = failed if rng.random() * 100 < fail_pct else healthy
            failed_count += outcome is failed
            started = due + timedelta(milliseconds=rng.randint(0, 20))
            results.append(recording.Result(check_id, due, started, outcome))
        recording.record(results)
    return failed_count


def sizes() -> dict[str, dict]:
    from django.db import connection

    found = {}
    with connection.cursor() as cursor:
        for name, table in TABLES.items():
            cursor.execute(f"VACUUM ANALYZE {table}")
            cursor.execute(
                f"SELECT count(*), pg_total_relation_size(%s), pg_relation_size(%s) FROM {table}",  # noqa: S608
                [table, table],
            )
            rows, total, heap = cursor.fetchone()
            found[name] = {
                "table": table,
                "rows": rows,
                "total_bytes": total,
                "heap_bytes": heap,
                "bytes_per_row": round(total / rows, 1) if rows else None,
            }
        cursor.execute(
            "SELECT granularity, count(*) FROM healthchecks_checkrollup GROUP BY granularity"
        )
        found["rollup"]["rows_by_granularity"] = dict(cursor.fetchall())
    return found


def per_day(before: dict, after: dict, options, failed: int, settings) -> dict:
    """Bytes a day of history takes for 1,000 checks, and what the default retention keeps.
    Raw rows scale with results; detail rows, status changes and incidents with failures
    (here every failure is an episode of its own: failed, then recovered)."""
    grew = {k: after[k]["total_bytes"] - before[k]["total_bytes"] for k in TABLES}
    results = after["raw"]["rows"] - before["raw"]["rows"]
    results_per_day = CHECKS * 86_400 / options.interval
    mb = 1_000_000
    raw = grew["raw"] / results * results_per_day
    per_failure = sum(grew[k] for k in ("detail", "status_change", "incident")) / failed
    rollup_row = after["rollup"]["bytes_per_row"]
    hourly, daily = CHECKS * 24 * rollup_row, CHECKS * rollup_row
    keep = {
        "raw_days": settings.HEALTH_RAW_RETENTION_DAYS,
        "hourly_days": settings.HEALTH_HOURLY_RETENTION_DAYS,
        "daily_days": settings.HEALTH_DAILY_RETENTION_DAYS,
    }
    return {
        "results_per_day": round(results_per_day),
        "raw_bytes_per_result": round(grew["raw"] / results, 1),
        "raw_mb_per_day": round(raw / mb, 1),
        "bytes_per_failure_episode": round(per_failure),
        "rollup_bytes_per_row": rollup_row,
        "hourly_rollups_mb_per_day": round(hourly / mb, 2),
        "daily_rollups_mb_per_day": round(daily / mb, 3),
        "retention_days": keep,
        "retained_mb": {
            "raw": round(raw * keep["raw_days"] / mb),
            "hourly_rollups": round(hourly * keep["hourly_days"] / mb),
            "daily_rollups": round(daily * keep["daily_days"] / mb),
        },
    }


def main() -> None:
    options = parse_args()
    url = support.create_database("portal_bench_history")
    support.setup_django(url)
    from django.conf import settings

    from healthchecks.reads import history

    ids = make_checks(options.interval)
    slots = int(options.hours * 3600 / options.interval)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(seconds=slots * options.interval)
    # One healthy slot first: every check's and service's first status change is a one-off,
    # not history that grows; the measurement starts after it.
    write_history(ids, start - timedelta(seconds=options.interval), 1, options.interval, 0)
    before = sizes()
    began = time.monotonic()
    failed = write_history(ids, start, slots, options.interval, options.fail_pct)
    wrote_s = time.monotonic() - began
    history.rollup_hours(start, end)
    history.rollup_days(start)
    after = sizes()
    results = {
        "benchmark": "history-size",
        "machine": support.machine_info(url),
        "shape": {
            "checks": CHECKS,
            "hours": options.hours,
            "interval_s": options.interval,
            "fail_pct": options.fail_pct,
            "failed_results": failed,
            "write_s": round(wrote_s, 1),
        },
        "before": before,
        "after": after,
        "per_1000_checks": per_day(before, after, options, failed, settings),
    }
    path = support.write_results("history-size", results)
    for name, row in after.items():
        print(
            f"{name:14} {row['rows']:>9,} rows {row['total_bytes']:>12,} B {row['bytes_per_row']}"
        )
    print(results["per_1000_checks"])
    print(f"written to {path}")


if __name__ == "__main__":
    main()
