"""The engine's own load: what probe workers report after each batch, how the dispatcher sheds
load when they cannot keep up, and what ``backend`` and ``/metrics`` say about it.

Workers report, per batch, how many probes they started and how many of those started on
time (within HEALTH_ON_TIME_MS of their due time), how many outcomes they could not vouch for
(healthchecks.engine.trust), and the CPU the batch took. The dispatcher reports, per run, how many
slots came due, how many it sent and how many it skipped. Both go to a short Redis list;
``pressure`` reads the last few seconds of it.

Back-pressure: while probes start late (fewer than ON_TIME_TARGET of them on time over the
last DECIDE_WINDOW seconds), the dispatcher sends only what the workers were seen to start on
time -- critical checks first, then the earliest -- and skips the rest of the slots (recorded
as ``skipped (overload)``: their checks run again at their next slot, which stretches their
interval). While probes start on time again it sends more each run: a quarter more, but only
a twentieth more once it nears the budget that last proved too much (its *ceiling*, forgotten
CEILING_SECONDS after the workers were last behind), so it probes for capacity without
swinging back into lateness; until it sends all that is due. A skipped slot is not made up
later, so returning capacity brings no catch-up burst. Workers report as they record (every
HEALTH_FLUSH_SECONDS), so the dispatcher hears of lateness within a second or so.

Without Redis (the embedded mode) nothing is reported and nothing is shed.
"""

import json
import math
import time
from dataclasses import asdict, dataclass
from functools import cache

import redis
import structlog
from django.conf import settings

log = structlog.get_logger(__name__)
WORKERS_KEY = "portal:capacity:workers"
DISPATCH_KEY = "portal:capacity:dispatch"
BUDGET_KEY = "portal:capacity:budget"
KEEP = 1000  # reports kept per list (a minute or more at full load)
WINDOW = 10.0  # seconds of reports /metrics shows
DECIDE_WINDOW = 3.0  # seconds of reports the dispatcher decides on: it must react fast
ON_TIME_TARGET = 0.95  # below this share of probes on time, the dispatcher sheds load
MIN_LATE_PER_S = 5.0  # ... if at least this many a second were late
FAST_GROWTH = 1.25  # on time again: each run may send this much more than the last budget
SLOW_GROWTH = 1.05  # ... once the budget is within NEAR_CEILING of its ceiling
NEAR_CEILING = 0.9
CEILING_SECONDS = 15.0


@dataclass(frozen=True)
class Pressure:
    """The engine's load over a window of seconds."""

    seconds: float
    due_per_s: float  # slots that came due (the demand)
    sent_per_s: float
    skipped_per_s: float
    probed_per_s: float
    on_time_per_s: float
    overloaded_per_s: float  # outcomes not believed (healthchecks.engine.trust)
    loop_lag_ms: float  # the worst event-loop lag a batch saw
    checks_per_cpu_s: float | None  # what one probe process does with a core to itself

    @property
    def on_time_ratio(self) -> float | None:
        return self.on_time_per_s / self.probed_per_s if self.probed_per_s else None

    @property
    def behind(self) -> bool:
        """Too few probes on time, and enough of them late that throughput is the question:
        a handful of late probes (a worker starting up, a pause) is not a capacity problem."""
        ratio = self.on_time_ratio
        late_per_s = self.probed_per_s - self.on_time_per_s
        # Rates are counts over the window: 55/3 - 40/3 is 4.999... where 15 late in 3 s are
        # 5 a second exactly. At a boundary, a rounding error must not decide.
        return (
            ratio is not None
            and ratio < ON_TIME_TARGET
            and not math.isclose(ratio, ON_TIME_TARGET)
            and (late_per_s >= MIN_LATE_PER_S or math.isclose(late_per_s, MIN_LATE_PER_S))
        )

    def describe(self) -> str:
        return (
            f"probe capacity exceeded: {_rate(self.due_per_s)} due per second, "
            f"{_rate(self.on_time_per_s)} started on time"
        )


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def pressure_from(workers: list[dict], rounds: list[dict], now: float, window: float) -> Pressure:
    """A window's pressure from the raw reports (pure: the tests feed it directly). A list
    that was full (KEEP reports) may cover less than the window: its rates are taken over
    the seconds it does cover, not diluted over the whole window."""
    worker_span, round_span = _covered(workers, now, window), _covered(rounds, now, window)
    workers = [r for r in workers if now - r["t"] <= window]
    rounds = [r for r in rounds if now - r["t"] <= window]

    def rate(reports: list[dict], key: str, span: float) -> float:
        return sum(r.get(key, 0) for r in reports) / span

    cpu = sum(r.get("cpu_s", 0.0) for r in workers)
    probed = sum(r.get("probed", 0) for r in workers)
    return Pressure(
        seconds=window,
        due_per_s=rate(rounds, "due", round_span),
        sent_per_s=rate(rounds, "sent", round_span),
        skipped_per_s=rate(rounds, "skipped", round_span),
        probed_per_s=rate(workers, "probed", worker_span),
        on_time_per_s=rate(workers, "on_time", worker_span),
        overloaded_per_s=rate(workers, "overloaded", worker_span),
        loop_lag_ms=max((r.get("loop_lag_max_ms", 0) for r in workers), default=0),
        checks_per_cpu_s=probed / cpu if cpu > 0 else None,
    )


