"""Reminders until acknowledged: an alert a channel was told of and nobody acknowledged is
sent again every ``remind_every_minutes``, titled [REMINDER n], n counting up, until someone
acknowledges it or it resolves; never while it is silenced or its service is in maintenance;
two ticks at once queue each reminder once; a real automation worker sends them."""

import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, connections, transaction
from django.db.models import F
from django.utils import timezone

from automation import alerts, notify, reminders, rules, tasks
from automation.channels import ChannelIn, put_channel
from automation.models import Alert, Delivery, DeliveryState, NotificationChannel
from healthchecks.checks import settle_health
from healthchecks.models import HealthCheck, ServiceHealth
from healthchecks.status import Status
from services import maintenance
from services.models import Team
from tests.automation.conftest import ACTOR, process
from tests.factories import make_check

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite]


def reminding_channel(name: str, url: str, every: int | None, teams=(), events=None):
    events = events or ["down", "degraded", "recovered"]
    data = ChannelIn(url=url, teams=list(teams), events=events, remind_every_minutes=every)
    return put_channel(name, data, ACTOR)[0]


def tick() -> None:
    """What the automation's beat task does, in this process: status changes, escalations,
    reminders, then everything due is sent."""
    alerts.process_status_changes()
    rules.escalate_due()
    reminders.queue_due()
    while notify.send_due():
        pass


class Clock:
    """Minutes after the start of the test, through time-machine (the clock ticks on)."""

    def __init__(self):
        self.start = timezone.now()

    def at(self, minutes: float):
        return time_machine.travel(self.start + timedelta(minutes=minutes), tick=True)


@pytest.fixture
def clock():
    return Clock()


def open_alert() -> Alert:
    return Alert.objects.get(resolved_at=None)


def test_an_unacknowledged_alert_is_sent_again_every_n_minutes_until_acknowledged(
    db_estate, receiver, clock
):
    reminding_channel("ops", receiver.url, every=10)
    db_estate.down("db")
    process()
    with clock.at(1):
        tick()
    assert receiver.titles() == ["[DOWN] db"]
    assert "Error: http: HTTP 500 (expected 2xx/3xx)" in receiver.bodies[0]["message"]
    with clock.at(6):
        tick()
    assert len(receiver.bodies) == 1  # not yet: every 10 minutes
    with clock.at(11):
        tick()
    with clock.at(16):
        tick()
    with clock.at(21.5):
        tick()
    assert receiver.titles() == ["[DOWN] db", "[REMINDER 1] [DOWN] db", "[REMINDER 2] [DOWN] db"]
    reminder = receiver.bodies[2]["message"]
    assert reminder.startswith("Reminder 2: nobody has acknowledged this alert yet")
    assert "every 10 min" in reminder and "db is down since" in reminder
    assert "Error: http: HTTP 500 (expected 2xx/3xx)" in reminder
    assert list(
        Delivery.objects.filter(reminder__gt=0).values_list("reminder", "state").order_by("id")
    ) == [(1, "sent"), (2, "sent")]

    with clock.at(25):
        alerts.acknowledge(open_alert().id, ACTOR)
    for minutes in (32, 45, 80):
        with clock.at(minutes):
            tick()
    assert len(receiver.bodies) == 3  # none after the acknowledgement
    assert not Delivery.objects.filter(reminder=3).exists()


def test_reminders_stop_when_the_alert_resolves(db_estate, receiver, clock):
    reminding_channel("ops", receiver.url, every=5)
    db_estate.down("db")
    process()
    with clock.at(1):
        tick()
    with clock.at(6):
        tick()
    with clock.at(7):
        db_estate.up("db")
        tick()
    for minutes in (15, 30):
        with clock.at(minutes):
            tick()
    assert receiver.titles() == ["[DOWN] db", "[REMINDER 1] [DOWN] db", "[RECOVERED] db"]


def test_a_channel_without_reminders_is_told_once(db_estate, receiver, clock):
    reminding_channel("quiet", receiver.url, every=None)
    db_estate.down("db")
    process()
    for minutes in (1, 30, 90):
        with clock.at(minutes):
            tick()
    assert receiver.titles() == ["[DOWN] db"]


def test_only_the_channels_told_of_the_alert_are_reminded(db_estate, receiver, clock):
    """A reminding channel of another team was never told of db: it is not reminded."""
    reminding_channel("ops", receiver.url, every=5)
    Team.objects.create(name="other")
    reminding_channel("elsewhere", receiver.url, every=5, teams=["other"], events=["down"])
    db_estate.down("db")
    process()
    for minutes in (1, 7, 13):
        with clock.at(minutes):
            tick()
    assert set(Delivery.objects.values_list("channel_name", flat=True)) == {"ops"}
    assert receiver.titles() == ["[DOWN] db", "[REMINDER 1] [DOWN] db", "[REMINDER 2] [DOWN] db"]


