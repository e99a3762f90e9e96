"""Maintenance is a derived status (docs/decisions.md): windows open and close with time, not
with a write -- beat's task every 15 s recomputes only the services whose stored status
disagrees with the windows. When nothing changes (most of its runs) it costs two small
queries, and one more per open window (two for a team's: its services and the team's)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from healthchecks.engine import service_health
from healthchecks.models import ServiceHealth
from healthchecks.status import Status
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db


def tick() -> tuple[int, int]:
    """(services moved, queries spent) by one run of the beat task's work."""
    with CaptureQueriesContext(connection) as queries:
        moved = service_health.apply_maintenance_windows()
    return moved, len(queries)


def test_a_tick_that_changes_nothing_costs_two_queries_and_one_or_two_per_window(make_token):
    team = TeamFactory(name="core")
    for i in range(30):
        ServiceHealth.objects.create(
            service=ServiceFactory(name=f"svc-{i}", team=team), status=Status.HEALTHY
        )
    assert tick() == (0, 2)  # no window at all

    now = timezone.now()
    planner = ApiClient(make_token(["automation:read", "automation:write"]).secret)
    span = {
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "reason": "disk swap",
    }
    windows = "/api/maintenance-windows"
    planned = planner.call("POST", windows, {**span, "services": ["svc-1", "svc-2"]})
    assert planned.status_code == 201
    assert ServiceHealth.objects.filter(status=Status.MAINTENANCE).count() == 2  # at the write
    assert tick() == (0, 3)
    TeamFactory(name="edge")
    ServiceHealth.objects.create(service=ServiceFactory(name="proxy", team__name="edge"))
    assert planner.call("POST", windows, {**span, "team": "edge"}).status_code == 201
    assert tick() == (0, 5)
