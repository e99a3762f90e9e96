"""Start one of the service's checklists (post-migration validation) as the rule's author:
the items the portal can verify are answered at once. Checklists do not feed health: no
loop."""

from typing import Literal

from ninja import Schema
from pydantic import ConfigDict, Field

from automation import authors
from automation.actions.kinds import ActionKind, Outcome
from checklists import runs
from checklists.models import ChecklistTemplate, Period
from portal.errors import PortalError
from portal.fields import Name
from portal.models import Scope


class ChecklistAction(Schema):
    model_config = ConfigDict(extra="forbid")

    type: Literal["checklist"]
    template: Name = Field(
        description="A per-service checklist to start for the service (post-migration, "
        "pre-migration): the items the portal can verify are answered at once."
    )


def check(action: dict, path: str, fields: dict) -> None:
    templates = ChecklistTemplate.objects.filter(period=Period.SERVICE)
    if not templates.filter(name=action["template"]).exists():
        fields[f"{path}.template"] = (
            f"no per-service checklist named {action['template']!r}; use "
            + ", ".join(templates.values_list("name", flat=True))
        )


def run(delivery, message, impacted) -> Outcome:
    name = (delivery.service or delivery.alert.service).name
    try:
        actor = authors.acting_for(delivery.rule, KIND.name, KIND.scope)
        runs.start_for_service(delivery.action["template"], name, actor)
    except PortalError as exc:
        return False, exc.status, exc.message
    return True, None, ""


KIND = ActionKind(
    "checklist", ChecklistAction, run, check, scope=Scope.CHECKLISTS_WRITE, calls_out=False
)
