"""Embedded broker benchmark: how many messages a second `make run`'s worker takes from the
embedded mode's filesystem broker (portal.broker).

Need, measured in the 30-minute soak of `make run` with 150 extra checks at 10 s: about 160
messages a minute (2.7 a second: the dispatcher every second, probe batches, the outbox
reader, housekeeping). Target: ten times that, 27 a second, so a busy machine or a burst of
status changes leaves the dispatcher on time. (kombu's own transport polled once a second and
carried 3 a second with this worker: the demo's dispatcher fell ten seconds behind.)

A backlog of N messages is queued first, then a worker shaped as runportal starts it (two
pool processes, prefetch 1, late acknowledgement) consumes them; each stores its result in
the file result backend, as the demo's heartbeat does. Needs no database.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import support

NAME = "embedded_broker"
DESCRIPTION = "messages a second `make run`'s worker takes from the embedded broker"
TARGET_PER_S = 27.0
MESSAGES = {"full": 2000, "quick": 200}


def environment(var: Path) -> dict[str, str]:
    """The embedded mode: no DATABASE_URL, no REDIS_URL, everything under ``var``."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "PORTAL_ENV_FILE": "",
        "DEBUG": "true",
        "LOG_LEVEL": "warning",
        "PORTAL_VAR_DIR": str(var),
    }


def queue_backlog(var: Path, count: int) -> None:
    code = (
        "import django; django.setup()\n"
        "from portal.celery import app\n"
        f"for n in range({count}): app.send_task('celery.accumulate', args=[n], queue='celery')"
    )
    env = {**environment(var), "DJANGO_SETTINGS_MODULE": "portal.settings"}
    subprocess.run([sys.executable, "-c", code], cwd=support.ROOT, env=env, check=True)


def drain(var: Path, count: int) -> float:
    """Seconds from the first result to the last, with runportal's worker."""
    results = var / "results"
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "portal", "worker", "--concurrency=2"),
            *("--queues=celery", "--without-gossip", "--without-mingle", "--loglevel=WARNING"),
        ],
        cwd=support.ROOT,
        env=environment(var),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while not any(results.iterdir()):
            assert worker.poll() is None, "the worker exited"
            time.sleep(0.01)
        started = time.monotonic()
        while len(os.listdir(results)) < count:
            assert worker.poll() is None, "the worker exited"
            time.sleep(0.02)
        return time.monotonic() - started
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait()


def run(options) -> None:
    count = MESSAGES["quick" if options.quick else "full"]
    with tempfile.TemporaryDirectory(prefix="bench-broker-") as folder:
        var = Path(folder) / "var"
        for name in ("broker", "broker-control", "results"):
            (var / name).mkdir(parents=True)
        print(f"queueing {count} messages ...", flush=True)
        queue_backlog(var, count)
        support.settle(options.wait_idle)
        print("draining them with a worker of two processes ...", flush=True)
        with support.cpu_usage() as cpu:
            seconds = drain(var, count)
    per_s = (count - 1) / seconds
    results = {
        "benchmark": NAME,
        "machine": support.machine_info(support.database_url("postgres")),
        "messages": count,
        "seconds": round(seconds, 2),
        "messages_per_s": round(per_s, 1),
        "machine_busy_pct": cpu["machine_busy_pct"],
        "target_per_s": TARGET_PER_S,
        "met": per_s >= TARGET_PER_S,
    }
    support.finish(NAME, results, report, quick=options.quick, smoke="(200 messages)")


def report(results: dict) -> None:
    support.print_table(
        "Embedded broker: one worker of two processes, prefetch 1",
        ["messages", "seconds", "messages/s", "target", "met", "machine busy %"],
        [
            [
                results["messages"],
                results["seconds"],
                results["messages_per_s"],
                f">= {results['target_per_s']:g}",
                "yes" if results["met"] else "NO",
                results["machine_busy_pct"],
            ]
        ],
    )
