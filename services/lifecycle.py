"""A service's lifecycle status and the transitions allowed between statuses.

    registered -> starting | running | stopped
    starting   -> running | degraded | failed | stopping
    running    -> degraded | stopping | failed
    degraded   -> running | stopping | failed
    stopping   -> stopped | failed
    stopped    -> starting
    failed     -> starting | stopping | stopped

``registered -> running`` exists for services that were already up before they were
registered. Asking for the status a service already has changes nothing and records nothing,
so a pipeline may repeat its last step safely.

Dependencies order the moves, as the seed's registry starts services: a service starts (or
runs) only while its hard dependencies are up (running or degraded), and stops only while no
hard dependent is up or starting. ``force`` overrides both, and the audit row says so and what
it overrode.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from portal import audit
from portal.auth import check_ownership
from portal.errors import Conflict
from services.models import Dependency, DependencyKind, LifecycleTransition, Service
from services.models import LifecycleStatus as S
from services.queries import get_service
from services.registry import lock_registry
from services.signals import lifecycle_changed

ALLOWED: dict[str, tuple[str, ...]] = {
    S.REGISTERED: (S.STARTING, S.RUNNING, S.STOPPED),
    S.STARTING: (S.RUNNING, S.DEGRADED, S.FAILED, S.STOPPING),
    S.RUNNING: (S.DEGRADED, S.STOPPING, S.FAILED),
    S.DEGRADED: (S.RUNNING, S.STOPPING, S.FAILED),
    S.STOPPING: (S.STOPPED, S.FAILED),
    S.STOPPED: (S.STARTING,),
    S.FAILED: (S.STARTING, S.STOPPING, S.STOPPED),
}


# A hard dependency must be in one of these before its dependent starts or runs...
UP = (S.RUNNING, S.DEGRADED)
# ...and no hard dependent may be in one of these when a service stops.
ACTIVE = (S.STARTING, S.RUNNING, S.DEGRADED)
# Not watched: its checks are not probed (the dispatcher has none of them), its health reads
# unknown with the reason, and it opens no alert (one open is resolved without a notice).
# Someone stopped it on purpose; "down" would be noise. (No "retired" status exists yet: one
# would join this list.)
NOT_WATCHED = (S.STOPPED,)


def allowed_next(status: str) -> list[str]:
    return [str(s) for s in ALLOWED[status]]


def blocking(service: Service, to: str) -> tuple[str, list[dict]]:
    """What stands in the way of moving ``service`` to ``to``: (error code, services with
    their lifecycle status); no services when nothing does."""
    hard = DependencyKind.HARD
    if to in (S.STARTING, S.RUNNING):
        rows = Dependency.objects.filter(service=service, kind=hard).exclude(
            depends_on__lifecycle_status__in=UP
        )
        found = rows.values_list("depends_on__name", "depends_on__lifecycle_status")
        return "dependencies_not_running", _named(found)
    if to in (S.STOPPING, S.STOPPED):
        rows = Dependency.objects.filter(
            depends_on=service, kind=hard, service__lifecycle_status__in=ACTIVE
        )
        found = rows.values_list("service__name", "service__lifecycle_status")
        return "has_running_dependents", _named(found)
    return "", []


def _named(rows) -> list[dict]:
    return [{"service": name, "lifecycle_status": status} for name, status in sorted(rows)]


@dataclass(frozen=True)
class TransitionOutcome:
    service: Service
    changed: bool
    transition: LifecycleTransition | None


def transition(name: str, to: str, reason: str, actor, *, force: bool = False) -> TransitionOutcome:
    check_ownership(actor, [name])
    with transaction.atomic():
        lock_registry()  # the registry's lock first, as every write that reads the graph
        service = get_service(name, queryset=Service.objects.select_for_update())
        current = service.lifecycle_status
        if to == current:
            return TransitionOutcome(service, changed=False, transition=None)
        if to not in ALLOWED[current]:
            allowed = allowed_next(current)
            raise Conflict(
                f"{name!r} cannot go from {current} to {to}; allowed: {', '.join(allowed)}",
                code="illegal_transition",
                current=current,
                allowed=allowed,
            )
        code, blockers = blocking(service, to)
        if blockers and not force:
            names = ", ".join(f"{b['service']} ({b['lifecycle_status']})" for b in blockers)
            why = (
                "its hard dependencies are not running"
                if code == "dependencies_not_running"
                else "hard dependents are still running"
            )
            raise Conflict(
                f"{name!r} cannot go to {to}: {why}: {names}; move them first, or send "
                '"force": true',
                code=code,
                blocking=blockers,
            )
        now = timezone.now()
        service.lifecycle_status = to
        service.lifecycle_changed_at = now
        service.save(update_fields=["lifecycle_status", "lifecycle_changed_at"])
        record = LifecycleTransition.objects.create(
            service=service,
            from_status=current,
            to_status=to,
            reason=reason,
            actor=str(actor),
            created_at=now,
        )
        lifecycle_changed.send(
            sender=Service, service_id=service.pk, from_status=current, to_status=to
        )
        audit.record(
            actor,
            "service.transition",
            "service",
            name,
            {
                "lifecycle_status": [current, to],
                "reason": reason,
                **({"forced": True, "overrode": blockers} if force and blockers else {}),
            },
        )
    return TransitionOutcome(service, changed=True, transition=record)
