"""The health benchmark's automation phase: does the engine's lag grow while the automation
is busy?

The engine (beat, the dispatcher, the probe worker and the targets, started as every
throughput phase starts them) checks ``automation_rate`` HTTP targets a second -- half the
quiet capacity when the capacity phase measured it in the same run, else 500/s -- beside an
automation worker run as docker-compose.yml runs it (``celery worker -Q automation -c 2``),
which beat's ``automation.tasks.process_status_changes`` reaches every AUTOMATION_SECONDS,
as in production. Outages: a shared dependency of ``automation_dependents`` services goes
down and, half a cycle later, comes back, every ``automation_cycle`` seconds -- 1,001
service status changes each way, written by the engine's own ``service_health.recompute``
(``bench.automation.move``) in a thread of this process at the probe worker's niceness, as
the probe worker's recording flush would write them. After a warm-up outage (before the engine
has checks), four stretches of one window, ``automation_stretch`` seconds each:

1. ``before``: quiet; the automation ticks with nothing to do.
2. ``outages_alone``: the outages with the automation paused (its worker stops consuming
   the queue: ``cancel_consumer``): what writing the outages costs the engine by itself.
   Then, unmeasured, the automation resumes and works off the backlog.
3. ``during``: the same outages with the automation running: it claims the changes, opens,
   folds and resolves the alerts and sends the root cause's notifications (down, recovered)
   to a json:// channel whose receiver, on 127.0.0.1, takes ``automation_receiver_delay``
   seconds to answer.
4. ``after``: quiet again.

Per stretch: lag p50/p99/max and slots missed or shed (from the results), and the CPU of
each process (from /proc). From the database: the status changes written and how soon the
automation claimed them, alerts opened and resolved, deliveries by state. Targets: lag p99
during at most 1.5 times that of the quiet stretch before it (and of the outages alone: the
automation's own share), under 250 ms, no slot missed or shed, the automation keeping up
(every change claimed, a notification sent per outage). after/before is the control: what
two quiet stretches of the same run differ by on this machine.

Run by ``bench.health``; it uses the harness, the check sets, the measures and the
throughput phase the others use.
"""

import json
import os
import re
import socket
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench import automation as automation_bench
from bench import support
from bench.health import checksets, contended, harness, measure, throughput

RATIO_TARGET = 1.5  # lag p99 beside the busy automation over the quiet one, at most
DEFAULT_RATE = 500  # checks per second without a capacity measured in the same run
# The worker's AUTOMATION_GROUP_SECONDS: with the default 30 s an outage shorter than that
# notifies nobody (by design), and the phase's outages last half a cycle.
GROUP_SECONDS = 1.0
WORKER_CONCURRENCY = 2  # as docker-compose.yml runs the automation worker
QUEUE = "automation"
CHANNEL = "bench-receiver"
DRAIN_BUDGET = 30.0  # seconds the automation gets to work off the paused stretch's backlog
STAGES = ("before", "outages_alone", "during", "after")
STEPS = ((0.0, "root_down"), (0.5, "root_back"))  # at this share of each cycle
_TASK_LINE = re.compile(r"Task [\w.]+\.(\w+)\[[^\]]*\] succeeded in ([0-9.]+)s")


