"""What every phase of the health benchmark runs on: the shape of a run (``Shape``, the quick
and the full one), the targets it is judged by, what the phases share (``Bench``), and the
processes a phase starts -- the engine (beat, a dispatcher worker, a probe worker) and the
probe targets -- each stopped by the PID it was started with."""

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import support

REDIS_INDEX = 10
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
    # The overload phases (contended).
    capacity_warmup: float = 15  # seconds before each capacity step's measured window
    capacity_step: float = 30  # measured seconds per rate
    capacity_step_rate: int = 250  # checks per second added per step
    capacity_max_rate: int = 6000
    contended_rate: int = 0  # 0: the quiet capacity measured (contended.contended_rate)
    contended_before: float = 60  # quiet seconds measured before the hog starts
    hog_seconds: float = 120
    contended_after: float = 60  # seconds measured after the hog stops
    # The automation phase (automation_lag).
    automation_rate: int = 0  # 0: half the quiet capacity measured, else 500/s
    automation_stretch: float = 60  # seconds of each stretch (four: automation_lag)
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


def engine_settings() -> dict:
    from django.conf import settings

    names = [n for n in dir(settings) if n.startswith("HEALTH_")]
    return {n: getattr(settings, n) for n in sorted(names) if not n.endswith(("HOSTS", "PORTS"))}


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


def process_label(name: str) -> str:
    if name == "dispatch":
        return "celery dispatcher worker (-c 1)"
    if name == "probes":
        return "celery probe worker (prefork pool)"
    if name == "beat":
        return "celery beat"
    if name == "automation":  # not the engine: left out of its CPU per check
        return "automation worker (celery -Q automation)"
    return f"target server ({name})" if name.startswith("targets") else name


def sleep_until(moment: datetime) -> None:
    delay = (moment - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)
