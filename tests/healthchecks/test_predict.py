"""Predictions on series with known answers: the Theil-Sen fit, each predictor's yes and no,
and /health/predictive over real results, where a prediction goes when its trend does."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from healthchecks import predict
from healthchecks.models import CheckResult, CheckState
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
