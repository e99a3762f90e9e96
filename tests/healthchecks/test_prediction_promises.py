"""The bounds the README's "Predictions" states, as properties of the predictors over any
series, not only the hand-made ones of test_predict.py: a latency trend is announced only
when it crosses its threshold within 24 h and at least 0.7 of the point pairs agree; a
certificate only within 21 days of expiry; flapping from 4 changes in the last hour; an
error budget burn exactly when one of the workbook's window pairs both burn faster than
their rate."""

from datetime import timedelta

from django.utils import timezone
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from healthchecks.reads import predict

NOW = timezone.now()
H, M = timedelta(hours=1), timedelta(minutes=1)
# (long, short, rate both must exceed), as the README writes them.
PAIRS = [(H, 5 * M, 14.4), (6 * H, 30 * M, 6.0), (24 * H, 2 * H, 3.0)]

series = st.lists(
    st.tuples(
        st.integers(min_value=-60, max_value=0),
        st.floats(min_value=0, max_value=5000, allow_nan=False),
    ),
    min_size=0,
    max_size=60,
    unique_by=lambda point: point[0],
)
rising = st.builds(
    lambda slope, start, noise: [
        (x, start + slope * (x + 60) + noise[(x + 60) % len(noise)]) for x in range(-60, 1)
    ],
    st.floats(min_value=0.01, max_value=100),
    st.floats(min_value=0, max_value=1000),
    st.floats(min_value=0, max_value=300).flatmap(
        lambda spread: st.lists(
            st.floats(min_value=-spread, max_value=spread), min_size=1, max_size=13
        )
    ),
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(points=st.one_of(series, rising), threshold=st.floats(min_value=1, max_value=3000))
def test_a_latency_trend_is_announced_only_within_24_h_with_confidence_at_least_0_7(
    points, threshold
):
    forecast = predict.latency_forecast(points, threshold, NOW)
    if forecast is None:
        return
    assert forecast.kind == "latency_trend"
    assert timedelta(0) < forecast.expected_at - NOW <= timedelta(hours=24)
    assert 0.7 <= forecast.confidence <= 1.0
    assert forecast.evidence["slope_ms_per_minute"] > 0


@example(days=21.0)
@example(days=21.5)
@example(days=0.0)
@example(days=-0.5)
@given(days=st.floats(min_value=-400, max_value=400, allow_nan=False))
def test_a_certificate_is_predicted_to_expire_only_within_21_days(days):
    forecast = predict.tls_forecast(days, NOW)
    assert (forecast is not None) == (0 <= days <= 21)
    if forecast:
        assert forecast.kind == "tls_expiry" and forecast.expected_at == NOW + timedelta(days=days)


@example(changes=3)
@example(changes=4)
@given(changes=st.integers(min_value=0, max_value=1000))
def test_a_check_is_flapping_from_4_changes_in_the_last_hour(changes):
    forecast = predict.flap_forecast(changes, NOW)
    assert (forecast is not None) == (changes >= 4)


window_counts = st.integers(min_value=1, max_value=10_000).flatmap(
    lambda results: st.tuples(st.integers(min_value=0, max_value=results), st.just(results))
)


@hypothesis_settings(max_examples=300)
@given(
    target=st.sampled_from([50.0, 90.0, 99.0, 99.9, 99.95, 99.999]),
    windows=st.fixed_dictionaries(
        {}, optional={w: window_counts for pair in PAIRS for w in pair[:2]}
    ),
)
def test_an_error_budget_burns_exactly_when_a_window_pair_both_burn_past_their_rate(
    target, windows
):
    budget = 1 - target / 100

    def rate(window):
        failures, results = windows.get(window, (0, 0))
        return failures / results / budget if results else None

    expected = any(
        rate(long) is not None
        and rate(short) is not None
        and rate(long) > threshold
        and rate(short) > threshold
        for long, short, threshold in PAIRS
    )
    forecast = predict.burn_forecast(target, windows, 0.0, NOW)
    assert (forecast is not None) == expected
    if forecast:
        assert forecast.kind == "error_budget_burn"


def test_a_slow_burn_over_a_day_is_caught_by_the_24_h_and_2_h_pair():
    """0.4 % failures against a 0.1 % budget: a burn of 4 -- under the hour's 14.4 and the six
    hours' 6, over the day's 3."""
    windows = {
        H: (4, 1000),
        5 * M: (1, 250),
        6 * H: (24, 6000),
        30 * M: (2, 500),
        24 * H: (96, 24000),
        2 * H: (8, 2000),
    }
    forecast = predict.burn_forecast(99.9, windows, 0.0, NOW)
    assert forecast.evidence["windows"] == ["24 h", "2 h"]
    assert forecast.evidence["threshold"] == 3.0
