"""The README's Settings row for AUTOMATION_RETRY_SECONDS and AUTOMATION_MAX_ATTEMPTS (`30`,
`5`, the defaults, held in tests/system/test_settings_defaults.py): a failed delivery is tried
again after 30 s, 60 s, 120 s ... and recorded as given up after the fifth attempt. A real
receiver answering 500 every time, the real sender, time moved on by the test."""

import pytest

from automation.models import Delivery, DeliveryState
from tests.automation.conftest import channel, process, send_later

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


def test_a_failed_delivery_waits_30_60_120_240_s_and_is_given_up_after_the_fifth(
    db_estate, receiver, settings
):
    settings.AUTOMATION_RETRY_SECONDS, settings.AUTOMATION_MAX_ATTEMPTS = 30, 5  # the defaults
    receiver.status = 500
    channel("ops", receiver.url)
    db_estate.down("db")
    process()
    assert send_later() == 1  # the first attempt, once the grouping wait is over
    for wait in (30, 60, 120, 240):  # doubling after each failure
        assert send_later(wait - 2) == 0, wait  # not before
        assert send_later(wait + 2) == 1, wait
    delivery = Delivery.objects.get()
    assert delivery.state == DeliveryState.FAILED
    assert delivery.detail.startswith("gave up after 5 attempts")
    assert list(delivery.attempt_rows.values_list("number", flat=True)) == [1, 2, 3, 4, 5]
    assert len(receiver.bodies) == 5
    assert send_later(3600) == 0  # given up: never tried again
