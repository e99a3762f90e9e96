"""The probe worker's memory at the documented concurrency and rate: what the Kubernetes
requests and limits of deploy/k8s/workers.yaml are set from (issue 23).

A real Celery probe worker started as the manifests start it (``--queues=probes,celery
--concurrency=8``: a main process and 8 pool processes), beside a dispatcher worker and beat,
probes plain HTTP targets (bench/targets.py) at 1,000 checks a second -- the rate the
operator's guide gives for one probe worker -- for a warm-up, then a measured window. Every
few seconds the memory of each of the worker's processes is read from
``/proc/<pid>/smaps_rollup``: RSS (what `ps` shows: pages shared between the prefork pool's
processes counted once per process), PSS (each shared page divided among the processes that
share it: summed over the pool, the memory the pod really holds, which is what its cgroup is
charged and its limit is compared with) and USS (pages of that process alone). The results
file keeps the largest sums seen and each process's figures at that moment.
"""

import os
import random
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench import support
from bench.health import checksets, harness
from bench.probes import write_certificate

NAME = "worker_memory"
DESCRIPTION = "the probe worker's memory (RSS, PSS, USS) at -c 8 and 1,000 checks/s"
DATABASE = "portal_bench_worker_memory"
CONCURRENCY = 8
RATE = 1000  # checks per second: 1,000 checks at a 1-second interval
WARMUP, DURATION, EVERY = 30.0, 180.0, 2.0


def add_arguments(parser) -> None:
    group = parser.add_argument_group("worker memory benchmark")
    group.add_argument("--memory-rate", type=int, default=RATE, help="checks per second")
    group.add_argument("--memory-duration", type=float, default=DURATION, help="seconds")
    group.add_argument(
        "--redis-index",
        type=int,
        default=support.BENCH_REDIS_DATABASES[1],
        help="Redis database to use (and flush)",
    )


def memory(pid: int) -> dict[str, int] | None:
    """RSS, PSS and USS of one process in bytes (None once it is gone)."""
    fields = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    for line in text.splitlines()[1:]:
        name, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[-1] == "kB":
            fields[name.strip()] = int(parts[0]) * 1024
    return {
        "rss": fields.get("Rss", 0),
        "pss": fields.get("Pss", 0),
        "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
    }


class Bench(harness.Bench):
    redis: str = ""

    def env(self, log_level: str = "warning") -> dict[str, str]:
        return {
            **os.environ,
            "DEBUG": "true",
            "RATE_LIMITS_ENABLED": "false",
            "DATABASE_URL": self.url,
            "REDIS_URL": self.redis,
            "PORTAL_VAR_DIR": str(self.work_dir / "var"),
            "LOG_LEVEL": log_level,
        }


