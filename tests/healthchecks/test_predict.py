"""Predictions on series with known answers: the Theil-Sen fit, each predictor's yes and no,
and /health/predictive over real results, where a prediction goes when its trend does."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from healthchecks.models import CheckResult, CheckState
from healthchecks.reads import predict
from healthchecks.status import Status
from tests.factories import make_check

NOW = timezone.now()


def line(slope, intercept, xs):
    return [(x, slope * x + intercept) for x in xs]


def test_theil_sen_finds_an_exact_line():
    fit = predict.theil_sen(line(2.0, 5.0, range(-10, 1)))
    assert (fit.slope, fit.intercept, fit.agreement) == (2.0, 5.0, 1.0)


def test_theil_sen_shrugs_off_outliers():
    points = line(2.0, 5.0, range(-30, 1))
    for i in range(0, 31, 5):  # one probe in five answers a second late
        points[i] = (points[i][0], points[i][1] + 1000)
    fit = predict.theil_sen(points)
    assert fit.slope == pytest.approx(2.0, abs=0.2)
    assert fit.intercept == pytest.approx(5.0, abs=5)


def test_a_rising_latency_is_predicted_to_cross_its_threshold_when_the_line_does():
    # 300 ms now, 5 ms more a minute: the 400 ms threshold in 20 minutes.
    forecast = predict.latency_forecast(line(5.0, 300.0, range(-30, 1)), 400, NOW)
    assert forecast.kind == "latency_trend"
    assert forecast.expected_at - NOW == pytest.approx(
        timedelta(minutes=20), abs=timedelta(seconds=1)
    )
    assert forecast.confidence == 1.0
    assert "reaches the 400 ms threshold in about 20 min" in forecast.message


@pytest.mark.parametrize(
    ("points", "why"),
    [
        (line(0.0, 300.0, range(-30, 1)), "flat"),
        (line(-5.0, 300.0, range(-30, 1)), "falling"),
        (line(5.0, 450.0, range(-30, 1)), "already over the threshold"),
        (line(0.01, 100.0, range(-30, 1)), "crosses beyond the horizon"),
        (line(5.0, 300.0, range(-4, 1)), "too few points"),
        ([(x, 300 + (37 * x) % 11) for x in range(-30, 1)], "noise without a trend"),
    ],
)
def test_no_latency_prediction_without_a_trend_heading_there(points, why):
    assert predict.latency_forecast(points, 400, NOW) is None, why


def test_tls_and_flapping_forecasts():
    assert predict.tls_forecast(10, NOW).expected_at == NOW + timedelta(days=10)
    assert predict.tls_forecast(30, NOW) is None
    assert predict.tls_forecast(-1, NOW) is None  # expired: the check itself fails
    assert predict.flap_forecast(3, NOW) is None
    assert predict.flap_forecast(6, NOW).kind == "flapping"


def record(check, minutes_ago: float, ms: float, status=Status.HEALTHY):
    CheckResult.objects.create(
        health_check=check,
        at=timezone.now() - timedelta(minutes=minutes_ago),
        response_us=int(ms * 1000),
        status=status,
    )


@pytest.mark.django_db
@pytest.mark.sqlite
def test_health_predictive_shows_a_degrading_check_and_drops_it_when_it_steadies(client):
    check = make_check(name="http", latency_threshold_ms=400)
    for minute in range(20, 0, -1):  # 150 ms twenty minutes ago, 10 ms more each minute
        for second in (0, 30):
            record(check, minute - second / 60, 350 - 10 * (minute - second / 60))
    assert predict.refresh() == 1
    body = client.get("/health/predictive").json()
    (found,) = body["predictions"]
    assert (found["service"], found["check"], found["kind"]) == (
        check.service.name,
        "http",
        "latency_trend",
    )
    assert found["confidence"] >= 0.9 and body["generated_at"]
    # 350 ms now at 10 ms a minute: the threshold in about 5 minutes.
    assert found["evidence"]["slope_ms_per_minute"] == pytest.approx(10, rel=0.05)
    expected = datetime.fromisoformat(found["expected_at"])
    generated = datetime.fromisoformat(body["generated_at"])
    assert timedelta(minutes=4) <= expected - generated <= timedelta(minutes=6)

    CheckResult.objects.filter(health_check=check).delete()
    for minute in range(20, 0, -1):
        record(check, minute, 120)
    assert predict.refresh() == 0
    steady = client.get("/health/predictive").json()
    assert steady["predictions"] == []
    assert steady["generated_at"] >= body["generated_at"]  # computed, and found nothing


@pytest.mark.django_db
@pytest.mark.sqlite
def test_a_certificate_near_expiry_is_predicted(client):
    check = make_check(name="tls", kind="http", target="https://127.0.0.1:9/")
    CheckState.objects.filter(health_check=check).update(
        last_outcome={"metrics": {"tls_days_left": 12}}
    )
    predict.refresh()
    (found,) = client.get("/health/predictive").json()["predictions"]
    assert found["kind"] == "tls_expiry" and "12 days" in found["message"]


H, M = timedelta(hours=1), timedelta(minutes=1)


def burn(windows: dict, used=0.0, target=99.9):
    return predict.burn_forecast(target, windows, used, NOW)


def test_a_fast_burn_over_both_windows_is_predicted_with_when_the_budget_runs_out():
    # 99.9 %: a budget of 0.1 %. 2 % failures is a burn rate of 20 over the hour and the
    # five minutes, above 14.4; with 40 % of the budget spent, the 60 % left lasts
    # 30 days * 0.6 / 20 = 21.6 hours.
    forecast = burn({H: (20, 1000), 5 * M: (2, 100)}, used=0.4)
    assert forecast.kind == "error_budget_burn"
    assert forecast.evidence["burn_rate_long"] == pytest.approx(20)
    assert forecast.expected_at - NOW == pytest.approx(timedelta(hours=21.6), abs=M)
    assert "60% of it left" in forecast.message
    assert forecast.confidence == 1.0  # a hundred results in the short window


@pytest.mark.parametrize("hours", [1, 24, 71])
def test_a_young_services_budget_is_never_called_spent(hours):
    """Issue 22: a service watched for less than a tenth of the window (3 days) burning hard
    -- its first hour all failures -- has its burn reported, but its budget is not called
    spent, nor given a date: too early to say."""
    forecast = predict.burn_forecast(
        99.9, {H: (100, 100), 5 * M: (10, 10)}, 5.0, NOW, watched=hours * H
    )
    assert forecast.kind == "error_budget_burn"
    assert "already spent" not in forecast.message
    assert "too early to say how much of it is spent (judged after 3.0 days)" in forecast.message
    assert forecast.expected_at is None and forecast.evidence["budget_judged"] is False


def test_watched_long_enough_a_spent_budget_is_called_spent():
    forecast = predict.burn_forecast(
        99.9, {H: (100, 100), 5 * M: (10, 10)}, 1.5, NOW, watched=predict.BUDGET_JUDGED_AFTER
    )
    assert forecast.message.endswith("already spent")
    assert forecast.expected_at == NOW and forecast.evidence["budget_judged"] is True


@pytest.mark.parametrize(
    ("windows", "why"),
    [
        ({H: (20, 1000), 5 * M: (0, 100)}, "the failures stopped: the short window is clean"),
        ({H: (10, 1000), 5 * M: (5, 100)}, "a burn of 10 over the hour is under 14.4"),
        ({H: (0, 0), 5 * M: (0, 0)}, "no results at all"),
        ({6 * H: (30, 6000), 30 * M: (10, 500)}, "a burn of 5 over six hours is under 6"),
    ],
)
def test_no_burn_prediction_when_a_window_pair_is_not_both_over(windows, why):
    assert burn(windows) is None, why


def test_a_slower_burn_is_caught_by_the_longer_pair():
    # 0.7 % failures: a burn of 7 -- not the hour's 14.4, but the six hours' 6.
    forecast = burn({H: (7, 1000), 5 * M: (1, 100), 6 * H: (42, 6000), 30 * M: (7, 1000)})
    assert forecast.evidence["windows"] == ["6 h", "30 min"]
    assert forecast.evidence["threshold"] == 6.0


@pytest.mark.django_db
@pytest.mark.sqlite
def test_a_service_burning_its_budget_shows_on_health_predictive_until_it_stops(client):
    check = make_check(name="api", is_critical=True)
    check.service.slo_target = 99.0  # a budget of 1 %
    check.service.save()
    for second in range(0, 3600, 20):  # an hour of results, one in five a failure
        bad = second % 100 == 0
        record(check, second / 60, 20, Status.UNHEALTHY if bad else Status.HEALTHY)
    assert predict.refresh() == 1
    (found,) = client.get("/health/predictive").json()["predictions"]
    assert (found["service"], found["check"], found["kind"]) == (
        check.service.name,
        None,
        "error_budget_burn",
    )
    assert found["evidence"]["burn_rate_long"] == pytest.approx(20, rel=0.05)
    # An hour watched, a fifth of it failing: 0.2 x (1 h / 30 d) of a 1 % budget is about
    # 2.8 % of it spent -- not "already spent" (a stranger's trial saw that on a new service).
    assert found["evidence"]["budget_used"] == pytest.approx(0.2 / 720 / 0.01, rel=0.1)
    # And an hour is too short to judge the remainder at all (issue 22): the burn is said,
    # what is left is not, until three days are watched.
    assert found["evidence"]["budget_judged"] is False
    assert "too early to say how much of it is spent" in found["message"]
    assert found["expected_at"] is None

    # Pushed back three hours, with clean results since: every short window (5 min, 30 min,
    # 2 h) is clean, so the burn has stopped and the prediction goes.
    CheckResult.objects.filter(health_check=check).delete()
    for second in range(0, 3600, 20):
        bad = second % 100 == 0
        record(check, 180 + second / 60, 20, Status.UNHEALTHY if bad else Status.HEALTHY)
        record(check, second / 60 * 2.5, 20)
    assert predict.refresh() == 0