def test_no_reminder_while_the_service_is_in_maintenance(db_estate, receiver, clock):
    """A window opened on the down service: its alert stays open and silent, unreminded;
    when the window ends and it is still down, reminders go on."""
    reminding_channel("ops", receiver.url, every=5)
    db_estate.down("db")
    process()
    with clock.at(1):
        tick()
    with clock.at(2):
        start = timezone.now()
        window = maintenance.create_window(
            maintenance.WindowIn(
                services=["db"],
                team=None,
                starts_at=start,
                ends_at=start + timedelta(minutes=20),
                reason="disk swap",
            ),
            ACTOR,
        )
        db_estate.probe("db")
        tick()
    for minutes in (8, 14, 20):
        with clock.at(minutes):
            db_estate.probe("db")
            tick()
    assert receiver.titles() == ["[DOWN] db"]
    assert open_alert().silenced == ""  # silent through the service's own window
    with clock.at(23):
        maintenance.delete_window(window.id, ACTOR)
        db_estate.probe("db")
        tick()
    with clock.at(24):
        tick()
    assert receiver.titles()[-1] == "[REMINDER 1] [DOWN] db"


def test_no_reminder_for_a_silenced_alert_and_a_queued_one_is_skipped(db_estate, receiver, clock):
    """An alert silenced (upstream maintenance) after it was announced: nothing is queued
    for it, and a reminder queued just before is skipped when its turn comes."""
    reminding_channel("ops", receiver.url, every=5)
    db_estate.down("db")
    process()
    with clock.at(1):
        tick()
    with clock.at(7):
        assert reminders.queue_due() == 1
        Alert.objects.update(silenced="upstream maintenance: storage")
        while notify.send_due():
            pass
        assert reminders.queue_due() == 0
    with clock.at(20):
        assert reminders.queue_due() == 0
    assert receiver.titles() == ["[DOWN] db"]
    skipped = Delivery.objects.get(reminder=1)
    assert (skipped.state, skipped.detail) == ("skipped", "upstream maintenance: storage")


def test_a_reminder_queued_before_the_acknowledgement_is_skipped(db_estate, receiver, clock):
    reminding_channel("ops", receiver.url, every=5)
    db_estate.down("db")
    process()
    with clock.at(1):
        tick()
    with clock.at(7):
        assert reminders.queue_due() == 1
        alerts.acknowledge(open_alert().id, ACTOR)
        while notify.send_due():
            pass
    assert receiver.titles() == ["[DOWN] db"]
    skipped = Delivery.objects.get(reminder=1)
    assert skipped.state == DeliveryState.SKIPPED
    assert skipped.detail == "acknowledged by system:tests before it was sent"


def test_a_folded_alert_is_not_reminded_its_root_is(estate, receiver, clock):
    """ledger depends on db (hard): db down takes ledger with it; only db's alert was
    announced, and only it is reminded."""
    estate.add("db")
    estate.add("ledger", depends_on=["db"])
    estate.up("db", "ledger")
    process()
    reminding_channel("ops", receiver.url, every=5)
    estate.down("db", "ledger")
    process()
    for minutes in (1, 7):
        with clock.at(minutes):
            tick()
    assert receiver.titles() == ["[DOWN] db", "[REMINDER 1] [DOWN] db"]
    assert Alert.objects.get(service__name="ledger", resolved_at=None).root is not None


