"""Deployments as events: a rollout reported (``deployment_started``) and its verdict
(``deployment_passed``, ``deployment_failed``) reach the channels that ask for them and set off
the rules with that trigger; a failed verification of a service that asks for it
(``on_failed_verification: rollback_config``) restores the configuration the last passed
deployment carried.

Each runs inside the transaction that stored the report or the verdict (the registry's
signals), so a verdict is never stored without its notifications queued and its rollback
done or refused -- and the refusal's reason is on the verdict.
"""

from datetime import timedelta

from django.utils import timezone

from automation import rules
from automation.models import Delivery, Event, NotificationChannel, Rule, RuleFiring
from healthchecks.engine import verification
from portal.auth import system_actor
from portal.errors import PortalError
from services import deployments
from services.models import Deployment, OnFailedVerification

VERDICT_EVENTS = {"passed": Event.DEPLOYMENT_PASSED, "failed": Event.DEPLOYMENT_FAILED}


def on_reported(sender, service_id: int, deployment_id: int, **kwargs) -> None:
    deployment = Deployment.objects.select_related("service__team").get(pk=deployment_id)
    announce(deployment, Event.DEPLOYMENT_STARTED)


def on_verified(sender, deployment: Deployment, state: str, blamed: bool | None, **kwargs) -> None:
    rollback = ""
    if blamed is None:  # the pipeline's own report: is a hard dependency to blame?
        blamed = not verification.down_before(deployment)
    if state == "failed":
        rollback = roll_back_if_asked(deployment, blamed)
    announce(deployment, VERDICT_EVENTS[state], rollback=rollback, blamed=blamed)


def roll_back_if_asked(deployment: Deployment, blamed: bool) -> str:
    """The service's own setting: what was rolled back, or why nothing was (said on the
    verdict too); empty when the service does not ask for it."""
    service = deployment.service
    if service.on_failed_verification != OnFailedVerification.ROLLBACK_CONFIG:
        return ""
    if not blamed:
        said = "no configuration rolled back: the release is not blamed"
    else:
        try:
            said = deployments.rollback_config(deployment, system_actor("verification"))
        except PortalError as exc:
            reasons = "; ".join(f"{k}: {v}" for k, v in (exc.fields or {}).items())
            said = f"configuration rollback refused: {exc.message}" + (
                f" ({reasons})" if reasons else ""
            )
    deployments.note_on_verdict(deployment.pk, said)
    return said


def announce(deployment: Deployment, event: str, *, rollback: str = "", blamed: bool = True) -> int:
    """Queue the event for the channels that ask for it and fire the rules it sets off;
    returns how many deliveries."""
    now = timezone.now()
    service = deployment.service
    subject = {**subject_of(deployment, event, rollback), "blamed": blamed}
    team = service.team.name
    rows = [
        Delivery(
            kind="notify",
            channel=channel,
            channel_name=channel.name,
            service=service,
            event=event,
            subject=subject,
            created_at=now,
            not_before=now,
        )
        for channel in NotificationChannel.objects.all()
        if event in channel.events and (not channel.teams or team in channel.teams)
    ]
    Delivery.objects.bulk_create(rows)
    return len(rows) + fire_rules(deployment, event, subject, now)


def fire_rules(deployment: Deployment, event: str, subject: dict, now) -> int:
    """Each enabled rule with this trigger whose scope holds the service, outside its
    cooldown: one firing (an event, closed at once: nothing to escalate) and its actions."""
    service = deployment.service
    tags = set(service.tags.values_list("name", flat=True))
    queued = 0
    for rule in Rule.objects.filter(enabled=True, trigger=event):
        if not rules.in_scope(rule, service, tags):
            continue
        cooling = RuleFiring.objects.filter(
            rule=rule,
            service=service,
            escalation=False,
            at__gt=now - timedelta(seconds=rule.cooldown_seconds),
        )
        if cooling.exists():
            continue
        RuleFiring.objects.create(
            rule=rule,
            service=service,
            subject=f"deployment:{deployment.pk}",
            at=now,
            cleared_at=now,
        )
        queued += rules.queue_actions(
            rule, rule.actions, False, now, event=event, service=service, subject=subject
        )
    return queued


def subject_of(deployment: Deployment, event: str, rollback: str) -> dict:
    """What the event's deliveries say, stored with them (the deployment may move on)."""
    version = deployment.version
    if event == Event.DEPLOYMENT_STARTED:
        message = f"deployment of {version} reported {deployment.status}, being verified"
    else:
        verdict = "passed" if event == Event.DEPLOYMENT_PASSED else "failed"
        message = (
            f"deployment of {version} {verdict} verification: {deployment.verification_reason}"
        )
    if rollback:
        message += f"; {rollback}"
    return {
        "check": "",
        "message": message,
        "since": deployment.created_at.isoformat(),
        "kind": "",
        "deployment": deployment.pk,
        "version": version,
        "config_version": deployment.config_version,
        "rollback": rollback,
    }
