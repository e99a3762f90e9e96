"""The health benchmark's automation phase: does the engine's lag grow while the automation
is busy?

The engine (beat, the dispatcher, the probe worker and the targets, started as every
throughput phase starts them) checks ``automation_rate`` HTTP targets a second -- half the
quiet capacity when the capacity phase measured it in the same run, else 500/s -- beside an
automation worker run as docker-compose.yml runs it (``celery worker -Q automation -c 2``),
which beat's ``automation.tasks.process_status_changes`` reaches every AUTOMATION_SECONDS,
as in production. Three stretches of ``automation_stretch`` seconds each, in one window:

1. ``before``: quiet; the automation ticks with nothing to do.
2. ``during``: a shared dependency of ``automation_dependents`` services goes down and comes
   back every ``automation_cycle`` seconds: down; a fifth of a cycle later its dependents'
   own checks fail too; at half the cycle everything is back -- about 4,000 service status
   changes per cycle, written by the engine's own ``service_health.recompute``
   (``bench.automation.move``, as a recording flush writes them). The automation claims them,
   opens, folds and resolves the alerts and sends the root cause's notifications (down and
   recovered) to a json:// channel whose receiver, on 127.0.0.1, takes
   ``automation_receiver_delay`` seconds to answer.
3. ``after``: quiet again.

Per stretch, from the results: lag p50/p99/max, slots missed or shed; from /proc: the CPU of
each process. From the database: the status changes written and how soon the automation
claimed them, alerts opened and resolved, deliveries by state. The target: lag p99 while
the automation is busy at most 1.5 times the quiet stretch's before it, no slot missed or
shed, and the automation keeping up (every change claimed, deliveries sent). after/before is
the control: what two quiet stretches differ by on this machine in the same run.

Imported by ``bench.health``, whose engine, check sets and analysis it uses.
"""

import json
import os
import socket
import statistics
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench import automation as automation_bench
from bench import contended, health, support

RATIO_TARGET = 1.5  # lag p99 beside the busy automation over the quiet one, at most
DEFAULT_RATE = 500  # checks per second without a capacity measured in the same run
# The worker's AUTOMATION_GROUP_SECONDS: with the default 30 s an outage shorter than that
# notifies nobody (by design), and the phase's outages last half a cycle.
GROUP_SECONDS = 1.0
WORKER_CONCURRENCY = 2  # as docker-compose.yml runs the automation worker
CHANNEL = "bench-receiver"
STAGES = ("before", "during", "after")
# Each cycle, at this share of it: (step, who, status).
STEPS = (
    (0.0, "root_down", "root", "unhealthy"),
    (0.2, "dependents_down", "dependents", "unhealthy"),
    (0.5, "dependents_back", "dependents", "healthy"),
    (0.5, "root_back", "root", "healthy"),
)


class SlowReceiver:
    """A webhook receiver on 127.0.0.1 (threads of this process) that answers 200 after
    ``delay`` seconds; keeps when each notification arrived and its title."""

    def __init__(self, delay: float):
        self.received: list[dict] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                arrived = time.time()
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


