"""Availability by time, with downtime caused upstream and maintenance marked, and left out
on request: known timelines with known answers, through /health/service/<name>/history."""

from datetime import timedelta

import pytest
from django.utils import timezone

from healthchecks.models import ServiceHealth, StatusChange
from healthchecks.reads import availability
from healthchecks.status import Status
from services.models import Dependency, DependencyKind
from tests.factories import ServiceFactory

H = timedelta(hours=1)
NOW = timezone.now()
OK, DOWN, REST = Status.HEALTHY, Status.UNHEALTHY, Status.MAINTENANCE


def test_a_timeline_covers_the_window_from_the_changes():
    start, end = NOW - 10 * H, NOW
    changes = [(NOW - 12 * H, OK, DOWN), (NOW - 5 * H, DOWN, OK)]
    assert availability.timeline(changes, OK, start, end) == [
        (start, NOW - 5 * H, DOWN),
        (NOW - 5 * H, end, OK),
    ]
    assert availability.timeline([], DOWN, start, end) == [(start, end, DOWN)]


def test_overlap_counts_only_shared_time():
    spans = [(NOW - 3 * H, NOW - 2 * H)]
    others = availability.merge([(NOW - 4 * H, NOW - 2.5 * H), (NOW - 3.5 * H, NOW - 2.75 * H)])
    assert availability.overlap_seconds(spans, others) == 1800


def change(service, hours_ago, old, new):
    StatusChange.objects.create(
        service=service, from_status=old, to_status=new, at=timezone.now() - hours_ago * H
    )


@pytest.mark.django_db
@pytest.mark.sqlite
def test_maintenance_and_upstream_downtime_are_marked_and_left_out_on_request(client):
    app = ServiceFactory(name="app", created_at=timezone.now() - timedelta(days=10))
    db = ServiceFactory(name="db", created_at=timezone.now() - timedelta(days=10))
    Dependency.objects.create(service=app, depends_on=db, kind=DependencyKind.HARD)
    ServiceHealth.objects.create(service=app, status=OK)
    ServiceHealth.objects.create(service=db, status=OK)
    change(app, 10, OK, DOWN)  # an hour down of its own
    change(app, 9, DOWN, OK)
    change(app, 6, OK, REST)  # two hours of maintenance
    change(app, 4, REST, OK)
    change(app, 3, OK, DOWN)  # an hour down, half of it while db was down too
    change(app, 2, DOWN, OK)
    change(db, 3.5, OK, DOWN)
    change(db, 2.5, DOWN, OK)

    def day(exclude=""):
        answer = client.get(f"/health/service/app/history?exclude={exclude}")
        assert answer.status_code == 200, answer.json()
        return answer.json()["availability"]["24h"]

    raw = day()
    assert (raw["down_s"], raw["maintenance_s"], raw["upstream_s"]) == (7200, 7200, 1800)
    assert raw["availability"] == pytest.approx(1 - 14400 / 86400, abs=1e-5)
    assert day("maintenance")["availability"] == pytest.approx(1 - 7200 / 79200, abs=1e-5)
    both = day("maintenance,upstream")
    assert both["availability"] == pytest.approx(1 - 5400 / 77400, abs=1e-5)
    assert both["excluded"] == ["maintenance", "upstream"]
    week = client.get("/health/service/app/history").json()["availability"]["7d"]
    assert week["availability"] == pytest.approx(1 - 14400 / (7 * 86400), abs=1e-5)


@pytest.mark.django_db
@pytest.mark.sqlite
def test_time_before_the_service_existed_is_not_counted(client):
    ServiceFactory(name="young", created_at=timezone.now() - 2 * H)
    body = client.get("/health/service/young/history").json()["availability"]
    assert body["30d"]["observed_s"] == 0 and body["30d"]["availability"] is None
    assert body["30d"]["unknown_s"] == pytest.approx(7200, abs=5)  # no checks: unknown


@pytest.mark.django_db
@pytest.mark.sqlite
def test_an_unknown_exclusion_is_a_422_naming_the_field(client):
    ServiceFactory(name="app")
    answer = client.get("/health/service/app/history?exclude=weekends")
    assert answer.status_code == 422
    assert "weekends" in answer.json()["error"]["fields"]["exclude"]


@pytest.mark.django_db
@pytest.mark.sqlite
def test_exclusions_given_as_repeated_parameters_count_too(client):
    ServiceFactory(name="app")
    body = client.get("/health/service/app/history?exclude=maintenance&exclude=upstream").json()
    assert body["availability"]["24h"]["excluded"] == ["maintenance", "upstream"]


@pytest.mark.django_db
@pytest.mark.sqlite
def test_history_of_a_check_the_service_does_not_have_is_a_404(client):
    ServiceFactory(name="app")
    answer = client.get("/health/service/app/history?check=nosuch")
    assert answer.status_code == 404
    assert "app has no check named 'nosuch'" in answer.json()["error"]["message"]


def test_each_slot_of_a_strip_shows_the_worst_status_held_in_it():
    start = NOW - 4 * H
    changes = [
        (start + 1.5 * H, OK, DOWN),  # down from the middle of slot 1 ...
        (start + 2.25 * H, DOWN, OK),  # ... to a quarter into slot 2
    ]
    slots = availability.worst_per_slot(changes, OK, start, H, 4)
    assert slots == [OK, DOWN, DOWN, OK]
    assert availability.worst_per_slot([], REST, start, H, 2) == [REST, REST]