class SlowReceiver:
    """A webhook receiver on 127.0.0.1 (threads of this process) that answers 200 after
    ``delay`` seconds; keeps when each notification arrived and its title."""

    def __init__(self, delay: float):
        self.received: list[dict] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                arrived = datetime.now(UTC)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay)
                try:
                    title = json.loads(body).get("title", "")
                except ValueError:
                    title = "?"
                received.append({"at": arrived, "title": title})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="receiver", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def automation_rate(bench: harness.Bench) -> int:
    """``--automation-rate``, or half the quiet capacity the capacity phase just measured
    (the engine with room to spare, as it should run), or 500/s."""
    measured = bench.results.get("capacity", {}).get("quiet_capacity_per_s")
    return bench.shape.automation_rate or (measured // 2 if measured else DEFAULT_RATE)


def phase_automation(bench: harness.Bench) -> None:
    shape = bench.shape
    rate = automation_rate(bench)
    url = f"http://127.0.0.1:{bench.ports['http']}/health"
    duration = 4 * shape.automation_stretch + shape.automation_cycle + DRAIN_BUDGET
    receiver = SlowReceiver(shape.automation_receiver_delay)
    receiver.start()
    made: list[checksets.CheckSet] = []
    context: dict = {}
    try:
        _add_channel(receiver.port)
        print(
            f"  {rate}/s; a shared dependency of {shape.automation_dependents:,} services "
            f"down and back every {shape.automation_cycle:.0f} s; stretches of "
            f"{shape.automation_stretch:.0f} s",
            flush=True,
        )
        estate = automation_bench.seed(shape.automation_dependents)
        support.analyze()

        def checks(first_due: datetime) -> list[checksets.CheckSet]:
            context["end"] = first_due + timedelta(seconds=shape.warmup + duration)
            made.append(
                checksets.create_checks(
                    "auto", rate, target=url, interval=1, timeout=1.0, first_due=first_due
                )
            )
            return made

        def started(bench: harness.Bench, processes: harness.Processes) -> None:
            context["processes"] = processes
            context["worker"] = start_worker(bench, processes)
            context["warm_up"] = warm_up(estate, shape)

        def during(bench, sets, server) -> dict:
            return stretches(bench, estate, context)

        result = throughput.throughput_phase(
            bench, "automation", checks, duration, during=during, started=started
        )
    finally:
        receiver.stop()
    marks = {k: datetime.fromisoformat(v) for k, v in result["marks"].items()}
    window = next(iter(result["results"].values()))["window"]
    bounds = {
        "before": (datetime.fromisoformat(window["start"]), marks["alone_start"]),
        "outages_alone": (marks["alone_start"], marks["alone_stop"]),
        "during": (marks["busy_start"], marks["busy_stop"]),
        "after": (marks["busy_stop"], marks["end"]),
    }
    result["rate_per_s"] = rate
    result["warm_up"] = context["warm_up"]
    result["stages"] = {
        stage: measure.analyse(bench.url, made[0], a, b) for stage, (a, b) in bounds.items()
    }
    ids = [estate["root"], *estate["services"]]
    result["automation"] = {
        "outages_alone": stretch_figures(ids, receiver, *bounds["outages_alone"]),
        "during": stretch_figures(ids, receiver, marks["busy_start"], marks["end"]),
        "worker_log": worker_log(context["processes"], marks["busy_start"], marks["end"]),
        "left_at_the_end": left_over(ids),
    }
    result["settings"] = automation_settings()
    result["summary"] = summary(result)
    bench.results["automation"] = result
    print_automation(result)


def _add_channel(port: int) -> None:
    from automation.channels import ChannelIn, put_channel
    from portal.auth import system_actor

    put_channel(
        CHANNEL,
        ChannelIn(
            url=f"json://127.0.0.1:{port}/hook",
            teams=[],
            events=["down", "degraded", "recovered"],
        ),
        system_actor("bench"),
    )


# --- The automation worker --------------------------------------------------------------------


def start_worker(bench: harness.Bench, processes: harness.Processes, timeout: float = 60) -> str:
    """The automation worker, as docker-compose.yml runs it (stopped with the phase's other
    processes, by its PID); returns its name once it answers a ping."""
    from portal.celery import app

    name = f"bench-automation@{socket.gethostname()}"
    env = {**bench.env(bench.engine_log_level), "AUTOMATION_GROUP_SECONDS": str(GROUP_SECONDS)}
    process = processes.start(
        "automation",
        [str(support.VENV_BIN / "celery"), "-A", "portal", "worker", "-Q", QUEUE,
         "-c", str(WORKER_CONCURRENCY), "-n", name,
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"automation worker exited:\n{processes.log_tail('automation')}")
        if any(name in reply for reply in app.control.ping([name], timeout=1.0)):
            return name
    raise SystemExit(f"the automation worker did not answer within {timeout} s")


def consume(worker: str, on: bool) -> None:
    """Pause (the worker stops taking messages from the queue; beat's ticks wait there) or
    resume the automation."""
    from portal.celery import app

    command = app.control.add_consumer if on else app.control.cancel_consumer
    replies = command(QUEUE, destination=[worker], reply=True, timeout=5.0)
    if not any(worker in reply for reply in replies or []):
        raise SystemExit(f"the automation worker did not answer {command.__name__}: {replies}")


def drain(ids: list[int], budget: float) -> dict:
    """Wait (up to ``budget`` seconds) until the automation has claimed every status change
    and beat's queued ticks are gone."""
    import redis

    from healthchecks.models import StatusChange

    started = time.monotonic()
    client = redis.Redis.from_url(support.redis_url(harness.REDIS_INDEX))
    try:
        while True:
            left = StatusChange.objects.filter(
                service_id__in=ids, health_check=None, processed_at=None
            ).count()
            queued = client.llen(QUEUE)
            elapsed = time.monotonic() - started
            if (not left and not queued) or elapsed >= budget:
                return {"s": round(elapsed, 1), "changes_left": left, "ticks_queued": queued}
            time.sleep(0.5)
    finally:
        client.close()


def warm_up(estate: dict, shape: harness.Shape) -> dict:
    """One outage with the automation running before anything is measured (the engine has
    no checks yet), so that its pool processes have reconciled and sent once: the first
    send imports apprise's plugins, a second or so of CPU a worker process pays once."""
    started = time.monotonic()
    start = datetime.now(UTC)
    print("  warming the automation up: one outage ...", flush=True)
    write_outages(estate, start, 1, shape)
    backlog = drain([estate["root"], *estate["services"]], DRAIN_BUDGET)
    return {"s": round(time.monotonic() - started, 1), "drained": backlog}


# --- The stretches ----------------------------------------------------------------------------


def stretches(bench: harness.Bench, estate: dict, context: dict) -> dict:
    """Run from the start of the measured window: quiet; outages with the automation paused;
    (the backlog worked off, unmeasured); outages with it running; quiet again (the rest of
    the window, kept for what the paused stretch's backlog might take, is not measured).
    The CPU of every process at each boundary."""
    shape = bench.shape
    worker = context["worker"]
    roots = {harness.process_label(n): pid for n, pid in context["processes"].pids().items()}
    roots.update(measure.server_roots(support.all_processes()))
    roots[harness.BENCH_PROCESS + "; the outage writer"] = os.getpid()
    ids = [estate["root"], *estate["services"]]
    count = max(1, round(shape.automation_stretch / shape.automation_cycle))
    marks, snapshots, writes = {}, {}, {}

    def mark(name: str) -> None:
        marks[name] = datetime.now(UTC)
        snapshots[name] = cpu_snapshot(roots)

    mark("start")
    alone_start = marks["start"] + timedelta(seconds=shape.automation_stretch)
    harness.sleep_until(alone_start - timedelta(seconds=1))
    consume(worker, False)
    harness.sleep_until(alone_start)
    mark("alone_start")
    print(f"  {marks['alone_start']:%H:%M:%S} outages, the automation paused", flush=True)
    writes["outages_alone"] = write_outages(estate, marks["alone_start"], count, shape)
    mark("alone_stop")
    consume(worker, True)
    backlog = drain(ids, DRAIN_BUDGET)
    print(f"  the automation worked off the backlog: {backlog}", flush=True)
    mark("busy_start")
    print(f"  {marks['busy_start']:%H:%M:%S} outages, the automation running", flush=True)
    writes["during"] = write_outages(estate, marks["busy_start"], count, shape)
    mark("busy_stop")
    print(f"  {marks['busy_stop']:%H:%M:%S} quiet", flush=True)
    harness.sleep_until(
        min(
            marks["busy_stop"] + timedelta(seconds=shape.automation_stretch),
            context["end"] - timedelta(seconds=0.5),
        )
    )
    mark("end")
    cpu_bounds = {
        "before": ("start", "alone_start"),
        "outages_alone": ("alone_start", "alone_stop"),
        "during": ("busy_start", "busy_stop"),
        "after": ("busy_stop", "end"),
    }
    return {
        "cycles": writes,
        "backlog": backlog,
        "marks": {k: v.isoformat() for k, v in marks.items()},
        "cpu_by_stage": {
            stage: cpu_between(snapshots[a], snapshots[b]) for stage, (a, b) in cpu_bounds.items()
        },
    }


def write_outages(estate: dict, start: datetime, count: int, shape: harness.Shape) -> list[dict]:
    """``count`` outage cycles from ``start``, written in a thread of their own at the probe
    worker's niceness (where the engine's recording flush would write them). Interrupted
    (Ctrl-C, SIGTERM), the thread stops at its next step, so the phase can stop its
    processes."""
    from django.conf import settings

    niceness = settings.HEALTH_PROBE_WORKER_NICENESS
    stopping = threading.Event()

    def run() -> list[dict]:
        from django.db import connections

        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
        try:
            rows = []
            for k in range(count):
                at = start + timedelta(seconds=k * shape.automation_cycle)
                rows.append(cycle(estate, at, shape, stopping))
                if stopping.is_set():
                    break
            return rows
        finally:
            connections.close_all()  # this thread's

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outages")
    try:
        return pool.submit(run).result()
    except BaseException:
        stopping.set()
        raise
    finally:
        pool.shutdown(wait=True)


def cycle(estate: dict, start: datetime, shape: harness.Shape, stopping: threading.Event) -> dict:
    """One outage of the shared dependency: down, then back half a cycle later, each step's
    status changes written by the engine's recompute (``bench.automation.move``), timed;
    returns at the cycle's end (or as soon as ``stopping`` is set)."""
    from healthchecks.status import Status

    def wait_until(moment: datetime) -> bool:
        return stopping.wait(max(0.0, (moment - datetime.now(UTC)).total_seconds()))

    statuses = {"root_down": Status.UNHEALTHY, "root_back": Status.HEALTHY}
    row: dict = {"at": start.isoformat()}
    for share, step in STEPS:
        if wait_until(start + timedelta(seconds=shape.automation_cycle * share)):
            return row
        seconds, changes = support.timed(automation_bench.move, [estate["root"]], statuses[step])
        row[step] = {"changes": changes, "s": round(seconds, 3)}
    wait_until(start + timedelta(seconds=shape.automation_cycle))
    return row


def cpu_snapshot(roots: dict[str, int]) -> dict:
    """CPU seconds so far of each process tree (children that exited and were reaped
    included; this process itself only) and of the whole machine."""
    processes = support.all_processes()
    cpu = {}
    for label, root in roots.items():
        if root not in processes:
            continue
        if root == os.getpid():
            cpu[label] = processes[root].cpu_s
        else:
            tree = support.descendants(root, processes)
            cpu[label] = sum(processes[p].cpu_s for p in tree) + processes[root].children_cpu_s
    return {"at": time.monotonic(), "cpu": cpu, "machine": support.machine_cpu_times()}


def cpu_between(a: dict, b: dict) -> dict:
    """Each process tree's CPU between two snapshots, in % of one core; and what the rest of
    the machine used meanwhile (other work on a shared machine: it disturbs the stretch)."""
    seconds = b["at"] - a["at"]
    busy = b["machine"][0] - a["machine"][0]
    total = max(1, b["machine"][1] - a["machine"][1])
    ours = {
        label: round(100 * (b["cpu"][label] - a["cpu"][label]) / seconds, 1)
        for label in b["cpu"]
        if label in a["cpu"]
    }
    machine = 100 * busy / total
    return {
        "seconds": round(seconds, 1),
        "machine_busy_pct": round(machine, 1),
        "pct_of_one_core": ours,
        "others_pct_of_one_core": round(machine * (os.cpu_count() or 1) - sum(ours.values()), 1),
    }


# --- What the automation did ------------------------------------------------------------------


def stretch_figures(ids: list[int], receiver: SlowReceiver, since, until) -> dict:
    """The status changes written in [since, until) and how soon the automation claimed
    them; the alerts opened and resolved, the deliveries made and their attempts, and what
    the receiver got, in the same span."""
    from automation.models import Alert, Delivery, DeliveryAttempt, Event
    from healthchecks.models import StatusChange

    changes = StatusChange.objects.filter(
        service_id__in=ids, health_check=None, at__gte=since, at__lt=until
    )
    claimed = [
        (p - a).total_seconds()
        for a, p in changes.exclude(processed_at=None).values_list("at", "processed_at")
    ]
    alerts = Alert.objects.filter(service_id__in=ids)
    deliveries = Delivery.objects.filter(created_at__gte=since, created_at__lt=until)
    states = Counter(f"{e} {s}" for e, s in deliveries.values_list("event", "state"))
    attempts = DeliveryAttempt.objects.filter(
        delivery__created_at__gte=since, delivery__created_at__lt=until
    )
    spans = list(attempts.values_list("ok", "started_at", "finished_at"))
    announced = [
        (finished - opened).total_seconds()
        for opened, finished in attempts.filter(delivery__event=Event.DOWN, ok=True).values_list(
            "delivery__alert__opened_at", "finished_at"
        )
    ]
    got = [r for r in receiver.received if since <= r["at"] < until]
    return {
        "changes": {
            "written": changes.count(),
            "claimed": len(claimed),
            "claimed_after_s": _spread(claimed),
        },
        "alerts": {
            "opened": alerts.filter(opened_at__gte=since, opened_at__lt=until).count(),
            "folded_into_the_root_cause": alerts.filter(
                opened_at__gte=since, opened_at__lt=until, root__isnull=False
            ).count(),
            "resolved": alerts.filter(resolved_at__gte=since, resolved_at__lt=until).count(),
        },
        "deliveries": {
            "by_event_and_state": dict(sorted(states.items())),
            "sent": deliveries.filter(state="sent").count(),
            "attempts": len(spans),
            "attempts_failed": sum(1 for ok, _, _ in spans if not ok),
            "attempt_s": _spread([(b - a).total_seconds() for _, a, b in spans]),
            "down_sent_after_alert_opened_s": _spread(announced),
        },
        "receiver": {
            "received": len(got),
            "titles": dict(Counter(r["title"].split("]")[0] + "]" for r in got)),
        },
    }


def left_over(ids: list[int]) -> dict:
    """At the end of the phase: status changes never claimed, alerts still open."""
    from automation.models import Alert
    from healthchecks.models import StatusChange

    return {
        "changes_unclaimed": StatusChange.objects.filter(
            service_id__in=ids, health_check=None, processed_at=None
        ).count(),
        "alerts_open": Alert.objects.filter(service_id__in=ids, resolved_at=None).count(),
    }


def _spread(values: list[float]) -> dict | None:
    if not values:
        return None
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 3),
        "p99": round(support.percentile(values, 99), 3),
        "max": round(max(values), 3),
    }


