"""What the README's "Maintenance windows" promises beyond test_maintenance.py: a window
lasts at most 31 days and starts at most a year ahead; while it is open its service answers
503 on its readiness read; a dependent is not degraded by a dependency in maintenance; and a
service still down when its window ends by time is announced then."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from healthchecks.engine import service_health
from services.models import MaintenanceWindow
from tests.automation.conftest import channel, process, send_later
from tests.conftest import ApiClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


@pytest.fixture
def db_estate(estate):
    """db <- ledger (hard), both healthy."""
    estate.add("db")
    estate.add("ledger", depends_on=["db"])
    estate.up("db", "ledger")
    process()
    return estate


def post_window(client, start, end, services=("db",)):
    return client.call(
        "post",
        "/api/maintenance-windows",
        {
            "services": list(services),
            "starts_at": start.isoformat(),
            "ends_at": end.isoformat(),
            "reason": "disk swap",
        },
    )


def test_a_window_lasts_at_most_31_days_and_starts_at_most_a_year_ahead(db_estate, automation):
    now = timezone.now()
    start = now + timedelta(hours=1)
    assert post_window(automation, start, start + timedelta(days=31)).status_code == 201
    too_long = post_window(automation, start, start + timedelta(days=31, minutes=1))
    assert too_long.status_code == 422
    assert too_long.json()["error"]["fields"]["ends_at"] == "a window lasts at most 31 days"
    far = now + timedelta(days=367)
    too_far = post_window(automation, far, far + timedelta(hours=1))
    assert too_far.status_code == 422 and "starts_at" in too_far.json()["error"]["fields"]
    assert MaintenanceWindow.objects.count() == 1


def test_a_service_in_maintenance_answers_503_on_its_readiness_read(db_estate, automation):
    now = timezone.now()
    opened = post_window(automation, now - timedelta(minutes=1), now + timedelta(hours=1))
    assert opened.status_code == 201
    answer = ApiClient().get("/health/service/db")
    assert answer.status_code == 503 and answer.json()["status"] == "maintenance"


def test_a_dependent_reads_what_its_own_checks_say_while_a_dependency_is_in_maintenance(
    db_estate, automation
):
    """db's work takes it down inside its window; ledger's own check still passes, so
    ledger stays healthy (200), not degraded by the planned work."""
    now = timezone.now()
    opened = post_window(automation, now - timedelta(minutes=1), now + timedelta(hours=1))
    assert opened.status_code == 201
    db_estate.down("db")
    db_estate.probe("ledger")
    process()
    ledger = ApiClient().get("/health/service/ledger")
    assert ledger.status_code == 200
    assert ledger.json()["status"] == "healthy", ledger.json()


def test_a_service_still_down_when_its_window_ends_is_announced_then(
    db_estate, automation, receiver
):
    channel("ops", receiver.url)
    now = timezone.now()
    end = now + timedelta(minutes=30)
    assert post_window(automation, now - timedelta(minutes=1), end).status_code == 201
    db_estate.down("db")
    process()
    send_later()
    assert receiver.bodies == []  # silent while the window is open
    with transaction.atomic():
        service_health.apply_maintenance_windows(now=end + timedelta(seconds=1))
    process()
    send_later(3600)
    assert receiver.titles() == ["[DOWN] db"]
