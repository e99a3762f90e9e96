"""Health-check engine benchmark: real Celery processes probing real targets at 1,000/s.

Targets (from the issue), with PostgreSQL, Redis and Celery on this 2-core machine and the
probe targets on 127.0.0.1:

- at least 1,000 HTTP checks per second sustained for 10 minutes, each claimed, probed with
  a new TCP connection, recorded in PostgreSQL and reflected in the current status, with 0
  missed checks; at least 500/s with a fresh TLS handshake each;
- lag (probe start minus due time) p99 under 250 ms at that rate; a slow batch (targets that
  time out) must not delay the next one;
- while checks run at 1,000/s, through a real HTTP server: /health/services p99 under 25 ms
  for 1,000 services and under 150 ms for 10,000; /health/service/{name} under 10 ms;
  /health/ under 5 ms;
- raw results at most 100 bytes each (table and indexes); long-term rollups at most 2 bytes
  per check summarised; 90-day uptime of 1,000 services under 150 ms, of one under 5 ms.

Phases (``--phases``, default all, in this order): ``http`` (1,000 checks/s over plain HTTP
for ``--duration`` seconds, the API measured meanwhile, then raw and rollup storage),
``https`` (500/s, a TLS handshake per probe), ``slow`` (1,000/s plus 100 checks whose target
never answers, all due at once, so that one batch holds 100 probes timing out): all three in
``throughput``; ``history`` (90 days of rollups for 1,000 services; uptime queries:
``history``), ``capacity`` and ``contended`` (overload: ``contended``), ``automation`` (the
engine's lag while the automation handles outages of a shared dependency of 1,000 services:
``automation_lag``). Each throughput phase starts the engine afresh -- Celery beat, a
dispatcher worker, a prefork probe worker, the targets -- and stops it by the PIDs it started.

The package imports one way (an import-linter contract, ``make lint``): this module, the
entry point, imports the phases; the phases import ``measure`` (sampling and analysis),
``checksets`` (the checks a phase creates) and ``harness`` (the shape of a run and the
processes it starts); ``harness`` imports only ``bench.support``.

Works on its own database (``portal_bench_health``, recreated each run) and Redis database
10 (flushed). Application modules are imported inside functions, once ``support.setup_django``
has pointed Django at that database.
"""

import functools
import random
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from bench import support
from bench.health import automation_lag, contended, harness, history, throughput
from bench.probes import write_certificate

NAME = "health"
DESCRIPTION = "the health-check engine at 1,000 checks/s: throughput, lag, API, storage"
DATABASE = "portal_bench_health"
SEED = 20240603
PHASES = ("http", "https", "slow", "history", "capacity", "contended", "automation")


def add_arguments(parser) -> None:
    group = parser.add_argument_group("health benchmark")
    group.add_argument(
        "--phases", default=",".join(PHASES), help=f"comma-separated, of: {', '.join(PHASES)}"
    )
    group.add_argument("--duration", type=float, help="measured seconds of http and https")
    group.add_argument("--slow-duration", type=float, help="measured seconds of the slow phase")
    group.add_argument("--http-rate", type=int, help="checks per second over plain HTTP")
    group.add_argument("--https-rate", type=int, help="checks per second over HTTPS")
    group.add_argument("--probe-processes", type=int, help="celery -c of the probe worker")
    group.add_argument("--target-processes", type=int, help="target server processes")
    group.add_argument("--contended-rate", type=int, help="checks per second, contended phase")
    group.add_argument("--hog-seconds", type=float, help="how long the contended phase's hog runs")
    group.add_argument("--automation-rate", type=int, help="checks per second, automation phase")
    group.add_argument(
        "--automation-stretch",
        type=float,
        help="seconds of each of the automation phase's four stretches (quiet, outages alone, "
        "outages with the automation, quiet)",
    )
    group.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the processes' logs (their folder is printed) instead of deleting them",
    )
    group.add_argument(
        "--engine-log-level",
        default="info",
        help="LOG_LEVEL of the Celery processes (default info: one line per batch, "
        "with how early it arrived and how long its setup took)",
    )


