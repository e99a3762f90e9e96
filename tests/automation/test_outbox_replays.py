"""Alerts act on state, not on events (docs/decisions.md): the automation reconciles alerts
with the services' current status, so a status change that arrives twice, late, or out of
order -- whatever it claims -- changes no alert and sends nothing. A property over
generated changes replayed into the outbox during an incident already announced."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from automation.models import Alert, Delivery
from healthchecks.models import StatusChange
from healthchecks.status import Status
from services.models import Service
from tests.automation.conftest import channel, process, send_later

pytestmark = [pytest.mark.django_db(transaction=True)]
STATUSES = [Status.UNKNOWN, Status.HEALTHY, Status.DEGRADED, Status.UNHEALTHY]


@pytest.fixture
def incident(estate, receiver):
    """db is down, ledger (hard on db) folded into it, web healthy; db announced."""
    estate.add("db")
    estate.add("ledger", depends_on=["db"])
    estate.add("web")
    estate.up("db", "ledger", "web")
    process()
    channel("ops", receiver.url)
    estate.down("db", "ledger")
    process()
    send_later()
    assert receiver.titles() == ["[DOWN] db"]
    return estate


def snapshot():
    alerts = Alert.objects.order_by("id").values_list(
        "service__name", "status", "cause", "resolved_at", "root__service__name", "notified_status"
    )
    return list(alerts), Delivery.objects.count()


changes = st.lists(
    st.tuples(
        st.sampled_from(["db", "ledger", "web"]),
        st.sampled_from(STATUSES),
        st.sampled_from(STATUSES),
        st.integers(-3600, 60),  # seconds from now: late, or from a clock ahead
    ),
    min_size=1,
    max_size=8,
)


@given(replayed=changes)
@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_a_duplicate_or_late_change_changes_nothing(incident, receiver, replayed):
    before, told = snapshot(), list(receiver.titles())
    now = timezone.now()
    with transaction.atomic():
        for name, was, became, seconds in replayed:
            StatusChange.objects.create(
                service=Service.objects.get(name=name),
                from_status=was,
                to_status=became,
                at=now + timedelta(seconds=seconds),
                cause="replayed",
            )
        assert process().changes == len(replayed)
        assert snapshot() == before
        send_later()
        assert receiver.titles() == told
        transaction.set_rollback(True)
