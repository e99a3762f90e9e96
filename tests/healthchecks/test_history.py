"""Rollups, pruning, uptime and percentiles."""

from datetime import UTC, datetime, timedelta

import pytest

from healthchecks.models import CheckResult, CheckRollup, ResultDetail
from healthchecks.reads import history
from healthchecks.status import Status
from tests.factories import ServiceFactory, make_check

# Also on SQLite: these parts have an embedded-mode branch of their own.
pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]
NOW = datetime(2026, 11, 26, 12, 30, tzinfo=UTC)


def add_results(check, start, count, step_s=60, status=Status.HEALTHY, us=2_000):
    CheckResult.objects.bulk_create(
        [
            CheckResult(
                health_check=check,
                at=start + timedelta(seconds=i * step_s),
                status=status,
                response_us=us,
            )
            for i in range(count)
        ]
    )


def test_hourly_rollups_count_failures_latency_and_histogram():
    check = make_check()
    hour = NOW.replace(minute=0)
    add_results(check, hour, 50, us=2_000)
    add_results(check, hour + timedelta(seconds=30), 10, status=Status.UNHEALTHY, us=900_000)
    history.rollup_hours(hour)
    rollup = CheckRollup.objects.get()
    assert (rollup.count, rollup.failures, rollup.degraded) == (60, 10, 0)
    assert rollup.latency_max_us == 900_000
    assert rollup.latency_sum_us == 50 * 2_000 + 10 * 900_000
    assert sum(rollup.histogram) == 60
    assert history.percentile(rollup.histogram, 0.5) == 2.0  # ms, the 2 ms bucket
    assert history.percentile(rollup.histogram, 0.99) == 1000.0


def test_rolling_up_again_gives_the_same_rows():
    check = make_check()
    add_results(check, NOW.replace(minute=0), 30)
    history.rollup_hours(NOW - timedelta(hours=1))
    history.rollup_hours(NOW - timedelta(hours=1))
    assert CheckRollup.objects.get().count == 30


def test_daily_rollups_merge_the_hours():
    check = make_check()
    day = NOW.replace(hour=0, minute=0)
    for h in range(3):
        add_results(check, day + timedelta(hours=h), 60, status=Status.HEALTHY)
    add_results(check, day + timedelta(hours=3), 6, status=Status.DEGRADED)
    history.rollup_hours(day)
    history.rollup_days(day)
    daily = CheckRollup.objects.get(granularity=CheckRollup.DAY)
    assert (daily.count, daily.degraded, daily.start) == (186, 6, day)
    assert sum(daily.histogram) == 186


def test_uptime_and_percentiles_per_window_come_from_rollups():
    service = ServiceFactory()
    a, b = make_check(service, name="a"), make_check(service, name="b")
    for days_ago in range(40):
        start = (NOW - timedelta(days=days_ago)).replace(hour=0, minute=0)
        CheckRollup.objects.create(
            health_check=a,
            granularity=CheckRollup.DAY,
            start=start,
            count=100,
            failures=1 if days_ago < 10 else 0,
            degraded=0,
            latency_sum_us=100 * 3000,
            latency_max_us=4000,
            histogram=[0, 0, 0, 100] + [0] * 12,
        )
    CheckRollup.objects.create(
        health_check=b,
        granularity=CheckRollup.HOUR,
        start=NOW - timedelta(hours=2),
        count=60,
        failures=6,
        degraded=0,
        latency_sum_us=0,
        latency_max_us=0,
        histogram=[60] + [0] * 15,
    )
    result = history.uptime([a.pk, b.pk], now=NOW)
    assert result["24h"] == {
        "uptime": 0.9,
        "results": 60,
        "latency_p50_ms": 0.5,
        "latency_p95_ms": 0.5,
        "latency_p99_ms": 0.5,
    }
    assert result["30d"]["results"] == 3000
    assert result["30d"]["uptime"] == round(1 - 10 / 3000, 6)
    assert result["90d"]["results"] == 4000 and result["90d"]["latency_p50_ms"] == 5.0
    assert history.services_uptime("90d", now=NOW)[service.name] == round(1 - 10 / 4000, 6)


def test_pruning_deletes_only_what_is_past_retention(settings):
    settings.HEALTH_RAW_RETENTION_DAYS = 7
    check = make_check()
    add_results(check, NOW - timedelta(days=9), 120, step_s=3600)  # 9 days ago to 4 days ago
    ResultDetail.objects.create(health_check=check, at=NOW - timedelta(days=8), outcome={})
    CheckRollup.objects.create(
        health_check=check,
        granularity=CheckRollup.HOUR,
        start=NOW - timedelta(days=60),
        count=1,
        failures=0,
        degraded=0,
        latency_sum_us=0,
        latency_max_us=0,
        histogram=[1],
    )
    deleted = history.prune(NOW, chunk=10)
    assert deleted == {"results": 48, "details": 1, "rollups": 1}
    assert not CheckResult.objects.filter(at__lt=NOW - timedelta(days=7)).exists()
    assert CheckResult.objects.count() == 72


def test_service_history_picks_the_resolution_by_range(client):
    service = ServiceFactory(name="shop")
    check = make_check(service, name="http")
    start = datetime.now(UTC) - timedelta(hours=1)
    add_results(check, start, 10)
    raw = client.get("/health/service/shop/history", {"from": start.isoformat()}).json()
    assert raw["resolution"] == "raw" and len(raw["checks"]["http"]) == 10
    assert raw["checks"]["http"][0]["status"] == "healthy"
    assert "errors" not in raw["checks"]["http"][0]
    history.rollup_hours(start - timedelta(hours=1))
    week = client.get(
        "/health/service/shop/history", {"from": (start - timedelta(days=3)).isoformat()}
    ).json()
    assert week["resolution"] == "hour"
    assert sum(r["count"] for r in week["checks"]["http"]) == 10
    assert week["uptime"]["24h"]["uptime"] == 1.0


def test_raw_history_carries_the_errors_of_failed_results(client):
    from healthchecks.engine import recording
    from healthchecks.probes import ProbeOutcome
    from healthchecks.status import ErrorCode

    check = make_check(ServiceFactory(name="shop"), name="http")
    now = datetime.now(UTC)
    outcome = ProbeOutcome(
        Status.UNHEALTHY,
        response_ms=3,
        error_code=ErrorCode.REFUSED,
        errors=["connection refused by 127.0.0.1:9"],
    )
    recording.record([recording.Result(check.pk, now, now, outcome)])
    since = (now - timedelta(hours=1)).isoformat()
    entry = client.get("/health/service/shop/history", {"from": since}).json()["checks"]["http"][0]
    assert entry["status"] == "unhealthy" and entry["error_code"] == ErrorCode.REFUSED
    assert entry["errors"] == ["connection refused by 127.0.0.1:9"]


def test_a_bad_history_range_is_422(client):
    ServiceFactory(name="shop")
    res = client.get("/health/service/shop/history", {"from": "yesterday"})
    assert res.status_code == 422 and "from" in res.json()["error"]["fields"]
    res = client.get(
        "/health/service/shop/history",
        {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
    )
    assert res.status_code == 422
    assert client.get("/health/service/ghost/history").status_code == 404


def test_the_housekeeping_tasks_are_plain_functions_too():
    from healthchecks import tasks

    check = make_check()
    add_results(check, datetime.now(UTC) - timedelta(minutes=30), 5)
    assert tasks.roll_up_history()["hours"] >= 1
    assert tasks.prune_history() == {"results": 0, "details": 0, "rollups": 0}
