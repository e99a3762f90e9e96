"""The suite's own times: `make check` (the before-commit tier, promised under 3 minutes on
this machine's two cores) and, with --suite-full, `make test` (CI's command, kept under 20
minutes). With --suite-serial the fast tier also runs in one process, so the parallel
run's gain is a ratio measured in the same run.

Each command runs in this checkout as a person runs it (`make ...` in a shell with the
benchmark's DATABASE_URL and REDIS_URL), the type checker's cache removed first so `make check`
pays for a cold type check as on a fresh clone. How busy the machine was meanwhile is
recorded beside each time: on a shared machine a figure with the other core taken is not
the suite's own.
"""

import json
import os
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime

from bench import support

NAME = "suite"
DESCRIPTION = "wall time of make check (the fast tier) and make test (the whole suite)"
CHECK_LIMIT_S = 180
TEST_LIMIT_S = 20 * 60
SUMMARY = re.compile(r"(\d+) passed")


def add_arguments(parser) -> None:
    parser.add_argument(
        "--suite-full", action="store_true", help="suite: also time `make test` (about 20 min)"
    )
    parser.add_argument(
        "--suite-serial",
        action="store_true",
        help="suite: also time the fast tier in one process, for the parallel run's ratio",
    )


def timed(command: list[str], wait_idle: float) -> dict:
    """Run a command from the checkout's root; its wall and CPU time, what it passed, and how
    busy the machine was just before (other work) and meanwhile (its own and any other)."""
    idle_before = support.wait_for_idle(wait_idle) if wait_idle else None
    before = os.times()
    started = time.monotonic()
    with support.cpu_usage() as usage:
        done = subprocess.run(command, cwd=support.ROOT, capture_output=True, text=True)
    after = os.times()
    passed = sum(int(n) for n in SUMMARY.findall(done.stdout))
    return {
        "command": " ".join(command),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": support._git_revision(),
        "exit": done.returncode,
        "wall_s": round(time.monotonic() - started, 1),
        "cpu_s": round(
            (after.children_user - before.children_user)
            + (after.children_system - before.children_system),
            1,
        ),
        "tests_passed": passed,
        "machine_busy_pct": usage["machine_busy_pct"],
        "busy_pct_just_before": idle_before,
        "tail": done.stdout.strip().splitlines()[-3:] if done.returncode else [],
    }


def run(options) -> None:
    shutil.rmtree(support.ROOT / "var" / "mypy", ignore_errors=True)
    wait = options.wait_idle
    # ARGS= : `make bench ARGS=...` passes its ARGS on to every make below it, as make does.
    runs = {"check": timed(["make", "check", "ARGS="], wait)}
    if options.suite_serial:
        serial = [str(support.ROOT / ".venv/bin/python"), "-m", "pytest", "-m", "not system"]
        runs["fast_tier_serial"] = timed(["env", "PORTAL_ENV_FILE=", "DEBUG=true", *serial], wait)
    if options.suite_full:
        runs["test"] = timed(["make", "test", "ARGS="], wait)
    failed = {name: r["tail"] for name, r in runs.items() if r["exit"]}
    if failed:  # a failing suite is not a measurement of it
        raise SystemExit(f"failed, nothing written: {failed}")
    # A run not repeated this time keeps its earlier figure (each run carries its date and
    # commit): `make check` is quick to measure again on a quiet machine, `make test` is not.
    earlier = support.RESULTS_DIR / f"{NAME}.json"
    kept = json.loads(earlier.read_text()).get("runs", {}) if earlier.exists() else {}
    results = {
        "measurement": "the suite's wall time (README, Tests)",
        "machine": {"cpu_count": os.cpu_count()},
        "limits_s": {"check": CHECK_LIMIT_S, "test": TEST_LIMIT_S},
        "runs": {**kept, **runs},
    }
    if "fast_tier_serial" in runs:
        results["parallel_gain"] = round(
            runs["fast_tier_serial"]["wall_s"] / runs["check"]["wall_s"], 2
        )
    support.finish(NAME, results, report, quick=options.quick, smoke="(the same commands)")


def report(results: dict) -> None:
    limits = {"check": CHECK_LIMIT_S, "test": TEST_LIMIT_S}
    support.print_table(
        "The suite's wall time",
        ["run", "wall s", "cpu s", "passed", "exit", "limit s", "busy % during", "before"],
        [
            [
                name,
                r["wall_s"],
                r["cpu_s"],
                r["tests_passed"],
                r["exit"],
                limits.get(name, "-"),
                r["machine_busy_pct"],
                r["busy_pct_just_before"] if r["busy_pct_just_before"] is not None else "-",
            ]
            for name, r in results["runs"].items()
        ],
    )
