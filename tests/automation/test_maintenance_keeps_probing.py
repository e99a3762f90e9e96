"""Maintenance is a derived status (docs/decisions.md): a service under a window reads
`maintenance`, yet its checks are still probed and their history kept -- what the work did
to it is on record when the window ends. Through the API, the real engine and the health
reads."""

import pytest
from django.test import Client

from healthchecks.models import CheckResult, CheckState
from healthchecks.status import Status
from tests.automation.conftest import process
from tests.automation.test_maintenance import window

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


def test_a_service_in_maintenance_is_still_probed_and_its_history_kept(db_estate, automation):
    check = db_estate.checks["db"]
    before = CheckResult.objects.filter(health_check=check).count()
    window(automation, services=["db"])
    db_estate.down("db")  # the work takes it down
    process()
    db_estate.up("db")
    assert CheckResult.objects.filter(health_check=check).count() == before + 2
    statuses = list(
        CheckResult.objects.filter(health_check=check)
        .order_by("at")
        .values_list("status", flat=True)
    )
    assert statuses[-2:] == [Status.UNHEALTHY, Status.HEALTHY]
    assert CheckState.objects.get(health_check=check).status == Status.HEALTHY
    detail = Client().get("/health/service/db").json()
    assert detail["status"] == "maintenance"
    history = Client().get("/health/service/db/history?range=1h")
    assert history.status_code == 200
