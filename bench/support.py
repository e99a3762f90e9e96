"""What every benchmark needs: its own database, Django, a gunicorn server, an HTTP client,
percentiles, machine facts, a table printer and the results file.

Nothing here imports the application: Django reads its settings (DATABASE_URL among them)
once per process, so ``setup_django`` must run before any ``portal`` or ``services`` import.
"""

import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
VENV_BIN = Path(sys.executable).parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/portal"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
# Databases a benchmark must never drop: the development ones and the test suite's.
PROTECTED_DATABASES = {
    "portal",
    "test_portal",
    "portal_me",
    "portal_probes",
    "portal_browser",
    "postgres",
    "template0",
    "template1",
}
# Redis database indexes the benchmarks may use (and flush); others belong to other work.
BENCH_REDIS_DATABASES = (10, 11)


# --- Database ---------------------------------------------------------------------------------


def database_url(name: str) -> str:
    """DATABASE_URL's server (user, host, port), with the database ``name``."""
    parts = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    if parts.scheme not in ("postgres", "postgresql"):
        raise SystemExit(f"benchmarks need PostgreSQL; DATABASE_URL is {parts.scheme}://...")
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_database(name: str) -> str:
    """Drop and create the database ``name`` on DATABASE_URL's server, migrate it, return
    its URL. Refuses the names of the development and test databases."""
    source = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL).path.lstrip("/")
    if name in PROTECTED_DATABASES or name == source:
        raise SystemExit(f"refusing to recreate the database {name!r}")
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = database_url(name)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=app_env(url),
        check=True,
    )
    return url


