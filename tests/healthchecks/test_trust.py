"""A result is only as trustworthy as the checker that took it: the rule on synthetic lag,
and the loop watch that measures it."""

import asyncio
import time

import pytest

from healthchecks.engine import trust
from healthchecks.probes import ProbeOutcome, make_spec
from healthchecks.status import ErrorCode, Status

SPEC = make_spec(1, "http", "http://127.0.0.1:9/", timeout=1.0, latency_threshold_ms=200)
LIMIT = 250


def outcome(status, code, ms, errors=()):
    return ProbeOutcome(status, response_ms=ms, error_code=code, errors=list(errors))


@pytest.mark.parametrize(
    ("seen", "lag_ms", "trusted"),
    [
        # A timeout while the loop stalled 1.3 s: the answer may have sat unread.
        (outcome(Status.UNHEALTHY, ErrorCode.TIMEOUT, 1000, ["timed out"]), 1300, False),
        # The same timeout with the loop on time: the target's.
        (outcome(Status.UNHEALTHY, ErrorCode.TIMEOUT, 1000, ["timed out"]), 20, True),
        # Just under the limit: trusted.
        (outcome(Status.UNHEALTHY, ErrorCode.TIMEOUT, 1000), LIMIT - 1, True),
        # Slow by 900 ms of which 800 were the checker's: 100 ms is under the 200 threshold.
        (outcome(Status.DEGRADED, ErrorCode.SLOW, 900), 800, False),
        # Slow by 900 ms of which 300 were the checker's: still 600 ms, over the threshold.
        (outcome(Status.DEGRADED, ErrorCode.SLOW, 900), 300, True),
        # A refusal, an HTTP 500: the target's answers, whatever the checker's state.
        (outcome(Status.UNHEALTHY, ErrorCode.REFUSED, 3), 5000, True),
        (outcome(Status.UNHEALTHY, ErrorCode.HTTP_STATUS, 40), 5000, True),
        (outcome(Status.HEALTHY, ErrorCode.NONE, 40), 5000, True),
    ],
)
def test_the_rule(seen, lag_ms, trusted):
    assert trust.verdict(seen, SPEC, lag_ms, LIMIT).trusted is trusted


def test_an_untrusted_outcome_is_unknown_and_says_why_and_what_was_seen():
    seen = outcome(Status.UNHEALTHY, ErrorCode.TIMEOUT, 1000, ["timed out after 1.0s"])
    judged = trust.verdict(seen, SPEC, 2300, LIMIT)
    recorded = trust.distrusted(seen, judged.reason)
    assert recorded.status == Status.UNKNOWN
    assert recorded.error_code == ErrorCode.CHECKER_OVERLOADED
    assert recorded.errors == ["checker overloaded: loop lag 2.3s: not counted against the target"]
    assert recorded.warnings == ["the probe saw: timed out after 1.0s"]


def test_the_watch_sees_a_stall_of_the_loop_and_when_it_was():
    async def scenario():
        watch = trust.LoopWatch(tick=0.01)
        watch.start()
        await asyncio.sleep(0.05)
        calm = time.monotonic()
        await asyncio.sleep(0.05)
        calm_lag = watch.lag_since(calm)
        before_stall = time.monotonic()
        time.sleep(0.3)  # the loop is blocked: nothing else runs
        during = watch.lag_since(before_stall)  # the stall still going on counts
        await asyncio.sleep(0.05)
        after = watch.lag_since(before_stall)
        later = time.monotonic()
        await asyncio.sleep(0.05)
        since_later = watch.lag_since(later)
        await watch.stop()
        return calm_lag, during, after, since_later, watch.worst()

    calm_lag, during, after, since_later, worst = asyncio.run(scenario())
    assert calm_lag < 0.1
    assert during >= 0.25 and after >= 0.25 and worst >= 0.25
    assert since_later < 0.1
