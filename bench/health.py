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
never answers, all due at once, so that one batch holds 100 probes timing out), ``history``
(90 days of rollups for 1,000 services; uptime queries), ``capacity`` and ``contended``
(overload: bench.contended), ``automation`` (the engine's lag while the automation handles
outages of a shared dependency of 1,000 services: bench.automation_lag). Each throughput phase
starts the engine afresh -- Celery beat, a dispatcher worker, a prefork probe worker, the
targets -- and stops it by the PIDs it started.

Works on its own database (``portal_bench_health``, recreated each run) and Redis database
10 (flushed). Application modules are imported inside functions, once ``support.setup_django``
has pointed Django at that database.
"""

import contextlib
import functools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench import support

NAME = "health"
DESCRIPTION = "the health-check engine at 1,000 checks/s: throughput, lag, API, storage"
DATABASE = "portal_bench_health"
REDIS_INDEX = 10
SEED = 20240603
PHASES = ("http", "https", "slow", "history", "capacity", "contended", "automation")

TARGETS = {
    "http_checks_per_s": 1000,
    "https_checks_per_s": 500,
    "missed_checks": 0,
    "lag_p99_ms": 250.0,
    "api_services_1000_p99_ms": 25.0,
    "api_services_10000_p99_ms": 150.0,
    "api_service_p99_ms": 10.0,
    "api_root_p99_ms": 5.0,
    "raw_bytes_per_result": 100.0,
    "rollup_bytes_per_result": 2.0,
    "uptime_90d_all_ms": 150.0,
    "uptime_one_ms": 5.0,
    "cpu_over_bare_probe": 2.0,  # engine CPU per check, all processes, over the bare probe's
    "normal_after_hog_s": 30.0,
    "lag_p99_beside_automation_over_quiet": 1.5,  # the automation phase: must not grow
}
CHUNK = 100  # API requests per block (each block's machine load is recorded)
BENCH_PROCESS = "bench (API client, sampler)"


@dataclass(frozen=True)
class Shape:
    duration: float  # measured seconds of the http and https phases
    warmup: float  # seconds of each phase before its measured window
    slow_duration: float  # measured seconds of the slow phase
    http_rate: int  # checks per second (checks at a 1-second interval)
    https_rate: int
    hang_checks: int  # checks against a target that never answers (slow phase)
    hang_interval: int  # their interval, seconds (their timeout is 5 s)
    api_start: float  # seconds into the http window when the API measurement starts
    api_requests: int  # measured requests per API path
    extra_services: int  # added for /health/services with 10,000 services
    uptime_repeats: int  # services_uptime("90d") calls
    probe_processes: int  # the probe worker's prefork pool (celery -c)
    target_processes: int  # target server processes sharing the ports (SO_REUSEPORT)
    # The overload phases (bench.contended).
    capacity_warmup: float = 15  # seconds before each capacity step's measured window
    capacity_step: float = 30  # measured seconds per rate
    capacity_step_rate: int = 250  # checks per second added per step
    capacity_max_rate: int = 6000
    contended_rate: int = 0  # 0: the quiet capacity measured (bench.contended.contended_rate)
    contended_before: float = 60  # quiet seconds measured before the hog starts
    hog_seconds: float = 120
    contended_after: float = 60  # seconds measured after the hog stops
    # The automation phase (bench.automation_lag).
    automation_rate: int = 0  # 0: half the quiet capacity measured, else 500/s
    automation_stretch: float = 60  # seconds of each stretch (four: bench.automation_lag)
    automation_dependents: int = 1000  # services that hard-depend on the shared one
    automation_cycle: float = 10  # seconds: the shared dependency down, then back
    automation_receiver_delay: float = 1.0  # seconds the notification receiver takes


FULL = Shape(600, 30, 180, 1000, 500, 100, 10, 60, 300, 9000, 30, 8, 1)
QUICK = Shape(
    60, 15, 60, 1000, 500, 100, 10, 10, 100, 9000, 10, 8, 1,
    capacity_step=15, capacity_step_rate=500, capacity_max_rate=2000, contended_before=20,
    hog_seconds=40,
    contended_after=45,
    automation_stretch=20,
)  # fmt: skip


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


def shape_from(options) -> Shape:
    shape = QUICK if options.quick else FULL
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


@dataclass
class Bench:
    """What the phases share."""

    url: str
    shape: Shape
    work_dir: Path
    ports: dict[str, int]
    settle: Callable[[], None]
    rng: random.Random
    results: dict = field(default_factory=dict)

    engine_log_level: str = "info"

    def env(self, log_level: str = "warning") -> dict[str, str]:
        return support.app_env(
            self.url, REDIS_INDEX, PORTAL_VAR_DIR=str(self.work_dir / "var"), LOG_LEVEL=log_level
        )


def run(options) -> None:
    shape = shape_from(options)
    phases = [p.strip() for p in options.phases.split(",") if p.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phases {', '.join(sorted(unknown))}; known: {PHASES}")
    print(f"health benchmark: phases {', '.join(phases)}; {asdict(shape)}")
    print(f"creating and migrating the database {DATABASE!r} ...", flush=True)
    url = support.create_database(DATABASE)
    support.flush_redis(REDIS_INDEX)
    support.setup_django(url, REDIS_INDEX)
    keep = getattr(options, "keep_logs", False)
    with tempfile.TemporaryDirectory(prefix="bench-health-", delete=not keep) as work:
        work_dir = Path(work)
        if keep:
            print(f"logs kept in {work_dir}")
        (work_dir / "var").mkdir()
        from bench.probes import write_certificate

        write_certificate(str(work_dir))
        bench = Bench(
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
            "targets": TARGETS,
            "wait_idle_s": options.wait_idle,
            "settings": engine_settings(),
        }
        from bench import automation_lag, contended

        runners = {
            "http": phase_http,
            "https": phase_https,
            "slow": phase_slow,
            "history": phase_history,
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


def results_name(phases: list[str], shape: Shape) -> str:
    """``health`` for the full run; partial or re-rated runs get a file of their own
    (``health-https-https400``, say), so they never overwrite it."""
    parts = [] if phases == list(PHASES) else list(phases)
    if "http" in phases and shape.http_rate != FULL.http_rate:
        parts.append(f"http{shape.http_rate}")
    if "https" in phases and shape.https_rate != FULL.https_rate:
        parts.append(f"https{shape.https_rate}")
    if {"http", "https"} & set(phases) and shape.duration != FULL.duration:
        parts.append(f"{shape.duration:.0f}s")
    if "automation" in phases and shape.automation_rate:
        parts.append(f"automation{shape.automation_rate}")
    return "-".join([NAME, *parts])


def engine_settings() -> dict:
    from django.conf import settings

    names = [n for n in dir(settings) if n.startswith("HEALTH_")]
    return {n: getattr(settings, n) for n in sorted(names) if not n.endswith(("HOSTS", "PORTS"))}


# --- Processes --------------------------------------------------------------------------------


class Processes:
    """Subprocesses started by this benchmark, each stopped by the PID it was started with
    (and, only if it does not exit, its own children by their PIDs)."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed by the child's exit
        process = subprocess.Popen(
            command,
            cwd=support.ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only this process; it stops them all
        )
        log.close()
        self.started[name] = process
        return process

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.started.items() if p.poll() is None}

    def log_tail(self, name: str, lines: int = 20) -> str:
        text = (self.log_dir / f"{name}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, name: str, timeout: float = 60) -> None:
        process = self.started.pop(name, None)
        if process is None or process.poll() is not None:
            return
        children = support.descendants(process.pid, support.all_processes())
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for pid in children:
            if pid != process.pid and support.proc_stat(pid) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for name in reversed(list(self.started)):
            self.stop(name)


class Engine:
    """Beat, a dispatcher worker, a probe worker and the targets: one phase's processes."""

    def __init__(self, bench: Bench, processes: Processes):
        self.bench = bench
        self.processes = processes
        host = socket.gethostname()
        self.workers = {"dispatch": f"bench-disp@{host}", "probes": f"bench-probes@{host}"}

    def start_targets(self) -> None:
        ports = self.bench.ports
        command = [
            sys.executable,
            "-m",
            "bench.targets",
            f"--http={ports['http']}",
            f"--https={ports['https']}",
            f"--hang={ports['hang']}",
            f"--cert-dir={self.bench.work_dir}",
        ]
        for n in range(self.bench.shape.target_processes):
            name = f"targets-{n}"
            self.processes.start(name, command, self.bench.env())
            _wait_for(lambda name=name: "ready" in self.processes.log_tail(name), 20, name)

    def start(self) -> None:
        celery = str(support.VENV_BIN / "celery")
        env, var = self.bench.env(self.bench.engine_log_level), self.bench.work_dir / "var"
        common = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        self.start_targets()
        self.processes.start(
            "dispatch",
            [celery, "-A", "portal", "worker", "-Q", "dispatch", "-c", "1",
             "-n", self.workers["dispatch"], *common],
            env,
        )  # fmt: skip
        self.processes.start(
            "probes",
            [celery, "-A", "portal", "worker", "-Q", "probes",
             "-c", str(self.bench.shape.probe_processes), "-n", self.workers["probes"], *common],
            env,
        )  # fmt: skip
        self.wait_for_workers()
        self.processes.start(
            "beat",
            [celery, "-A", "portal", "beat", "-s", str(var / "beat-schedule"),
             f"--pidfile={var / 'beat.pid'}"],
            env,
        )  # fmt: skip

    def wait_for_workers(self, timeout: float = 60) -> None:
        from portal.celery import app

        deadline = time.monotonic() + timeout
        wanted = set(self.workers.values())
        while time.monotonic() < deadline:
            for name in ("dispatch", "probes"):
                process = self.processes.started[name]
                if process.poll() is not None:
                    raise SystemExit(f"{name} worker exited:\n{self.processes.log_tail(name)}")
            answered = {name for reply in app.control.ping(timeout=1.0) for name in reply}
            if wanted <= answered:
                return
        raise SystemExit(f"the workers did not answer within {timeout} s")

    def stop(self) -> None:
        for name in ["beat", "dispatch", "probes"] + [
            n for n in list(self.processes.started) if n.startswith("targets-")
        ]:
            self.processes.stop(name)


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start within {timeout} s")


# --- Sampling while a phase runs ---------------------------------------------------------------


class Monitor:
    """Samples every few seconds, in a thread: the CPU time and RSS of every process this
    benchmark started (with their children), of PostgreSQL's and Redis's server processes
    and of this process; the machine's CPU; and, from the database, how far behind the
    phase's check states are (now minus their last due time) and the engine's heartbeats."""

    def __init__(self, roots: dict[str, int], url: str, check_ids: list[int], every: float = 5):
        self.roots = dict(roots)
        processes = support.all_processes()
        self.roots.update(_server_roots(processes))
        self.roots[BENCH_PROCESS] = os.getpid()  # itself only: the others are its children
        self.url, self.check_ids, self.every = url, check_ids, every
        self.first: dict[str, dict[int, support.ProcStat]] = {}
        self.last: dict[str, dict[int, support.ProcStat]] = {}
        self.rss_max: dict[str, int] = {}
        self.root_children: dict[str, tuple[float, float]] = {}
        self.staleness: list[dict] = []
        self.heartbeats: list[dict] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="monitor", daemon=True)

    def start(self) -> None:
        self.tcp_before = support.tcp_counters()
        self.busy_before = support.machine_cpu_times()
        self.started = time.monotonic()
        self._sample_processes()
        self.thread.start()

    def stop(self) -> dict:
        self.stopping.set()
        self.thread.join()
        self._sample_processes()
        seconds = time.monotonic() - self.started
        busy, total = support.machine_cpu_times()
        machine = 100 * (busy - self.busy_before[0]) / max(1, total - self.busy_before[1])
        tcp = support.tcp_counters()
        return {
            "seconds": round(seconds, 1),
            "machine_busy_pct": round(machine, 1),
            "tcp_counters_delta": {k: v - self.tcp_before.get(k, 0) for k, v in tcp.items()},
            "processes": self._process_figures(seconds),
            "staleness": self.staleness,
            "heartbeats": self.heartbeats,
        }

    def _loop(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            n = 0
            while not self.stopping.wait(self.every):
                self._sample_processes()
                if n % 2 == 0:
                    self._sample_database(conn)
                n += 1

    def _sample_processes(self) -> None:
        processes = support.all_processes()
        for label, root in self.roots.items():
            if root not in processes:
                continue
            pids = [root] if label == BENCH_PROCESS else support.descendants(root, processes)
            group = {pid: processes[pid] for pid in pids}
            self.first.setdefault(label, {}).update(
                {pid: s for pid, s in group.items() if pid not in self.first.get(label, {})}
            )
            self.last.setdefault(label, {}).update(group)
            self.last[label] = {pid: s for pid, s in self.last[label].items() if pid in group}
            self.rss_max[label] = max(
                self.rss_max.get(label, 0), sum(s.rss_bytes for s in group.values())
            )
            children = processes[root].children_cpu_s
            start = self.root_children.get(label, (children, children))[0]
            self.root_children[label] = (start, children)

    def _sample_database(self, conn) -> None:
        oldest, newest, never, not_healthy = staleness(conn, self.check_ids)
        self.staleness.append(
            {
                "at": time.time(),
                "oldest_s": oldest,
                "newest_s": newest,
                "never": never,
                "not_healthy": not_healthy,
            }
        )
        beats = conn.execute(
            "SELECT name, details FROM portal_heartbeat WHERE name IN ('dispatcher', 'worker')"
        ).fetchall()
        self.heartbeats.append({name: details for name, details in beats})

    def _process_figures(self, seconds: float) -> list[dict]:
        rows = []
        for label in self.roots:
            if label not in self.last:
                continue
            first, last = self.first[label], self.last[label]
            cpu = sum(
                s.cpu_s - (first[pid].cpu_s if pid in first else 0) for pid, s in last.items()
            )
            if label != BENCH_PROCESS:  # children that exited (PostgreSQL backends, say)
                start, end = self.root_children.get(label, (0.0, 0.0))
                cpu += end - start
            per_process = [
                {"pid": pid, "comm": s.comm, "cpu_s": round(s.cpu_s - first[pid].cpu_s, 2),
                 "rss_mb": round(s.rss_bytes / 2**20, 1)}
                for pid, s in sorted(last.items()) if pid in first
            ]  # fmt: skip
            rows.append(
                {
                    "process": label,
                    "processes": len(last),
                    "cpu_s": round(cpu, 2),
                    "cpu_pct_of_one_core": round(100 * cpu / seconds, 1),
                    "rss_mb_max": round(self.rss_max.get(label, 0) / 2**20, 1),
                    "each": per_process if len(per_process) <= 12 else per_process[:12],
                }
            )
        return rows


def _server_roots(processes: dict[int, support.ProcStat]) -> dict[str, int]:
    """PostgreSQL's postmaster (its backends are its children) and redis-server."""
    roots = {}
    for stat in processes.values():
        parent = processes.get(stat.ppid)
        if stat.comm == "postgres" and (parent is None or parent.comm != "postgres"):
            roots["postgresql (all server processes)"] = stat.pid
        elif stat.comm.startswith("redis-server"):
            roots["redis-server"] = stat.pid
    return roots


# --- Checks ------------------------------------------------------------------------------------


@dataclass
class CheckSet:
    """Checks created for a phase, with the first due time of each (the grid they run on)."""

    name: str
    ids: list[int]
    first_due: dict[int, datetime]
    interval: int
    services: list[str]


def create_checks(
    prefix: str,
    count: int,
    *,
    target: str,
    interval: int,
    timeout: float,
    first_due: datetime,
    spread: bool = True,
    options: dict | None = None,
) -> CheckSet:
    """``count`` services with one HTTP check each, created in bulk as healthchecks.checks
    creates them (a HealthCheck, its CheckState and CheckSchedule). With ``spread`` the first
    due times are spread evenly over one interval, otherwise they are all ``first_due``."""
    from django.db import transaction
    from django.utils import timezone

    from healthchecks.models import CheckSchedule, CheckState, HealthCheck
    from services.models import Service, Team

    now = timezone.now()
    with transaction.atomic():
        team, _ = Team.objects.get_or_create(name="bench-health")
        services = Service.objects.bulk_create(
            Service(name=f"{prefix}-{i:05d}", team=team, created_at=now, updated_at=now)
            for i in range(count)
        )
        checks = HealthCheck.objects.bulk_create(
            HealthCheck(
                service=service,
                name="http",
                kind="http",
                target=target,
                interval=interval,
                timeout=timeout,
                retries=0,
                is_critical=True,
                options=options or {},
                created_at=now,
                updated_at=now,
            )
            for service in services
        )
        CheckState.objects.bulk_create(CheckState(health_check=check) for check in checks)
        schedules = CheckSchedule.objects.bulk_create(
            CheckSchedule(
                health_check=check,
                next_due_at=first_due
                + (timedelta(seconds=interval * i / count) if spread else timedelta()),
            )
            for i, check in enumerate(checks)
        )
    return CheckSet(
        name=prefix,
        ids=[c.pk for c in checks],
        first_due={s.health_check_id: s.next_due_at for s in schedules},
        interval=interval,
        services=[s.name for s in services],
    )


def disable(check_sets: list[CheckSet]) -> None:
    """As healthchecks.checks.save disables checks: off, and off the schedule."""
    from django.db import transaction

    from healthchecks.models import CheckSchedule, HealthCheck

    ids = [i for s in check_sets for i in s.ids]
    with transaction.atomic():
        HealthCheck.objects.filter(pk__in=ids).update(enabled=False)
        CheckSchedule.objects.filter(health_check_id__in=ids).delete()


def add_services(count: int, prefix: str = "extra") -> None:
    """Services without checks, each with a (healthy) status row, as /health/services
    would show a large estate: for the 10,000-service listing."""
    from django.db import transaction
    from django.utils import timezone

    from healthchecks.models import ServiceHealth
    from healthchecks.status import Status
    from services.models import Service, Team

    now = timezone.now()
    with transaction.atomic():
        team, _ = Team.objects.get_or_create(name="bench-health")
        services = Service.objects.bulk_create(
            (
                Service(name=f"{prefix}-{i:05d}", team=team, created_at=now, updated_at=now)
                for i in range(count)
            ),
            batch_size=2000,
        )
        ServiceHealth.objects.bulk_create(
            (
                ServiceHealth(service=s, status=Status.HEALTHY, since=now, updated_at=now)
                for s in services
            ),
            batch_size=2000,
        )


# --- Analysis ---------------------------------------------------------------------------------


def due_times(first: datetime, interval_s: int, start: datetime, end: datetime) -> int:
    """How many of first + k * interval (k >= 0) fall in [start, end): exact, in
    microseconds."""
    step = interval_s * 1_000_000

    def before(moment: datetime) -> int:  # due times earlier than ``moment``
        gap = round((moment - first) / timedelta(microseconds=1))
        return 0 if gap <= 0 else -(-gap // step)

    return before(end) - before(start)


def analyse(url: str, checks: CheckSet, start: datetime, end: datetime) -> dict:
    """Results of ``checks`` due in [start, end): exactly one per check and due time?
    (expected from each check's grid; duplicates are impossible, the key is (check, at)),
    any off the grid, lag percentiles, statuses and errors, results per second."""
    expected = {i: due_times(checks.first_due[i], checks.interval, start, end) for i in checks.ids}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TEMP TABLE phase (id int PRIMARY KEY, first_due timestamptz, interval_s int)"
        )
        with conn.cursor().copy("COPY phase (id, first_due, interval_s) FROM STDIN") as copy:
            for i in checks.ids:
                copy.write_row((i, checks.first_due[i], checks.interval))
        conn.execute("ANALYZE phase")
        where = {"start": start, "end": end}
        per_check = conn.execute(
            """
            SELECT r.health_check_id, count(*),
                   count(*) FILTER (WHERE (extract(epoch FROM r.at - p.first_due) * 1000000)
                                          ::bigint %% (p.interval_s * 1000000) <> 0)
            FROM healthchecks_checkresult r JOIN phase p ON p.id = r.health_check_id
            WHERE r.at >= %(start)s AND r.at < %(end)s GROUP BY 1
            """,
            where,
        ).fetchall()
        found = {i: (n, off) for i, n, off in per_check}
        lag = conn.execute(
            """
            SELECT count(*),
                   percentile_disc(ARRAY[0.5, 0.9, 0.95, 0.99, 0.999])
                       WITHIN GROUP (ORDER BY r.lag_ms),
                   min(r.lag_ms), max(r.lag_ms), avg(r.lag_ms)::float,
                   count(*) FILTER (WHERE r.lag_ms >= 250),
                   count(*) FILTER (WHERE r.status <> 1),
                   percentile_disc(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY r.response_us)
            FROM healthchecks_checkresult r JOIN phase p ON p.id = r.health_check_id
            WHERE r.at >= %(start)s AND r.at < %(end)s
            """,
            where,
        ).fetchone()
        errors = conn.execute(
            """
            SELECT r.error_code, r.status, count(*), min(r.at), max(r.at)
            FROM healthchecks_checkresult r JOIN phase p ON p.id = r.health_check_id
            WHERE r.at >= %(start)s AND r.at < %(end)s GROUP BY 1, 2 ORDER BY 3 DESC
            """,
            where,
        ).fetchall()
        per_second = conn.execute(
            """
            SELECT min(n), max(n), avg(n)::float, count(*) FROM (
                SELECT floor(extract(epoch FROM r.at - %(start)s)) AS s, count(*) AS n
                FROM healthchecks_checkresult r JOIN phase p ON p.id = r.health_check_id
                WHERE r.at >= %(start)s AND r.at < %(end)s GROUP BY 1) AS seconds
            """,
            where,
        ).fetchone()
        series = conn.execute(
            """
            SELECT floor(extract(epoch FROM r.at - %(start)s))::int AS s, count(*),
                   max(r.lag_ms), count(*) FILTER (WHERE r.status <> 1)
            FROM healthchecks_checkresult r JOIN phase p ON p.id = r.health_check_id
            WHERE r.at >= %(start)s AND r.at < %(end)s GROUP BY 1 ORDER BY 1
            """,
            where,
        ).fetchall()
        by_tenth = conn.execute(
            """
            SELECT floor(extract(epoch FROM r.at) * 10)::bigint %% 10, count(*),
                   percentile_disc(0.99) WITHIN GROUP (ORDER BY r.lag_ms), max(r.lag_ms)
            FROM healthchecks_checkresult r JOIN phase p ON p.id = r.health_check_id
            WHERE r.at >= %(start)s AND r.at < %(end)s GROUP BY 1 ORDER BY 1
            """,
            where,
        ).fetchall()
        conn.execute("DROP TABLE phase")
    missed = sum(max(0, expected[i] - found.get(i, (0, 0))[0]) for i in checks.ids)
    extra = sum(max(0, found.get(i, (0, 0))[0] - expected[i]) for i in checks.ids)
    names = ("p50", "p90", "p95", "p99", "p99_9")
    return {
        "checks": len(checks.ids),
        "interval_s": checks.interval,
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "window_s": (end - start).total_seconds(),
        "expected": sum(expected.values()),
        "recorded": lag[0],
        "missed": missed,
        "unexpected": extra,
        "off_grid": sum(off for _, off in found.values()),
        "checks_with_a_miss": sum(1 for i in checks.ids if found.get(i, (0, 0))[0] < expected[i]),
        "rate_per_s": round(lag[0] / (end - start).total_seconds(), 1),
        "per_second": {
            "min": per_second[0],
            "max": per_second[1],
            "mean": round(per_second[2] or 0, 1),
            "seconds": per_second[3],
        },
        "lag_ms": {
            **dict(zip(names, lag[1] or [None] * 5, strict=True)),
            "min": lag[2],
            "max": lag[3],
            "mean": round(lag[4] or 0, 2),
            "at_or_over_250": lag[5],
        },
        "not_healthy": lag[6],
        "response_ms": {
            "p50": None if not lag[7] else lag[7][0] / 1000,
            "p99": None if not lag[7] else lag[7][1] / 1000,
        },
        # [second of the window, results, max lag ms, not healthy]: where trouble was
        "per_second_series": [list(row) for row in series],
        # lag by the tenth of the wall-clock second the check was due in
        "lag_by_tenth_of_second": [
            {"tenth": t, "n": n, "p99_ms": p99, "max_ms": top} for t, n, p99, top in by_tenth
        ],
        "by_error_and_status": [
            {"error_code": e, "status": s, "n": n, "first": a.isoformat(), "last": b.isoformat()}
            for e, s, n, a, b in errors
        ],
    }


def state_snapshot(url: str, checks: CheckSet) -> dict:
    """The check states now (at the end of the window): how long ago the oldest and the
    newest due time they reflect was, and how many are not healthy or never recorded."""
    with psycopg.connect(url, autocommit=True) as conn:
        oldest, newest, never, not_healthy = staleness(conn, checks.ids)
    return {
        "oldest_last_due_s_ago": oldest,
        "newest_last_due_s_ago": newest,
        "never_recorded": never,
        "not_healthy": not_healthy,
    }


def staleness(conn, check_ids: list[int]) -> tuple:
    """Seconds since the oldest and the newest due time the states reflect (None before any
    result), and how many states were never recorded or are not healthy."""
    oldest, newest, never, not_healthy = conn.execute(
        """
        SELECT extract(epoch FROM clock_timestamp() - min(last_due_at))::float,
               extract(epoch FROM clock_timestamp() - max(last_due_at))::float,
               count(*) FILTER (WHERE last_due_at IS NULL),
               count(*) FILTER (WHERE status <> 1)
        FROM healthchecks_checkstate WHERE health_check_id = ANY(%s)
        """,
        [check_ids],
    ).fetchone()
    return (
        None if oldest is None else round(oldest, 3),
        None if newest is None else round(newest, 3),
        never,
        not_healthy,
    )


def wait_until_recorded(url: str, checks: CheckSet, end: datetime, expected: int, timeout: float):
    """Wait for the results due before ``end`` to be recorded (those in flight at the end of
    the window), up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            n = conn.execute(
                "SELECT count(*) FROM healthchecks_checkresult "
                "WHERE health_check_id = ANY(%s) AND at < %s AND at >= %s",
                [checks.ids, end, min(checks.first_due.values())],
            ).fetchone()[0]
            if n >= expected:
                return
            time.sleep(0.5)


def batch_log(processes: Processes, start: datetime, end: datetime) -> dict:
    """The probe worker's one line per batch (LOG_LEVEL=info): how early each batch reached a
    worker before its first due time (``slack_ms``, negative: late) and how long its setup
    took, for the batches that ended in the window."""
    path = processes.log_dir / "probes.log"
    batches = []
    for line in path.read_text(errors="replace").splitlines():
        if '"probe batch"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        ended = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
        if start <= ended < end:
            batches.append(entry)
    if not batches:
        return {"batches": 0}
    slack = sorted(b["slack_ms"] for b in batches)
    setup = sorted(b["setup_ms"] for b in batches)
    return {
        "batches": len(batches),
        "claimed_mean": round(sum(b["claimed"] for b in batches) / len(batches), 1),
        "slack_ms": {
            "min": slack[0],
            "p1": support.percentile(slack, 1),
            "p50": support.percentile(slack, 50),
            "max": slack[-1],
            "late": sum(1 for v in slack if v < 0),
        },
        "setup_ms": {
            "p50": support.percentile(setup, 50),
            "p99": support.percentile(setup, 99),
            "max": setup[-1],
        },
    }


def log_problems(processes: Processes, start: datetime, end: datetime) -> dict:
    """Error and warning lines the processes logged during the window (JSON lines), and how
    many they logged outside it (starting, and stopping: connections cut at shutdown)."""
    found: dict = {}
    for path in processes.log_dir.glob("*.log"):
        inside, outside = [], 0
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{") or not ('"error"' in line or '"warning"' in line):
                continue
            try:
                entry = json.loads(line)
                moment = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
            except (ValueError, KeyError):
                continue
            if start <= moment < end:
                inside.append(line[:300])
            else:
                outside += 1
        if inside or outside:
            found[path.stem] = {"in_window": len(inside), "first": inside[:5], "outside": outside}
    return found


# --- A throughput phase -----------------------------------------------------------------------


def throughput_phase(
    bench: Bench,
    name: str,
    check_sets: Callable[[datetime], list[CheckSet]],
    duration: float,
    during: Callable[[Bench, list[CheckSet], support.Server | None], dict] | None = None,
    after: Callable[[Bench, list[CheckSet], support.Server | None], dict] | None = None,
    with_server: bool = False,
    started: Callable[[Bench, Processes], None] | None = None,
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
    processes = Processes(log_dir)
    engine = Engine(bench, processes)
    bench.settle()
    support.flush_redis(REDIS_INDEX)
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
        monitor = Monitor(
            {_label(n): pid for n, pid in roots.items()},
            bench.url,
            [i for s in sets for i in s.ids],
        )
        _sleep_until(start)
        print(f"  measuring {duration:.0f} s from {start:%H:%M:%S} ...", flush=True)
        monitor.start()
        extra = during(bench, sets, server) if during else {}
        if datetime.now(UTC) > end:
            print("  (the measurement during the window ran past its end)", flush=True)
        _sleep_until(end)
        snapshots = {s.name: state_snapshot(bench.url, s) for s in sets}
        figures = monitor.stop()
        for check_set in sets:
            wait_until_recorded(
                bench.url,
                check_set,
                end,
                sum(due_times(f, check_set.interval, min(check_set.first_due.values()), end)
                    for f in check_set.first_due.values()),
                timeout=15,
            )  # fmt: skip
        analysis = {s.name: analyse(bench.url, s, start, end) for s in sets}
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
        "batches": summarise_heartbeats(figures["heartbeats"]),
        "batch_log": batch_log(processes, start, end),
        "log_problems": log_problems(processes, start, end),
        **extra,
    }
    result["cpu_us_per_check"] = cpu_per_check(result)
    disable(sets)
    return result


def _label(name: str) -> str:
    if name == "dispatch":
        return "celery dispatcher worker (-c 1)"
    if name == "probes":
        return "celery probe worker (prefork pool)"
    if name == "beat":
        return "celery beat"
    if name == "automation":  # not the engine: left out of its CPU per check
        return "automation worker (celery -Q automation)"
    return f"target server ({name})" if name.startswith("targets") else name


def _sleep_until(moment: datetime) -> None:
    delay = (moment - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)


def summarise_heartbeats(samples: list[dict]) -> dict:
    """The dispatcher's and the workers' last heartbeat details, sampled: how long a dispatch
    took, and how early batches reached a worker (slack) and how long their setup took."""

    def values(component: str, key: str) -> list[float]:
        return [s[component][key] for s in samples if key in s.get(component, {})]

    summary = {}
    for component, key in (
        ("dispatcher", "took_ms"),
        ("dispatcher", "claimed"),
        ("worker", "slack_ms"),
        ("worker", "setup_ms"),
        ("worker", "claimed"),
    ):
        found = values(component, key)
        if found:
            summary[f"{component}_{key}"] = {
                "samples": len(found),
                "min": min(found),
                "median": sorted(found)[len(found) // 2],
                "max": max(found),
            }
    return summary


def cpu_per_check(result: dict) -> dict:
    """CPU time of the engine (and of everything it uses) per recorded check."""
    recorded = sum(a["recorded"] for a in result["results"].values())
    if not recorded:
        return {}
    by_process = {p["process"]: p["cpu_s"] for p in result["resources"]["processes"]}
    engine = sum(v for k, v in by_process.items() if k.startswith("celery"))
    servers = sum(v for k, v in by_process.items() if k.startswith(("postgresql", "redis")))
    targets = sum(v for k, v in by_process.items() if k.startswith("target"))
    return {
        "celery_processes_us": round(engine / recorded * 1e6),
        "postgresql_and_redis_us": round(servers / recorded * 1e6),
        "target_server_us": round(targets / recorded * 1e6),
    }


# --- Phases -----------------------------------------------------------------------------------


def phase_http(bench: Bench) -> None:
    shape = bench.shape
    url = f"http://127.0.0.1:{bench.ports['http']}/health"

    def checks(first_due: datetime) -> list[CheckSet]:
        return [
            create_checks(
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
    print_phase("http", result)
    print("  storage of the raw results and their rollups ...", flush=True)
    bench.results["storage"] = measure_storage(bench, result["results"]["http"])


def phase_https(bench: Bench) -> None:
    shape = bench.shape
    url = f"https://127.0.0.1:{bench.ports['https']}/health"

    def checks(first_due: datetime) -> list[CheckSet]:
        return [
            create_checks(
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
    print_phase("https", result)


def phase_slow(bench: Bench) -> None:
    shape = bench.shape
    ok = f"http://127.0.0.1:{bench.ports['http']}/health"
    hang = f"http://127.0.0.1:{bench.ports['hang']}/health"

    def checks(first_due: datetime) -> list[CheckSet]:
        return [
            create_checks(
                "slow-ok", shape.http_rate, target=ok, interval=1, timeout=1.0, first_due=first_due
            ),
            # All due at the same instants (half a second into an interval): one batch of
            # ~500 holds all 100, which take their 5-second timeout.
            create_checks(
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
    print_phase("slow", result)


# --- The API while the engine runs ------------------------------------------------------------


def measure_api(bench: Bench, sets: list[CheckSet], server: support.Server) -> dict:
    """/health/, /health/service/{name} and /health/services (1,000 services, then 10,000)
    through gunicorn while the checks run, one client on one connection."""
    shape = bench.shape
    _sleep_until(datetime.now(UTC) + timedelta(seconds=shape.api_start))
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
    add_services(shape.extra_services)
    listing = client.get("/health/services").json()
    api["services_10000"] = time_overview(bench, client)
    api["services_10000"]["services"] = len(listing["services"])
    api["services_1000"]["services"] = len(services)
    client.close()
    return {"api": api}


def measure_api_idle(bench: Bench, sets: list[CheckSet], server: support.Server) -> dict:
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


API_WARMUP = 20  # requests per path before the measured ones


def time_root_and_service(bench: Bench, client: support.Client, services: list[str]) -> dict:
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


def time_overview(bench: Bench, client: support.Client) -> dict:
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


# --- Storage and history ----------------------------------------------------------------------


def relation_sizes(conn, table: str) -> dict:
    row = conn.execute(
        "SELECT pg_relation_size(%(t)s), pg_table_size(%(t)s), pg_indexes_size(%(t)s), "
        "pg_total_relation_size(%(t)s)",
        {"t": table},
    ).fetchone()
    indexes = conn.execute(
        "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
        "WHERE indrelid = %s::regclass ORDER BY 1",
        [table],
    ).fetchall()
    return {
        "heap_bytes": row[0],
        "table_bytes": row[1],  # heap, free space map, visibility map, TOAST
        "indexes_bytes": row[2],
        "total_bytes": row[3],
        "indexes": dict(indexes),
    }


def measure_storage(bench: Bench, analysis: dict) -> dict:
    """Bytes per raw result (the table right after the http phase: its results and
    warm-up); then the hourly and daily rollups of those results, their time and size."""
    from django.utils import timezone

    from healthchecks.reads import history

    with psycopg.connect(bench.url, autocommit=True) as conn:
        rows = conn.execute("SELECT count(*) FROM healthchecks_checkresult").fetchone()[0]
        raw = relation_sizes(conn, "healthchecks_checkresult")
        conn.execute("VACUUM ANALYZE healthchecks_checkresult")
        after_vacuum = relation_sizes(conn, "healthchecks_checkresult")
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
        rollups = relation_sizes(conn, "healthchecks_checkrollup")
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


def phase_history(bench: Bench) -> None:
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
        check_set = create_checks(
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
        sizes = relation_sizes(conn, "healthchecks_checkrollup")
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


# --- Verdicts and report ----------------------------------------------------------------------


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
            check(f"{phase}_rate_per_s", analysis["rate_per_s"], TARGETS[rate_key],
                  analysis["rate_per_s"] >= TARGETS[rate_key] * 0.999)  # fmt: skip
        check(f"{phase}_missed", analysis["missed"], 0, analysis["missed"] == 0)
        check(
            f"{phase}_false_failures",
            analysis["not_healthy"],
            0,
            analysis["not_healthy"] == 0,
        )
        check(f"{phase}_lag_p99_ms", analysis["lag_ms"]["p99"], TARGETS["lag_p99_ms"])
    if "slow" in results:
        hang = results["slow"]["results"]["slow-hang"]
        check("slow_hang_missed", hang["missed"], 0, hang["missed"] == 0)
    if "http" in results and "api" in results["http"]:
        api = results["http"]["api"]
        check("api_root_p99_ms", api["root"]["p99_ms"], TARGETS["api_root_p99_ms"])
        check("api_service_p99_ms", api["service"]["p99_ms"], TARGETS["api_service_p99_ms"])
        check(
            "api_services_1000_p99_ms",
            api["services_1000"]["p99_ms"],
            TARGETS["api_services_1000_p99_ms"],
        )
        check(
            "api_services_10000_p99_ms",
            api["services_10000"]["p99_ms"],
            TARGETS["api_services_10000_p99_ms"],
        )
    if "storage" in results:
        raw = results["storage"]["raw"]
        check("raw_bytes_per_result", raw["bytes_per_result"], TARGETS["raw_bytes_per_result"])
    if "history" in results:
        history = results["history"]
        daily_30s = history["bytes_per_check_result"]["interval_30s"]["daily"]
        check("daily_rollup_bytes_per_result_30s", daily_30s, TARGETS["rollup_bytes_per_result"])
        check(
            "uptime_90d_all_p99_ms",
            history["services_uptime_90d"]["p99_ms"],
            TARGETS["uptime_90d_all_ms"],
        )
        check(
            "uptime_one_p99_ms",
            history["uptime_one_service_all_windows"]["p99_ms"],
            TARGETS["uptime_one_ms"],
        )
    if "capacity" in results:
        capacity = results["capacity"]
        check("quiet_capacity_per_s", capacity["quiet_capacity_per_s"], f">= {FULL.http_rate}",
              (capacity["quiet_capacity_per_s"] or 0) >= FULL.http_rate)  # fmt: skip
        ratio = (capacity["cpu_ratio_at_http_rate"] or {}).get("ratio")
        check("cpu_per_check_over_bare_probe", ratio, TARGETS["cpu_over_bare_probe"],
              ratio is not None and ratio <= TARGETS["cpu_over_bare_probe"])  # fmt: skip
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
        check("contended_normal_after_hog_s", back, TARGETS["normal_after_hog_s"],
              back is not None and back <= TARGETS["normal_after_hog_s"])  # fmt: skip
    if "automation" in results:
        from bench import automation_lag

        found.update(automation_lag.verdicts(results["automation"]["summary"]))
    return found


def print_phase(name: str, result: dict) -> None:
    for set_name, a in result["results"].items():
        lag = a["lag_ms"]
        print(
            f"  {set_name}: {a['checks']:,} checks every {a['interval_s']} s, "
            f"{a['recorded']:,} of {a['expected']:,} expected results recorded "
            f"({a['rate_per_s']}/s; per second {a['per_second']['min']}-"
            f"{a['per_second']['max']}), missed {a['missed']}, off-grid {a['off_grid']}, "
            f"not healthy {a['not_healthy']}; lag ms p50 {lag['p50']} p95 {lag['p95']} "
            f"p99 {lag['p99']} p99.9 {lag['p99_9']} max {lag['max']}; at the end the oldest "
            f"state was {a['state_at_window_end']['oldest_last_due_s_ago']} s behind"
        )
    resources = result["resources"]
    support.print_table(
        f"  processes ({resources['seconds']} s, machine {resources['machine_busy_pct']}% busy "
        "of 2 cores)",
        ["process", "n", "CPU s", "% of a core", "RSS MB (sum, max)"],
        [
            [p["process"], p["processes"], p["cpu_s"], p["cpu_pct_of_one_core"], p["rss_mb_max"]]
            for p in resources["processes"]
        ],
    )
    print(f"  CPU per check: {result['cpu_us_per_check']}")
    print(f"  staleness max {result['staleness_max_s']} s; batches {result['batch_log']}")
    print(f"  TCP counters (machine-wide): {resources['tcp_counters_delta']}")
    if result["log_problems"]:
        print(f"  log problems: {json.dumps(result['log_problems'])[:2000]}")
    for key, title in (("api", "while checks run"), ("api_idle", "engine stopped")):
        if key not in result:
            continue
        rows = [
            [path, *(v[k] for k in ("n", "min_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")),
             v["machine_busy_pct"]]
            for path, v in result[key].items()
        ]  # fmt: skip
        support.print_table(
            f"  API, {title} (ms)",
            ["path", "n", "min", "p50", "p95", "p99", "max", "busy%"],
            rows,
        )


def print_history(history: dict) -> None:
    print(
        f"  {history['rollup_rows']:,} rollup rows, {history['bytes_per_rollup_row']} bytes each "
        f"(table and index); per check result at a 30 s interval: "
        f"{history['bytes_per_check_result']['interval_30s']}"
    )
    for key in ("services_uptime_90d", "uptime_one_service_all_windows"):
        v = history[key]
        print(f"  {key}: p50 {v['p50_ms']} p99 {v['p99_ms']} max {v['max_ms']} ms (n {v['n']})")


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
