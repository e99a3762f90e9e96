"""What the README ("Pages") says the overview shows, through Django's full stack as a
logged-in viewer: filters by tag (beside team, health, lifecycle and text, proved in
test_views and the browser tests), and per service its uptime over 24 h and 30 d and its p95
latency over the last hour -- figures read from the hourly and daily rollups."""

from datetime import timedelta

import pytest
from django.utils import timezone

from healthchecks.models import CheckRollup
from services.models import Tag
from tests.factories import ServiceFactory, make_check

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.fixture
def logged_in(client, bob):
    client.force_login(bob)
    return client


def row_of(html: str, name: str) -> str:
    row = html[html.index(f'<tr data-service="{name}">') :]
    return row[: row.index("</tr>")]


def test_the_tag_filter_narrows_the_overview(logged_in):
    pci = Tag.objects.create(name="pci")
    ServiceFactory(name="payments").tags.add(pci)
    ServiceFactory(name="search")
    html = logged_in.get("/?tag=pci").content.decode()
    assert 'data-service="payments"' in html and 'data-service="search"' not in html
    assert '<option value="pci" selected>' in html
    assert 'data-service="search"' in logged_in.get("/").content.decode()


def rollup(check, granularity, start, count, failures, bucket=3):
    histogram = [0] * 16
    histogram[bucket] = count
    CheckRollup.objects.create(
        health_check=check,
        granularity=granularity,
        start=start,
        count=count,
        failures=failures,
        degraded=0,
        latency_sum_us=count * 5000,
        latency_max_us=5000,
        histogram=histogram,
    )


def test_each_row_shows_uptime_over_24_h_and_30_d_and_p95_over_the_last_hour(logged_in):
    service = ServiceFactory(name="ledger")
    daily, hourly = make_check(service, name="daily"), make_check(service, name="hourly")
    now = timezone.now()
    for days_ago in range(40):  # 30 of them in the 30-day window, 10 with a failure
        start = (now - timedelta(days=days_ago)).replace(hour=0, minute=0, second=0)
        rollup(daily, CheckRollup.DAY, start, 100, 1 if days_ago < 10 else 0)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    rollup(hourly, CheckRollup.HOUR, this_hour, 60, 6)  # the last 24 h: 54 of 60 passed
    rollup(hourly, CheckRollup.HOUR, this_hour - timedelta(hours=30), 60, 60)  # older than 24 h
    rollup(hourly, CheckRollup.HOUR, this_hour - timedelta(hours=3), 40, 0, bucket=9)
    row = row_of(logged_in.get("/").content.decode(), "ledger")
    # 24 h: 94 of 100 results passed (the 30-hour-old hour left out); 30 d: 3,000 results,
    # 10 failed (days 30 to 39 left out).
    assert "94.00 % / 99.67 %" in row
    # p95 over the last hour: the current and previous hour's histogram (bucket 3), not the
    # slower one three hours ago.
    assert "≤ 5 ms" in row
