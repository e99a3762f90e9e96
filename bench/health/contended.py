"""The health benchmark's overload phases (issue 14): does the engine stay honest when it is
short of CPU, and what does it do when the machine is quiet?

``capacity``: the quiet capacity -- 1,000 HTTP checks per second, then 500 more per step, each
step measured ``capacity_step`` seconds in one running engine, up to the first rate with a
missed or skipped slot, an outcome not believed, or lag p99 at or over 250 ms. Beside it, in
the same run, the CPU per check of every process the engine uses against the bare probe
(``bench/probes.py``'s aiohttp loop, no portal code) on the same target: a ratio.

``contended``: ``contended_rate`` checks per second (twice the http phase's, by default: the
issue's 2,000/s; a tenth of them critical) for a quiet minute, then beside a CPU hog at normal
priority pinned to one core for ``hog_seconds``, then a minute after it stops. Meanwhile,
every two seconds: ``/metrics``, ``/health/service/backend`` and the services' statuses.
It must show no result recorded unhealthy (the target always answers in about a
millisecond), no incident for a target, critical checks with lag p99 under their interval,
the overload on /metrics and on ``backend`` (one self-incident), and the schedule back to
normal within 30 s of the hog stopping.

Run by ``bench.health``; it uses the harness, the check sets, the measures and the
throughput phase the others use.
"""

import contextlib
import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import psycopg

from bench import probes, support
from bench.health import checksets, harness, measure, throughput

CRITICAL_SHARE = 10  # one check in ten is critical
RECOVERY_TARGET_S = 30.0
LATE_MS = 250
SAMPLE_EVERY = 2.0
STEADY_S = 10  # "back to normal": the first second that starts this many normal ones in a row
HOG = "import os\nos.sched_setaffinity(0, {0})\nwhile True:\n    pass\n"


# --- Quiet capacity ---------------------------------------------------------------------------


def phase_capacity(bench: harness.Bench) -> None:
    shape = bench.shape
    log_dir = bench.work_dir / "logs-capacity"
    log_dir.mkdir()
    processes = harness.Processes(log_dir)
    engine = harness.Engine(bench, processes)
    bench.settle()
    support.flush_redis(harness.REDIS_INDEX)
    url = f"http://127.0.0.1:{bench.ports['http']}/health"
    steps, rate = [], shape.http_rate
    try:
        engine.start()
        while rate <= shape.capacity_max_rate:
            step = _capacity_step(bench, processes, url, rate, first=not steps)
            steps.append(step)
            print(
                f"  {rate}/s: missed {step['missed']}, skipped {step['skipped']}, "
                f"overloaded {step['overloaded']}, lag p99 {step['lag_p99_ms']} ms, "
                f"CPU per check {step['cpu_us_per_check']} -> {'ok' if step['ok'] else 'over'}",
                flush=True,
            )
            if not step["ok"]:
                break
            rate += shape.capacity_step_rate
    finally:
        engine.stop()
        processes.stop_all()
    bare = bare_probe_cpu_us()
    passing = [s for s in steps if s["ok"]]
    reference = next((s for s in steps if s["rate"] == shape.http_rate), None)
    result = {
        "steps": steps,
        "quiet_capacity_per_s": passing[-1]["rate"] if passing else None,
        "bare_probe_cpu_us": bare,
        "cpu_ratio_at_http_rate": _ratio(reference, bare),
        "cpu_ratio_at_capacity": _ratio(passing[-1] if passing else None, bare),
    }
    bench.results["capacity"] = result
    print(
        f"  quiet capacity {result['quiet_capacity_per_s']}/s; bare probe {bare} us CPU; "
        f"engine/bare at {shape.http_rate}/s: {result['cpu_ratio_at_http_rate']}, "
        f"at capacity: {result['cpu_ratio_at_capacity']}"
    )


