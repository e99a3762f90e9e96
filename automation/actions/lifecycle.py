"""Move the service's lifecycle status, through the registry's one write path, as the rule's
author (audited as ``rule:<name> by <author>``). Lifecycle does not feed health, so the move
cannot set its rule off again."""

from enum import StrEnum
from typing import Literal

from ninja import Schema
from pydantic import ConfigDict, Field

from automation import authors
from automation.actions.kinds import ActionKind, Outcome
from portal.errors import PortalError
from portal.models import Scope
from services import lifecycle
from services.models import LifecycleStatus

LifecycleName = StrEnum("LifecycleName", {s.name: s.value for s in LifecycleStatus})


class LifecycleAction(Schema):
    model_config = ConfigDict(extra="forbid")

    type: Literal["lifecycle"]
    to: LifecycleName = Field(description="Move the service's lifecycle status (audited).")


def run(delivery, message, impacted) -> Outcome:
    alert = delivery.alert
    name = (delivery.service or alert.service).name
    cause = alert.cause if alert else (delivery.subject or {}).get("message", "")
    reason = f"automation: {delivery.event} ({cause or 'no cause given'})"
    try:
        actor = authors.acting_for(delivery.rule, KIND.name, KIND.scope)
        lifecycle.transition(name, delivery.action["to"], reason[:500], actor)
    except PortalError as exc:
        return False, exc.status, exc.message
    return True, None, ""


KIND = ActionKind("lifecycle", LifecycleAction, run, scope=Scope.REGISTRY_WRITE, calls_out=False)
