"""What the health benchmark measures while a phase runs and after it: the processes' CPU
and memory, the machine, the check states' staleness and the engine's heartbeats
(``Monitor``); then, from the results recorded, each check set's analysis -- one result per
check and due time, lag percentiles, errors -- and the processes' logs; and its printing."""

import json
import os
import threading
import time
from datetime import datetime, timedelta

import psycopg

from bench import support
from bench.health import checksets, harness


class Monitor:
    """Samples every few seconds, in a thread: the CPU time and RSS of every process this
    benchmark started (with their children), of PostgreSQL's and Redis's server processes
    and of this process; the machine's CPU; and, from the database, how far behind the
    phase's check states are (now minus their last due time) and the engine's heartbeats."""

    def __init__(self, roots: dict[str, int], url: str, check_ids: list[int], every: float = 5):
        self.roots = dict(roots)
        processes = support.all_processes()
        self.roots.update(server_roots(processes))
        self.roots[harness.BENCH_PROCESS] = os.getpid()  # itself only: the others are its children
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
            pids = (
                [root] if label == harness.BENCH_PROCESS else support.descendants(root, processes)
            )
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
            if label != harness.BENCH_PROCESS:  # children that exited (PostgreSQL backends, say)
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


def server_roots(processes: dict[int, support.ProcStat]) -> dict[str, int]:
    """PostgreSQL's postmaster (its backends are its children) and redis-server."""
    roots = {}
    for stat in processes.values():
        parent = processes.get(stat.ppid)
        if stat.comm == "postgres" and (parent is None or parent.comm != "postgres"):
            roots["postgresql (all server processes)"] = stat.pid
        elif stat.comm.startswith("redis-server"):
            roots["redis-server"] = stat.pid
    return roots


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


def due_times(first: datetime, interval_s: int, start: datetime, end: datetime) -> int:
    """How many of first + k * interval (k >= 0) fall in [start, end): exact, in
    microseconds."""
    step = interval_s * 1_000_000

    def before(moment: datetime) -> int:  # due times earlier than ``moment``
        gap = round((moment - first) / timedelta(microseconds=1))
        return 0 if gap <= 0 else -(-gap // step)

    return before(end) - before(start)


def analyse(url: str, checks: checksets.CheckSet, start: datetime, end: datetime) -> dict:
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


def state_snapshot(url: str, checks: checksets.CheckSet) -> dict:
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


def wait_until_recorded(
    url: str, checks: checksets.CheckSet, end: datetime, expected: int, timeout: float
):
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


def batch_log(processes: harness.Processes, start: datetime, end: datetime) -> dict:
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


def log_problems(processes: harness.Processes, start: datetime, end: datetime) -> dict:
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
