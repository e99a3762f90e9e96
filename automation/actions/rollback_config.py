"""Restore the configuration the service's last passed deployment carried, as a new version
naming the failed deployment (services.deployments.rollback_config: validated against the
current schema, audited), as the rule's author. Only a ``deployment_failed`` rule has a
deployment to roll back from."""

from typing import Literal

from ninja import Schema
from pydantic import ConfigDict

from automation import authors
from automation.actions.kinds import ActionKind, Outcome
from automation.models import Trigger
from portal.errors import PortalError
from portal.models import Scope
from services import deployments
from services.models import Deployment


class RollbackConfigAction(Schema):
    model_config = ConfigDict(extra="forbid")

    type: Literal["rollback_config"]


def run(delivery, message, impacted) -> Outcome:
    deployment = (
        Deployment.objects.select_related("service")
        .filter(pk=(delivery.subject or {}).get("deployment"))
        .first()
    )
    if deployment is None:
        return False, None, "the deployment is gone"
    rule = f"(rule {delivery.rule.name})"
    if (delivery.subject or {}).get("blamed") is False:
        said = f"no configuration rolled back: the release is not blamed {rule}"
        deployments.note_on_verdict(deployment.pk, said)
        return True, None, ""
    newer = deployment.service.deployments.filter(created_at__gt=deployment.created_at)
    if newer.exists():  # a retried action: another release went out meanwhile
        said = f"no configuration rolled back: a later deployment replaced it {rule}"
        deployments.note_on_verdict(deployment.pk, said)
        return True, None, ""
    try:
        actor = authors.acting_for(delivery.rule, KIND.name, KIND.scope)
        done = deployments.rollback_config(deployment, actor)
    except PortalError as exc:
        said = f"configuration rollback refused: {exc.message} {rule}"
        deployments.note_on_verdict(deployment.pk, said)
        return False, exc.status, exc.message
    deployments.note_on_verdict(deployment.pk, f"{done} {rule}")
    return True, None, ""


KIND = ActionKind(
    "rollback_config",
    RollbackConfigAction,
    run,
    scope=Scope.CONFIG_WRITE,
    calls_out=False,
    triggers=(Trigger.DEPLOYMENT_FAILED,),
)
