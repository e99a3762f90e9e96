"""Deployment verification benchmark: how soon a healthy release gets its verdict, and how
many probe rounds that costs (issue 21, "Tests and figures").

The promise (README, "Deployments are verified"; docs/decisions.md, "A deployment is verified
on what came after it"): a reported rollout makes the service's probed checks due at once,
the dispatcher judges the release each tick on the results due after the report, so a
pipeline's gate gets its verdict in seconds whatever the check's interval -- and bake 0 costs
one probe round per gating check.

Method: the real engine, started as the health benchmark starts it (``bench.health.harness``:
Celery beat, the dispatcher worker, a probe worker, a target server answering 200 on
127.0.0.1), and the portal under gunicorn (two sync workers). One service with one critical
HTTP check, interval 120 s, its first result recorded before anything is measured. Then
``--releases`` healthy releases (50) one after another: each POSTs
``/api/services/NAME/deployments`` (status ``in_progress``, as the pipeline's gate
``portalctl deploy --status in_progress --wait`` reports, a new version, no bake) with a
registry:write token, then GETs ``.../deployments/ID`` every 50 ms until the verification is
no longer pending. Each report comes after a pause drawn between 0 and one dispatcher
tick (``HEALTH_DISPATCH_SECONDS``, seeded): reported the moment the last verdict was seen, a
release would always land just after a tick -- the dispatcher stores a verdict, the client
sees it and reports -- and wait a whole tick for its probe; a pipeline reports at any moment
of the tick. Measured:

- the verdict seen: from the report's answer to the first GET that showed a verdict (this
  client's view, 50 ms polling included), and from the deployment's ``created_at`` to
  ``verification.finished_at`` as the portal recorded them;
- the probe rounds each release cost: the check's results due between its report and the
  next report (after the last one, until a settling pause past the verdict). The check's own
  120 s interval would give none in that time, so each is an extra round; the promise is at
  most one per release.

Works on its own database (``portal_bench_deploy_verify``, recreated each run) and the health
benchmark's Redis database (``harness.REDIS_INDEX``, flushed). Application modules are imported
inside functions, once ``support.setup_django`` has pointed Django at that database.
"""

import functools
import random
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import support
from bench.health import checksets, harness
from bench.probes import write_certificate

NAME = "deploy_verify"
DESCRIPTION = "healthy releases verified by the real engine: time to the verdict, probes spent"
DATABASE = "portal_bench_deploy_verify"
SEED = 21
RELEASES = 50
QUICK_RELEASES = 5
CHECK_INTERVAL = 120  # seconds: the check's own interval gives no result during a release
POLL_SECONDS = 0.05  # how often the client asks for the verdict
GIVE_UP_SECONDS = 180.0  # past DEPLOY_VERIFY_TIMEOUT_SECONDS (120 s): a verdict must come
SETTLE_SECONDS = 7.0  # after the last verdict: past DEPLOY_VERIFY_INTERVAL_SECONDS (5 s), so
# a round the last release still had scheduled would be counted
WEB_WORKERS = 2
# "In seconds": a gate that waits a few seconds, not the check's 120 s interval (the system
# test asks 15 s of portalctl deploy --wait); and bake 0 costs one probe round per check.
TARGETS = {"verdict_seen_p99_s": 5.0, "extra_probe_rounds_per_release": 1}
# The engine as the health benchmark runs it (probe worker -c 8, as docker-compose.yml).
SHAPE = harness.FULL


def add_arguments(parser) -> None:
    group = parser.add_argument_group("deploy_verify benchmark")
    group.add_argument(
        "--releases",
        type=int,
        help=f"healthy releases reported one after another (default {RELEASES}; "
        f"--quick: {QUICK_RELEASES})",
    )


