"""Rules: what to do, beyond telling the channels, when a service's health changes.

A rule has a trigger (a service goes down, degraded, or recovers; or one of its checks fails
N times in a row, misses its heartbeat, or has a prediction: automation.triggers), a scope
(listed services, a team, a tag, critical services only; nothing: every service) and
actions: notify a channel; call a webhook (method, URL, headers kept as secrets, a body
template, a timeout, the status that means success); move the service's lifecycle status;
start one of the service's checklists (post-migration validation).
It fires once per service per cooldown; when the alert is neither acknowledged nor resolved
(or the check's condition still holds) ``escalate_after_minutes`` later, its escalation
actions run once. Actions are deliveries like any notification (sent concurrently, recorded,
retried, never blocking). Rules fire on health changes and check conditions only, and no
action changes health, so an action cannot set off its own rule again; the cooldown bounds a
flapping service.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from automation import authors
from automation.actions import ACTIONS
from automation.models import (
    DEPLOYMENT_TRIGGERS,
    Alert,
    Delivery,
    NotificationChannel,
    Rule,
    RuleFiring,
    Trigger,
)
from portal import audit, encryption
from portal.auth import check_reach as check_reach_of
from portal.errors import InvalidInput, NotFound
from services.models import Service, Tag, Team


@dataclass(frozen=True)
class RuleIn:
    trigger: str
    scope: dict
    actions: list[dict]
    condition: dict = field(default_factory=dict)
    escalation: list[dict] = field(default_factory=list)
    escalate_after_minutes: int | None = None
    cooldown_seconds: int = 300
    enabled: bool = True


def _check_actions(actions: list[dict], where: str, fields: dict) -> None:
    for i, action in enumerate(actions):
        ACTIONS[action["type"]].check(action, f"{where}[{i}]", fields)


def validate(data: RuleIn) -> None:
    fields: dict[str, str] = {}
    scope = data.scope
    if names := scope.get("services"):
        known = Service.objects.filter(name__in=names).values_list("name", flat=True)
        missing = sorted(set(names) - set(known))
        if missing:
            fields["scope.services"] = f"no service named {', '.join(missing)}"
    if scope.get("team") and not Team.objects.filter(name=scope["team"]).exists():
        fields["scope.team"] = f"no team named {scope['team']}"
    if scope.get("tag") and not Tag.objects.filter(name=scope["tag"]).exists():
        fields["scope.tag"] = f"no tag named {scope['tag']}"
    _check_actions(data.actions, "actions", fields)
    _check_actions(data.escalation, "escalation", fields)
    _check_triggers(data, fields)
    _check_condition(data.trigger, data.condition, fields)
    if data.escalation and not data.escalate_after_minutes:
        fields["escalate_after_minutes"] = "escalation actions need escalate_after_minutes"
    if data.escalate_after_minutes and not data.escalation:
        fields["escalation"] = "escalate_after_minutes needs escalation actions to run"
    if fields:
        raise InvalidInput("the rule was not saved", fields=fields)


def _check_triggers(data: RuleIn, fields: dict) -> None:
    """An action kind that needs a trigger of its own (rollback_config: deployment_failed)."""
    for where, actions in (("actions", data.actions), ("escalation", data.escalation)):
        for i, action in enumerate(actions):
            allowed = ACTIONS[action["type"]].triggers
            if allowed is not None and data.trigger not in allowed:
                fields[f"{where}[{i}].type"] = (
                    f"{action['type']} needs the trigger {' or '.join(allowed)}, not {data.trigger}"
                )
    if data.escalation and data.trigger in DEPLOYMENT_TRIGGERS:
        fields["escalation"] = "a deployment event is not escalated (it has no episode)"


def _check_condition(trigger: str, condition: dict, fields: dict) -> None:
    """``failures`` belongs to check_failing, ``kinds`` to prediction; nothing else has one."""
    allowed = {Trigger.CHECK_FAILING: {"failures"}, Trigger.PREDICTION: {"kinds"}}.get(
        trigger, set()
    )
    for key in sorted(set(condition) - allowed):
        fields[f"condition.{key}"] = f"not a condition of the {trigger} trigger" + (
            f" (it takes {', '.join(sorted(allowed))})" if allowed else " (it takes none)"
        )


def rotate_secrets() -> int:
    """Re-encrypt every rule's webhook headers with the newest key (key rotation)."""
    count = 0
    for pk, token in Rule.objects.exclude(secrets="").values_list("id", "secrets"):
        Rule.objects.filter(pk=pk).update(secrets=encryption.rotate(token))
        count += 1
    return count


