"""The README's caveat for the embedded mode (SQLite, one writer at a time): deliveries are
sent one after another, so a receiver that hangs delays the ones queued after it by its
timeout -- and no more: they are still sent. (On PostgreSQL they are sent concurrently:
test_deliveries.py::test_a_hanging_receiver_costs_one_timeout_and_holds_up_no_other.)"""

import pytest

from automation.models import Delivery, DeliveryState
from tests.automation.conftest import channel, process, send_later
from tests.conftest import ON_SQLITE

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.sqlite,
    pytest.mark.skipif(not ON_SQLITE, reason="the embedded mode's branch: SQLite only"),
]


def test_on_sqlite_a_hanging_receiver_delays_the_next_by_its_timeout_and_both_are_tried(
    db_estate, receiver, settings
):
    slow = type(receiver)()
    slow.delay = 5.0  # longer than AUTOMATION_SEND_TIMEOUT (2 s)
    slow.server.start()
    try:
        channel("a-slow", slow.url)
        channel("b-fast", receiver.url)
        db_estate.down("db")
        process()
        send_later()
    finally:
        slow.server.stop()
    hung = Delivery.objects.get(channel_name="a-slow").attempt_rows.get()
    fast = Delivery.objects.get(channel_name="b-fast")
    assert fast.state == DeliveryState.SENT and receiver.titles() == ["[DOWN] db"]
    assert not hung.ok
    # One after another: the second began once the first had given up, a timeout later.
    assert fast.attempt_rows.get().started_at >= hung.finished_at
    waited = (hung.finished_at - hung.started_at).total_seconds()
    assert settings.AUTOMATION_SEND_TIMEOUT <= waited < slow.delay