def run(options) -> None:
    releases = getattr(options, "releases", None) or (QUICK_RELEASES if options.quick else RELEASES)
    print(
        f"deploy_verify benchmark: {releases} healthy releases of a service whose one critical "
        f"HTTP check runs every {CHECK_INTERVAL} s"
    )
    print(f"creating and migrating the database {DATABASE!r} ...", flush=True)
    url = support.create_database(DATABASE)
    support.flush_redis(harness.REDIS_INDEX)
    support.setup_django(url, harness.REDIS_INDEX)

    from django.conf import settings

    gap = settings.HEALTH_DISPATCH_SECONDS  # the pause before a report: 0 to this, drawn
    with tempfile.TemporaryDirectory(prefix="bench-deploy-verify-") as work:
        work_dir = Path(work)
        (work_dir / "var").mkdir()
        write_certificate(str(work_dir))  # the target server serves HTTPS too (unused here)
        bench = harness.Bench(
            url=url,
            shape=SHAPE,
            work_dir=work_dir,
            ports={"http": support.free_port(), "https": support.free_port()}
            | {"hang": support.free_port()},
            settle=functools.partial(support.settle, options.wait_idle),
            rng=random.Random(SEED),
        )
        processes = harness.Processes(work_dir)
        engine = harness.Engine(bench, processes)
        try:
            check = seed(bench.ports["http"])
            token = issue_token()
            close_django_connections()
            print("starting the engine (beat, dispatcher, probe worker, target) ...", flush=True)
            engine.start()
            first = wait_for_first_result(check.ids[0], 60)
            print(f"  first result recorded: {first}", flush=True)
            print(f"starting gunicorn ({WEB_WORKERS} workers) ...", flush=True)
            with support.gunicorn(url, workers=WEB_WORKERS, env=bench.env()) as server:
                bench.settle()
                with support.cpu_usage() as usage:
                    rows = release_all(
                        server.port, token, check.services[0], releases, bench.rng, gap
                    )
            time.sleep(SETTLE_SECONDS)
            ended = datetime.now(UTC)
            engine_logs = {
                name: processes.log_tail(name, 5) for name in ("dispatch", "probes", "beat")
            }
        finally:
            processes.stop_all()
        results_of_check = check_results(check.ids[0])

    count_rounds(rows, results_of_check, ended)
    results = {
        "benchmark": NAME,
        "machine": support.machine_info(url),
        "method": {
            "releases": releases,
            "check_interval_s": CHECK_INTERVAL,
            "check": "one critical HTTP check, retries 0, timeout 5 s, target on 127.0.0.1",
            "report": {"status": "in_progress", "bake_seconds": "left out (service default 0)"},
            "poll_every_s": POLL_SECONDS,
            "pause_before_each_report_s": f"uniform 0-{gap} (one dispatcher tick), seed {SEED}",
            "web": f"gunicorn, {WEB_WORKERS} sync workers",
            "engine": "celery beat, dispatcher worker (-c 1), probe worker "
            f"(-c {SHAPE.probe_processes}), target server ({SHAPE.target_processes} process)",
            "settle_after_last_verdict_s": SETTLE_SECONDS,
            "settings": {
                "HEALTH_DISPATCH_SECONDS": settings.HEALTH_DISPATCH_SECONDS,
                "HEALTH_DISPATCH_LOOKAHEAD": settings.HEALTH_DISPATCH_LOOKAHEAD,
                "HEALTH_ON_TIME_MS": settings.HEALTH_ON_TIME_MS,
                "DEPLOY_VERIFY_INTERVAL_SECONDS": settings.DEPLOY_VERIFY_INTERVAL_SECONDS,
                "DEPLOY_VERIFY_TIMEOUT_SECONDS": settings.DEPLOY_VERIFY_TIMEOUT_SECONDS,
            },
            "shape": asdict(SHAPE),
        },
        "machine_during_releases": usage,
        "wait_idle_s": options.wait_idle,
        "targets": TARGETS,
        "results_before_first_report": sum(1 for r in results_of_check if r[0] < rows[0]["at"]),
        "summary": summarise(rows, settings.HEALTH_ON_TIME_MS),
        "releases": [public(row) for row in rows],
        "engine_log_tails": engine_logs,
    }
    results["verdicts"] = verdicts(results["summary"])
    support.finish(NAME, results, report, quick=options.quick, smoke=f"({releases} releases)")


# --- Setup ------------------------------------------------------------------------------------


def seed(http_port: int) -> checksets.CheckSet:
    """One service with one critical HTTP check (interval 120 s, retries 0), due now: the
    engine's first tick probes it, so it has its first result before the first release."""
    from django.utils import timezone

    return checksets.create_checks(
        "release",
        1,
        target=f"http://127.0.0.1:{http_port}/",
        interval=CHECK_INTERVAL,
        timeout=5.0,
        first_due=timezone.now(),
        spread=False,
    )


def issue_token() -> str:
    from portal import tokens
    from portal.auth import system_actor

    return tokens.issue_token(
        "bench-pipeline", ["registry:read", "registry:write"], issuer=system_actor("bench")
    ).secret