def _without_secrets(actions: list[dict]) -> tuple[list[dict], dict]:
    """The actions as shown (each kind's secret options by name only), and those options'
    values by position, to be kept encrypted on the rule."""
    shown, secrets = [], {}
    for i, action in enumerate(actions):
        action = dict(action)
        for option in ACTIONS[action["type"]].secret_options:
            if values := action.pop(option, None):
                secrets.setdefault(str(i), {}).update(values)
                action[option] = sorted(values)  # the names, never the values
        shown.append(action)
    return shown, secrets


def check_reach(actor, scope: dict) -> None:
    """A rule acts on the services its scope selects: its author must own them all (an
    operator names their own services or one of their teams; a tag or "critical only"
    narrows that, never widens it)."""
    team = scope.get("team")
    check_reach_of(actor, scope.get("services") or [], [team] if team else [], what="a rule")


def check_action_scopes(actor, actions: list[dict]) -> None:
    """A rule's author must hold the scope of each change its actions make (a lifecycle
    move needs registry:write, a checklist checklists:write, as through the API): a rule is
    no way to make a change its author is refused directly."""
    for action in actions:
        authors.require_scope(actor, ACTIONS[action["type"]].scope, action["type"])


def put_rule(name: str, data: RuleIn, actor) -> tuple[Rule, bool]:
    """Create or replace a rule; its actions then run with ``actor``'s rights."""
    validate(data)
    check_reach(actor, data.scope)
    check_action_scopes(actor, [*data.actions, *data.escalation])
    actions, action_secrets = _without_secrets(data.actions)
    escalation, escalation_secrets = _without_secrets(data.escalation)
    with transaction.atomic():
        rule = Rule.objects.select_for_update().filter(name=name).first()
        created = rule is None
        if not created:
            check_reach(actor, rule.scope)  # another team's rule is theirs to change
        rule = rule or Rule(name=name)
        for key, value in authors.written_by(actor).items():
            setattr(rule, key, value)
        rule.trigger, rule.scope = data.trigger, data.scope
        rule.condition = data.condition
        rule.actions, rule.escalation = actions, escalation
        rule.escalate_after_minutes = data.escalate_after_minutes
        rule.cooldown_seconds, rule.enabled = data.cooldown_seconds, data.enabled
        rule.secrets = encryption.encrypt(
            {"actions": action_secrets, "escalation": escalation_secrets}
        )
        rule.updated_at = timezone.now()
        rule.full_clean(exclude=["secrets"])
        rule.save()
        audit.record(
            actor,
            "rule.create" if created else "rule.update",
            "rule",
            name,
            {
                "trigger": data.trigger,
                "condition": data.condition,
                "scope": data.scope,
                "actions": actions,
            },
        )
    return rule, created


def delete_rule(name: str, actor) -> None:
    with transaction.atomic():
        rule = Rule.objects.select_for_update().filter(name=name).first()
        if rule is None:
            raise NotFound(f"no rule named {name!r}")
        check_reach(actor, rule.scope)
        # Audited first: the entry is of the teams of the rule's scope, found through it.
        audit.record(actor, "rule.delete", "rule", name)
        rule.delete()


def in_scope(rule: Rule, service: Service, tags: set[str]) -> bool:
    scope = rule.scope or {}
    if scope.get("services") and service.name not in scope["services"]:
        return False
    if scope.get("team") and (service.team.name if service.team_id else None) != scope["team"]:
        return False
    if scope.get("tag") and scope["tag"] not in tags:
        return False
    return not (scope.get("critical_only") and not service.is_critical)


def fire(alert: Alert, event: str, now, not_before) -> int:
    """Queue the actions of every enabled rule this event of this alert's service sets off
    (outside its cooldown); returns how many deliveries."""
    rules = list(Rule.objects.filter(enabled=True, trigger=event))
    if not rules:
        return 0
    service = Service.objects.select_related("team").get(id=alert.service_id)
    tags = set(service.tags.values_list("name", flat=True))
    queued = 0
    for rule in rules:
        if not in_scope(rule, service, tags):
            continue
        recent = RuleFiring.objects.filter(
            rule=rule,
            service=service,
            escalation=False,
            at__gt=now - timedelta(seconds=rule.cooldown_seconds),
        )
        if recent.exists():
            continue
        RuleFiring.objects.create(rule=rule, alert=alert, service=service, at=now)
        queued += queue_actions(rule, rule.actions, False, not_before, alert=alert, event=event)
    return queued