def run(options) -> None:
    quick = options.quick
    rate = 100 if quick else options.memory_rate
    duration = 20.0 if quick else options.memory_duration
    warmup = 10.0 if quick else WARMUP
    url = support.create_database(DATABASE)
    redis = urlunsplit(
        urlsplit(os.environ.get("REDIS_URL") or support.DEFAULT_REDIS_URL)._replace(
            path=f"/{options.redis_index}"
        )
    )
    os.environ.update(DEBUG="true", DATABASE_URL=url, REDIS_URL=redis, LOG_LEVEL="warning")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    sys.path.insert(0, str(support.ROOT))
    import django

    django.setup()
    import redis as redis_lib

    redis_lib.Redis.from_url(redis).flushdb()

    work_dir = Path(f"/tmp/bench-worker-memory-{os.getpid()}")  # noqa: S108
    (work_dir / "var").mkdir(parents=True, exist_ok=True)
    write_certificate(str(work_dir))  # the targets serve HTTPS too (unused here)
    ports = {"http": support.free_port(), "https": support.free_port(), "hang": support.free_port()}
    bench = Bench(url, harness.QUICK, work_dir, ports, lambda: None, random.Random(1))
    bench.redis = redis
    processes = harness.Processes(work_dir)
    engine = harness.Engine(bench, processes)
    celery = str(support.VENV_BIN / "celery")
    env = bench.env("info")
    host = socket.gethostname()
    try:
        engine.start_targets()
        start = datetime.now(UTC) + timedelta(seconds=10)
        checksets.create_checks(
            "mem",
            rate,
            target=f"http://127.0.0.1:{ports['http']}/",
            interval=1,
            timeout=5,
            first_due=start,
        )
        support.analyze()
        processes.start(
            "dispatch",
            [celery, "-A", "portal", "worker", "--queues=dispatch", "--concurrency=1",
             f"--hostname=bench-disp@{host}"],
            env,
        )  # fmt: skip
        # As deploy/k8s/workers.yaml starts it.
        processes.start(
            "probes",
            [celery, "-A", "portal", "worker", "--loglevel=INFO",
             f"--concurrency={CONCURRENCY}", "--queues=probes,celery",
             f"--hostname=bench-probes@{host}"],
            env,
        )  # fmt: skip
        engine.workers = {"dispatch": f"bench-disp@{host}", "probes": f"bench-probes@{host}"}
        engine.wait_for_workers()
        processes.start(
            "beat",
            [celery, "-A", "portal", "beat", "-s", str(work_dir / "var" / "beat-schedule")],
            env,
        )
        time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + warmup)
        results = measure(processes.started["probes"].pid, duration, url)
    finally:
        processes.stop_all()
    results["rate_asked_per_s"] = rate
    results["concurrency"] = CONCURRENCY
    results["warmup_s"] = warmup
    results["machine"] = support.machine_info(url)
    support.finish(NAME, results, report, quick=quick, smoke="(100 checks/s for 20 s)")


def measure(root: int, duration: float, url: str) -> dict:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        before = conn.execute("SELECT count(*) FROM healthchecks_checkresult").fetchone()[0]
    began = time.monotonic()
    largest: dict = {"pss": 0}
    samples = []
    while time.monotonic() - began < duration:
        pids = support.descendants(root, support.all_processes())
        seen = {pid: m for pid in pids if (m := memory(pid)) is not None}
        sums = {k: sum(m[k] for m in seen.values()) for k in ("rss", "pss", "uss")}
        samples.append(sums)
        if sums["pss"] > largest["pss"]:
            largest = {**sums, "processes": len(seen), "each": sorted(seen.values(), key=str)}
        time.sleep(EVERY)
    seconds = time.monotonic() - began
    with psycopg.connect(url, autocommit=True) as conn:
        after = conn.execute("SELECT count(*) FROM healthchecks_checkresult").fetchone()[0]
    mib = 2**20
    return {
        "seconds": round(seconds, 1),
        "results_per_s": round((after - before) / seconds, 1),
        "samples": len(samples),
        "processes": largest.get("processes", 0),
        "rss_mib_max": round(max(s["rss"] for s in samples) / mib, 1),
        "pss_mib_max": round(max(s["pss"] for s in samples) / mib, 1),
        "pss_mib_median": round(sorted(s["pss"] for s in samples)[len(samples) // 2] / mib, 1),
        "uss_mib_max": round(max(s["uss"] for s in samples) / mib, 1),
        "at_largest_pss_each_mib": [
            {k: round(v / mib, 1) for k, v in m.items()} for m in largest.get("each", [])
        ],
    }


def report(results: dict) -> None:
    support.print_table(
        f"probe worker -c {results['concurrency']}, {results['rate_asked_per_s']} checks/s asked",
        ["processes", "results/s", "RSS MiB max", "PSS MiB max", "PSS MiB median", "USS MiB max"],
        [
            [
                results["processes"],
                results["results_per_s"],
                results["rss_mib_max"],
                results["pss_mib_max"],
                results["pss_mib_median"],
                results["uss_mib_max"],
            ]
        ],
    )
