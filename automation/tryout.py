"""Testing a channel: a message titled as a test, sent now to one channel on a person's
request, and the attempt's outcome answered to them.

It goes the way every notification goes -- a Delivery row (event ``test``, kind notify),
sent by ``notify.send_one`` through the channel's notifier and the egress guard, its attempt
recorded, its error without the channel's secrets -- but at once, in the caller's thread,
while the caller waits, and only once (a test is not retried). The row is written claimed
(leased), so the automation's own senders never take it meanwhile.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from automation import notify
from automation.models import TEST_EVENT, Delivery, DeliveryState, NotificationChannel
from portal import audit
from portal.auth import check_reach
from portal.errors import NotFound


@dataclass(frozen=True)
class TrialOutcome:
    ok: bool
    http_status: int | None
    error: str | None
    duration_ms: int
    delivery: int


def send_test_message(name: str, actor) -> TrialOutcome:
    """Send the test now and say how it went; audited. Who may change the channel may test
    it (an operator their own teams' channels, as for editing)."""
    channel = NotificationChannel.objects.filter(name=name).first()
    if channel is None:
        raise NotFound(f"no notification channel named {name!r}")
    check_reach(actor, teams=channel.teams, what="a channel")
    now = timezone.now()
    lease = timedelta(seconds=settings.AUTOMATION_SEND_TIMEOUT * 2 + 30)
    delivery = Delivery.objects.create(
        channel=channel,
        channel_name=channel.name,
        event=TEST_EVENT,
        kind="notify",
        subject={"by": str(actor)[:200]},
        state=DeliveryState.SENDING,  # claimed: no sender of the automation takes it
        lease_until=now + lease,
        created_at=now,
        not_before=now,
    )
    notify.send_one(delivery.id)
    outcome = _outcome(delivery.id)
    audit.record(
        actor,
        "channel.test",
        "notification_channel",
        name,
        {"ok": outcome.ok, "http_status": outcome.http_status, "delivery": delivery.id},
    )
    return outcome


def _outcome(delivery_id: int) -> TrialOutcome:
    delivery = Delivery.objects.get(id=delivery_id)
    attempt = delivery.attempt_rows.order_by("-number").first()
    if attempt is None:  # skipped before any call: automation disabled, channel deleted
        return TrialOutcome(False, None, f"not sent: {delivery.detail}", 0, delivery.id)
    took = attempt.finished_at - attempt.started_at
    return TrialOutcome(
        ok=attempt.ok,
        http_status=attempt.http_status,
        error=None if attempt.ok else attempt.error,
        duration_ms=round(took.total_seconds() * 1000),
        delivery=delivery.id,
    )