def escalate_due(now=None) -> int:
    """Escalate what a rule fired for and nobody took up in time: an open alert not
    acknowledged, or a check condition that still holds while its service has no
    acknowledged alert."""
    now = now or timezone.now()
    queued = 0
    with transaction.atomic():
        for firing in (
            RuleFiring.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                escalation=False, rule__enabled=True, rule__escalate_after_minutes__isnull=False
            )
            .filter(
                Q(alert__isnull=False, alert__resolved_at=None, alert__acknowledged_at=None)
                | Q(health_check__isnull=False, cleared_at=None)
            )
            .select_related("rule", "alert", "service", "health_check")
        ):
            rule = firing.rule
            if firing.at + timedelta(minutes=rule.escalate_after_minutes) > now:
                continue
            if (
                firing.alert_id is None
                and Alert.objects.filter(
                    service_id=firing.service_id, resolved_at=None, acknowledged_at__isnull=False
                ).exists()
            ):
                continue  # someone is on the service
            done = RuleFiring.objects.filter(rule=rule, escalation=True)
            if firing.alert_id is not None:
                done = done.filter(alert_id=firing.alert_id)
            else:  # this episode of the condition
                done = done.filter(
                    service_id=firing.service_id,
                    subject=firing.subject,
                    at__gte=firing.at,
                )
            if done.exists():
                continue
            RuleFiring.objects.create(
                rule=rule,
                alert=firing.alert,
                service_id=firing.service_id,
                health_check_id=firing.health_check_id,
                subject=firing.subject,
                condition_kind=firing.condition_kind,
                escalation=True,
                at=now,
            )
            subject = None
            if firing.alert_id is None:
                check = firing.health_check.name if firing.health_check_id else ""
                subject = {
                    "check": check,
                    "message": (
                        f"{check or 'the service'} still meets the {rule.trigger} condition "
                        f"{rule.escalate_after_minutes} min after it began"
                    ),
                    "since": firing.at.isoformat(),
                    "kind": firing.condition_kind,
                }
            queued += queue_actions(
                rule,
                rule.escalation,
                True,
                now,
                alert=firing.alert,
                event=rule.trigger,
                service=firing.service,
                subject=subject,
                escalated=escalation_note(rule, firing.at),
            )
    return queued


def escalation_note(rule: Rule, first_at) -> dict:
    """What an escalation's message says beyond the alert: after how long, since when, and
    who the rule's first actions told (kept on each delivery: the rule may change later)."""
    return {
        "rule": rule.name,
        "after_minutes": rule.escalate_after_minutes,
        "first_at": first_at.isoformat(),
        "first_told": [ACTIONS[a["type"]].describe(a) for a in rule.actions],
    }


def queue_actions(
    rule,
    actions,
    escalation: bool,
    not_before,
    alert=None,
    event=None,
    service=None,
    subject=None,
    escalated: dict | None = None,
) -> int:
    """One delivery per action, for an alert's event or (``service`` and ``subject``) a
    check condition's; an escalation's carry ``escalated`` (``escalation_note``)."""
    channels = {c.name: c for c in NotificationChannel.objects.all()}
    service_id = alert.service_id if alert is not None else service.id
    common = {
        "alert": alert,
        "service_id": service_id,
        "subject": subject,
        "event": event or rule.trigger,
        "rule": rule,
        "not_before": not_before,
        "escalation": escalated if escalation else None,
    }
    rows = []
    for i, action in enumerate(actions):
        label = f"rule:{rule.name}{'/escalation' if escalation else ''}#{i}"
        if action["type"] == "notify":
            channel = channels.get(action["channel"])
            name = channel.name if channel else action["channel"]
            rows.append(Delivery(kind="notify", channel=channel, channel_name=name, **common))
        else:
            action = {**action, "index": i, "escalation": escalation}
            rows.append(
                Delivery(kind=action["type"], channel_name=label[:63], action=action, **common)
            )
    Delivery.objects.bulk_create(rows)
    return len(rows)
