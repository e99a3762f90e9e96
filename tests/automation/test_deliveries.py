"""Every call to a receiver is recorded; failures are retried with backoff up to a limit and
then given up (never lost silently); a receiver that hangs costs one timeout and holds up no
other delivery; a real Celery worker on the automation queue does it all."""

import logging
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Response

from automation import tasks
from automation.models import Delivery, DeliveryAttempt, DeliveryState
from tests.automation.conftest import channel, process, send_later
from tests.healthchecks.servers import closed_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(db_estate, receiver):
    receiver.status = 500
    channel("ops", receiver.url)
    db_estate.down("db")
    process()
    started = timezone.now()
    send_later()  # attempt 1
    delivery = Delivery.objects.get()
    assert delivery.state == DeliveryState.RETRYING
    first = DeliveryAttempt.objects.get(delivery=delivery)
    assert (first.number, first.ok, first.http_status) == (1, False, 500)
    assert "error=500" in first.error
    # 30 s after the first attempt, then 60 s after the second.
    assert timedelta(seconds=29) < delivery.not_before - started < timedelta(seconds=32)
    assert send_later(20) == 0  # not due yet
    assert send_later(45) == 1  # attempt 2
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.RETRYING
    assert send_later(45) == 0  # the next try waits twice as long: 60 s
    assert send_later(75) == 1  # attempt 3: the last
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED
    assert delivery.detail.startswith("gave up after 3 attempts")
    assert list(delivery.attempt_rows.values_list("number", "http_status")) == [
        (1, 500),
        (2, 500),
        (3, 500),
    ]
    assert len(receiver.bodies) == 3


def test_a_receiver_that_recovers_gets_the_notification_on_retry(db_estate, receiver):
    receiver.status = 503
    channel("ops", receiver.url)
    db_estate.down("db")
    process()
    send_later()
    receiver.status = 200
    send_later(90)
    delivery = Delivery.objects.get()
    assert delivery.state == DeliveryState.SENT
    assert [a.ok for a in delivery.attempt_rows.all()] == [False, True]


def test_a_refusing_receiver_is_recorded_with_its_error(db_estate):
    channel("gone", f"json://127.0.0.1:{closed_port()}/hook")
    db_estate.down("db")
    process()
    send_later()
    attempt = DeliveryAttempt.objects.get()
    assert not attempt.ok and attempt.http_status is None
    assert "Connection error" in attempt.error


@pytest.mark.postgresql  # the embedded mode sends one at a time (SQLite: one writer)
def test_a_hanging_receiver_costs_one_timeout_and_holds_up_no_other(db_estate, receiver, settings):
    slow = type(receiver)()
    slow.delay = 5.0  # longer than AUTOMATION_SEND_TIMEOUT (2 s)
    slow.server.start()
    try:
        channel("a-slow", slow.url)
        channel("b-fast", receiver.url)
        db_estate.down("db")
        process()
        began = time.monotonic()
        send_later()
        took = time.monotonic() - began
    finally:
        slow.server.stop()
    fast = Delivery.objects.get(channel_name="b-fast")
    hung = Delivery.objects.get(channel_name="a-slow")
    assert fast.state == DeliveryState.SENT
    fast_attempt = fast.attempt_rows.get()
    assert (fast_attempt.finished_at - fast_attempt.started_at) < timedelta(seconds=1)
    assert hung.state == DeliveryState.RETRYING
    assert "Connection error" in hung.attempt_rows.get().error
    assert took < settings.AUTOMATION_SEND_TIMEOUT + 2.5  # one timeout, not one per delivery


def test_a_delivery_whose_sender_died_is_sent_again_after_its_lease(db_estate, receiver):
    channel("ops", receiver.url)
    db_estate.down("db")
    process()
    delivery = Delivery.objects.get()
    # A sender claimed it and vanished: the row says sending, its lease long gone.
    Delivery.objects.filter(id=delivery.id).update(
        state=DeliveryState.SENDING, lease_until=timezone.now() - timedelta(seconds=1)
    )
    send_later()
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SENT
    assert receiver.titles() == ["[DOWN] db"]