def _capacity_step(bench, processes, url: str, rate: int, first: bool) -> dict:
    """One rate for ``capacity_step`` seconds after a warm-up (a longer one for the first
    step: the pool's processes set up on their first batches), in the running engine; its
    checks are switched off afterwards."""
    from django.db import connections

    shape = bench.shape
    first_due = datetime.now(UTC) + timedelta(seconds=3)
    checks = checksets.create_checks(
        f"cap{rate}", rate, target=url, interval=1, timeout=1.0, first_due=first_due
    )
    support.analyze()
    connections.close_all()
    start = first_due + timedelta(seconds=shape.capacity_warmup * (2 if first else 1))
    end = start + timedelta(seconds=shape.capacity_step)
    monitor = measure.Monitor(
        {harness.process_label(n): pid for n, pid in processes.pids().items()},
        bench.url,
        checks.ids,
    )
    harness.sleep_until(start)
    monitor.start()
    harness.sleep_until(end)
    figures = monitor.stop()
    expected = sum(
        measure.due_times(f, 1, min(checks.first_due.values()), end)
        for f in checks.first_due.values()
    )
    measure.wait_until_recorded(bench.url, checks, end, expected, timeout=15)
    analysis = measure.analyse(bench.url, checks, start, end)
    checksets.disable([checks])
    codes = by_error(analysis)
    from healthchecks.status import ErrorCode

    skipped = codes.get(ErrorCode.SKIPPED, 0)
    overloaded = codes.get(ErrorCode.CHECKER_OVERLOADED, 0)
    cpu = measure.cpu_per_check({"results": {"s": analysis}, "resources": figures})
    lag_p99 = analysis["lag_ms"]["p99"]
    return {
        "rate": rate,
        "seconds": analysis["window_s"],
        "expected": analysis["expected"],
        "recorded": analysis["recorded"],
        "missed": analysis["missed"] + codes.get(ErrorCode.MISSED, 0),
        "skipped": skipped,
        "overloaded": overloaded,
        "not_healthy": analysis["not_healthy"],
        "lag_p99_ms": lag_p99,
        "machine_busy_pct": figures["machine_busy_pct"],
        "cpu_us_per_check": cpu,
        "ok": analysis["missed"] == 0
        and analysis["not_healthy"] == 0
        and lag_p99 is not None
        and lag_p99 < LATE_MS,
    }


def by_error(analysis: dict) -> dict[int, int]:
    counts: dict[int, int] = {}
    for row in analysis["by_error_and_status"]:
        counts[row["error_code"]] = counts.get(row["error_code"], 0) + row["n"]
    return counts


def _ratio(step: dict | None, bare_us: float) -> dict | None:
    """CPU per check of every process the engine uses (Celery, PostgreSQL, Redis; not the
    target, which the bare probe does not count either) over the bare probe's."""
    if step is None or not step["cpu_us_per_check"]:
        return None
    cpu = step["cpu_us_per_check"]
    engine = cpu["celery_processes_us"] + cpu["postgresql_and_redis_us"]
    return {"engine_us": engine, "bare_us": bare_us, "ratio": round(engine / bare_us, 2)}


def bare_probe_cpu_us() -> float:
    """bench/probes.py's bare aiohttp + uvloop loop (concurrency 100, a new connection per
    request; the median of three rounds of 2,000) against the same minimal server as the
    engine's target, in a process of its own."""
    from healthchecks.probes import make_spec

    server, port = probes.start_server(None)
    try:
        spec = make_spec(1, "http", f"http://127.0.0.1:{port}/health", timeout=10)
        options = SimpleNamespace(probes=2000, concurrency=100, rounds=3)
        return round(probes.measure("bare", "uvloop", spec, options, "bare").cpu_us, 1)
    finally:
        probes.stop_server(server)


# --- Contended --------------------------------------------------------------------------------


