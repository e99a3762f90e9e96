"""Health statuses, and the pure rules that turn probe outcomes into check, service and
overall statuses. No I/O here: everything is a function of its arguments."""

from django.db import models


class Status(models.IntegerChoices):
    # Small integers: the raw result table stores one per row.
    UNKNOWN = 0, "unknown"
    HEALTHY = 1, "healthy"
    DEGRADED = 2, "degraded"
    UNHEALTHY = 3, "unhealthy"
    MAINTENANCE = 4, "maintenance"


class ErrorCode(models.IntegerChoices):
    """Why a probe failed, stored per raw result (the text lives with the latest result)."""

    NONE = 0, "none"
    TIMEOUT = 1, "timeout"
    REFUSED = 2, "connection refused"
    DNS = 3, "name does not resolve"
    TLS = 4, "TLS error"
    HTTP_STATUS = 5, "unexpected HTTP status"
    BAD_BODY = 6, "invalid health document"
    BLOCKED = 7, "target not allowed"
    REPORTED = 8, "the target reported a failure"
    SLOW = 9, "slower than the latency threshold"
    NO_HEARTBEAT = 10, "no heartbeat"
    CONNECTION = 11, "connection error"
    INTERNAL = 12, "probe error"
    # Not a probe: the slot reached a worker after the check's next slot was already due
    # (a worker lost mid-batch, its batch handed out again). Kept in the history, it says
    # nothing about the target: the check's state and uptime leave it out.
    MISSED = 13, "slot missed"
    # Not believed: a timeout or a slow answer seen while the checker itself was behind
    # (healthchecks.engine.trust). History, not an observation of the target.
    CHECKER_OVERLOADED = 14, "checker overloaded"
    # Not sent: the workers could not start everything due on time, and the dispatcher kept
    # this slot back (healthchecks.engine.capacity). The check runs again at its next slot.
    SKIPPED = 15, "skipped (overload)"


# Results kept in the history that say nothing about the target: they move no state, count in
# no uptime, open no incident.
NOT_OBSERVATIONS = frozenset({ErrorCode.MISSED, ErrorCode.CHECKER_OVERLOADED, ErrorCode.SKIPPED})


def is_usable(status: int) -> bool:
    """What a readiness probe or a deploy gate asks: may traffic go there?"""
    return status in (Status.HEALTHY, Status.DEGRADED)


def next_check_status(previous: int, failures: int, outcome: int, retries: int) -> tuple[int, int]:
    """(new status, consecutive failures) after one probe outcome.

    A failure counts only once ``retries`` failures in a row have been tolerated: with
    retries=2 the third consecutive failure turns the check unhealthy, and until then it
    keeps its previous status (so one lost packet is not an incident -- the damping is
    visible as ``consecutive_failures`` and a warning, not hidden). Anything else takes
    effect at once: one success heals, a slow answer degrades.
    """
    if outcome == Status.UNHEALTHY:
        failures += 1
        if failures > retries:
            return Status.UNHEALTHY, failures
        return previous, failures
    return outcome, 0


WAITING = "waiting for first result"


def is_waiting(status: int, last_result_at, consecutive_failures: int) -> bool:
    """A check with no settled result yet: never probed, or its first failures still held
    back by its retries (its status stays unknown until they run out). It says nothing of
    the service yet, so it neither degrades it nor opens an alert."""
    return status == Status.UNKNOWN and (last_result_at is None or consecutive_failures > 0)


def service_status(
    checks, hard_dependencies, maintenance: str = "", *, waiting=(), not_watched: str = ""
) -> tuple[int, str]:
    """A service's status and why.

    ``checks``: (name, status, is_critical) of its enabled checks that have a result;
    ``waiting``: the names of those that have none yet (``is_waiting``): named in the reason,
    judged on nothing; ``hard_dependencies``: (name, status) of the services it cannot work
    without. A critical check unhealthy makes the service unhealthy; a non-critical one
    unhealthy, or any degraded or unknown check, degrades it; then an unhealthy hard
    dependency makes it at least degraded. During a maintenance window (``maintenance`` says
    which) it is MAINTENANCE, whatever they say; a service not watched (``not_watched`` says
    why: its lifecycle is stopped) is UNKNOWN with that reason.
    """
    if maintenance:
        return Status.MAINTENANCE, maintenance
    if not_watched:
        return Status.UNKNOWN, not_watched
    status: int
    if checks:
        status, reasons = _from_checks(checks)
    else:
        status, reasons = Status.UNKNOWN, [] if waiting else ["no checks"]
    if waiting:
        reasons.append(f"{WAITING}: {', '.join(sorted(waiting))}")
    down = sorted(name for name, dep in hard_dependencies if dep == Status.UNHEALTHY)
    if down:
        reasons.append(f"hard dependency unhealthy: {', '.join(down)}")
        if status in (Status.HEALTHY, Status.UNKNOWN):
            status = Status.DEGRADED
    if status == Status.HEALTHY:
        return status, ""
    return status, "; ".join(reasons)


def _from_checks(checks) -> tuple[int, list[str]]:
    failing = sorted(name for name, st, critical in checks if st == Status.UNHEALTHY and critical)
    weak = sorted(name for name, st, critical in checks if st == Status.UNHEALTHY and not critical)
    slow = sorted(name for name, st, _ in checks if st == Status.DEGRADED)
    unknown = sorted(name for name, st, _ in checks if st == Status.UNKNOWN)
    reasons = []
    if failing:
        reasons.append(f"critical check failing: {', '.join(failing)}")
    if weak:
        reasons.append(f"non-critical check failing: {', '.join(weak)}")
    if slow:
        reasons.append(f"degraded: {', '.join(slow)}")
    if unknown:
        reasons.append(f"no recent result: {', '.join(unknown)}")
    if failing:
        return Status.UNHEALTHY, reasons
    if len(unknown) == len(checks):
        return Status.UNKNOWN, reasons
    if weak or slow or unknown:
        return Status.DEGRADED, reasons
    return Status.HEALTHY, reasons


def overall_status(services) -> int:
    """The whole estate from (status, is_critical) per service: any critical service
    unhealthy makes it unhealthy; any other service unhealthy or degraded degrades it."""
    statuses = [(st, critical) for st, critical in services if st != Status.MAINTENANCE]
    if not statuses:
        return Status.UNKNOWN
    if any(st == Status.UNHEALTHY and critical for st, critical in statuses):
        return Status.UNHEALTHY
    if all(st == Status.UNKNOWN for st, _ in statuses):
        return Status.UNKNOWN
    if any(st in (Status.UNHEALTHY, Status.DEGRADED) for st, _ in statuses):
        return Status.DEGRADED
    return Status.HEALTHY  # services with no result yet (unknown) do not count


def is_stale(last_result_at: float | None, interval: float, timeout: float, now: float) -> bool:
    """No result for two intervals plus the timeout: the check is not being run (workers or
    the dispatcher are down), and its last status can no longer be trusted."""
    if last_result_at is None:
        return False
    return now - last_result_at > 2 * interval + timeout + 5
