"""Heartbeats of background components, for the portal's watch over itself."""

from datetime import timedelta

from django.utils import timezone

from portal.models import Heartbeat


def beat(name: str, **details) -> Heartbeat:
    row, _ = Heartbeat.objects.update_or_create(
        name=name, defaults={"seen_at": timezone.now(), "details": details}
    )
    return row


def age(name: str) -> timedelta | None:
    seen_at = Heartbeat.objects.filter(name=name).values_list("seen_at", flat=True).first()
    return None if seen_at is None else timezone.now() - seen_at
