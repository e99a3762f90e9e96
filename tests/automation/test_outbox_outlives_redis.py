"""docs/operating.md, "What Redis holds": the automation's work is rows in PostgreSQL (the
outbox), so Redis emptied or lost with the task that would have handled a status change
loses nothing -- the next tick of a real worker turns the change into its alert and
notification."""

import time

import pytest
import redis
from django.conf import settings

from automation import tasks
from automation.models import Alert, Delivery, DeliveryState
from tests.automation.conftest import channel

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_status_change_whose_task_redis_lost_is_handled_at_the_next_tick(
    db_estate, receiver, start_worker
):
    channel("ops", receiver.url)
    db_estate.down("db")  # a status change, in the outbox
    tasks.process_status_changes.delay()  # beat's tick, queued while no worker runs...
    broker = redis.Redis.from_url(settings.REDIS_URL)
    assert broker.llen("automation") == 1
    broker.flushdb()  # ... and lost with Redis
    broker.close()
    assert not Alert.objects.exists()

    start_worker(["automation"], AUTOMATION_GROUP_SECONDS="0.1")
    deadline = time.monotonic() + 60
    while not receiver.bodies:  # the test plays beat: the next ticks
        assert time.monotonic() < deadline, "no notification within 60 s"
        tasks.process_status_changes.delay()
        time.sleep(1)
    assert receiver.titles() == ["[DOWN] db"]
    assert Alert.objects.get().service.name == "db"
    assert Delivery.objects.get().state == DeliveryState.SENT
