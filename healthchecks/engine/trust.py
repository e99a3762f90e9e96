"""Whether a probe's outcome can be believed: a result is only as trustworthy as the checker
that took it.

A probe that times out, or answers slower than its threshold, while the probing process is
itself behind -- its event loop stalled by a noisy neighbour, a burst of new checks, a slow
database -- says more about the checker than about the target: the answer may have come in
time and sat unread. Such an outcome is recorded as *unknown* with the checker's reason
(``checker overloaded: loop lag 2.3 s``), counted apart, and never turns a service unhealthy
or opens an incident; the next slot probes again.

No I/O here: ``LoopWatch`` measures the loop, ``verdict`` judges one outcome.
"""

import asyncio
import bisect
import time
from dataclasses import dataclass

from healthchecks.probes import ProbeOutcome, ProbeSpec
from healthchecks.status import ErrorCode, Status

# Outcomes the checker's own delay can produce: a timeout, or slowness past a threshold. A
# refused connection, an HTTP 500 or a bad document are the target's answers, whatever the
# checker's state.
CHECKER_SENSITIVE = frozenset({ErrorCode.TIMEOUT, ErrorCode.SLOW})


@dataclass(frozen=True)
class Verdict:
    trusted: bool
    reason: str = ""


TRUSTED = Verdict(True)


def verdict(outcome: ProbeOutcome, spec: ProbeSpec, loop_lag_ms: float, limit_ms: float) -> Verdict:
    """Trust ``outcome`` unless the checker's loop fell behind by ``limit_ms`` or more while
    the probe ran (``loop_lag_ms``, the worst stall seen) and the outcome is one such a stall
    could have caused. A slow answer stays trusted when it is slow even without the stall."""
    if outcome.error_code not in CHECKER_SENSITIVE or loop_lag_ms < limit_ms:
        return TRUSTED
    if outcome.error_code == ErrorCode.SLOW:
        threshold = spec.latency_threshold_ms or 0
        if outcome.response_ms - loop_lag_ms > threshold:
            return TRUSTED  # slower than its threshold even without the checker's stall
    return Verdict(False, f"checker overloaded: loop lag {loop_lag_ms / 1000:.1f}s")


def distrusted(outcome: ProbeOutcome, reason: str) -> ProbeOutcome:
    """The outcome as recorded when it cannot be believed: unknown, with the checker's reason
    first and what the probe saw kept as a warning."""
    seen = "; ".join(outcome.errors) or Status(outcome.status).label
    return ProbeOutcome(
        Status.UNKNOWN,
        response_ms=outcome.response_ms,
        error_code=ErrorCode.CHECKER_OVERLOADED,
        errors=[f"{reason}: not counted against the target"],
        warnings=[f"the probe saw: {seen}", *outcome.warnings],
        details=outcome.details,
        metrics=outcome.metrics,
    )


class LoopWatch:
    """Measures how far behind an event loop runs: a task that asks to wake every ``tick``
    seconds and notes how late it woke. ``lag_since(t)`` is the worst lateness since ``t``
    (monotonic seconds), the stall still going on included."""

    def __init__(self, tick: float = 0.05):
        self.tick = tick
        self._times: list[float] = []  # when each lateness was noted
        self._lags: list[float] = []  # how late (seconds)
        self._expected = time.monotonic() + tick
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._expected = time.monotonic() + self.tick
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            self._times.append(now)
            self._lags.append(max(0.0, now - self._expected))
            if len(self._times) > 20_000:  # a batch lasts seconds; keep the last few minutes
                del self._times[:10_000], self._lags[:10_000]

    def lag_since(self, since: float) -> float:
        """Seconds: the worst lateness noted after ``since``, or of the wake-up still due."""
        first = bisect.bisect_left(self._times, since)
        noted = max(self._lags[first:], default=0.0)
        ongoing = max(0.0, time.monotonic() - self._expected)
        return max(noted, ongoing)

    def worst(self) -> float:
        return max(self._lags, default=0.0)