def shape_from(options) -> harness.Shape:
    shape = harness.QUICK if options.quick else harness.FULL
    overrides = {
        "duration": getattr(options, "duration", None),
        "slow_duration": getattr(options, "slow_duration", None),
        "http_rate": getattr(options, "http_rate", None),
        "https_rate": getattr(options, "https_rate", None),
        "probe_processes": getattr(options, "probe_processes", None),
        "target_processes": getattr(options, "target_processes", None),
        "contended_rate": getattr(options, "contended_rate", None),
        "hog_seconds": getattr(options, "hog_seconds", None),
        "automation_rate": getattr(options, "automation_rate", None),
        "automation_stretch": getattr(options, "automation_stretch", None),
    }
    return replace(shape, **{k: v for k, v in overrides.items() if v is not None})


def run(options) -> None:
    shape = shape_from(options)
    phases = [p.strip() for p in options.phases.split(",") if p.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phases {', '.join(sorted(unknown))}; known: {PHASES}")
    print(f"health benchmark: phases {', '.join(phases)}; {asdict(shape)}")
    print(f"creating and migrating the database {DATABASE!r} ...", flush=True)
    url = support.create_database(DATABASE)
    support.flush_redis(harness.REDIS_INDEX)
    support.setup_django(url, harness.REDIS_INDEX)
    keep = getattr(options, "keep_logs", False)
    with tempfile.TemporaryDirectory(prefix="bench-health-", delete=not keep) as work:
        work_dir = Path(work)
        if keep:
            print(f"logs kept in {work_dir}")
        (work_dir / "var").mkdir()
        write_certificate(str(work_dir))
        bench = harness.Bench(
            url=url,
            shape=shape,
            work_dir=work_dir,
            ports={"http": support.free_port(), "https": support.free_port()}
            | {"hang": support.free_port()},
            settle=functools.partial(support.settle, options.wait_idle),
            rng=random.Random(SEED),
            engine_log_level=options.engine_log_level,
        )
        bench.results = {
            "benchmark": NAME,
            "machine": support.machine_info(url),
            "shape": asdict(shape),
            "phases_run": phases,
            "targets": harness.TARGETS,
            "wait_idle_s": options.wait_idle,
            "settings": harness.engine_settings(),
        }
        runners = {
            "http": throughput.phase_http,
            "https": throughput.phase_https,
            "slow": throughput.phase_slow,
            "history": history.phase_history,
            "capacity": contended.phase_capacity,
            "contended": contended.phase_contended,
            "automation": automation_lag.phase_automation,
        }
        for phase in phases:
            print(f"\n--- phase {phase} ---", flush=True)
            runners[phase](bench)
    results = bench.results
    results["verdicts"] = verdicts(results)
    support.finish(
        results_name(phases, shape), results, report, quick=options.quick, smoke="with short phases"
    )


def results_name(phases: list[str], shape: harness.Shape) -> str:
    """``health`` for the full run; partial or re-rated runs get a file of their own
    (``health-https-https400``, say), so they never overwrite it."""
    parts = [] if phases == list(PHASES) else list(phases)
    if "http" in phases and shape.http_rate != harness.FULL.http_rate:
        parts.append(f"http{shape.http_rate}")
    if "https" in phases and shape.https_rate != harness.FULL.https_rate:
        parts.append(f"https{shape.https_rate}")
    if {"http", "https"} & set(phases) and shape.duration != harness.FULL.duration:
        parts.append(f"{shape.duration:.0f}s")
    if "automation" in phases and shape.automation_rate:
        parts.append(f"automation{shape.automation_rate}")
    return "-".join([NAME, *parts])


def verdicts(results: dict) -> dict:
    found = {}

    def check(name: str, value, target, met: bool | None = None) -> None:
        found[name] = {
            "value": value,
            "target": target,
            "met": (value is not None and value < target) if met is None else met,
        }

    for phase, key, rate_key in (
        ("http", "http", "http_checks_per_s"),
        ("https", "https", "https_checks_per_s"),
        ("slow", "slow-ok", None),
    ):
        if phase not in results:
            continue
        analysis = results[phase]["results"][key]
        if rate_key:
            check(f"{phase}_rate_per_s", analysis["rate_per_s"], harness.TARGETS[rate_key],
                  analysis["rate_per_s"] >= harness.TARGETS[rate_key] * 0.999)  # fmt: skip
        check(f"{phase}_missed", analysis["missed"], 0, analysis["missed"] == 0)
        check(
            f"{phase}_false_failures",
            analysis["not_healthy"],
            0,
            analysis["not_healthy"] == 0,
        )
        check(f"{phase}_lag_p99_ms", analysis["lag_ms"]["p99"], harness.TARGETS["lag_p99_ms"])
    if "slow" in results:
        hang = results["slow"]["results"]["slow-hang"]
        check("slow_hang_missed", hang["missed"], 0, hang["missed"] == 0)
    if "http" in results and "api" in results["http"]:
        api = results["http"]["api"]
        check("api_root_p99_ms", api["root"]["p99_ms"], harness.TARGETS["api_root_p99_ms"])
        check("api_service_p99_ms", api["service"]["p99_ms"], harness.TARGETS["api_service_p99_ms"])
        check(
            "api_services_1000_p99_ms",
            api["services_1000"]["p99_ms"],
            harness.TARGETS["api_services_1000_p99_ms"],
        )
        check(
            "api_services_10000_p99_ms",
            api["services_10000"]["p99_ms"],
            harness.TARGETS["api_services_10000_p99_ms"],
        )
    if "storage" in results:
        raw = results["storage"]["raw"]
        check(
            "raw_bytes_per_result", raw["bytes_per_result"], harness.TARGETS["raw_bytes_per_result"]
        )
    if "history" in results:
        history = results["history"]
        daily_30s = history["bytes_per_check_result"]["interval_30s"]["daily"]
        check(
            "daily_rollup_bytes_per_result_30s",
            daily_30s,
            harness.TARGETS["rollup_bytes_per_result"],
        )
        check(
            "uptime_90d_all_p99_ms",
            history["services_uptime_90d"]["p99_ms"],
            harness.TARGETS["uptime_90d_all_ms"],
        )
        check(
            "uptime_one_p99_ms",
            history["uptime_one_service_all_windows"]["p99_ms"],
            harness.TARGETS["uptime_one_ms"],
        )
    if "capacity" in results:
        capacity = results["capacity"]
        quiet, full_rate = capacity["quiet_capacity_per_s"], harness.FULL.http_rate
        check("quiet_capacity_per_s", quiet, f">= {full_rate}", (quiet or 0) >= full_rate)
        ratio = (capacity["cpu_ratio_at_http_rate"] or {}).get("ratio")
        check("cpu_per_check_over_bare_probe", ratio, harness.TARGETS["cpu_over_bare_probe"],
              ratio is not None and ratio <= harness.TARGETS["cpu_over_bare_probe"])  # fmt: skip
    if "contended" in results:
        summary = results["contended"]["summary"]
        for name in ("results_unhealthy_or_degraded", "target_incidents"):
            check(f"contended_{name}", summary[name], 0, summary[name] == 0)
        check("contended_backend_incidents", summary["backend_incidents"], 1,
              summary["backend_incidents"] == 1)  # fmt: skip
        check("contended_critical_lag_p99_ms", summary["critical_lag_p99_ms_during"], 1000.0)
        check("contended_overload_on_metrics", summary["metrics_showed_overload"], True,
              summary["metrics_showed_overload"])  # fmt: skip
        check("contended_overload_on_backend", summary["backend_showed_overload"], True,
              summary["backend_showed_overload"])  # fmt: skip
        back = summary["normal_after_hog_s"]
        check("contended_normal_after_hog_s", back, harness.TARGETS["normal_after_hog_s"],
              back is not None and back <= harness.TARGETS["normal_after_hog_s"])  # fmt: skip
    if "automation" in results:
        found.update(automation_lag.verdicts(results["automation"]["summary"]))
    return found


def report(results: dict) -> None:
    machine = results["machine"]
    print(
        f"\n{machine['cpu_count']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"PostgreSQL {machine['postgresql']}, Django {machine['django']}"
    )
    if "storage" in results:
        raw, rollups = results["storage"]["raw"], results["storage"]["rollups_of_this_run"]
        print(
            f"raw results: {raw['rows']:,} rows, {raw['bytes_per_result']} bytes each "
            f"(table {raw['table_bytes_per_result']}, indexes {raw['indexes_bytes_per_result']})"
        )
        print(
            f"rollups of the run: rollup_hours {rollups['rollup_hours_s']} s "
            f"({rollups['raw_results_summarised']:,} results), rollup_days "
            f"{rollups['rollup_days_s']} s; {rollups['bytes_per_rollup_row']} bytes per row"
        )
    support.print_table(
        "Verdicts",
        ["figure", "value", "target", ""],
        [
            [name, v["value"], v["target"], "met" if v["met"] else "MISSED"]
            for name, v in results["verdicts"].items()
        ],
    )