def worker_log(processes: harness.Processes, since: datetime, until: datetime) -> dict:
    """The automation worker's own lines from ``since`` to ``until``: the ticks that found
    changes, and how long each task ran (Celery's "succeeded in" lines)."""
    path = processes.log_dir / "automation.log"
    ticks, runtimes = [], {}
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
            moment = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
        except (ValueError, KeyError):
            continue
        if not since <= moment < until:
            continue
        if entry.get("event") == "status changes processed":
            ticks.append(entry.get("changes", 0))
        elif found := _TASK_LINE.search(str(entry.get("event", ""))):
            runtimes.setdefault(found.group(1), []).append(float(found.group(2)))
    return {
        "ticks_with_changes": len(ticks),
        "changes_per_tick": _spread(ticks),
        "task_runtime_s": {task: _spread(values) for task, values in sorted(runtimes.items())},
    }


def automation_settings() -> dict:
    from django.conf import settings

    names = [n for n in dir(settings) if n.startswith("AUTOMATION_")]
    found = {n: getattr(settings, n) for n in sorted(names)}
    found["AUTOMATION_GROUP_SECONDS"] = GROUP_SECONDS  # the worker's (its environment)
    found["worker_concurrency"] = WORKER_CONCURRENCY
    found["outage_writer_niceness"] = settings.HEALTH_PROBE_WORKER_NICENESS
    return found


