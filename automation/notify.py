"""Sending deliveries: claim what is due, call each receiver once, record every attempt.

Deliveries are rows (automation.models.Delivery), claimed with FOR UPDATE SKIP LOCKED and
leased, so two automation workers never send the same one; a worker that dies mid-send
leaves a lease that expires, and another sends it again (at least once, never silently
lost). Receivers are called concurrently, each bounded by AUTOMATION_SEND_TIMEOUT, so a
receiver that hangs costs one timeout of one thread and holds up nothing else; the health
engine never waits on any of this (its own queues and workers).
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import close_old_connections, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from automation import acklinks
from automation.actions import ACTIONS
from automation.models import (
    TEST_EVENT,
    Alert,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    Event,
    Trigger,
)
from healthchecks.models import CheckState, ServiceHealth
from healthchecks.status import Status

log = structlog.get_logger(__name__)
_CONDITION_TITLE = {
    Trigger.CHECK_FAILING: "FAILING",
    Trigger.HEARTBEAT_MISSED: "NO HEARTBEAT",
    Trigger.PREDICTION: "PREDICTED",
    Trigger.DEPLOYMENT_STARTED: "DEPLOYMENT",
    Trigger.DEPLOYMENT_PASSED: "DEPLOYMENT PASSED",
    Trigger.DEPLOYMENT_FAILED: "DEPLOYMENT FAILED",
}
_SINCE_LABEL = {
    Trigger.PREDICTION: "Expected at",
    Trigger.DEPLOYMENT_STARTED: "Reported at",
    Trigger.DEPLOYMENT_PASSED: "Reported at",
    Trigger.DEPLOYMENT_FAILED: "Reported at",
}


@dataclass(frozen=True)
class Message:
    title: str
    body: str


def service_url(name: str) -> str:
    """Where a person sees the service's status and why: its page."""
    return f"{settings.PORTAL_BASE_URL.rstrip('/')}/services/{name}/"


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def compose(alert: Alert, event: str, impacted: list[str], now, errors=(), why="") -> Message:
    """What a person needs from one message: what, since when, why (``why``: the service's
    reason now, else the alert's cause), what else it takes down, where to look, and (down or
    degraded) a link to acknowledge it, signed now."""
    name = alert.service.name
    since = f"{alert.opened_at:%Y-%m-%d %H:%M:%S} UTC"
    if event == Event.RECOVERED:
        ended = alert.resolved_at or now
        lines = [
            f"{name} recovered at {ended:%Y-%m-%d %H:%M:%S} UTC after "
            f"{_duration(ended - alert.opened_at)} (since {since})."
        ]
    else:
        state = "down" if event == Event.DOWN else "degraded"
        lines = [f"{name} is {state} since {since} ({_duration(now - alert.opened_at)})."]
        if why or alert.cause:
            lines.append(f"Why: {why or alert.cause}")
        if errors:  # what the failing checks answered (failing_errors)
            lines.append(f"Error: {'; '.join(errors)}")
    if impacted:
        one = len(impacted) == 1
        depend, verb = ("depends", "is") if one else ("depend", "are")
        if event == Event.RECOVERED:
            verb = "was" if one else "were"
        lines.append(
            f"Impacted: {len(impacted)} service{'' if one else 's'} that {depend} on it "
            f"{verb} affected: {', '.join(impacted[:50])}"
            + (f" and {len(impacted) - 50} more" if len(impacted) > 50 else "")
        )
    lines.append(f"Status and why: {service_url(name)}")
    if event in (Event.DOWN, Event.DEGRADED):
        lines.append(f"Acknowledge (I am on it): {acklinks.link_for(alert.id)}")
    return Message(title=f"[{event.upper()}] {name}", body="\n".join(lines))


def compose_condition(service: str, event: str, subject: dict) -> Message:
    """A check trigger's or a deployment's message: which check or release, what holds,
    since when, where to look (pure)."""
    lines = [f"{service}: {subject['message']}."]
    if subject.get("since"):
        lines.append(f"{_SINCE_LABEL.get(event, 'Last seen')}: {subject['since']}")
    lines.append(f"Status and why: {service_url(service)}")
    about = f"{service} / {subject['check']}" if subject.get("check") else service
    return Message(title=f"[{_CONDITION_TITLE[event]}] {about}", body="\n".join(lines))


# A notification quotes at most this many failing checks, each error cut to this length:
# enough to say what broke (``HTTP 503 (expected 2xx/3xx)``), never a page of output.
ERRORS_QUOTED, ERROR_CHARS = 3, 200


