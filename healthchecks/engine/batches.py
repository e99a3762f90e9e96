"""Running a batch of claimed checks in a worker: probe concurrently, record in bulk.

Each probe starts at its due time (the dispatcher claims a little ahead), runs on one
asyncio event loop with the others, and its outcome joins a buffer that a single recording
thread flushes to the database every few hundred milliseconds -- so a slow target delays
nothing but itself, and a worker killed mid-batch has already recorded what it finished.
A batch that runs again (redelivered after a crash) skips what is already recorded.
"""

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.utils import IntegrityError, InterfaceError, OperationalError
from django.utils import timezone

from healthchecks import probes
from healthchecks.engine import capacity, counters, recording, trust
from healthchecks.engine.scheduling import Claim
from healthchecks.engine.specs import SPEC_FIELDS, spec_from_row
from healthchecks.models import CheckResult, HealthCheck
from healthchecks.status import ErrorCode, Status
from portal.egress import NetworkPolicy
from portal.errors import Misconfigured

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is not on every platform
    uvloop = None  # type: ignore[assignment]


def parse_claims(items) -> list[Claim]:
    return [Claim(datetime.fromisoformat(due), int(check_id)) for check_id, due in items]


_RECORDED_SQL = """
SELECT r.health_check_id, r.at FROM healthchecks_checkresult AS r
JOIN unnest(%s::int[], %s::timestamptz[]) AS k(id, at) ON r.health_check_id = k.id AND r.at = k.at
"""


def already_recorded(claims: list[Claim]) -> set[tuple[int, datetime]]:
    """The claims whose result is already stored (this batch ran before, in part)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _RECORDED_SQL, [[c.check_id for c in claims], [c.due_at for c in claims]]
            )
            return set(cursor.fetchall())
    keys = [(c.check_id, c.due_at) for c in claims]
    found: set[tuple[int, datetime]] = set()
    for start in range(0, len(keys), 1000):
        found.update(
            CheckResult.objects.filter(pk__in=keys[start : start + 1000]).values_list(
                "health_check_id", "at"
            )
        )
    return found


def run_batch(items) -> dict:
    """Probe and record one batch; returns counts for the task's log line."""
    started = time.time()
    claims = parse_claims(items)
    # How early the batch reached a worker before its first due time (negative: late).
    slack_ms = (
        round((min(c.due_at for c in claims).timestamp() - time.time()) * 1000) if claims else 0
    )
    done = already_recorded(claims)
    todo = [c for c in claims if (c.check_id, c.due_at) not in done]
    rows = HealthCheck.objects.filter(pk__in={c.check_id for c in todo}, enabled=True).values(
        *SPEC_FIELDS
    )
    specs, unreadable = _specs(rows)
    if unreadable:  # a check whose secrets cannot be read fails alone, never its batch
        record_resiliently([unreadable_result(c) for c in todo if c.check_id in unreadable])
    todo = [c for c in todo if c.check_id in specs]
    missed = [c for c in todo if is_missed(c, specs[c.check_id], time.time())]
    if missed:
        record_resiliently([missed_result(c, specs[c.check_id]) for c in missed])
        todo = [c for c in todo if c not in missed]
    stats = {
        "claimed": len(claims),
        "skipped": len(claims) - len(todo) - len(missed),
        "missed": len(missed),
        "unreadable": len(unreadable),
        "probed": 0,
        "changed": 0,
        "slack_ms": slack_ms,
    }
    stats["setup_ms"] = round((time.time() - started) * 1000)
    if todo:
        runner = _BatchRunner(specs, NetworkPolicy.from_settings())
        factory = uvloop.new_event_loop if uvloop else None
        probed, changed = asyncio.run(runner.run(todo), loop_factory=factory)
        stats.update(
            probed=probed,
            changed=changed,
            on_time=runner.on_time,
            overloaded=runner.overloaded,
            loop_lag_max_ms=round(runner.watch.worst() * 1000),
        )
    return stats


def _specs(rows) -> tuple[dict[int, probes.ProbeSpec], set[int]]:
    """Probe specs by check id, and the ids of checks whose secrets no configured key
    decrypts (a key dropped before ``rotate_config_secrets`` ran)."""
    specs, unreadable = {}, set()
    for row in rows:
        try:
            specs[row["id"]] = spec_from_row(row)
        except Misconfigured:
            unreadable.add(row["id"])
    return specs, unreadable


def unreadable_result(claim: Claim) -> recording.Result:
    """Unknown, not unhealthy: the portal cannot probe the target, which says nothing of it."""
    outcome = probes.ProbeOutcome(
        Status.UNKNOWN,
        error_code=ErrorCode.INTERNAL,
        errors=[
            "the check's secrets cannot be decrypted with the configured keys: an operator must "
            "restore the key they were encrypted with (CONFIG_ENCRYPTION_KEYS or SECRET_KEY)"
        ],
    )
    now = timezone.now()
    return recording.Result(claim.check_id, claim.due_at, now, outcome)


def is_missed(claim: Claim, spec: probes.ProbeSpec, now: float) -> bool:
    """A slot whose check's next slot is already due: probing it now would answer a question
    nobody asked any more (and report a worker's loss as a late probe)."""
    return now - claim.due_at.timestamp() > spec.interval


