"""The health benchmark's throughput phases, ``http``, ``https`` and ``slow``, and the way each
runs (``throughput_phase``: the engine started, the checks created, a window measured); with
``http``, the open health API timed through gunicorn while the checks run and with the engine
stopped, and the storage of the raw results and their rollups."""

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg

from bench import support
from bench.health import checksets, harness, measure


def throughput_phase(
    bench: harness.Bench,
    name: str,
    check_sets: Callable[[datetime], list[checksets.CheckSet]],
    duration: float,
    during: Callable[[harness.Bench, list[checksets.CheckSet], support.Server | None], dict]
    | None = None,
    after: Callable[[harness.Bench, list[checksets.CheckSet], support.Server | None], dict]
    | None = None,
    with_server: bool = False,
    started: Callable[[harness.Bench, harness.Processes], None] | None = None,
) -> dict:
    """Start the engine (then run ``started``, which may start processes of its own in the
    phase's ``Processes``: they are measured with the engine's and stopped with them), create
    the phase's checks (first due a few seconds later), wait out the warm-up, measure
    ``duration`` seconds (running ``during`` meanwhile), wait for what was due in the window
    to be recorded, stop the engine (then run ``after``, the server still up) and analyse
    every check set."""
    from django.db import connections

    shape = bench.shape
    log_dir = bench.work_dir / f"logs-{name}"
    log_dir.mkdir()
    processes = harness.Processes(log_dir)
    engine = harness.Engine(bench, processes)
    bench.settle()
    support.flush_redis(harness.REDIS_INDEX)
    server_context = support.gunicorn(bench.url, 2, env=bench.env()) if with_server else None
    server = server_context.__enter__() if server_context else None
    try:
        engine.start()
        if started is not None:
            started(bench, processes)
        first_due = datetime.now(UTC) + timedelta(seconds=3)
        sets = check_sets(first_due)
        # Without it the first minute ran on plans for empty tables, until the portal's own
        # vacuum task first analyzed them: PostgreSQL 297 instead of 141 µs per check, the
        # overview's p99 41 instead of 21 ms (--quick, whose window is that first minute).
        support.analyze()
        connections.close_all()
        start = first_due + timedelta(seconds=shape.warmup)
        end = start + timedelta(seconds=duration)
        roots = processes.pids()
        if server is not None:
            roots["gunicorn (master + 2 workers)"] = server.process.pid
        monitor = measure.Monitor(
            {harness.process_label(n): pid for n, pid in roots.items()},
            bench.url,
            [i for s in sets for i in s.ids],
        )
        harness.sleep_until(start)
        print(f"  measuring {duration:.0f} s from {start:%H:%M:%S} ...", flush=True)
        monitor.start()
        extra = during(bench, sets, server) if during else {}
        if datetime.now(UTC) > end:
            print("  (the measurement during the window ran past its end)", flush=True)
        harness.sleep_until(end)
        snapshots = {s.name: measure.state_snapshot(bench.url, s) for s in sets}
        figures = monitor.stop()
        for check_set in sets:
            measure.wait_until_recorded(
                bench.url,
                check_set,
                end,
                sum(measure.due_times(f, check_set.interval, min(check_set.first_due.values()), end)
                    for f in check_set.first_due.values()),
                timeout=15,
            )  # fmt: skip
        analysis = {s.name: measure.analyse(bench.url, s, start, end) for s in sets}
        for name, snapshot in snapshots.items():
            analysis[name]["state_at_window_end"] = snapshot
        engine.stop()
        if after is not None:
            extra.update(after(bench, sets, server))
    finally:
        engine.stop()
        if server_context is not None:
            server_context.__exit__(None, None, None)
        processes.stop_all()
    result = {
        "checks": {s.name: {"count": len(s.ids), "interval_s": s.interval} for s in sets},
        "results": analysis,
        "resources": figures,
        "staleness_max_s": max(
            (s["oldest_s"] for s in figures["staleness"] if s["oldest_s"] is not None),
            default=None,
        ),
        "batches": measure.summarise_heartbeats(figures["heartbeats"]),
        "batch_log": measure.batch_log(processes, start, end),
        "log_problems": measure.log_problems(processes, start, end),
        **extra,
    }
    result["cpu_us_per_check"] = measure.cpu_per_check(result)
    checksets.disable(sets)
    return result


