"""An alert's story in time order, as the person taking over an incident reads it: opened,
who was told (deliveries sent, or given up), escalated, acknowledged, what people wrote,
resolved. Read from the rows the automation keeps anyway -- the alert, its deliveries, its
rules' escalations, its notes -- so nothing is written twice to tell it."""

from dataclasses import dataclass
from datetime import datetime

from automation.models import Alert, Delivery, DeliveryState, Event, RuleFiring
from healthchecks.status import Status

# Entries at the same moment keep the order in which they happen.
_ORDER = {
    "opened": 0,
    "notified": 1,
    "escalated": 2,
    "reminder": 2,
    "failed": 3,
    "acknowledged": 4,
    "note": 5,
    "resolved": 6,
}


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # a key of _ORDER
    text: str
    author: str = ""
    public: bool = False


def _word(status: int) -> str:
    return "down" if status == Status.UNHEALTHY else Status(status).label


def _delivery_entry(delivery: Delivery) -> Entry:
    told = delivery.channel_name
    if delivery.kind != "notify":
        what = f"{told} ran ({delivery.kind})"
    elif delivery.event == Event.RECOVERED:
        what = f"{told} was told it recovered"
    else:
        what = f"{told} was told it is {delivery.event}"
    kind = "notified"
    if delivery.reminder:
        kind, what = "reminder", f"reminder {delivery.reminder}: {what}"
    elif delivery.escalation:
        what = f"escalation: {what}"
    if delivery.state == DeliveryState.FAILED:
        kind, what = "failed", f"{what} -- failed: {delivery.detail}"
    return Entry(delivery.finished_at or delivery.created_at, kind, what)


def of_alert(alert: Alert) -> list[Entry]:
    """Every entry of the alert, oldest first."""
    entries = [Entry(alert.opened_at, "opened", f"opened: {_word(alert.status)}")]
    for delivery in Delivery.objects.filter(
        alert=alert, state__in=[DeliveryState.SENT, DeliveryState.FAILED]
    ).order_by("finished_at", "id"):
        entries.append(_delivery_entry(delivery))
    for firing in RuleFiring.objects.filter(alert=alert, escalation=True).select_related("rule"):
        after = firing.rule.escalate_after_minutes
        entries.append(
            Entry(
                firing.at,
                "escalated",
                f"escalated by the rule {firing.rule.name}"
                + (f", nobody having acknowledged it in {after} min" if after else ""),
            )
        )
    if alert.acknowledged_at:
        entries.append(
            Entry(alert.acknowledged_at, "acknowledged", "acknowledged", alert.acknowledged_by)
        )
    for note in alert.notes.all():
        entries.append(Entry(note.created_at, "note", note.text, note.author, note.public))
    if alert.resolved_at:
        entries.append(Entry(alert.resolved_at, "resolved", "resolved: healthy again"))
    return sorted(entries, key=lambda e: (e.at, _ORDER[e.kind]))