def _covered(reports: list[dict], now: float, window: float) -> float:
    if len(reports) < KEEP:
        return window
    return max(1.0, min(window, now - min(r["t"] for r in reports)))


@dataclass(frozen=True)
class Budget:
    """The dispatcher's state between runs."""

    limit: int | None = None  # slots one run may send (None: all that is due)
    ceiling: int | None = None  # the limit in force when the workers last fell behind
    ceiling_until: float = 0.0  # when the ceiling is forgotten (time.time())
    behind: bool = False  # the workers were behind at the last run


def next_budget(pressure: Pressure, previous: Budget, run_seconds: float, now: float) -> Budget:
    """The budget of the next run. Behind: what the workers were seen to start on time in
    that much time (never more than the last budget). On time again: more, each run -- slowly
    near the ceiling -- until the budget covers the demand and is dropped."""
    due = pressure.due_per_s * run_seconds
    if pressure.behind:
        limit = max(1, int(pressure.on_time_per_s * run_seconds))
        if previous.limit is not None:
            limit = min(limit, previous.limit)
        ceiling: int | None
        if previous.behind and previous.ceiling is not None:
            ceiling = previous.ceiling  # the same episode: keep where it tipped over
        else:
            ceiling = previous.limit if previous.limit is not None else max(limit, round(due))
        return Budget(limit, ceiling, now + CEILING_SECONDS, behind=True)
    if previous.limit is None:
        return Budget()
    ceiling = previous.ceiling if now < previous.ceiling_until else None
    near = ceiling is not None and previous.limit >= NEAR_CEILING * ceiling
    grown = int(previous.limit * (SLOW_GROWTH if near else FAST_GROWTH)) + 1
    if grown >= due * 1.5:
        return Budget()
    return Budget(grown, ceiling, previous.ceiling_until if ceiling else 0.0)


# --- Redis ------------------------------------------------------------------------------------


def _client() -> redis.Redis | None:
    return _client_for(settings.REDIS_URL) if settings.REDIS_URL else None


@cache
def _client_for(url: str) -> redis.Redis:
    """One client (and its connection pool) per process: workers report several times a
    second, and a connection per report cost more than the report."""
    return redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)


def _push(key: str, report: dict) -> None:
    client = _client()
    if client is None:
        return
    try:
        pipe = client.pipeline(transaction=False)
        pipe.lpush(key, json.dumps(report))
        pipe.ltrim(key, 0, KEEP - 1)
        pipe.execute()
    except redis.RedisError as exc:
        log.debug("capacity report lost", error=str(exc))


def report_batch(stats: dict, cpu_s: float) -> None:
    """A worker's report: counts as it records (``cpu_s`` 0), the batch's CPU at its end."""
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
    return pressure_from(workers, rounds, time.time(), window)


def budget_for_run(run_seconds: float) -> int | None:
    """The dispatcher's budget for this run, kept in Redis between runs (None: no limit)."""
    now = pressure(DECIDE_WINDOW)
    if now is None:
        return None
    client = _client()
    if client is None:  # pressure() answered, so there is one: said for the type checker
        return None
    try:
        stored = client.get(BUDGET_KEY)
        previous = Budget(**json.loads(stored)) if stored else Budget()
        budget = next_budget(now, previous, run_seconds, time.time())
        if budget == Budget():
            client.delete(BUDGET_KEY)
        else:
            client.set(BUDGET_KEY, json.dumps(asdict(budget)), ex=60)
    except (redis.RedisError, ValueError, TypeError):
        return None
    return budget.limit