def phase_contended(bench: harness.Bench) -> None:
    shape = bench.shape
    rate = contended_rate(bench)
    url = f"http://127.0.0.1:{bench.ports['http']}/health"
    critical_count = rate // CRITICAL_SHARE
    _register_backend()
    started_at = datetime.now(UTC)
    window: dict[str, datetime] = {}
    made: list[checksets.CheckSet] = []

    def checks(first_due: datetime) -> list[checksets.CheckSet]:
        critical = checksets.create_checks(
            "cont-critical", critical_count, target=url, interval=1, timeout=1.0,
            first_due=first_due,
        )  # fmt: skip
        others = checksets.create_checks(
            "cont-other", rate - critical_count, target=url, interval=1, timeout=1.0,
            first_due=first_due,
        )  # fmt: skip
        _set_critical(others, False)
        made.extend([critical, others])
        return made

    def during(bench, sets, server) -> dict:
        sampler = Sampler(server.port, bench.url, [s for c in sets for s in c.services])
        sampler.start()
        try:
            window["hog_start"] = datetime.now(UTC) + timedelta(seconds=shape.contended_before)
            harness.sleep_until(window["hog_start"])
            hog = subprocess.Popen([sys.executable, "-c", HOG])
            print(f"  CPU hog (PID {hog.pid}) on core 0 for {shape.hog_seconds:.0f} s", flush=True)
            try:
                time.sleep(shape.hog_seconds)
            finally:
                hog.kill()
                hog.wait()
            window["hog_stop"] = datetime.now(UTC)
            harness.sleep_until(window["hog_stop"] + timedelta(seconds=shape.contended_after))
        finally:
            sampler.stop()
        return {"samples": sampler.samples}

    duration = shape.contended_before + shape.hog_seconds + shape.contended_after + 2
    result = throughput.throughput_phase(
        bench, "contended", checks, duration, during=during, with_server=True
    )
    sets = made
    result["rate_per_s"] = rate
    result["hog"] = {k: v.isoformat() for k, v in window.items()}
    result["stages"] = {
        name: {s.name: measure.analyse(bench.url, s, a, b) for s in sets}
        for name, a, b in (
            ("before", _window_start(result), window["hog_start"]),
            ("during", window["hog_start"], window["hog_stop"]),
            ("after", window["hog_stop"], _window_end(result)),
        )
    }
    result["recovery"] = recovery(bench.url, sets, window["hog_stop"], _window_end(result), rate)
    result["incidents"] = incidents(bench.url, started_at, _window_end(result))
    result["visible"] = visibility(result.pop("samples"), window["hog_start"], window["hog_stop"])
    result["summary"] = summary(result, sets)
    seconds = (window["hog_stop"] - window["hog_start"]).total_seconds()
    result["summary"]["sustained_during_hog_per_s"] = round(
        result["summary"]["healthy_during"] / seconds, 1
    )
    result["summary"]["demand_over_sustained"] = round(
        rate / max(1.0, result["summary"]["sustained_during_hog_per_s"]), 2
    )
    bench.results["contended"] = result
    print_contended(result)


def contended_rate(bench: harness.Bench) -> int:
    """``--contended-rate``, or the quiet capacity the capacity phase just measured: twice
    what the machine sustains beside a hog that takes one of its two cores (the phase
    records the rate it did sustain, to show the ratio), or, without that phase, twice the
    http phase's rate (the issue's 2,000/s)."""
    measured = bench.results.get("capacity", {}).get("quiet_capacity_per_s")
    return bench.shape.contended_rate or measured or 2 * bench.shape.http_rate


def _register_backend() -> None:
    from healthchecks.watch import selfcheck
    from portal.auth import system_actor

    selfcheck.register(system_actor("bench"))


def _set_critical(checks: checksets.CheckSet, critical: bool) -> None:
    from healthchecks.models import HealthCheck

    HealthCheck.objects.filter(pk__in=checks.ids).update(is_critical=critical)


def _window_start(result: dict) -> datetime:
    return datetime.fromisoformat(next(iter(result["results"].values()))["window"]["start"])


def _window_end(result: dict) -> datetime:
    return datetime.fromisoformat(next(iter(result["results"].values()))["window"]["end"])