def automation_rate(bench: health.Bench) -> int:
    """``--automation-rate``, or half the quiet capacity the capacity phase just measured
    (the engine with room to spare, as it should run), or 500/s."""
    measured = bench.results.get("capacity", {}).get("quiet_capacity_per_s")
    return bench.shape.automation_rate or (measured // 2 if measured else DEFAULT_RATE)


def phase_automation(bench: health.Bench) -> None:
    shape = bench.shape
    rate = automation_rate(bench)
    url = f"http://127.0.0.1:{bench.ports['http']}/health"
    receiver = SlowReceiver(shape.automation_receiver_delay)
    receiver.start()
    made: list[health.CheckSet] = []
    context: dict = {}
    try:
        _add_channel(receiver.port)
        print(
            f"  {rate}/s; a shared dependency of {shape.automation_dependents:,} services, "
            f"down and back every {shape.automation_cycle:.0f} s in the busy stretch; "
            f"stretches of {shape.automation_stretch:.0f} s",
            flush=True,
        )
        estate = automation_bench.seed(shape.automation_dependents)
        support.analyze()

        def checks(first_due: datetime) -> list[health.CheckSet]:
            made.append(
                health.create_checks(
                    "auto", rate, target=url, interval=1, timeout=1.0, first_due=first_due
                )
            )
            return made

        def started(bench: health.Bench, processes: health.Processes) -> None:
            context["processes"] = processes
            start_worker(bench, processes)

        def during(bench, sets, server) -> dict:
            return outages(bench, estate, context["processes"])

        duration = 3 * shape.automation_stretch + 2
        result = health.throughput_phase(
            bench, "automation", checks, duration, during=during, started=started
        )
    finally:
        receiver.stop()
    marks = {k: datetime.fromisoformat(v) for k, v in result["marks"].items()}
    window = next(iter(result["results"].values()))["window"]
    bounds = {
        "before": (datetime.fromisoformat(window["start"]), marks["busy_start"]),
        "during": (marks["busy_start"], marks["busy_stop"]),
        "after": (marks["busy_stop"], datetime.fromisoformat(window["end"])),
    }
    result["rate_per_s"] = rate
    result["stages"] = {
        stage: health.analyse(bench.url, made[0], a, b) for stage, (a, b) in bounds.items()
    }
    result["automation"] = automation_figures(
        estate, receiver, marks["busy_start"], bounds["after"][1]
    )
    result["automation"]["worker_log"] = worker_log(
        context["processes"], marks["busy_start"], bounds["after"][1]
    )
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


def start_worker(bench: health.Bench, processes: health.Processes, timeout: float = 60) -> None:
    """The automation worker, as docker-compose.yml runs it; waits until it answers a ping."""
    from portal.celery import app

    name = f"bench-automation@{socket.gethostname()}"
    env = {**bench.env(bench.engine_log_level), "AUTOMATION_GROUP_SECONDS": str(GROUP_SECONDS)}
    process = processes.start(
        "automation",
        [str(support.VENV_BIN / "celery"), "-A", "portal", "worker", "-Q", "automation",
         "-c", str(WORKER_CONCURRENCY), "-n", name,
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"automation worker exited:\n{processes.log_tail('automation')}")
        if any(name in reply for reply in app.control.ping([name], timeout=1.0)):
            return
    raise SystemExit(f"the automation worker did not answer within {timeout} s")


def outages(bench: health.Bench, estate: dict, processes: health.Processes) -> dict:
    """Run from the start of the measured window: the quiet stretch, the outage cycles, the
    quiet stretch after; the CPU of every process at each boundary."""
    shape = bench.shape
    roots = {health._label(n): pid for n, pid in processes.pids().items()}
    roots.update(health._server_roots(support.all_processes()))
    roots[health.BENCH_PROCESS + ", writing the outages"] = os.getpid()
    snapshots = [cpu_snapshot(roots)]
    busy_start = datetime.now(UTC) + timedelta(seconds=shape.automation_stretch)
    health._sleep_until(busy_start)
    snapshots.append(cpu_snapshot(roots))
    count = max(1, round(shape.automation_stretch / shape.automation_cycle))
    print(
        f"  outages from {busy_start:%H:%M:%S}: {count} cycles of {shape.automation_cycle:.0f} s",
        flush=True,
    )
    cycles = [
        cycle(estate, busy_start + timedelta(seconds=k * shape.automation_cycle), shape)
        for k in range(count)
    ]
    busy_stop = datetime.now(UTC)
    snapshots.append(cpu_snapshot(roots))
    health._sleep_until(busy_stop + timedelta(seconds=shape.automation_stretch))
    snapshots.append(cpu_snapshot(roots))
    return {
        "cycles": cycles,
        "marks": {"busy_start": busy_start.isoformat(), "busy_stop": busy_stop.isoformat()},
        "cpu_by_stage": {
            stage: cpu_between(snapshots[n], snapshots[n + 1]) for n, stage in enumerate(STAGES)
        },
    }


def cycle(estate: dict, start: datetime, shape: health.Shape) -> dict:
    """One outage of the shared dependency: each step's status changes written by the
    engine's recompute (``bench.automation.move``), timed; returns at the cycle's end."""
    from healthchecks.status import Status

    who = {"root": [estate["root"]], "dependents": estate["services"]}
    statuses = {"unhealthy": Status.UNHEALTHY, "healthy": Status.HEALTHY}
    row: dict = {"at": start.isoformat()}
    for share, step, whom, status in STEPS:
        health._sleep_until(start + timedelta(seconds=shape.automation_cycle * share))
        seconds, changes = support.timed(automation_bench.move, who[whom], statuses[status])
        row[step] = {"changes": changes, "s": round(seconds, 3)}
    health._sleep_until(start + timedelta(seconds=shape.automation_cycle))
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
    seconds = b["at"] - a["at"]
    busy = b["machine"][0] - a["machine"][0]
    total = max(1, b["machine"][1] - a["machine"][1])
    return {
        "seconds": round(seconds, 1),
        "machine_busy_pct": round(100 * busy / total, 1),
        "pct_of_one_core": {
            label: round(100 * (b["cpu"][label] - a["cpu"][label]) / seconds, 1)
            for label in b["cpu"]
            if label in a["cpu"]
        },
    }


def automation_figures(estate: dict, receiver: SlowReceiver, since, until) -> dict:
    """What the automation did with the outages: the status changes (written, claimed and
    how soon), the alerts, the deliveries and their attempts, what the receiver got."""
    from automation.models import Alert, Delivery, DeliveryAttempt, Event
    from healthchecks.models import StatusChange

    ids = [estate["root"], *estate["services"]]
    changes = StatusChange.objects.filter(service_id__in=ids, health_check=None, at__gte=since)
    claimed = [
        (p - a).total_seconds()
        for a, p in changes.exclude(processed_at=None).values_list("at", "processed_at")
    ]
    alerts = Alert.objects.filter(service_id__in=ids)
    deliveries = Delivery.objects.filter(created_at__gte=since)
    states = Counter(f"{e} {s}" for e, s in deliveries.values_list("event", "state"))
    attempts = list(
        DeliveryAttempt.objects.filter(delivery__created_at__gte=since).values_list(
            "ok", "started_at", "finished_at"
        )
    )
    announced = [
        (finished - opened).total_seconds()
        for opened, finished in DeliveryAttempt.objects.filter(
            delivery__created_at__gte=since, delivery__event=Event.DOWN, ok=True
        ).values_list("delivery__alert__opened_at", "finished_at")
    ]
    return {
        "changes": {
            "written": changes.count(),
            "claimed": len(claimed),
            "left": changes.filter(processed_at=None).count(),
            "claimed_after_s": _spread(claimed),
        },
        "alerts": {
            "opened": alerts.filter(opened_at__gte=since, opened_at__lt=until).count(),
            "folded_into_the_root_cause": alerts.filter(
                opened_at__gte=since, root__isnull=False
            ).count(),
            "resolved": alerts.filter(resolved_at__gte=since, resolved_at__lt=until).count(),
            "open_at_the_end": alerts.filter(resolved_at=None).count(),
        },
        "deliveries": {
            "by_event_and_state": dict(sorted(states.items())),
            "sent": deliveries.filter(state="sent").count(),
            "attempts": len(attempts),
            "attempts_failed": sum(1 for ok, _, _ in attempts if not ok),
            "attempt_s": _spread([(b - a).total_seconds() for _, a, b in attempts]),
            "down_announced_after_alert_opened_s": _spread(announced),
        },
        "receiver": {
            "received": len(receiver.received),
            "titles": dict(Counter(r["title"].split("]")[0] + "]" for r in receiver.received)),
        },
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


def worker_log(processes: health.Processes, since: datetime, until: datetime) -> dict:
    """The automation worker's own lines in the busy and after stretches: the ticks that
    found changes, and Celery's task lines (how long each task ran), when it logs them."""
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
        runtime = entry.get("runtime")
        task = entry.get("name") or entry.get("task")
        if isinstance(runtime, int | float) and task:
            runtimes.setdefault(task.rsplit(".", 1)[-1], []).append(runtime)
    return {
        "ticks_with_changes": len(ticks),
        "changes_per_tick": _spread(ticks),
        "task_runtime_s": {task: _spread(values) for task, values in runtimes.items()},
    }


def automation_settings() -> dict:
    from django.conf import settings

    found = {n: getattr(settings, n) for n in sorted(dir(settings)) if n.startswith("AUTOMATION_")}
    found["AUTOMATION_GROUP_SECONDS"] = GROUP_SECONDS  # the worker's (its environment)
    found["worker_concurrency"] = WORKER_CONCURRENCY
    return found


def summary(result: dict) -> dict:
    from healthchecks.status import ErrorCode

    stages = result["stages"]

    def codes(stage: str) -> dict[int, int]:
        return contended._by_error(stages[stage])

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
    automation = result["automation"]
    return {
        "rate_per_s": result["rate_per_s"],
        "cycles": len(result["cycles"]),
        "lag_ms": lag,
        "lag_p99_during_over_before": ratio(lag["during"]["p99"], lag["before"]["p99"]),
        "lag_p99_after_over_before": ratio(lag["after"]["p99"], lag["before"]["p99"]),
        "missed": missed,
        "shed": shed,
        "missed_or_shed": sum(missed.values()) + sum(shed.values()),
        "not_healthy": sum(stages[s]["not_healthy"] for s in STAGES),
        "changes_written": automation["changes"]["written"],
        "changes_left": automation["changes"]["left"],
        "alerts_opened": automation["alerts"]["opened"],
        "alerts_resolved": automation["alerts"]["resolved"],
        "deliveries_sent": automation["deliveries"]["sent"],
        "notifications_received": automation["receiver"]["received"],
    }


def verdicts(summary: dict) -> dict:
    ratio = summary["lag_p99_during_over_before"]
    during = summary["lag_ms"]["during"]["p99"]
    return {
        "automation_missed_or_shed": {
            "value": summary["missed_or_shed"],
            "target": 0,
            "met": summary["missed_or_shed"] == 0,
        },
        "automation_lag_p99_during_over_before": {
            "value": ratio,
            "target": f"<= {RATIO_TARGET}",
            "met": ratio is not None and ratio <= RATIO_TARGET,
        },
        "automation_lag_p99_ms_during": {
            "value": during,
            "target": health.TARGETS["lag_p99_ms"],
            "met": during is not None and during < health.TARGETS["lag_p99_ms"],
        },
        "automation_changes_left_unclaimed": {
            "value": summary["changes_left"],
            "target": 0,
            "met": summary["changes_left"] == 0 and summary["changes_written"] > 0,
        },
        "automation_deliveries_sent": {
            "value": summary["deliveries_sent"],
            "target": f">= {summary['cycles']} (one per outage)",
            "met": summary["deliveries_sent"] >= summary["cycles"],
        },
    }


def print_automation(result: dict) -> None:
    health.print_phase("automation", result)
    summary, cpu = result["summary"], result["cpu_by_stage"]
    labels = sorted({label for stage in cpu.values() for label in stage["pct_of_one_core"]})
    wanted = [label for label in labels if not label.startswith("target")]
    support.print_table(
        f"  lag by stretch ({summary['rate_per_s']}/s; {summary['cycles']} outages in 'during')",
        ["stretch", "s", "results", "missed", "shed", "lag p50", "p99", "max", "busy%"],
        [
            [stage, a["window_s"], a["recorded"], summary["missed"][stage],
             summary["shed"][stage], a["lag_ms"]["p50"], a["lag_ms"]["p99"], a["lag_ms"]["max"],
             cpu[stage]["machine_busy_pct"]]
            for stage, a in result["stages"].items()
        ],
    )  # fmt: skip
    support.print_table(
        "  CPU by stretch (% of one core)",
        ["process", *STAGES],
        [[label, *(cpu[s]["pct_of_one_core"].get(label, "") for s in STAGES)] for label in wanted],
    )
    moves = [step for row in result["cycles"] for step in row.values() if isinstance(step, dict)]
    automation = result["automation"]
    print(
        f"\n  outages: {summary['changes_written']:,} status changes written "
        f"(recompute took p50 {statistics.median(m['s'] for m in moves):.2f} s, max "
        f"{max(m['s'] for m in moves):.2f} s a step); claimed by the automation after "
        f"{automation['changes']['claimed_after_s']}, {summary['changes_left']} left"
    )
    deliveries = automation["deliveries"]
    print(f"  alerts: {json.dumps(automation['alerts'])}")
    print(
        f"  deliveries: {json.dumps(deliveries['by_event_and_state'])}; attempts "
        f"{deliveries['attempts']} ({deliveries['attempts_failed']} failed, each took "
        f"{deliveries['attempt_s']} s); a down notification sent after its alert opened: "
        f"{deliveries['down_announced_after_alert_opened_s']} s; the receiver got "
        f"{json.dumps(automation['receiver'])}"
    )
    print(f"  worker log: {json.dumps(automation['worker_log'])}")
    ratio, control = summary["lag_p99_during_over_before"], summary["lag_p99_after_over_before"]
    print(
        f"  lag p99 during / before: {ratio} (target <= {RATIO_TARGET}); after / before, the "
        f"control: {control}"
    )
    met = all(v["met"] for v in verdicts(summary).values())
    print(f"  verdict: {'met' if met else 'NOT MET'} (see the verdicts table)")
