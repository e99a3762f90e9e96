"""Reminders: an alert nobody acknowledged is sent again, every ``remind_every_minutes`` of
each channel that was told of it, titled ``[REMINDER n]``, until someone acknowledges it or
it resolves.

Run by the automation's tick after the status changes and escalations (automation.tasks).
What is due is read from the deliveries themselves, so nothing else has to be kept: a
channel's last notice of the alert (its first one, or the last reminder) was due N minutes
ago or more, none is still on its way, and the alert is still the one to tell -- open, not
acknowledged, its own (not folded into a root cause's), not silenced, its service down or
degraded (not in maintenance). The sender checks again before each send
(notify._no_longer_wanted): a reminder queued just before an acknowledgement is skipped.

Two ticks at once queue reminder n once: each locks the alerts it reminds of (skipping those
another tick holds) and reads the deliveries after the lock, and a unique constraint
(alert, channel, n) is the backstop.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from automation.alerts import BAD, EVENT_OF
from automation.models import Alert, Delivery, DeliveryState, Event, NotificationChannel

_ON_ITS_WAY = [DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.RETRYING]
# The channel was told (or tried until the sender gave up): a notice skipped before it went
# (folded, silenced, recovered first) told nobody, and nobody is reminded of it.
_TOLD = [DeliveryState.SENT, DeliveryState.FAILED]


def queue_due(now=None) -> int:
    """Queue the reminders due now; returns how many."""
    if not settings.ENABLE_HEALTH_AUTOMATION:
        return 0  # nothing is sent: no row every N minutes to say so
    now = now or timezone.now()
    reminding = {
        c.id: c for c in NotificationChannel.objects.filter(remind_every_minutes__isnull=False)
    }
    if not reminding:
        return 0
    with transaction.atomic():
        alerts = {
            a.id: a
            for a in Alert.objects.select_for_update(skip_locked=True, of=("self",)).filter(
                resolved_at=None,
                acknowledged_at=None,
                root=None,
                silenced="",
                service__health__status__in=BAD,
            )
        }
        if not alerts:
            return 0
        rows = [
            _reminder(alerts[n["alert_id"]], reminding[n["channel_id"]], n["last"] + 1, now)
            for n in _notices(alerts, reminding)
            if _is_due(n, reminding[n["channel_id"]].remind_every_minutes, now)
            and _hears(reminding[n["channel_id"]], alerts[n["alert_id"]], n)
        ]
        Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _notices(alerts: dict, channels: dict):
    """Per (alert, channel): when its last notice (not skipped) was due, its last
    reminder's number, whether any was told, and whether one is still on its way."""
    return (
        Delivery.objects.filter(
            alert_id__in=list(alerts),
            channel_id__in=list(channels),
            kind="notify",
            event__in=[Event.DOWN, Event.DEGRADED],
        )
        .values("alert_id", "channel_id")
        .annotate(
            due=Max("not_before", filter=~Q(state=DeliveryState.SKIPPED)),
            # Over the skipped ones too: a number once used is never queued again.
            last=Max("reminder"),
            told=Count("id", filter=Q(state__in=_TOLD)),
            on_its_way=Count("id", filter=Q(state__in=_ON_ITS_WAY)),
            by_rule=Count("id", filter=Q(rule__isnull=False, state__in=_TOLD)),
        )
        .order_by("alert_id", "channel_id")
    )


def _is_due(notice: dict, every_minutes: int, now) -> bool:
    """The channel was told, nothing is on its way, and the last notice is N minutes old."""
    if not notice["told"] or notice["on_its_way"]:
        return False
    return notice["due"] + timedelta(minutes=every_minutes) <= now


def _hears(channel: NotificationChannel, alert: Alert, notice: dict) -> bool:
    """The channel hears the alert's event now: a pager that asked for ``down`` only is not
    reminded while the alert is degraded (improved since it was told; reminded again if it
    is down again). A rule that told it chose the channel itself: reminded as told."""
    return EVENT_OF[alert.status] in channel.events or bool(notice["by_rule"])


def _reminder(alert: Alert, channel: NotificationChannel, n: int, now) -> Delivery:
    return Delivery(
        alert=alert,
        service_id=alert.service_id,
        channel=channel,
        channel_name=channel.name,
        event=EVENT_OF[alert.status],
        kind="notify",
        reminder=n,
        created_at=now,
        not_before=now,
    )