class Sampler:
    """Every two seconds, in a thread: the capacity gauges of /metrics, backend's status and
    reason, and how many of the phase's services are unhealthy or degraded."""

    def __init__(self, port: int, url: str, services: list[str]):
        self.port, self.url, self.services = port, url, services
        self.samples: list[dict] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()

    def _loop(self) -> None:
        client = support.Client(self.port)
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stopping.wait(SAMPLE_EVERY):
                sample = {"at": datetime.now(UTC).isoformat()}
                with contextlib.suppress(Exception):
                    sample["metrics"] = _gauges(client.get("/metrics").body.decode())
                with contextlib.suppress(Exception):
                    backend = client.request(
                        "GET", "/health/service/backend", expect=(200, 503)
                    ).json()
                    sample["backend"] = {"status": backend["status"], "reason": backend["reason"]}
                    sample["backend_errors"] = backend["errors"][:3]
                sample["services"] = dict(
                    conn.execute(
                        "SELECT h.status, count(*) FROM healthchecks_servicehealth h "
                        "JOIN services_service s ON s.id = h.service_id "
                        "WHERE s.name = ANY(%s) GROUP BY 1",
                        [self.services],
                    ).fetchall()
                )
                self.samples.append(sample)
        client.close()


def _gauges(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line.startswith("portal_probe_") or line.startswith("portal_check_results_total"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                found[name] = float(value)
    return found


def recovery(url: str, sets, hog_stop: datetime, end: datetime, rate: int) -> dict:
    """Second by second (by due time) after the hog stopped: when was the schedule back to
    normal -- the first of STEADY_S normal seconds in a row (_normal) -- and how many seconds
    after that were not (the engine at its quiet capacity meeting some other hiccup)."""
    from healthchecks.status import ErrorCode

    ids = [i for s in sets for i in s.ids]
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            """
            SELECT floor(extract(epoch FROM at - %(from)s))::int AS s, count(*),
                   count(*) FILTER (WHERE error_code = ANY(%(shed)s)),
                   count(*) FILTER (WHERE lag_ms >= %(late)s),
                   max(lag_ms)
            FROM healthchecks_checkresult
            WHERE health_check_id = ANY(%(ids)s) AND at >= %(from)s AND at < %(end)s
            GROUP BY 1 ORDER BY 1
            """,
            {
                "from": hog_stop,
                "end": end,
                "ids": ids,
                "late": LATE_MS,
                "shed": [ErrorCode.SKIPPED, ErrorCode.CHECKER_OVERLOADED, ErrorCode.MISSED],
            },
        ).fetchall()
    seconds = [
        {"s": s, "n": n, "shed": shed, "late": late, "lag_max_ms": top}
        for s, n, shed, late, top in rows
    ]
    last_full = int((end - hog_stop).total_seconds()) - 1  # the window's last whole second
    by_second = {r["s"]: r for r in seconds}
    normal = [_normal(by_second.get(s), rate) for s in range(last_full)]
    back = next(
        (s for s in range(len(normal) - STEADY_S + 1) if all(normal[s : s + STEADY_S])), None
    )
    return {
        "normal_after_s": back,
        "abnormal_seconds_later": None if back is None else normal[back:].count(False),
        "per_second": seconds,
        "max_per_second": max((r["n"] for r in seconds), default=0),
    }


def _normal(second: dict | None, rate: int) -> bool:
    """Every slot of the second recorded, none skipped, missed or unbelieved, under 1 % late."""
    if second is None:
        return False
    return second["n"] >= rate * 0.99 and not second["shed"] and second["late"] <= second["n"] / 100


def incidents(url: str, since: datetime, until: datetime) -> dict:
    """Incidents opened while the phase measured (not while it stopped its workers after)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            """
            SELECT s.name LIKE 'cont-%%', count(*), string_agg(DISTINCT i.cause, ' | ')
            FROM healthchecks_incident i JOIN services_service s ON s.id = i.service_id
            WHERE i.opened_at >= %s AND i.opened_at < %s
              AND (s.name LIKE 'cont-%%' OR s.name = 'backend')
            GROUP BY 1
            """,
            [since, until],
        ).fetchall()
    found = {("targets" if target else "backend"): (n, cause) for target, n, cause in rows}
    return {
        "targets": found.get("targets", (0, None))[0],
        "backend": found.get("backend", (0, None))[0],
        "backend_cause": found.get("backend", (0, None))[1],
    }


def visibility(samples: list[dict], hog_start: datetime, hog_stop: datetime) -> dict:
    """What /metrics and backend said while the hog ran (and a minute after)."""

    def during(sample) -> bool:
        return hog_start <= datetime.fromisoformat(sample["at"]) <= hog_stop

    hogged = [s for s in samples if during(s)]
    metrics = [s["metrics"] for s in hogged if "metrics" in s]

    def top(name: str) -> float | None:
        values = [m[name] for m in metrics if name in m]
        return max(values) if values else None

    ratios = [m["portal_probe_on_time_ratio"] for m in metrics if "portal_probe_on_time_ratio" in m]
    degraded = [s for s in hogged if s.get("backend", {}).get("status") == "degraded"]
    return {
        "samples": len(samples),
        "samples_during_hog": len(hogged),
        "metrics_skipped_per_s_max": top("portal_probe_skipped_per_second"),
        "metrics_on_time_ratio_min": min(ratios) if ratios else None,
        "metrics_loop_lag_s_max": top("portal_probe_loop_lag_seconds"),
        "metrics_capacity_per_process": [
            m.get("portal_probe_capacity_per_process")
            for m in metrics[:: max(1, len(metrics) // 6)]
        ],
        "backend_degraded_samples": len(degraded),
        "backend_first_reason": next((s["backend_errors"] for s in degraded), None),
        "services_unhealthy_max": max((s["services"].get(3, 0) for s in samples), default=0),
        "services_degraded_max": max((s["services"].get(2, 0) for s in samples), default=0),
        "samples_raw": samples,
    }


def summary(result: dict, sets) -> dict:
    from healthchecks.status import ErrorCode, Status

    ids = {s.name: s.ids for s in sets}
    stages = result["stages"]

    def count(stage: str, set_name: str, code=None, status=None) -> int:
        return sum(
            r["n"]
            for r in stages[stage][set_name]["by_error_and_status"]
            if code in (None, r["error_code"]) and status in (None, r["status"])
        )

    whole = result["results"]
    unhealthy = sum(
        r["n"]
        for a in whole.values()
        for r in a["by_error_and_status"]
        if r["status"] in (Status.UNHEALTHY, Status.DEGRADED)
    )
    during = stages["during"]
    return {
        "checks": {name: len(v) for name, v in ids.items()},
        "results_unhealthy_or_degraded": unhealthy,
        "target_incidents": result["incidents"]["targets"],
        "backend_incidents": result["incidents"]["backend"],
        "critical_lag_p99_ms_during": during["cont-critical"]["lag_ms"]["p99"],
        "critical_skipped_during": count("during", "cont-critical", ErrorCode.SKIPPED),
        "other_skipped_during": count("during", "cont-other", ErrorCode.SKIPPED),
        "overloaded_during": sum(count("during", n, ErrorCode.CHECKER_OVERLOADED) for n in ids),
        "missed_during": sum(
            count("during", n, ErrorCode.MISSED) + during[n]["missed"] for n in ids
        ),
        "healthy_during": sum(count("during", n, status=Status.HEALTHY) for n in ids),
        "expected_during": sum(during[n]["expected"] for n in ids),
        "normal_after_hog_s": result["recovery"]["normal_after_s"],
        "abnormal_seconds_later": result["recovery"]["abnormal_seconds_later"],
        "metrics_showed_overload": bool(
            (result["visible"]["metrics_skipped_per_s_max"] or 0) > 0
            or (result["visible"]["metrics_on_time_ratio_min"] or 1) < 0.95
        ),
        "backend_showed_overload": result["visible"]["backend_degraded_samples"] > 0,
    }


def print_contended(result: dict) -> None:
    measure.print_phase("contended", result)
    for stage, sets in result["stages"].items():
        for name, a in sets.items():
            codes = {r["error_code"]: r["n"] for r in a["by_error_and_status"]}
            print(
                f"  {stage:>6} {name}: {a['recorded']:,}/{a['expected']:,} recorded, "
                f"missed {a['missed']}, lag p99 {a['lag_ms']['p99']} ms, by error code {codes}"
            )
    visible = dict(result["visible"])
    visible.pop("samples_raw")
    print(f"  visible: {json.dumps(visible)}")
    print(f"  incidents: {result['incidents']}")
    print(f"  summary: {json.dumps(result['summary'])}")