@pytest.mark.postgresql  # SQLite (the embedded mode's one worker) takes one writer at a time
def test_two_ticks_at_once_queue_each_reminder_once(db_estate, receiver, clock):
    reminding_channel("ops", receiver.url, every=5)
    db_estate.down("db")
    process()
    with clock.at(1):
        tick()
    with clock.at(7):
        now = timezone.now()
        barrier = threading.Barrier(2)
        counts, failures = [], []

        def one_tick():
            try:
                barrier.wait(5)
                counts.append(reminders.queue_due(now))
            except Exception as exc:  # pragma: no cover - reported below
                failures.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=one_tick) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not failures, failures
        assert reminders.queue_due(now) == 0  # and a third, after them
    assert list(Delivery.objects.filter(reminder__gt=0).values_list("reminder", flat=True)) == [1]
    assert sorted(counts) in ([0, 1], [1, 1])  # the constraint drops a racing duplicate
    # The backstop itself: the same reminder of the same alert to the same channel is refused.
    first = Delivery.objects.get(reminder=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.create(
            alert=first.alert,
            channel=first.channel,
            channel_name="ops",
            service_id=first.service_id,
            event="down",
            reminder=1,
        )


@pytest.mark.parametrize("bad", [0, 10_081, -5, "10", True, 2.5])
def test_remind_every_minutes_is_bounded_with_a_422_naming_it(automation, bad):
    body = {"url": "json://127.0.0.1:9/hook", "remind_every_minutes": bad}
    answer = automation.call("put", "/api/notification-channels/ops", body)
    assert answer.status_code == 422, answer.json()
    assert "remind_every_minutes" in answer.json()["error"]["fields"]
    assert not NotificationChannel.objects.exists()


def test_remind_every_minutes_is_kept_shown_and_cleared(automation):
    url = "/api/notification-channels/ops"
    body = {"url": "json://127.0.0.1:9/hook", "remind_every_minutes": 15}
    assert automation.call("put", url, body).json()["remind_every_minutes"] == 15
    assert automation.get(url, **_bearer(automation)).json()["remind_every_minutes"] == 15
    answer = automation.call("put", url, {"url": "json://127.0.0.1:9/hook"})
    assert answer.json()["remind_every_minutes"] is None  # a PUT replaces: no reminders
    assert NotificationChannel.objects.get().remind_every_minutes is None


def _bearer(client) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {client.secret}"}


def _a_minute_passed() -> None:
    """Every notice of the alert was due a minute earlier: the next reminder is due now (the
    worker is another process, which time-machine does not reach)."""
    Delivery.objects.update(not_before=F("not_before") - timedelta(seconds=61))


@pytest.mark.worker
@pytest.mark.postgresql
def test_a_worker_sends_the_reminder_and_none_after_the_acknowledgement(
    db_estate, receiver, start_worker
):
    reminding_channel("ops", receiver.url, every=1)
    start_worker(["automation"], AUTOMATION_GROUP_SECONDS="0.1")
    db_estate.down("db")

    def beat_until(count: int, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while len(receiver.bodies) < count:  # the test plays beat: the task every second
            assert time.monotonic() < deadline, f"{receiver.titles()} within {seconds} s"
            tasks.process_status_changes.delay()
            time.sleep(1)

    beat_until(1)
    assert receiver.titles() == ["[DOWN] db"]
    _a_minute_passed()
    beat_until(2)
    assert receiver.titles() == ["[DOWN] db", "[REMINDER 1] [DOWN] db"]

    alerts.acknowledge(open_alert().id, ACTOR)
    _a_minute_passed()
    for _ in range(6):
        tasks.process_status_changes.delay()
        time.sleep(1)
    assert receiver.titles() == ["[DOWN] db", "[REMINDER 1] [DOWN] db"]
    assert not Delivery.objects.filter(reminder=2).exists()


def critical(estate, value: bool) -> None:
    """db's check made (not) critical, its status settled as a check's write does."""
    HealthCheck.objects.filter(id=estate.checks["db"].id).update(is_critical=value)
    with transaction.atomic():
        settle_health({estate.services["db"].id})


def test_a_channel_is_reminded_only_of_what_it_hears(db_estate, receiver, clock):
    """Found in the breaking trial: a pager that hears only ``down`` was told db is down;
    db then got better, degraded (an improvement, announced to nobody), and the pager was
    still reminded every N minutes, now "[REMINDER n] [DEGRADED] db" -- an event it chose
    not to hear. Its reminders wait while the alert is degraded and go on if it is down
    again; a channel that hears both is reminded throughout."""
    reminding_channel("pager", receiver.url, every=5, events=["down", "recovered"])
    db_estate.down("db")
    process()
    with clock.at(1):
        tick()
    assert receiver.titles() == ["[DOWN] db"]
    with clock.at(2):
        critical(db_estate, False)  # still failing, no longer critical: db is degraded
        tick()
    assert ServiceHealth.objects.get(service__name="db").status == Status.DEGRADED
    assert open_alert().status == Status.DEGRADED
    for minutes in (8, 14, 20):
        with clock.at(minutes):
            tick()
    assert receiver.titles() == ["[DOWN] db"]  # never "[REMINDER n] [DEGRADED] db"
    with clock.at(21):
        critical(db_estate, True)
        tick()
    with clock.at(27):
        tick()
    assert receiver.titles()[-1].endswith("[DOWN] db") and "DEGRADED" not in str(receiver.titles())


def test_a_reminder_says_why_now_not_why_it_opened(db_estate, receiver, clock):
    """Found in the breaking trial: a reminder quoted the reason the alert opened with
    ("Why: degraded: http; waiting for first result: worker") beside the error of that same
    worker check failing since ("Error: worker: no heartbeat received yet"): the service's
    reason had changed while its status had not, and the alert kept the old one. A reminder
    says why now, as the status page and the link's page do."""
    reminding_channel("ops", receiver.url, every=5)
    db_estate.down("db")
    process()
    with clock.at(1):
        tick()
    assert "Why: critical check failing: http\n" in receiver.bodies[0]["message"]
    with clock.at(2):
        make_check(db_estate.services["db"], name="tcp", kind="tcp", target="127.0.0.1:9")
        with transaction.atomic():
            settle_health({db_estate.services["db"].id})  # still down, another reason
        tick()
    reason = ServiceHealth.objects.get(service__name="db").reason
    assert reason == "critical check failing: http; waiting for first result: tcp"
    with clock.at(7):
        tick()
    assert receiver.titles()[-1] == "[REMINDER 1] [DOWN] db"
    assert f"Why: {reason}\n" in receiver.bodies[-1]["message"]