def failing_errors(service_id: int) -> list[str]:
    """What the service's failing (or degraded) checks last answered, as ``check: error``:
    their latest result's errors (warnings for a degraded check without one), scrubbed of
    the checks' secrets when recorded (healthchecks.probes.outcome.redact), cut short."""
    found = []
    for name, outcome in (
        CheckState.objects.filter(
            health_check__service_id=service_id,
            health_check__enabled=True,
            status__in=[Status.UNHEALTHY, Status.DEGRADED],
        )
        .order_by("-status", "health_check__name")
        .values_list("health_check__name", "last_outcome")
    ):
        said = (outcome or {}).get("errors") or (outcome or {}).get("warnings") or []
        if said:
            text = "; ".join(str(s) for s in said)
            cut = text if len(text) <= ERROR_CHARS else f"{text[: ERROR_CHARS - 3]}..."
            found.append(f"{name}: {cut}")
    if len(found) > ERRORS_QUOTED:
        return [*found[:ERRORS_QUOTED], f"and {len(found) - ERRORS_QUOTED} more failing"]
    return found


def reason_now(service_id: int) -> str:
    """Why the service is down or degraded now: its reason may change while its status does
    not (a check waiting, then failing), and the alert keeps the reason of its last status
    change -- a reminder sent an hour later says why now. "" when it is no longer bad (the
    recovery is on its way): the alert's cause then."""
    return (
        ServiceHealth.objects.filter(
            service_id=service_id, status__in=[Status.UNHEALTHY, Status.DEGRADED]
        )
        .values_list("reason", flat=True)
        .first()
        or ""
    )


def as_reminder(message: Message, n: int, channel) -> Message:
    """The alert again, saying it is reminder ``n`` and until when reminders go on."""
    every = channel.remind_every_minutes if channel is not None else None
    pace = f"every {every} min" if every else "again"
    return Message(
        title=f"[REMINDER {n}] {message.title}",
        body=f"Reminder {n}: nobody has acknowledged this alert yet (reminded {pace} until "
        f"someone does or it recovers).\n{message.body}",
    )


def as_escalation(message: Message, note: dict, now) -> Message:
    """The alert (or check condition) escalated by a rule: after how long, and who its
    first actions told (rules.escalation_note)."""
    first_at = datetime.fromisoformat(note["first_at"])
    told = ", ".join(note.get("first_told") or []) or "nobody"
    return Message(
        title=f"[ESCALATED] {message.title}",
        body=f"Escalated by rule {note['rule']}: nobody acknowledged it within "
        f"{note['after_minutes']} min (first told {_duration(now - first_at)} ago, at "
        f"{first_at:%Y-%m-%d %H:%M:%S} UTC: {told}).\n{message.body}",
    )


def compose_test(channel: str, subject: dict, now) -> Message:
    """A person's test of a channel: who asked, when, and that nothing is wrong (pure)."""
    by = subject.get("by") or "the portal"
    return Message(
        title=f"[TEST] Portal test message from {by}",
        body=f"A test message from the service portal to the channel {channel}, sent at "
        f"{now:%Y-%m-%d %H:%M:%S} UTC on the request of {by}. Nothing is wrong; if you "
        f"read this, the channel works.\nPortal: {settings.PORTAL_BASE_URL.rstrip('/')}/",
    )


def impacted_names(alert: Alert) -> list[str]:
    """The services folded into this alert now (open alerts pointing at it)."""
    return sorted(alert.impacted.filter(resolved_at=None).values_list("service__name", flat=True))


def send_due(limit: int = 50, now=None) -> int:
    """Send what is due (up to ``limit`` at once); returns how many were handled."""
    claimed = _claim(limit, now or timezone.now())
    if not claimed:
        return 0
    workers = min(len(claimed), settings.AUTOMATION_SEND_CONCURRENCY)
    if connection.vendor == "sqlite":
        workers = 1  # the embedded mode's database takes one writer at a time
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deliver") as pool:
        list(pool.map(_deliver_in_thread, claimed))
    return len(claimed)


def _claim(limit: int, now) -> list[int]:
    lease = timedelta(seconds=settings.AUTOMATION_SEND_TIMEOUT * 2 + 30)
    with transaction.atomic():
        due = Q(state__in=[DeliveryState.PENDING, DeliveryState.RETRYING], not_before__lte=now)
        lost = Q(state=DeliveryState.SENDING, lease_until__lt=now)
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(due | lost)
            .order_by("not_before", "id")
            .values_list("id", flat=True)[:limit]
        )
        Delivery.objects.filter(id__in=ids).update(
            state=DeliveryState.SENDING, lease_until=now + lease
        )
    return ids


def _deliver_in_thread(delivery_id: int) -> None:
    try:
        deliver(delivery_id)
    finally:
        connections.close_all()  # a thread's connection goes back to the pool


