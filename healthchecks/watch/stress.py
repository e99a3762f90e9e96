"""Whether the portal is under stress, and what the rate limiter should make of it.

Every 15 s (beat; a web process counting alone, without Redis, runs it itself): the last
full minute's answers (portal.ratelimit counts them) and the portal's own ``backend``
service. Stress -- more than RATE_LIMIT_STRESS_SHARE of the answers were genuine faults
(an unhandled error, the database unavailable) or slower than RATE_LIMIT_SLOW_SECONDS, or
``backend`` is not healthy -- halves the lowest classes' factor, down to RATE_LIMIT_FLOOR; a
calm minute doubles it back towards 1. Steps, not a jump: one slow minute does not shut the
pages. An answer given on purpose is never stress, whatever its status: the health gate's
503 for an unusable service is polled by every pipeline and probe during an incident, and
counting it would throttle everyone just when they need the portal.
"""

from django.conf import settings

from healthchecks.models import ServiceHealth
from healthchecks.status import Status
from healthchecks.watch import selfcheck
from portal import ratelimit


def stressed(requests: int, faults: int, slow: int, backend: int | None) -> bool:
    """Pure: the rule above."""
    if backend is not None and backend not in (Status.HEALTHY, Status.UNKNOWN):
        return True
    if requests < 20:  # too few answers to judge by share
        return False
    share = settings.RATE_LIMIT_STRESS_SHARE
    return faults / requests > share or slow / requests > share


def next_factor(current: float, under_stress: bool) -> float:
    floor = settings.RATE_LIMIT_FLOOR
    return max(floor, current / 2) if under_stress else min(1.0, current * 2)


def adapt() -> float:
    """One step; returns the factor now in force."""
    backend = (
        ServiceHealth.objects.filter(service__name=selfcheck.NAME)
        .values_list("status", flat=True)
        .first()
    )
    requests, faults, slow = ratelimit.LIMITER.last_minute()
    factor = next_factor(ratelimit.LIMITER.factor(), stressed(requests, faults, slow, backend))
    ratelimit.LIMITER.set_factor(factor)
    return factor