def close_django_connections() -> None:
    from django.db import connections

    connections.close_all()


def wait_for_first_result(check_id: int, timeout: float) -> str:
    from healthchecks.models import CheckResult

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = CheckResult.objects.filter(health_check_id=check_id).order_by("at").first()
        if found is not None:
            return str(found)
        time.sleep(0.1)
    raise SystemExit(f"the check had no result within {timeout} s: is the engine running?")


# --- The releases -----------------------------------------------------------------------------


def release_all(
    port: int, token: str, service: str, count: int, rng: random.Random, gap: float
) -> list[dict]:
    """``count`` healthy releases one after another, each polled to its verdict, each
    reported after a pause of 0 to ``gap`` seconds (any moment of the dispatcher's tick)."""
    client = support.Client(port, token)
    path = f"/api/services/{service}/deployments"
    rows = []
    try:
        for n in range(count):
            pause = rng.uniform(0, gap)
            time.sleep(pause)
            rows.append(release(client, path, f"1.{n + 1}.0"))
            row = rows[-1]
            row["pause_before_s"] = pause
            if (n + 1) % 10 == 0 or n + 1 == count or row["state"] != "passed":
                print(
                    f"  release {n + 1}/{count} ({row['version']}): {row['state']}, seen after "
                    f"{row['seen_s']:.3f} s ({row['polls']} polls), recorded "
                    f"{row['recorded_s']:.3f} s",
                    flush=True,
                )
    finally:
        client.close()
    return rows


def release(client: support.Client, path: str, version: str) -> dict:
    reported = client.request("POST", path, {"version": version, "status": "in_progress"}, 201)
    answered = time.perf_counter()
    deployment = reported.json()
    if deployment["verification"]["state"] != "pending":
        raise SystemExit(f"a new release was not pending: {deployment}")
    polls, next_poll, shown = 0, answered, deployment
    while shown["verification"]["state"] == "pending":
        next_poll += POLL_SECONDS
        time.sleep(max(0.0, next_poll - time.perf_counter()))
        shown = client.get(f"{path}/{deployment['id']}").json()
        polls += 1
        if time.perf_counter() - answered > GIVE_UP_SECONDS:
            raise SystemExit(f"no verdict {GIVE_UP_SECONDS} s after the report: {shown}")
    seen = time.perf_counter()
    verification = shown["verification"]
    created = parse(shown["created_at"])
    finished = parse(verification["finished_at"])
    return {
        "id": deployment["id"],
        "version": version,
        "state": verification["state"],
        "reason": verification["reason"],
        "evidence": verification["evidence"],
        "at": created,
        "finished_at": finished,
        "report_answer_s": reported.seconds,
        "seen_s": seen - answered,
        "recorded_s": (finished - created).total_seconds(),
        "polls": polls,
    }


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


# --- What each release cost -------------------------------------------------------------------


def check_results(check_id: int) -> list[tuple]:
    """The check's results, (due time, status, error code, lag ms), in order."""
    from healthchecks.models import CheckResult

    return list(
        CheckResult.objects.filter(health_check_id=check_id)
        .order_by("at")
        .values_list("at", "status", "error_code", "lag_ms")
    )


def count_rounds(rows: list[dict], found: list[tuple], ended: datetime) -> None:
    """Each release's results: those due from its report up to the next report (the last
    one's up to the end of the run, a settling pause after its verdict)."""
    from healthchecks.status import ErrorCode, Status

    for row, following in zip(rows, [*rows[1:], None], strict=True):
        until = following["at"] if following else ended
        mine = [r for r in found if row["at"] <= r[0] < until]
        row["probe_rounds"] = len(mine)
        row["results"] = [
            {
                "due_after_report_ms": round((at - row["at"]).total_seconds() * 1000, 1),
                "lag_ms": lag,
                "status": Status(status).label,
                "error": ErrorCode(code).label if code != ErrorCode.NONE else "",
            }
            for at, status, code, lag in mine
        ]
        if mine:
            at, _status, _code, lag = mine[0]
            probed = at + timedelta(milliseconds=lag)
            row["report_to_probe_s"] = (probed - row["at"]).total_seconds()
            row["probe_to_verdict_s"] = (row["finished_at"] - probed).total_seconds()