def missed_result(claim: Claim, spec: probes.ProbeSpec) -> recording.Result:
    now = timezone.now()
    late = (now - claim.due_at).total_seconds()
    outcome = probes.ProbeOutcome(
        Status.UNKNOWN,
        error_code=ErrorCode.MISSED,
        errors=[
            f"slot missed: it reached a worker {late:.0f}s after it was due, past the check's "
            f"{spec.interval:g}s interval (a worker was lost mid-batch?); not probed"
        ],
    )
    return recording.Result(claim.check_id, claim.due_at, now, outcome)


class _BatchRunner:
    def __init__(self, specs: dict, policy: NetworkPolicy):
        self.specs = specs
        self.policy = policy
        self.buffer: list[recording.Result] = []
        self.changed = 0
        self.probed = 0
        self.overloaded = (
            0  # outcomes not believed: the checker was behind (healthchecks.engine.trust)
        )
        self.on_time = 0  # probes started within HEALTH_ON_TIME_MS of their due time
        self.watch = trust.LoopWatch()
        # One thread records: one database connection, flushes in order.
        self.recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder")
        self._reported = {"probed": 0, "on_time": 0, "overloaded": 0}
        self._reported_at = time.monotonic()

    async def run(self, todo: list[Claim]) -> tuple[int, int]:
        limit = asyncio.Semaphore(settings.HEALTH_PROBE_CONCURRENCY)
        done = asyncio.Event()
        flusher = asyncio.create_task(self._flush_periodically(done))
        self.watch.start()
        try:
            async with probes.Prober(self.policy) as prober:
                await asyncio.gather(*(self._one(prober, claim, limit) for claim in todo))
        finally:
            await self.watch.stop()
            # Never cancel the flusher: cancelling it while it waits for the recording
            # thread would drop the chunk it handed over. Tell it to stop and let it finish.
            done.set()
            await flusher
            # The recording thread's own connection: resolved in that thread, closed there.
            await asyncio.get_running_loop().run_in_executor(self.recorder, _close_connection)
            self.recorder.shutdown()
        return self.probed, self.changed

    async def _one(self, prober: probes.Prober, claim: Claim, limit: asyncio.Semaphore) -> None:
        # The loop's clock and the wall clock differ by a little: never start early.
        while (delay := claim.due_at.timestamp() - time.time()) > 0:
            await asyncio.sleep(delay)
        spec = self.specs[claim.check_id]
        async with limit:
            started, began = timezone.now(), time.monotonic()
            outcome = await prober.probe(spec)
        lag_ms = self.watch.lag_since(began) * 1000
        judged = trust.verdict(outcome, spec, lag_ms, settings.HEALTH_CHECKER_LAG_MS)
        if not judged.trusted:
            outcome = trust.distrusted(outcome, judged.reason)
            self.overloaded += 1
        self.probed += 1
        result = recording.Result(claim.check_id, claim.due_at, started, outcome)
        if result.lag_ms <= settings.HEALTH_ON_TIME_MS:
            self.on_time += 1
        self.buffer.append(result)
        if len(self.buffer) >= settings.HEALTH_FLUSH_SIZE:
            await self._flush()

    async def _flush_periodically(self, done: asyncio.Event) -> None:
        """Flush every HEALTH_FLUSH_SECONDS, and once more when the batch is done."""
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), settings.HEALTH_FLUSH_SECONDS)
            await self._flush()
        await self._flush()  # what arrived while the last flush was being written

    async def _flush(self) -> None:
        chunk, self.buffer = self.buffer, []
        if chunk:
            progress = self._progress()
            loop = asyncio.get_running_loop()
            self.changed += await loop.run_in_executor(
                self.recorder, record_and_report, chunk, progress
            )

    def _progress(self) -> dict:
        """What happened since the last report: the dispatcher hears of lateness as the
        results are recorded, not when the batch ends (healthchecks.engine.capacity)."""
        now = {"probed": self.probed, "on_time": self.on_time, "overloaded": self.overloaded}
        progress = {key: value - self._reported[key] for key, value in now.items()}
        progress["loop_lag_max_ms"] = round(self.watch.lag_since(self._reported_at) * 1000)
        self._reported, self._reported_at = now, time.monotonic()
        return progress


def _close_connection() -> None:
    connection.close()


def record_and_report(chunk: list[recording.Result], progress: dict) -> int:
    changed = record_resiliently(chunk)
    capacity.report_batch(progress, 0.0)
    return changed


def record_resiliently(chunk: list[recording.Result]) -> int:
    """Record, trying once more if the connection died (PostgreSQL restarted) or a check
    was deleted between reading it and committing (the retry leaves it out)."""
    close_old_connections()
    try:
        changed = recording.record(chunk)
    except (OperationalError, InterfaceError):
        connection.close()
        changed = recording.record(chunk)
    except IntegrityError:
        changed = recording.record(chunk)
    probed = [r for r in chunk if r.observed]
    counters.observe_batch(
        [counters.result_label(r.outcome.status, r.outcome.error_code) for r in chunk],
        [r.outcome.response_ms / 1000 for r in probed],
        [max(0.0, r.lag_ms / 1000) for r in chunk],
    )
    return changed