def phase_http(bench: harness.Bench) -> None:
    shape = bench.shape
    url = f"http://127.0.0.1:{bench.ports['http']}/health"

    def checks(first_due: datetime) -> list[checksets.CheckSet]:
        return [
            checksets.create_checks(
                "http", shape.http_rate, target=url, interval=1, timeout=1.0, first_due=first_due
            )
        ]

    result = throughput_phase(
        bench,
        "http",
        checks,
        shape.duration,
        during=measure_api,
        after=measure_api_idle,
        with_server=True,
    )
    bench.results["http"] = result
    measure.print_phase("http", result)
    print("  storage of the raw results and their rollups ...", flush=True)
    bench.results["storage"] = measure_storage(bench, result["results"]["http"])


def phase_https(bench: harness.Bench) -> None:
    shape = bench.shape
    url = f"https://127.0.0.1:{bench.ports['https']}/health"

    def checks(first_due: datetime) -> list[checksets.CheckSet]:
        return [
            checksets.create_checks(
                "https",
                shape.https_rate,
                target=url,
                interval=1,
                timeout=1.0,
                first_due=first_due,
                options={"verify_tls": False},
            )
        ]

    result = throughput_phase(bench, "https", checks, shape.duration)
    bench.results["https"] = result
    measure.print_phase("https", result)


def phase_slow(bench: harness.Bench) -> None:
    shape = bench.shape
    ok = f"http://127.0.0.1:{bench.ports['http']}/health"
    hang = f"http://127.0.0.1:{bench.ports['hang']}/health"

    def checks(first_due: datetime) -> list[checksets.CheckSet]:
        return [
            checksets.create_checks(
                "slow-ok", shape.http_rate, target=ok, interval=1, timeout=1.0, first_due=first_due
            ),
            # All due at the same instants (half a second into an interval): one batch of
            # ~500 holds all 100, which take their 5-second timeout.
            checksets.create_checks(
                "slow-hang",
                shape.hang_checks,
                target=hang,
                interval=shape.hang_interval,
                timeout=5.0,
                first_due=first_due + timedelta(seconds=0.5),
                spread=False,
            ),
        ]

    result = throughput_phase(bench, "slow", checks, shape.slow_duration)
    bench.results["slow"] = result
    measure.print_phase("slow", result)


def measure_api(
    bench: harness.Bench, sets: list[checksets.CheckSet], server: support.Server
) -> dict:
    """/health/, /health/service/{name} and /health/services (1,000 services, then 10,000)
    through gunicorn while the checks run, one client on one connection."""
    shape = bench.shape
    harness.sleep_until(datetime.now(UTC) + timedelta(seconds=shape.api_start))
    client = support.Client(server.port)
    services = sets[0].services
    listing = client.get("/health/services").json()
    if len(listing["services"]) != len(services):
        raise RuntimeError(f"/health/services lists {len(listing['services'])} services")
    print("  API: /health/, /health/service/{name}, /health/services ...", flush=True)
    api = {
        **time_root_and_service(bench, client, services),
        "services_1000": time_overview(bench, client),
    }
    print(f"  adding {shape.extra_services:,} services ...", flush=True)
    checksets.add_services(shape.extra_services)
    listing = client.get("/health/services").json()
    api["services_10000"] = time_overview(bench, client)
    api["services_10000"]["services"] = len(listing["services"])
    api["services_1000"]["services"] = len(services)
    client.close()
    return {"api": api}


def measure_api_idle(
    bench: harness.Bench, sets: list[checksets.CheckSet], server: support.Server
) -> dict:
    """The same requests with the engine stopped (the machine otherwise idle): what the
    requests cost by themselves. /health/services with 10,000 services, then with the extra
    services deleted again, with 1,000."""
    from services.models import Service

    bench.settle()
    print("  API with the engine stopped ...", flush=True)
    client = support.Client(server.port)
    idle = {
        **time_root_and_service(bench, client, sets[0].services),
        "services_10000": time_overview(bench, client),
    }
    Service.objects.filter(name__startswith="extra-").delete()
    idle["services_1000"] = time_overview(bench, client)
    client.close()
    return {"api_idle": idle}


CHUNK = 100  # API requests per block (each block's machine load is recorded)
API_WARMUP = 20  # requests per path before the measured ones