def public(row: dict) -> dict:
    """A release as the results file keeps it."""
    kept = {k: v for k, v in row.items() if k not in ("at", "finished_at")}
    kept["created_at"] = row["at"].isoformat()
    kept["finished_at"] = row["finished_at"].isoformat()
    timed = ("report_answer_s", "seen_s", "recorded_s", "report_to_probe_s", "probe_to_verdict_s")
    for key in (*timed, "pause_before_s"):
        if key in kept:
            kept[key] = round(kept[key], 4)
    return kept


def summarise(rows: list[dict], on_time_ms: int) -> dict:
    rounds = [r["probe_rounds"] for r in rows]
    lags = [r["results"][0]["lag_ms"] for r in rows if r["results"]]
    states: dict[str, int] = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    probed = [r for r in rows if "report_to_probe_s" in r]
    return {
        "releases": len(rows),
        "verdicts": states,
        "verdict_seen": seconds(r["seen_s"] for r in rows),
        "verdict_recorded": seconds(r["recorded_s"] for r in rows),
        "report_answer": seconds(r["report_answer_s"] for r in rows),
        "report_to_probe_start": seconds(r["report_to_probe_s"] for r in probed),
        "probe_start_to_verdict": seconds(r["probe_to_verdict_s"] for r in probed),
        # The release's probe is due at the report, started at the next tick: its lag_ms
        # (probe start minus due time) is what /metrics and the back-pressure read.
        "release_probe_lag_ms": {
            "p50": support.percentile(lags, 50) if lags else None,
            "max": max(lags, default=None),
            f"over_HEALTH_ON_TIME_MS_{on_time_ms}": sum(1 for lag in lags if lag > on_time_ms),
        },
        "polls_per_release_max": max(r["polls"] for r in rows),
        "probe_rounds_per_release": {
            "p50": support.percentile(rounds, 50),
            "max": max(rounds),
            "min": min(rounds),
            "total": sum(rounds),
            "histogram": {str(k): rounds.count(k) for k in sorted(set(rounds))},
        },
    }


def seconds(values) -> dict:
    found = list(values)
    if not found:
        return {"n": 0}
    return {
        "n": len(found),
        "min_s": round(min(found), 3),
        "p50_s": round(support.percentile(found, 50), 3),
        "p99_s": round(support.percentile(found, 99), 3),
        "max_s": round(max(found), 3),
        "mean_s": round(sum(found) / len(found), 3),
    }


def verdicts(summary: dict) -> dict:
    seen = summary["verdict_seen"]["p99_s"]
    rounds = summary["probe_rounds_per_release"]["max"]
    every_passed = summary["verdicts"] == {"passed": summary["releases"]}
    return {
        "verdict_seen_p99_s": {
            "value": seen,
            "target": TARGETS["verdict_seen_p99_s"],
            "met": seen < TARGETS["verdict_seen_p99_s"],
        },
        "extra_probe_rounds_per_release": {
            "value": rounds,
            "target": TARGETS["extra_probe_rounds_per_release"],
            "met": rounds <= TARGETS["extra_probe_rounds_per_release"],
        },
        "every_healthy_release_passed": {
            "value": summary["verdicts"],
            "target": "passed",
            "met": every_passed,
        },
    }


def report(results: dict) -> None:
    summary = results["summary"]
    rows = []
    for label, key in (
        ("verdict seen (report's answer -> GET shows it)", "verdict_seen"),
        ("verdict recorded (created_at -> finished_at)", "verdict_recorded"),
        ("  report -> probe start", "report_to_probe_start"),
        ("  probe start -> verdict recorded", "probe_start_to_verdict"),
        ("the report's POST itself", "report_answer"),
    ):
        figures = summary[key]
        rows.append(
            [label, figures.get("p50_s", ""), figures.get("p99_s", ""), figures.get("max_s", "")]
        )
    support.print_table(
        f"deploy_verify: {summary['releases']} healthy releases, check interval "
        f"{results['method']['check_interval_s']} s (seconds)",
        ["", "p50", "p99", "max"],
        rows,
    )
    rounds = summary["probe_rounds_per_release"]
    print(
        f"probe rounds per release: p50 {rounds['p50']}, max {rounds['max']} "
        f"(histogram {rounds['histogram']}); verdicts {summary['verdicts']}"
    )
    print(f"the release probes' lag (ms): {summary['release_probe_lag_ms']}")
    for name, verdict in results["verdicts"].items():
        print(
            f"  {name}: {verdict['value']} (target {verdict['target']}) "
            f"{'met' if verdict['met'] else 'MISSED'}"
        )
