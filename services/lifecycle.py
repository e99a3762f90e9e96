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
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from portal import audit
from portal.errors import Conflict, NotFound
from services.models import LifecycleStatus as S
from services.models import LifecycleTransition, Service

ALLOWED: dict[str, tuple[str, ...]] = {
    S.REGISTERED: (S.STARTING, S.RUNNING, S.STOPPED),
    S.STARTING: (S.RUNNING, S.DEGRADED, S.FAILED, S.STOPPING),
    S.RUNNING: (S.DEGRADED, S.STOPPING, S.FAILED),
    S.DEGRADED: (S.RUNNING, S.STOPPING, S.FAILED),
    S.STOPPING: (S.STOPPED, S.FAILED),
    S.STOPPED: (S.STARTING,),
    S.FAILED: (S.STARTING, S.STOPPING, S.STOPPED),
}


def allowed_next(status: str) -> list[str]:
    return [str(s) for s in ALLOWED[status]]


@dataclass(frozen=True)
class TransitionOutcome:
    service: Service
    changed: bool
    transition: LifecycleTransition | None


def transition(name: str, to: str, reason: str, actor) -> TransitionOutcome:
    with transaction.atomic():
        service = Service.objects.select_for_update().filter(name=name).first()
        if service is None:
            raise NotFound(f"no service named {name!r}")
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
        audit.record(
            actor,
            "service.transition",
            "service",
            name,
            {"lifecycle_status": [current, to], "reason": reason},
        )
    return TransitionOutcome(service, changed=True, transition=record)