# --- Summary, verdicts, report ----------------------------------------------------------------


def summary(result: dict) -> dict:
    from healthchecks.status import ErrorCode

    stages = result["stages"]

    def codes(stage: str) -> dict[int, int]:
        return contended.by_error(stages[stage])

    def ratio(a, b) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    lag = {
        stage: {k: stages[stage]["lag_ms"][k] for k in ("p50", "p99", "max")} for stage in STAGES
    }
    missed = {s: stages[s]["missed"] + codes(s).get(ErrorCode.MISSED, 0) for s in STAGES}
    shed = {
        s: codes(s).get(ErrorCode.SKIPPED, 0) + codes(s).get(ErrorCode.CHECKER_OVERLOADED, 0)
        for s in STAGES
    }
    during = result["automation"]["during"]
    return {
        "rate_per_s": result["rate_per_s"],
        "cycles": len(result["cycles"]["during"]),
        "lag_ms": lag,
        "lag_p99_during_over_before": ratio(lag["during"]["p99"], lag["before"]["p99"]),
        "lag_p99_during_over_outages_alone": ratio(
            lag["during"]["p99"], lag["outages_alone"]["p99"]
        ),
        "lag_p99_after_over_before": ratio(lag["after"]["p99"], lag["before"]["p99"]),
        "missed": missed,
        "shed": shed,
        "missed_or_shed": sum(missed.values()) + sum(shed.values()),
        "not_healthy": sum(stages[s]["not_healthy"] for s in STAGES),
        "changes_written_during": during["changes"]["written"],
        "changes_unclaimed_at_the_end": result["automation"]["left_at_the_end"][
            "changes_unclaimed"
        ],
        "backlog_worked_off_s": result["backlog"]["s"],
        "alerts_opened_during": during["alerts"]["opened"],
        "alerts_resolved_during": during["alerts"]["resolved"],
        "deliveries_sent_during": during["deliveries"]["sent"],
        "notifications_received_during": during["receiver"]["received"],
    }


