"""The health benchmark's ``history`` phase: 90 days of rollups for 1,000 services' checks,
then the uptime queries over them, timed."""

import random
from datetime import datetime, timedelta

import psycopg

from bench import support
from bench.health import checksets, harness, measure


def phase_history(bench: harness.Bench) -> None:
    """90 days of daily rollups and 7 days of hourly ones for 1,000 services' checks, then
    services_uptime("90d") for all of them and uptime() of one service, timed."""
    from django.db import connection
    from django.utils import timezone

    from healthchecks.models import CheckRollup, HealthCheck
    from healthchecks.reads import history

    shape = bench.shape
    checks = list(
        HealthCheck.objects.filter(service__name__startswith="http-")
        .order_by("pk")
        .values_list("pk", "service__name")[: shape.http_rate]
    )
    if not checks:  # the http phase did not run: services and checks of our own
        check_set = checksets.create_checks(
            "http", 1000, target="http://127.0.0.1:9/", interval=1, timeout=1.0,
            first_due=timezone.now() + timedelta(days=1),
        )  # fmt: skip
        checks = list(zip(check_set.ids, check_set.services, strict=True))
    ids = [pk for pk, _ in checks]
    print(f"  {len(ids):,} checks: 90 days of daily and 7 days of hourly rollups ...", flush=True)
    CheckRollup.objects.filter(health_check_id__in=ids).delete()
    seconds, rows = support.timed(synthetic_rollups, ids, bench.rng)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE healthchecks_checkrollup")
    with psycopg.connect(bench.url, autocommit=True) as conn:
        sizes = measure.relation_sizes(conn, "healthchecks_checkrollup")
        count = conn.execute("SELECT count(*) FROM healthchecks_checkrollup").fetchone()[0]
    per_row = sizes["total_bytes"] / count
    bench.settle()
    with support.cpu_usage() as cpu_all:
        history.services_uptime("90d")
        all_samples = []
        for _ in range(shape.uptime_repeats):
            elapsed, answer = support.timed(history.services_uptime, "90d")
            all_samples.append(elapsed)
    one = ids[len(ids) // 2]
    with support.cpu_usage() as cpu_one:
        history.uptime([one])
        one_samples = [support.timed(history.uptime, [one])[0] for _ in range(200)]
    detail = history.uptime([one])
    bench.results["history"] = {
        "checks": len(ids),
        "rollup_rows": count,
        "insert_s": round(seconds, 1),
        "inserted_rows": rows,
        **sizes,
        "bytes_per_rollup_row": round(per_row, 1),
        "bytes_per_check_result": {
            f"interval_{i}s": {
                "daily": round(per_row / (86400 / i), 4),
                "hourly": round(per_row / (3600 / i), 4),
            }
            for i in (1, 10, 30, 60)
        },
        "services_uptime_90d": {
            **support.summarise_ms(all_samples),
            "services": len(answer),
            **cpu_all,
        },
        "uptime_one_service_all_windows": {
            **support.summarise_ms(one_samples),
            "windows": list(detail),
            **cpu_one,
        },
    }
    print_history(bench.results["history"])


def synthetic_rollups(ids: list[int], rng: random.Random) -> int:
    """Daily rollups for the 90 days before today and hourly ones for the last 7 days, as
    checks at a 1-second interval would leave: mostly healthy, a few failures, latency
    histograms over history.BUCKETS."""
    from django.utils import timezone

    from healthchecks.models import CheckRollup
    from healthchecks.reads.history import BUCKETS

    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    buckets = len(BUCKETS) + 1

    def rollup(check_id: int, granularity: int, start: datetime, count: int) -> CheckRollup:
        failures = rng.choice([0, 0, 0, 0, 1, 2, 5, 30])
        histogram = [0] * buckets
        histogram[1] = count // 2
        histogram[2] = count // 3
        histogram[3] = count - histogram[1] - histogram[2]
        return CheckRollup(
            health_check_id=check_id,
            granularity=granularity,
            start=start,
            count=count,
            failures=min(failures, count),
            degraded=0,
            latency_sum_us=count * 1500,
            latency_max_us=rng.randint(5_000, 900_000),
            histogram=histogram,
        )

    def rows():
        for check_id in ids:
            for d in range(1, 91):
                yield rollup(check_id, CheckRollup.DAY, today - timedelta(days=d), 86_400)
            for h in range(1, 7 * 24 + 1):
                yield rollup(check_id, CheckRollup.HOUR, hour - timedelta(hours=h), 3_600)

    inserted, batch = 0, []
    for row in rows():
        batch.append(row)
        if len(batch) == 10_000:
            CheckRollup.objects.bulk_create(batch)
            inserted += len(batch)
            batch = []
    CheckRollup.objects.bulk_create(batch)
    return inserted + len(batch)


def print_history(history: dict) -> None:
    print(
        f"  {history['rollup_rows']:,} rollup rows, {history['bytes_per_rollup_row']} bytes each "
        f"(table and index); per check result at a 30 s interval: "
        f"{history['bytes_per_check_result']['interval_30s']}"
    )
    for key in ("services_uptime_90d", "uptime_one_service_all_windows"):
        v = history[key]
        print(f"  {key}: p50 {v['p50_ms']} p99 {v['p99_ms']} max {v['max_ms']} ms (n {v['n']})")
