"""The engine's own load: what probe workers report after each batch, how the dispatcher sheds
load when they cannot keep up, and what ``backend`` and ``/metrics`` say about it.

Workers report, per batch, how many probes they started and how many of those started on
time (within HEALTH_ON_TIME_MS of their due time), how many outcomes they could not vouch for
(healthchecks.trust), and the CPU the batch took. The dispatcher reports, per run, how many
slots came due, how many it sent and how many it skipped. Both go to a short Redis list;
``pressure`` reads the last few seconds of it.

Back-pressure: while probes start late (fewer than ON_TIME_TARGET of them on time), the
dispatcher sends only what the workers were seen to start on time -- critical checks first,
then the earliest -- and skips the rest of the slots (recorded as ``skipped (overload)``:
their checks run again at their next slot, which stretches their interval). While probes
start on time again it sends more each run, until it sends all that is due. A skipped slot
is not made up later, so returning capacity brings no catch-up burst.

Without Redis (the embedded mode) nothing is reported and nothing is shed.
"""

import json
import time
from dataclasses import dataclass

import redis
import structlog
from django.conf import settings

log = structlog.get_logger(__name__)
WORKERS_KEY = "portal:capacity:workers"
DISPATCH_KEY = "portal:capacity:dispatch"
BUDGET_KEY = "portal:capacity:budget"
KEEP = 500  # reports kept per list (a few minutes at full load)
WINDOW = 10.0  # seconds of reports the dispatcher looks at
ON_TIME_TARGET = 0.95  # below this share of probes on time, the dispatcher sheds load
GROWTH = 1.25  # while on time again, each run may send this much more than the last budget


@dataclass(frozen=True)
class Pressure:
    """The engine's load over a window of seconds."""

    seconds: float
    due_per_s: float  # slots that came due (the demand)
    sent_per_s: float
    skipped_per_s: float
    probed_per_s: float
    on_time_per_s: float
    overloaded_per_s: float  # outcomes not believed (healthchecks.trust)
    loop_lag_ms: float  # the worst event-loop lag a batch saw
    checks_per_cpu_s: float | None  # what one probe process does with a core to itself

    @property
    def on_time_ratio(self) -> float | None:
        return self.on_time_per_s / self.probed_per_s if self.probed_per_s else None

    @property
    def behind(self) -> bool:
        ratio = self.on_time_ratio
        return ratio is not None and ratio < ON_TIME_TARGET

    def describe(self) -> str:
        return (
            f"probe capacity exceeded: {self.due_per_s:,.0f} due per second, "
            f"{self.on_time_per_s:,.0f} started on time"
        )


def pressure_from(workers: list[dict], rounds: list[dict], now: float, window: float) -> Pressure:
    """A window's pressure from the raw reports (pure: the tests feed it directly)."""
    workers = [r for r in workers if now - r["t"] <= window]
    rounds = [r for r in rounds if now - r["t"] <= window]

    def rate(reports: list[dict], key: str) -> float:
        return sum(r.get(key, 0) for r in reports) / window

    cpu = sum(r.get("cpu_s", 0.0) for r in workers)
    probed = sum(r.get("probed", 0) for r in workers)
    return Pressure(
        seconds=window,
        due_per_s=rate(rounds, "due"),
        sent_per_s=rate(rounds, "sent"),
        skipped_per_s=rate(rounds, "skipped"),
        probed_per_s=rate(workers, "probed"),
        on_time_per_s=rate(workers, "on_time"),
        overloaded_per_s=rate(workers, "overloaded"),
        loop_lag_ms=max((r.get("loop_lag_max_ms", 0) for r in workers), default=0),
        checks_per_cpu_s=probed / cpu if cpu > 0 else None,
    )


def next_budget(pressure: Pressure, budget: int | None, run_seconds: float) -> int | None:
    """Slots the dispatcher may send in its next run (None: all that is due). Behind: what
    the workers were seen to start on time in that much time. On time again: more, each run,
    until the budget covers the demand and is dropped."""
    if pressure.behind:
        return max(1, int(pressure.on_time_per_s * run_seconds))
    if budget is None:
        return None
    grown = int(budget * GROWTH) + 1
    return None if grown >= pressure.due_per_s * run_seconds * 1.5 else grown


# --- Redis ------------------------------------------------------------------------------------


def _client() -> redis.Redis | None:
    if not settings.REDIS_URL:
        return None
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=0.25, socket_connect_timeout=0.25
    )


def _push(key: str, report: dict) -> None:
    client = _client()
    if client is None:
        return
    try:
        client.pipeline(transaction=False).lpush(key, json.dumps(report)).ltrim(
            key, 0, KEEP - 1
        ).execute()
    except redis.RedisError as exc:
        log.debug("capacity report lost", error=str(exc))
    finally:
        client.close()


def report_batch(stats: dict, cpu_s: float) -> None:
    fields = ("probed", "on_time", "overloaded", "loop_lag_max_ms")
    _push(WORKERS_KEY, {"t": time.time(), "cpu_s": cpu_s, **{f: stats.get(f, 0) for f in fields}})


def report_run(due: int, sent: int, skipped: int) -> None:
    _push(DISPATCH_KEY, {"t": time.time(), "due": due, "sent": sent, "skipped": skipped})


def pressure(window: float = WINDOW) -> Pressure | None:
    """The last ``window`` seconds, or None without Redis."""
    client = _client()
    if client is None:
        return None
    try:
        workers = [json.loads(r) for r in client.lrange(WORKERS_KEY, 0, KEEP - 1)]
        rounds = [json.loads(r) for r in client.lrange(DISPATCH_KEY, 0, KEEP - 1)]
    except redis.RedisError:
        return None
    finally:
        client.close()
    return pressure_from(workers, rounds, time.time(), window)


def budget_for_run(run_seconds: float) -> int | None:
    """The dispatcher's budget for this run, kept in Redis between runs (None: no limit)."""
    now = pressure()
    if now is None:
        return None
    client = _client()
    try:
        stored = client.get(BUDGET_KEY)
        budget = next_budget(now, int(stored) if stored else None, run_seconds)
        if budget is None:
            client.delete(BUDGET_KEY)
        else:
            client.set(BUDGET_KEY, budget, ex=60)
    except redis.RedisError:
        return None
    finally:
        client.close()
    return budget
