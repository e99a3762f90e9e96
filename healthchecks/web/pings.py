"""Heartbeats: a service (or a cron job) calls its check's URL; silence turns it unhealthy.

A ping is recorded as a result at once, and moves the check's next due time to the ping
plus interval plus grace: if no ping comes by then, the dispatcher claims the check and its
probe (healthchecks.probes, kind "heartbeat") finds the beat missing.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from healthchecks.engine import recording, scheduling
from healthchecks.models import CheckState, HealthCheck
from healthchecks.probes import KINDS, ProbeOutcome
from healthchecks.status import ErrorCode, Status

PUSHED = [kind.name for kind in KINDS.values() if kind.pushed]


def receive(token: str, *, failed: bool = False) -> HealthCheck | None:
    if not token or len(token) > 64:
        return None
    now = timezone.now()
    with transaction.atomic():
        check = (
            HealthCheck.objects.select_for_update()
            .filter(heartbeat_token=token, kind__in=PUSHED)
            .first()
        )
        if check is None:
            return None
        CheckState.objects.get_or_create(health_check=check)
        if not failed:
            CheckState.objects.filter(health_check=check).update(last_ping_at=now)
        grace = check.options.get("grace", 0)
        scheduling.postpone(check.pk, now + timedelta(seconds=check.interval + grace))
        outcome = (
            ProbeOutcome(
                Status.UNHEALTHY,
                error_code=ErrorCode.REPORTED,
                errors=["the service reported a failure"],
            )
            if failed
            else ProbeOutcome(Status.HEALTHY)
        )
        recording.record([recording.Result(check.pk, now, now, outcome)])
    return check
