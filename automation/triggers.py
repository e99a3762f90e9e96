"""Check triggers: rules set off by a condition of one check rather than by an alert.

Three conditions, read from what the health engine and the predictor already store:

- ``check_failing``: the check failed ``condition.failures`` times in a row (its state's
  consecutive failures), whether or not the service's status moved (a non-critical check,
  a retry budget not yet spent);
- ``heartbeat_missed``: a heartbeat check's last verdict is "no heartbeat";
- ``prediction``: a prediction (of ``condition.kinds``, or any) stands for the check.

A condition is an episode: the rule fires when it is first seen (outside the rule's cooldown
for the service, the service not in maintenance), its firing stays open while it holds and is
cleared when it stops, so it fires again only on a new episode. ``evaluate`` runs in the
automation tick under the outbox's lock, and one open firing per (rule, check, subject) is a
database constraint: two automation workers never fire the same episode twice.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from automation import alerts, rules
from automation.models import CHECK_TRIGGERS, Rule, RuleFiring, Trigger
from healthchecks.models import CheckState, Prediction, ServiceHealth
from healthchecks.probes import KINDS
from healthchecks.status import ErrorCode, Status
from services.models import Service


@dataclass(frozen=True)
class Condition:
    """One check meeting a rule's condition now."""

    service_id: int
    check_id: int | None  # None: the whole service (its error budget)
    check: str
    message: str
    since: datetime | None
    kind: str = ""  # a prediction's kind (one check may have several)

    @property
    def key(self) -> str:
        """The episode's name on its firing."""
        if self.check_id is None:
            return f"service/{self.kind}"
        return f"check:{self.check_id}/{self.kind}"


def failing(min_failures: int) -> list[Condition]:
    rows = CheckState.objects.filter(
        consecutive_failures__gte=min_failures, health_check__enabled=True
    ).values_list(
        "health_check_id",
        "health_check__service_id",
        "health_check__name",
        "consecutive_failures",
        "last_error_code",
        "last_result_at",
    )
    return [
        Condition(
            service_id,
            check_id,
            name,
            f"{name} failed {count} times in a row ({ErrorCode(code).label})",
            at,
        )
        for check_id, service_id, name, count, code, at in rows
    ]


def heartbeat_missed() -> list[Condition]:
    rows = CheckState.objects.filter(
        health_check__kind__in=[name for name, kind in KINDS.items() if kind.pushed],
        health_check__enabled=True,
        last_error_code=ErrorCode.NO_HEARTBEAT,
    ).values_list(
        "health_check_id", "health_check__service_id", "health_check__name", "last_ping_at"
    )
    return [
        Condition(
            service_id,
            check_id,
            name,
            f"no heartbeat for {name} "
            + (f"since {last:%Y-%m-%d %H:%M:%S} UTC" if last else "(none ever came)"),
            last,
        )
        for check_id, service_id, name, last in rows
    ]


def predicted(kinds: list[str]) -> list[Condition]:
    rows = Prediction.objects.all()
    if kinds:
        rows = rows.filter(kind__in=kinds)
    return [
        Condition(service_id, check_id, name or "", message, expected, kind)
        for service_id, check_id, name, message, expected, kind in rows.values_list(
            "service_id", "health_check_id", "health_check__name", "message", "expected_at", "kind"
        )
    ]


def conditions_of(rule: Rule) -> list[Condition]:
    condition = rule.condition or {}
    if rule.trigger == Trigger.CHECK_FAILING:
        return failing(condition.get("failures", 3))
    if rule.trigger == Trigger.HEARTBEAT_MISSED:
        return heartbeat_missed()
    return predicted(condition.get("kinds", []))


def evaluate(now=None) -> int:
    """Fire the check-trigger rules whose conditions appeared, clear those that went away;
    returns how many deliveries were queued."""
    now = now or timezone.now()
    check_rules = list(Rule.objects.filter(enabled=True, trigger__in=CHECK_TRIGGERS))
    with transaction.atomic():
        if not alerts.outbox_lock():
            return 0
        if not check_rules:
            return 0
        queued = 0
        resting = set(
            ServiceHealth.objects.filter(status=Status.MAINTENANCE).values_list(
                "service_id", flat=True
            )
        )
        for rule in check_rules:
            queued += _evaluate_rule(rule, conditions_of(rule), resting, now)
        return queued


def _evaluate_rule(rule: Rule, found: list[Condition], resting: set[int], now) -> int:
    open_firings = {
        f.subject: f
        for f in RuleFiring.objects.select_for_update().filter(
            rule=rule, escalation=False, cleared_at=None, alert=None
        )
    }
    current = {c.key: c for c in found}
    gone = [f.id for key, f in open_firings.items() if key not in current]
    RuleFiring.objects.filter(id__in=gone).update(cleared_at=now)
    new = [c for key, c in current.items() if key not in open_firings]
    if not new:
        return 0
    services = Service.objects.select_related("team").prefetch_related("tags")
    services = {s.id: s for s in services.filter(id__in={c.service_id for c in new})}
    cooling = set(
        RuleFiring.objects.filter(
            rule=rule,
            escalation=False,
            service_id__in=list(services),
            at__gt=now - timedelta(seconds=rule.cooldown_seconds),
        ).values_list("service_id", flat=True)
    )
    queued = 0
    for condition in sorted(new, key=lambda c: (c.service_id, c.key)):
        service = services[condition.service_id]
        tags = {t.name for t in service.tags.all()}
        if condition.service_id in resting or not rules.in_scope(rule, service, tags):
            continue  # in maintenance: it fires when the window ends, if it still holds
        if condition.service_id in cooling:
            continue
        cooling.add(condition.service_id)
        RuleFiring.objects.create(
            rule=rule,
            service=service,
            health_check_id=condition.check_id,
            subject=condition.key,
            condition_kind=condition.kind,
            at=now,
        )
        queued += rules.queue_actions(
            rule, rule.actions, False, now, service=service, subject=subject_of(condition)
        )
    return queued


def subject_of(condition: Condition) -> dict:
    """What a check trigger's deliveries say (stored with them: the condition may be gone
    by the time they are sent)."""
    return {
        "check": condition.check,
        "message": condition.message,
        "since": condition.since.isoformat() if condition.since else None,
        "kind": condition.kind,
    }
