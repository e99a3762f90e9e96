"""Rules: what to do, beyond telling the channels, when a service's health changes.

A rule has a trigger (a service goes down, degraded, or recovers), a scope (listed services,
a team, a tag, critical services only; nothing: every service) and actions: notify a
channel; call a webhook (method, URL, headers kept as secrets, a body template, a timeout,
the status that means success); move the service's lifecycle status. It fires once per
service per cooldown; when the alert is neither acknowledged nor resolved
``escalate_after_minutes`` after it opened, its escalation actions run once. Actions are
deliveries like any notification (sent concurrently, recorded, retried, never blocking).
Rules fire on health changes only, and no action changes health, so an action cannot set off
its own rule again; the cooldown bounds a flapping service.
"""

import string
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from automation.models import Alert, Delivery, NotificationChannel, Rule, RuleFiring
from healthchecks.netpolicy import NetworkPolicy, parse_http_url
from portal import audit, encryption
from portal.errors import InvalidInput, NotFound
from services.models import Service, Tag, Team

TEMPLATE_FIELDS = ("service", "event", "status", "cause", "since", "impacted", "url")


@dataclass(frozen=True)
class RuleIn:
    trigger: str
    scope: dict
    actions: list[dict]
    escalation: list[dict] = field(default_factory=list)
    escalate_after_minutes: int | None = None
    cooldown_seconds: int = 300
    enabled: bool = True


def _check_actions(actions: list[dict], where: str, fields: dict) -> None:
    channels = set(NotificationChannel.objects.values_list("name", flat=True))
    policy = NetworkPolicy.from_settings()
    for i, action in enumerate(actions):
        path = f"{where}[{i}]"
        if action["type"] == "notify" and action["channel"] not in channels:
            fields[f"{path}.channel"] = f"no notification channel named {action['channel']!r}"
        elif action["type"] == "webhook":
            try:
                url = parse_http_url(action["url"])
            except ValueError as exc:
                fields[f"{path}.url"] = str(exc)
                continue
            if reason := policy.endpoint_refusal(url.raw_host or "", url.port or 0):
                fields[f"{path}.url"] = f"refused by the network policy: {reason}"
            try:
                string.Template(action.get("body", "")).substitute(
                    dict.fromkeys(TEMPLATE_FIELDS, "")
                )
            except (KeyError, ValueError) as exc:
                fields[f"{path}.body"] = (
                    f"unknown placeholder {exc}; use ${', $'.join(TEMPLATE_FIELDS)}"
                )


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
    if data.escalation and not data.escalate_after_minutes:
        fields["escalate_after_minutes"] = "escalation actions need escalate_after_minutes"
    if fields:
        raise InvalidInput("the rule was not saved", fields=fields)


def rotate_secrets() -> int:
    """Re-encrypt every rule's webhook headers with the newest key (key rotation)."""
    count = 0
    for pk, token in Rule.objects.exclude(secrets="").values_list("id", "secrets"):
        Rule.objects.filter(pk=pk).update(secrets=encryption.rotate(token))
        count += 1
    return count


def _without_secrets(actions: list[dict]) -> tuple[list[dict], dict]:
    shown, secrets = [], {}
    for i, action in enumerate(actions):
        action = dict(action)
        if headers := action.pop("headers", None):
            secrets[str(i)] = headers
            action["headers"] = sorted(headers)  # the names, never the values
        shown.append(action)
    return shown, secrets


def put_rule(name: str, data: RuleIn, actor) -> tuple[Rule, bool]:
    validate(data)
    actions, action_secrets = _without_secrets(data.actions)
    escalation, escalation_secrets = _without_secrets(data.escalation)
    with transaction.atomic():
        rule = Rule.objects.select_for_update().filter(name=name).first()
        created = rule is None
        rule = rule or Rule(name=name)
        rule.trigger, rule.scope = data.trigger, data.scope
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
            {"trigger": data.trigger, "scope": data.scope, "actions": actions},
        )
    return rule, created


def delete_rule(name: str, actor) -> None:
    with transaction.atomic():
        deleted, _ = Rule.objects.filter(name=name).delete()
        if not deleted:
            raise NotFound(f"no rule named {name!r}")
        audit.record(actor, "rule.delete", "rule", name)


def headers_of(rule: Rule, escalation: bool, index: int) -> dict:
    if not rule.secrets:
        return {}
    stored = encryption.decrypt(rule.secrets)
    return stored["escalation" if escalation else "actions"].get(str(index), {})


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
        queued += _queue_actions(rule, alert, event, rule.actions, False, not_before)
    return queued


def escalate_due(now=None) -> int:
    """Escalate the open alerts a rule fired for that nobody acknowledged in time."""
    now = now or timezone.now()
    queued = 0
    with transaction.atomic():
        for firing in (
            RuleFiring.objects.select_for_update(skip_locked=True)
            .filter(
                escalation=False,
                rule__enabled=True,
                rule__escalate_after_minutes__isnull=False,
                alert__resolved_at=None,
                alert__acknowledged_at=None,
            )
            .select_related("rule", "alert")
        ):
            rule, alert = firing.rule, firing.alert
            if alert.opened_at + timedelta(minutes=rule.escalate_after_minutes) > now:
                continue
            if RuleFiring.objects.filter(rule=rule, alert=alert, escalation=True).exists():
                continue
            RuleFiring.objects.create(
                rule=rule, alert=alert, service_id=alert.service_id, escalation=True, at=now
            )
            queued += _queue_actions(rule, alert, rule.trigger, rule.escalation, True, now)
    return queued


def _queue_actions(rule, alert, event, actions, escalation: bool, not_before) -> int:
    channels = {c.name: c for c in NotificationChannel.objects.all()}
    rows = []
    for i, action in enumerate(actions):
        label = f"rule:{rule.name}{'/escalation' if escalation else ''}#{i}"
        if action["type"] == "notify":
            channel = channels.get(action["channel"])
            rows.append(
                Delivery(
                    alert=alert,
                    channel=channel,
                    channel_name=channel.name if channel else action["channel"],
                    event=event,
                    rule=rule,
                    not_before=not_before,
                )
            )
        else:
            rows.append(
                Delivery(
                    alert=alert,
                    channel=None,
                    channel_name=label[:63],
                    event=event,
                    rule=rule,
                    action={**action, "index": i, "escalation": escalation},
                    not_before=not_before,
                )
            )
    Delivery.objects.bulk_create(rows)
    return len(rows)


def render_body(template: str, alert: Alert, event: str, impacted: list[str]) -> str:
    values = {
        "service": alert.service.name,
        "event": event,
        "status": event,
        "cause": alert.cause,
        "since": alert.opened_at.isoformat(),
        "impacted": ", ".join(impacted),
        "url": f"{settings.PORTAL_BASE_URL.rstrip('/')}/health/service/{alert.service.name}",
    }
    return string.Template(template).safe_substitute(values)