def redis_url(index: int = BENCH_REDIS_DATABASES[1]) -> str:
    """REDIS_URL's server with the database ``index``: benchmarks keep to databases of their
    own (BENCH_REDIS_DATABASES), whatever index REDIS_URL names."""
    if index not in BENCH_REDIS_DATABASES:
        raise SystemExit(f"benchmarks use Redis databases {BENCH_REDIS_DATABASES}, not {index}")
    parts = urlsplit(os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
    return urlunsplit(parts._replace(path=f"/{index}"))


def flush_redis(index: int) -> None:
    """Empty one of the benchmarks' own Redis databases."""
    import redis

    client = redis.Redis.from_url(redis_url(index))
    try:
        client.flushdb()
    finally:
        client.close()


def app_env(url: str, redis_index: int = BENCH_REDIS_DATABASES[1], **extra: str) -> dict[str, str]:
    """The environment the application runs with against the benchmark database (and the
    benchmarks' own Redis database). The rate limiter is off: a benchmark is one client
    sending thousands of requests a minute, and measures the portal, not the limiter."""
    return {
        **os.environ,
        "DEBUG": "true",
        "RATE_LIMITS_ENABLED": "false",
        "DATABASE_URL": url,
        "REDIS_URL": redis_url(redis_index),
        **extra,
    }


def setup_django(url: str, redis_index: int = BENCH_REDIS_DATABASES[1]) -> None:
    # Quiet in-process logging: the access log would print a line per request measured.
    os.environ.update(app_env(url, redis_index, LOG_LEVEL="warning"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# --- HTTP -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def gunicorn(url: str, workers: int = 2, env: dict[str, str] | None = None) -> Iterator[Server]:
    """gunicorn serving portal.wsgi on a free port with the benchmark database; stopped (by
    the PID it was started with) on the way out. Its log goes to a temporary file. ``env``
    replaces parts of the environment (app_env's by default)."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w", prefix="bench-gunicorn-", suffix=".log") as log:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "gunicorn"),
                "portal.wsgi",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                str(workers),
            ],
            cwd=ROOT,
            env=env or app_env(url),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = Server(port, process, Path(log.name))
        try:
            _wait_until_up(server)
            yield server
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"gunicorn exited ({server.process.returncode}):\n{server.log_tail()}")
        try:
            conn = HTTPConnection("127.0.0.1", server.port, timeout=2)
            conn.request("GET", "/health/")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"gunicorn did not answer within {timeout} s:\n{server.log_tail()}")


@dataclass
class Response:
    status: int
    body: bytes
    seconds: float
    connection: str  # the server's Connection header: "close" means no keep-alive

    def json(self):
        return json.loads(self.body)


class Client:
    """One HTTP/1.1 client on one connection, asking for keep-alive. http.client reopens the
    connection by itself when the server closes it (gunicorn's sync workers always do), so
    a measured request then includes a loopback TCP connect."""

    def __init__(self, port: int, token: str | None = None):
        self.conn = HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Connection": "keep-alive"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def request(
        self, method: str, path: str, payload=None, expect: int | tuple[int, ...] = 200
    ) -> Response:
        headers = dict(self.headers)
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        seconds = time.perf_counter() - started
        if response.status not in (expect if isinstance(expect, tuple) else (expect,)):
            raise RuntimeError(f"{method} {path}: {response.status} {data[:500]!r}")
        return Response(response.status, data, seconds, response.getheader("Connection", ""))

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def close(self) -> None:
        self.conn.close()


# --- Figures ----------------------------------------------------------------------------------


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least p% of samples at or below."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summarise_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "min_ms": round(min(ms), 2),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(sum(ms) / len(ms), 2),
    }


def timed(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@contextmanager
def cpu_usage() -> Iterator[dict]:
    """How busy the whole machine was while the block ran (every process, ours included),
    filled in on exit: {"machine_busy_pct", "load_avg_1m"}. A figure near 100% while one
    client waits on one server means something else was competing for the CPUs."""
    usage: dict = {}
    busy, total = _cpu_times()
    try:
        yield usage
    finally:
        busy_after, total_after = _cpu_times()
        usage["machine_busy_pct"] = round(
            100 * (busy_after - busy) / max(1, total_after - total), 1
        )
        usage["load_avg_1m"] = float(Path("/proc/loadavg").read_text().split()[0])


# --- Processes: CPU time and memory from /proc ------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    comm: str
    cpu_s: float  # user + system time of the process itself
    children_cpu_s: float  # user + system time of its children that exited and were reaped
    rss_bytes: int


def proc_stat(pid: int) -> ProcStat | None:
    """One process's CPU time and resident memory, from /proc/PID/stat (None if gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    # After the command: state ppid ... utime(11) stime(12) cutime(13) cstime(14) ... rss(21)
    return ProcStat(
        pid=pid,
        ppid=int(fields[1]),
        comm=comm,
        cpu_s=(int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        children_cpu_s=(int(fields[13]) + int(fields[14])) / CLOCK_TICKS,
        rss_bytes=int(fields[21]) * PAGE_BYTES,
    )


def all_processes() -> dict[int, ProcStat]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := proc_stat(int(entry.name))) is not None:
            found[stat.pid] = stat
    return found


def descendants(pid: int, processes: dict[int, ProcStat]) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for stat in processes.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        if current in processes:
            found.append(current)
        pending.extend(children.get(current, []))
    return found


def tcp_counters() -> dict[str, int]:
    """The kernel's TCP counters that tell of dropped connection attempts and retransmitted
    SYNs (a full listen queue, say), from /proc/net/netstat and /proc/net/snmp."""
    wanted = {
        "ListenOverflows",
        "ListenDrops",
        "TCPSynRetrans",
        "TCPTimeouts",
        "TCPReqQFullDrop",
        "AttemptFails",
        "EstabResets",
        "RetransSegs",
    }
    found = {}
    for source in ("/proc/net/netstat", "/proc/net/snmp"):
        lines = Path(source).read_text().splitlines()
        for header, values in zip(lines[::2], lines[1::2], strict=False):
            names, numbers = header.split()[1:], values.split()[1:]
            found.update({n: int(v) for n, v in zip(names, numbers, strict=False) if n in wanted})
    return found


def machine_cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot."""
    return _cpu_times()


def wait_for_idle(max_seconds: float, busy_pct: float = 20.0, window: float = 2.0) -> float:
    """Wait (up to ``max_seconds``) for a ``window`` in which the machine is under
    ``busy_pct`` busy, so that other work on a shared machine does not end up in the
    figures. Returns the busy share of the last window."""
    deadline = time.monotonic() + max_seconds
    while True:
        with cpu_usage() as usage:
            time.sleep(window)
        if usage["machine_busy_pct"] < busy_pct or time.monotonic() >= deadline:
            return usage["machine_busy_pct"]


def settle(max_seconds: float) -> None:
    """With --wait-idle: wait for other work on the machine to finish before measuring."""
    if max_seconds > 0:
        busy = wait_for_idle(max_seconds)
        print(f"  (machine {busy}% busy just before measuring)", flush=True)


def machine_info(url: str) -> dict:
    with psycopg.connect(url) as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    import django
    import gunicorn as gunicorn_package

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "gunicorn": gunicorn_package.__version__,
        "postgresql": postgres,
        "git": _git_revision(),
    }


def _git_revision() -> str:
    """The commit measured, with "-dirty" when the working tree had uncommitted changes."""
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def analyze() -> None:
    """ANALYZE the benchmark's database. This machine's PostgreSQL runs without autovacuum,
    which on a default server analyzes a table soon after a tenth of it has changed; without
    it, tables a benchmark has just filled are planned as if empty."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def finish(name: str, results: dict, report, *, quick: bool, smoke: str) -> None:
    """Write bench/results/<name>.json (a full run only), print the report and say where the
    figures went; ``smoke`` says what --quick shrank."""
    path = None if quick else write_results(name, results)
    report(results)
    if path is None:
        print(f"\n--quick: a smoke test {smoke}; no results file written")
    else:
        print(f"\nwrote {path.relative_to(ROOT)}")


def write_results(name: str, results: dict) -> Path:
    """Write bench/results/<name>.json (through a .tmp file, so a crash leaves the old one)."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(path)
    return path
