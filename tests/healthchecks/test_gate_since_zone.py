"""The deploy gate's moment must say its time zone (issue 19, item 2, the breaking trial).

`?since=2026-12-07T11:00:00` was read as UTC. A pipeline in New York that wrote its own
local time (`date +%FT%T`, 11:00 there, 16:00 UTC) asked for results since five hours
before its release, and the gate passed it (200) on a healthy result recorded 20 s before the
release -- the result the gate exists to ignore. A date alone (`2026-12-07`, midnight)
did the same. Both are now a 422 naming `since`, as a maintenance window's times are."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from healthchecks.status import Status
from tests.factories import ServiceFactory, make_check
from tests.healthchecks.test_health_views import record

pytestmark = pytest.mark.django_db
RELEASE = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)  # 11:00 in New York (UTC-5)


@pytest.fixture
def healthy_before_the_release():
    check = make_check(ServiceFactory(name="payments"), name="http")
    record(check, Status.HEALTHY, when=RELEASE - timedelta(seconds=20))
    return "/health/service/payments"


@pytest.mark.parametrize(
    "since",
    [
        "2026-12-07T11:00:00",  # the runner's local time, no zone
        "2026-12-07T11:00",
        "2026-12-07 11:00:00.5",
        "2026-12-07",  # a day: its midnight, hours before the release
    ],
)
def test_a_moment_without_a_time_zone_is_refused_not_read_as_utc(
    client, healthy_before_the_release, since
):
    with time_machine.travel(RELEASE + timedelta(seconds=5)):
        res = client.get(healthy_before_the_release, {"since": since})
    assert res.status_code == 422, (res.status_code, res.json().get("results_since"))
    error = res.json()["error"]
    assert list(error["fields"]) == ["since"] and "time zone" in error["fields"]["since"]


@pytest.mark.parametrize("since", ["2026-12-07T11:00:00-05:00", "2026-12-07T16:00:00Z", "now"])
def test_the_same_moment_with_its_zone_gates_the_release(client, healthy_before_the_release, since):
    with time_machine.travel(RELEASE + timedelta(seconds=5)):
        res = client.get(healthy_before_the_release, {"since": since})
    assert res.status_code == 503 and res.json()["reason"].startswith("no result since")