def verdicts(summary: dict) -> dict:
    def verdict(value, target, met: bool) -> dict:
        return {"value": value, "target": target, "met": met}

    def at_most(value) -> dict:
        return verdict(value, f"<= {RATIO_TARGET}", value is not None and value <= RATIO_TARGET)

    during = summary["lag_ms"]["during"]["p99"]
    unclaimed = summary["changes_unclaimed_at_the_end"]
    return {
        "automation_missed_or_shed": verdict(
            summary["missed_or_shed"], 0, summary["missed_or_shed"] == 0
        ),
        "automation_lag_p99_during_over_before": at_most(summary["lag_p99_during_over_before"]),
        "automation_lag_p99_during_over_outages_alone": at_most(
            summary["lag_p99_during_over_outages_alone"]
        ),
        "automation_lag_p99_ms_during": verdict(
            during,
            harness.TARGETS["lag_p99_ms"],
            during is not None and during < harness.TARGETS["lag_p99_ms"],
        ),
        "automation_changes_unclaimed": verdict(
            unclaimed, 0, unclaimed == 0 and summary["changes_written_during"] > 0
        ),
        "automation_deliveries_sent": verdict(
            summary["deliveries_sent_during"],
            f">= {summary['cycles']} (one per outage)",
            summary["deliveries_sent_during"] >= summary["cycles"],
        ),
    }


