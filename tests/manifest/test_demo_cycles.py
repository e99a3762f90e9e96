"""The demo's trends cycle, so that `make run` stays alive for days (issue 28, item 1): the
ledger's target slowed by 40 ms a minute without end, its check timed out from minute 75 and
the demo sat in an outage nobody caused, with nothing left for the predictions to predict.

The targets compute what they answer from the minutes the web process has run
(healthchecks.watch.demo): these tests follow them over days of simulated time, and feed
the ledger's to the predictor as its probes would, without waiting for any of it."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from healthchecks.reads.predict import WINDOW_MINUTES, latency_forecast
from healthchecks.watch import demo
from manifest.demo import DEMO_CHECK_DEFAULTS, DEMO_CHECKS

WEEK_MINUTES = 7 * 24 * 60
CYCLE = demo.DEGRADE_MINUTES + demo.RECOVER_MINUTES  # three hours
LEDGER = DEMO_CHECKS["ledger"][0]
THRESHOLD_MS = LEDGER["latency_threshold_ms"]  # 400
TIMEOUT_MS = DEMO_CHECK_DEFAULTS["timeout"] * 1000  # 3 s
PROBE_SECONDS = DEMO_CHECK_DEFAULTS["interval"]  # a probe every 10 s


def every(step_seconds: float, minutes: float = WEEK_MINUTES) -> list[float]:
    """Moments ``step_seconds`` apart over ``minutes`` (a week by default), in minutes."""
    return [i * step_seconds / 60 for i in range(round(minutes * 60 / step_seconds) + 1)]


@given(st.floats(min_value=0, max_value=WEEK_MINUTES, allow_nan=False))
def test_at_any_moment_of_a_week_the_ledger_answers_within_its_bounds(minutes):
    """40 to 640 ms: over its check's threshold at worst (degraded), never near the check's
    timeout, so the demo's ledger is never down unless someone switches it down."""
    assert demo.LATENCY_LOW_MS <= demo.degrading_ms(minutes) <= demo.LATENCY_HIGH_MS
    assert demo.LATENCY_HIGH_MS < TIMEOUT_MS / 2


def test_the_ledger_degrades_and_recovers_every_three_hours_for_a_week():
    """Every three hours, all week long: healthy, over the 400 ms threshold from minute 72
    (degraded), under it again before the cycle ends (healthy), back to 40 ms."""
    moments = every(10)
    over = [demo.degrading_ms(m) > THRESHOLD_MS for m in moments]
    degrades = [m for m, a, b in zip(moments[1:], over, over[1:], strict=False) if b and not a]
    recovers = [m for m, a, b in zip(moments[1:], over, over[1:], strict=False) if a and not b]
    cycles = round(WEEK_MINUTES / CYCLE)  # 56
    assert len(degrades) == len(recovers) == cycles
    for k, (went, came_back) in enumerate(zip(degrades, recovers, strict=True)):
        assert k * CYCLE + 72 <= went <= k * CYCLE + 73
        assert went < came_back < (k + 1) * CYCLE
    # Back to where it started at the end of each cycle, the last as the first.
    for k in range(cycles + 1):
        assert demo.degrading_ms(k * CYCLE) == demo.LATENCY_LOW_MS
    assert max(demo.degrading_ms(m) for m in moments) == demo.LATENCY_HIGH_MS


def minute_means(now: float) -> list[tuple[float, float]]:
    """What the predictor reads at ``now`` (minutes since the web process started): the mean
    latency of each minute of its window, from a probe every 10 s, each mean placed at the
    middle of its minute, in minutes before now (healthchecks.reads.predict.forecasts)."""
    points = []
    for minute in range(max(0, int(now) - WINDOW_MINUTES), int(now)):
        probes = [minute + s / 60 for s in range(0, 60, PROBE_SECONDS)]
        mean = sum(demo.degrading_ms(t) for t in probes) / len(probes)
        points.append((minute + 0.5 - now, mean))
    return points


def test_each_cycle_the_prediction_sees_the_crossing_coming_and_drops_it_as_it_recovers():
    """/health/predictive always has something to predict: in every cycle of a day the
    latency trend is forecast at least 20 minutes before the ledger crosses its threshold,
    within 10 minutes of when it does; no forecast stays while it recovers. (The first
    cycle's forecast comes from its sixth minute: its window holds only the rise.)"""
    now_at = datetime(2025, 1, 1, tzinfo=UTC)
    first_seen: dict[int, float] = {}
    for minute in range(1, 24 * 60 + 1):
        forecast = latency_forecast(minute_means(minute), THRESHOLD_MS, now_at)
        cycle, phase = divmod(minute, CYCLE)
        crossing = cycle * CYCLE + (THRESHOLD_MS - demo.LATENCY_LOW_MS) / (
            (demo.LATENCY_HIGH_MS - demo.LATENCY_LOW_MS) / demo.DEGRADE_MINUTES
        )
        if forecast is None:
            continue
        assert phase < demo.DEGRADE_MINUTES, f"a forecast while recovering, minute {minute}"
        expected = minute + (forecast.expected_at - now_at) / timedelta(minutes=1)
        assert abs(expected - crossing) <= 10, (minute, expected, crossing)
        first_seen.setdefault(int(cycle), minute)
    assert sorted(first_seen) == list(range(8))  # every cycle of the day
    assert first_seen[0] == 6
    for cycle, minute in first_seen.items():
        assert cycle * CYCLE + 72 - minute >= 20, (cycle, minute)


def test_the_auth_queue_fills_and_drains_every_hour_for_a_week():
    """/demo/health-json's queue: 5 to 125 and back every hour; over 100 (warn: auth
    degraded) for a part of each hour, under it (pass) for the rest."""
    moments = every(30)
    for hour in range(7 * 24):
        depths = [demo.queue_depth(m) for m in moments if hour * 60 <= m < (hour + 1) * 60]
        assert min(depths) == demo.QUEUE_LOW and max(depths) == demo.QUEUE_HIGH
        warned = sum(d >= demo.QUEUE_WARN for d in depths) / len(depths)
        assert 0.1 < warned < 0.4, (hour, warned)
