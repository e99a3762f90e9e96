"""Housekeeping tasks of the portal itself."""

from celery import shared_task

from portal import heartbeats


@shared_task(ignore_result=False, acks_late=False)
def record_heartbeat(name: str) -> str:
    """Beat sends this on a schedule; the row it writes proves beat and a worker are alive."""
    return heartbeats.beat(name).seen_at.isoformat()