def print_automation(result: dict) -> None:
    measure.print_phase("automation", result)
    summary, cpu = result["summary"], result["cpu_by_stage"]
    support.print_table(
        f"  lag by stretch ({summary['rate_per_s']}/s; {summary['cycles']} outages in each of "
        "'outages_alone' and 'during')",
        ["stretch", "s", "results", "missed", "shed", "lag p50", "p99", "max", "busy%"],
        [
            [stage, a["window_s"], a["recorded"], summary["missed"][stage],
             summary["shed"][stage], a["lag_ms"]["p50"], a["lag_ms"]["p99"], a["lag_ms"]["max"],
             cpu[stage]["machine_busy_pct"]]
            for stage, a in result["stages"].items()
        ],
    )  # fmt: skip
    labels = sorted({label for stage in cpu.values() for label in stage["pct_of_one_core"]})
    support.print_table(
        "  CPU by stretch (% of one core)",
        ["process", *STAGES],
        [[label, *(cpu[s]["pct_of_one_core"].get(label, "") for s in STAGES)] for label in labels]
        + [["other work on the machine", *(cpu[s]["others_pct_of_one_core"] for s in STAGES)]],
    )
    for stage in ("outages_alone", "during"):
        figures = result["automation"][stage]
        steps = [s for row in result["cycles"][stage] for s in row.values() if isinstance(s, dict)]
        deliveries = figures["deliveries"]
        print(
            f"\n  {stage}: {figures['changes']['written']:,} status changes written (recompute "
            f"p50 {statistics.median(s['s'] for s in steps):.2f} s, max "
            f"{max(s['s'] for s in steps):.2f} s a step), claimed after "
            f"{figures['changes']['claimed_after_s']} s; alerts {json.dumps(figures['alerts'])}"
        )
        print(
            f"    deliveries {json.dumps(deliveries['by_event_and_state'])}, attempts "
            f"{deliveries['attempts']} ({deliveries['attempts_failed']} failed, each "
            f"{deliveries['attempt_s']} s); down sent after its alert opened "
            f"{deliveries['down_sent_after_alert_opened_s']} s; the receiver got "
            f"{json.dumps(figures['receiver'])}"
        )
    print(f"  warm-up: {result['warm_up']}; backlog after the pause: {result['backlog']}")
    print(f"  worker log from 'during' on: {json.dumps(result['automation']['worker_log'])}")
    print(f"  left at the end: {result['automation']['left_at_the_end']}")
    print(
        f"  lag p99 during / before: {summary['lag_p99_during_over_before']}, during / outages "
        f"alone: {summary['lag_p99_during_over_outages_alone']} (targets <= {RATIO_TARGET}); "
        f"after / before, the control: {summary['lag_p99_after_over_before']}"
    )
    missed = [
        f"{name} {v['value']} (target {v['target']})"
        for name, v in verdicts(summary).items()
        if not v["met"]
    ]
    print(f"  verdict: {'NOT MET: ' + '; '.join(missed) if missed else 'met'}")
