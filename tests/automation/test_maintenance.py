"""Maintenance windows: the services read maintenance on the health API, nothing is
notified for them or for what they take down, and when the window ends a service still
down is announced; windows open and close with time through the periodic task."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from automation.models import Alert, Delivery
from healthchecks.engine import service_health
from healthchecks.models import ServiceHealth
from healthchecks.status import Status
from services.models import MaintenanceWindow
from tests.automation.conftest import channel, process, send_later
from tests.conftest import ApiClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


@pytest.fixture
def db_estate(estate):
    """db <- ledger (hard)."""
    estate.add("db")
    estate.add("ledger", depends_on=["db"])
    estate.up("db", "ledger")
    process()
    return estate


@pytest.fixture
def automation(make_token):
    return ApiClient(make_token(["automation:read", "automation:write"]).secret)


def window(client, **fields) -> dict:
    now = timezone.now()
    body = {
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "reason": "disk swap",
        **fields,
    }
    answer = client.call("post", "/api/maintenance-windows", body)
    assert answer.status_code == 201, answer.json()
    return answer.json()


def status_of(name: str) -> str:
    return ApiClient().get(f"/health/service/{name}").json()["status"]


def test_a_window_silences_the_service_and_what_it_takes_down(db_estate, receiver, automation):
    channel("ops", receiver.url)
    opened = window(automation, services=["db"])
    assert opened["open"] is True and opened["services"] == ["db"]
    assert status_of("db") == "maintenance"
    db_estate.down("db", "ledger")  # the work takes it down; ledger's calls to it fail
    process()
    send_later()
    assert receiver.bodies == []
    assert status_of("db") == "maintenance"
    assert not Alert.objects.filter(service__name="db").exists()
    ledger = Alert.objects.get(service__name="ledger", resolved_at=None)
    assert ledger.silenced == "upstream maintenance: db"
    assert (
        Delivery.objects.filter(alert=ledger, state="skipped").exists()
        or not ledger.deliveries.exists()
    )

    # The window is cancelled while db is still down: now it is news, with ledger folded in.
    assert automation.call("delete", f"/api/maintenance-windows/{opened['id']}").status_code == 204
    process()
    send_later()
    assert receiver.titles() == ["[DOWN] db"]
    assert "depends on it is affected: ledger" in receiver.bodies[0]["message"]


def test_windows_open_and_close_with_time(db_estate, automation):
    now = timezone.now()
    planned = window(
        automation,
        team="core",
        starts_at=(now + timedelta(minutes=10)).isoformat(),
        ends_at=(now + timedelta(minutes=40)).isoformat(),
    )
    assert planned["open"] is False and planned["team"] == "core"
    assert status_of("db") == "healthy"

    def tick(at):
        with transaction.atomic():
            service_health.apply_maintenance_windows(now=at)

    tick(now + timedelta(minutes=11))
    statuses = dict(ServiceHealth.objects.values_list("service__name", "status"))
    assert statuses == {"db": Status.MAINTENANCE, "ledger": Status.MAINTENANCE}
    tick(now + timedelta(minutes=41))
    statuses = dict(ServiceHealth.objects.values_list("service__name", "status"))
    assert statuses == {"db": Status.HEALTHY, "ledger": Status.HEALTHY}


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({}, "services", "name services, a team, or both"),
        ({"services": ["nope"]}, "services", "no service named nope"),
        ({"team": "nobody"}, "team", "no team named nobody"),
        ({"services": ["db"], "ends_at": "2020-01-01T00:00:00Z"}, "ends_at", "after starts_at"),
        (
            {
                "services": ["db"],
                "starts_at": "2020-01-01T00:00:00Z",
                "ends_at": "2020-01-02T00:00:00Z",
            },
            "ends_at",
            "in the past",
        ),
        ({"services": ["db"], "ends_at": "soon"}, "ends_at", "datetime"),
    ],
)
def test_a_bad_window_is_refused_with_its_field(db_estate, automation, fields, field, reason):
    now = timezone.now()
    body = {
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        **fields,
    }
    answer = automation.call("post", "/api/maintenance-windows", body)
    assert answer.status_code == 422, answer.json()
    assert reason in answer.json()["error"]["fields"][field]
    assert not MaintenanceWindow.objects.exists()


def test_a_limited_token_plans_only_its_own_services(db_estate, make_token):
    limited = ApiClient(
        make_token(["automation:write", "automation:read"], services=["ledger"]).secret
    )
    now = timezone.now()
    times = {"starts_at": now.isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat()}
    assert (
        limited.call("post", "/api/maintenance-windows", {"team": "core", **times}).status_code
        == 403
    )
    assert (
        limited.call("post", "/api/maintenance-windows", {"services": ["db"], **times}).status_code
        == 403
    )
    mine = limited.call("post", "/api/maintenance-windows", {"services": ["ledger"], **times})
    assert mine.status_code == 201
    assert [w["id"] for w in limited.call("get", "/api/maintenance-windows?open=true").json()] == [
        mine.json()["id"]
    ]


def test_trouble_a_dependent_had_before_the_window_is_still_its_own(db_estate, automation):
    """A stranger's trial: a window on a dependency silenced a dependent whose trouble was
    its own and older than the window."""
    db_estate.down("ledger")
    process()
    window(automation, services=["db"])
    process()
    send_later()
    ledger = Alert.objects.get(service__name="ledger", resolved_at=None)
    assert ledger.silenced == ""


@pytest.mark.parametrize(
    ("times", "field", "reason"),
    [
        (
            {"starts_at": "2026-12-02T05:00:00", "ends_at": "2026-12-02T08:00:00"},
            "starts_at",
            "timezone",
        ),
        (
            {"starts_at": "9999-12-31T20:00:00-05:00", "ends_at": "9999-12-31T21:00:00-05:00"},
            "starts_at",
            "at most 366 days ahead",
        ),
    ],
)
def test_times_without_a_zone_or_far_away_are_refused_not_a_500(
    db_estate, automation, times, field, reason
):
    answer = automation.call("post", "/api/maintenance-windows", {"services": ["db"], **times})
    assert answer.status_code == 422, answer.content
    assert reason in answer.json()["error"]["fields"][field]