@pytest.mark.worker
@pytest.mark.postgresql  # the worker fixture runs on the test database's server
def test_a_celery_worker_on_the_automation_queue_alerts_and_notifies(
    db_estate, receiver, start_worker, settings
):
    """The task beat runs, on a real worker: the change becomes an alert and a
    notification (a grouping wait of 0.1 s in the worker's settings)."""
    channel("ops", receiver.url)
    start_worker(["automation"], AUTOMATION_GROUP_SECONDS="0.1")
    db_estate.down("db")
    deadline = time.monotonic() + 60
    while not receiver.bodies:  # the test plays beat: the task every second
        assert time.monotonic() < deadline, "no notification within 60 s"
        tasks.process_status_changes.delay()
        time.sleep(1)
    assert receiver.titles() == ["[DOWN] db"]
    assert Delivery.objects.get().state == DeliveryState.SENT


def test_a_channel_whose_url_no_key_reads_is_a_failed_attempt_not_a_stuck_delivery(
    db_estate, receiver
):
    """A key rotated away, a notifier's own bug: recorded like any failure, and retried."""
    from automation.models import NotificationChannel

    channel("ops", receiver.url)
    NotificationChannel.objects.update(url="gAAAAA-not-a-token")
    db_estate.down("db")
    process()
    send_later()
    delivery = Delivery.objects.get()
    assert delivery.state == DeliveryState.RETRYING
    attempt = delivery.attempt_rows.get()
    assert not attempt.ok and attempt.error
    assert receiver.bodies == []


@pytest.mark.postgresql  # the embedded mode sends one at a time
def test_more_slow_receivers_than_database_connections_are_all_sent(db_estate, receiver, settings):
    """Eight senders, a pool of DB_POOL_SIZE (4) connections, receivers slower than the
    pool's wait: a sender must not hold its connection while it waits on a receiver."""
    settings.AUTOMATION_SEND_TIMEOUT = 6.0
    receiver.delay = settings.DB_POOL_TIMEOUT + 0.5
    for n in range(6):
        channel(f"ops-{n}", receiver.url)
    db_estate.down("db")
    process()
    send_later()
    assert sorted(Delivery.objects.values_list("state", flat=True)) == ["sent"] * 6
    assert len(receiver.bodies) == 6


def test_a_channel_whose_receiver_redirects_is_not_followed(db_estate, receiver):
    """A 307 to another address would leave the host the network policy judged: the
    attempt fails, and the address it pointed at hears nothing (a stranger's trial saw the
    payload arrive there)."""
    redirector = HTTPServer(host="127.0.0.1")
    redirector.expect_request("/hook").respond_with_response(
        Response("", 307, headers={"Location": receiver.url.replace("json://", "http://")})
    )
    redirector.start()
    try:
        channel("ops", f"json://127.0.0.1:{redirector.port}/hook")
        db_estate.down("db")
        process()
        send_later()
    finally:
        redirector.stop()
    attempt = DeliveryAttempt.objects.get()
    assert attempt.ok is False and attempt.http_status == 307
    assert receiver.bodies == []


def test_an_alert_announced_late_goes_without_a_second_grouping_wait(db_estate, receiver):
    """The alert opened with no channel; one made later than the grouping wait sends it at
    once, not a grouping wait after."""
    from automation.models import Alert

    db_estate.down("db")
    process()
    Alert.objects.update(opened_at=timezone.now() - timedelta(minutes=2))
    channel("ops", receiver.url)
    process()
    delivery = Delivery.objects.get()
    assert delivery.not_before <= timezone.now()
    send_later(0)
    assert receiver.titles() == ["[DOWN] db"]


def test_apprise_logs_reach_the_attempt_not_the_portals_log(db_estate, receiver):
    """apprise logs each payload and URL at debug level: captured into the attempt, never
    passed on to the portal's log (a stranger's trial found payloads in it at info level).
    (A handler of our own on the root logger: pytest's capture hooks apprise's logger.)"""
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = seen.append
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        receiver.status = 500
        channel("ops", receiver.url)
        db_estate.down("db")
        process()
        send_later()
    finally:
        root.removeHandler(handler)
    attempt = DeliveryAttempt.objects.get()
    assert attempt.ok is False and "500" in attempt.error  # what apprise said, kept
    assert not [r for r in seen if r.name.startswith("apprise")]