def time_root_and_service(
    bench: harness.Bench, client: support.Client, services: list[str]
) -> dict:
    """/health/ and /health/service/{a random one of ``services``}."""
    count = bench.shape.api_requests + API_WARMUP
    return {
        "root": time_gets(client, ["/health/"] * count, API_WARMUP),
        "service": time_gets(
            client,
            [f"/health/service/{bench.rng.choice(services)}" for _ in range(count)],
            API_WARMUP,
        ),
    }


def time_overview(bench: harness.Bench, client: support.Client) -> dict:
    count = bench.shape.api_requests + API_WARMUP
    return time_gets(client, ["/health/services"] * count, API_WARMUP)


def time_gets(client: support.Client, paths: list[str], warmup: int) -> dict:
    """GET each path in turn; the first ``warmup`` are not measured. /health/service/{name}
    answers 503 when the service is not usable: counted, not an error."""

    def get(path: str) -> support.Response:
        response = client.request("GET", path, expect=(200, 503))
        statuses["503"] += response.status == 503
        return response

    statuses = {"503": 0}
    for path in paths[:warmup]:
        get(path)
    statuses["503"] = 0
    samples, sizes, busy = [], [], []
    measured = paths[warmup:]
    started = time.perf_counter()
    for block in range(0, len(measured), CHUNK):
        with support.cpu_usage() as cpu:
            for path in measured[block : block + CHUNK]:
                response = get(path)
                samples.append(response.seconds)
                sizes.append(len(response.body))
        busy.append(cpu["machine_busy_pct"])
    return {
        "status_503": statuses["503"],
        **support.summarise_ms(samples),
        "requests_per_s": round(len(measured) / (time.perf_counter() - started), 1),
        "machine_busy_pct": round(sum(busy) / len(busy), 1),
        "mean_response_bytes": round(sum(sizes) / len(sizes)),
        "example": measured[0],
    }


def measure_storage(bench: harness.Bench, analysis: dict) -> dict:
    """Bytes per raw result (the table right after the http phase: its results and
    warm-up); then the hourly and daily rollups of those results, their time and size."""
    from django.utils import timezone

    from healthchecks.reads import history

    with psycopg.connect(bench.url, autocommit=True) as conn:
        rows = conn.execute("SELECT count(*) FROM healthchecks_checkresult").fetchone()[0]
        raw = measure.relation_sizes(conn, "healthchecks_checkresult")
        conn.execute("VACUUM ANALYZE healthchecks_checkresult")
        after_vacuum = measure.relation_sizes(conn, "healthchecks_checkresult")
    storage = {
        "raw": {
            "rows": rows,
            **raw,
            "bytes_per_result": round(raw["total_bytes"] / rows, 1),
            "table_bytes_per_result": round(raw["table_bytes"] / rows, 1),
            "indexes_bytes_per_result": round(raw["indexes_bytes"] / rows, 1),
            "after_vacuum_bytes_per_result": round(after_vacuum["total_bytes"] / rows, 1),
        }
    }
    since = datetime.fromisoformat(analysis["window"]["start"]) - timedelta(hours=1)
    seconds, hours = support.timed(history.rollup_hours, since)
    day_seconds, days = support.timed(history.rollup_days, since)
    seconds_again, _ = support.timed(history.rollup_hours, timezone.now() - timedelta(hours=2))
    with psycopg.connect(bench.url, autocommit=True) as conn:
        by_granularity = dict(
            conn.execute(
                "SELECT granularity, sum(count) FROM healthchecks_checkrollup GROUP BY 1"
            ).fetchall()
        )
        rollup_rows = dict(
            conn.execute(
                "SELECT granularity, count(*) FROM healthchecks_checkrollup GROUP BY 1"
            ).fetchall()
        )
        rollups = measure.relation_sizes(conn, "healthchecks_checkrollup")
    total_rows = sum(rollup_rows.values())
    per_row = rollups["total_bytes"] / total_rows
    summarised = int(by_granularity.get(1, 0))
    storage["rollups_of_this_run"] = {
        "rollup_hours_s": round(seconds, 2),
        "rollup_hours_rows": hours,
        "rollup_hours_again_last_2h_s": round(seconds_again, 2),
        "rollup_days_s": round(day_seconds, 2),
        "rollup_days_rows": days,
        "raw_results_summarised": summarised,
        **rollups,
        "bytes_per_rollup_row": round(per_row, 1),
        "hourly_bytes_per_result": round(per_row * rollup_rows.get(1, 0) / summarised, 3),
        "daily_bytes_per_result": round(per_row * rollup_rows.get(2, 0) / summarised, 3),
    }
    return storage