def deliver(delivery_id: int) -> None:
    """One attempt at one claimed delivery, recorded whatever happens."""
    close_old_connections()
    send_one(delivery_id)


def send_one(delivery_id: int) -> None:
    """``deliver`` on the caller's connection as it is (a channel's test, answered at once,
    may be asked for inside a transaction)."""
    delivery = Delivery.objects.select_related(
        "alert__service", "alert__root__service", "service", "channel", "rule"
    ).get(id=delivery_id)
    alert = delivery.alert
    if reason := _no_longer_wanted(delivery):
        _finish(delivery, DeliveryState.SKIPPED, reason)
        return
    started = timezone.now()
    if delivery.event == TEST_EVENT:  # a person's test of the channel (automation.tryout)
        impacted = []
        message = compose_test(delivery.channel_name, delivery.subject or {}, started)
    elif alert is None:  # a check trigger's action
        impacted = []
        message = compose_condition(delivery.service.name, delivery.event, delivery.subject)
    else:
        impacted = delivery.impacted if delivery.impacted is not None else impacted_names(alert)
        errors, why = [], ""
        if delivery.event != Event.RECOVERED:
            errors, why = failing_errors(alert.service_id), reason_now(alert.service_id)
        message = compose(alert, delivery.event, impacted, started, errors=errors, why=why)
    if delivery.reminder:
        message = as_reminder(message, delivery.reminder, delivery.channel)
    if delivery.escalation:
        message = as_escalation(message, delivery.escalation, started)
    kind = ACTIONS[delivery.kind]
    if kind.calls_out and not connection.in_atomic_block:
        # The call may take its whole timeout: this thread's connection goes back to the
        # pool meanwhile (more senders than a process's DB_POOL_SIZE must not starve it).
        connection.close()
    try:
        ok, http_status, error = kind.run(delivery, message, impacted)
    except Exception as exc:  # a notifier's own bug, an undecryptable URL: an attempt too
        log.exception("delivery failed", delivery=delivery.id)
        ok, http_status, error = False, None, f"{type(exc).__name__}: {exc}"[:500]
    number = delivery.attempts + 1
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=number,
        started_at=started,
        finished_at=timezone.now(),
        ok=ok,
        http_status=http_status,
        error=error[:2000],
    )
    Delivery.objects.filter(id=delivery.id).update(attempts=number)
    delivery.attempts = number
    if ok:
        _finish(delivery, DeliveryState.SENT, "")
    elif delivery.event == TEST_EVENT:  # answered to the person at once: never retried
        _finish(delivery, DeliveryState.FAILED, f"a test message is tried once: {error}")
    elif number >= settings.AUTOMATION_MAX_ATTEMPTS:
        _finish(delivery, DeliveryState.FAILED, f"gave up after {number} attempts: {error}")
    else:
        backoff = settings.AUTOMATION_RETRY_SECONDS * 2 ** (number - 1)
        Delivery.objects.filter(id=delivery.id).update(
            state=DeliveryState.RETRYING,
            not_before=timezone.now() + timedelta(seconds=min(backoff, 3600)),
            lease_until=None,
            detail=error[:2000],
        )


def _no_longer_wanted(delivery: Delivery) -> str:
    alert = delivery.alert
    if not settings.ENABLE_HEALTH_AUTOMATION:
        return "automation is disabled (ENABLE_HEALTH_AUTOMATION=false)"
    if delivery.kind == "notify" and delivery.channel is None:
        return "the channel was deleted"
    if alert is not None and delivery.event != Event.RECOVERED:
        if alert.resolved_at is not None:
            return "recovered before it was announced"
        if alert.root_id is not None:
            return f"folded into the alert of {alert.root.service.name}"
        if alert.silenced:
            return alert.silenced
        if delivery.reminder or delivery.escalation:
            return _no_longer_pressing(delivery, alert)
    return ""


def _no_longer_pressing(delivery: Delivery, alert: Alert) -> str:
    """A reminder or an escalation queued before someone acknowledged the alert (or its
    service went into maintenance, or the channel stopped reminding) is not sent."""
    if alert.acknowledged_at is not None:
        return f"acknowledged by {alert.acknowledged_by} before it was sent"
    if ServiceHealth.objects.filter(
        service_id=alert.service_id, status=Status.MAINTENANCE
    ).exists():
        return "the service is in maintenance"
    if delivery.reminder and not delivery.channel.remind_every_minutes:
        return "the channel no longer sends reminders"
    return ""


def _finish(delivery: Delivery, state: str, detail: str) -> None:
    Delivery.objects.filter(id=delivery.id).update(
        state=state, detail=detail[:2000], finished_at=timezone.now(), lease_until=None
    )
