"""Sending deliveries: claim what is due, call each receiver once, record every attempt.

Deliveries are rows (automation.models.Delivery), claimed with FOR UPDATE SKIP LOCKED and
leased, so two automation workers never send the same one; a worker that dies mid-send
leaves a lease that expires, and another sends it again (at least once, never silently
lost). Receivers are called concurrently, each bounded by AUTOMATION_SEND_TIMEOUT, so a
receiver that hangs costs one timeout of one thread and holds up nothing else; the health
engine never waits on any of this (its own queues and workers).
"""

import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import apprise
import structlog
from django.conf import settings
from django.db import close_old_connections, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from automation import channels, rules, sendlog
from automation.models import Alert, Delivery, DeliveryAttempt, DeliveryState, Event, Trigger
from checklists import runs
from portal.errors import PortalError
from services import lifecycle

log = structlog.get_logger(__name__)
_HTTP_STATUS = re.compile(r"error=(\d{3})")
_NOTIFY_TYPE = {
    Event.DOWN: apprise.NotifyType.FAILURE,
    Event.DEGRADED: apprise.NotifyType.WARNING,
    Event.RECOVERED: apprise.NotifyType.SUCCESS,
    Trigger.CHECK_FAILING: apprise.NotifyType.FAILURE,
    Trigger.HEARTBEAT_MISSED: apprise.NotifyType.FAILURE,
    Trigger.PREDICTION: apprise.NotifyType.WARNING,
}
_CONDITION_TITLE = {
    Trigger.CHECK_FAILING: "FAILING",
    Trigger.HEARTBEAT_MISSED: "NO HEARTBEAT",
    Trigger.PREDICTION: "PREDICTED",
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


def compose(alert: Alert, event: str, impacted: list[str], now) -> Message:
    """What a person needs from one message: what, since when, why, what else it takes
    down, and where to look (pure)."""
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
        if alert.cause:
            lines.append(f"Why: {alert.cause}")
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
    return Message(title=f"[{event.upper()}] {name}", body="\n".join(lines))


def compose_condition(service: str, event: str, subject: dict) -> Message:
    """A check trigger's message: which check, what holds, since when, where to look (pure)."""
    lines = [f"{service}: {subject['message']}."]
    if subject.get("since"):
        label = "Expected at" if event == Trigger.PREDICTION else "Last seen"
        lines.append(f"{label}: {subject['since']}")
    lines.append(f"Status and why: {service_url(service)}")
    about = f"{service} / {subject['check']}" if subject.get("check") else service
    return Message(title=f"[{_CONDITION_TITLE[event]}] {about}", body="\n".join(lines))


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
    delivery = Delivery.objects.select_related(
        "alert__service", "alert__root__service", "service", "channel", "rule"
    ).get(id=delivery_id)
    alert = delivery.alert
    if reason := _no_longer_wanted(delivery):
        _finish(delivery, DeliveryState.SKIPPED, reason)
        return
    started = timezone.now()
    if alert is None:  # a check trigger's action
        impacted = []
        message = compose_condition(delivery.service.name, delivery.event, delivery.subject)
    else:
        impacted = delivery.impacted if delivery.impacted is not None else impacted_names(alert)
        message = compose(alert, delivery.event, impacted, started)
    action = delivery.action or {}
    if action.get("type") not in ("lifecycle", "checklist"):
        # The call may take its whole timeout: this thread's connection goes back to the
        # pool meanwhile (more senders than a process's DB_POOL_SIZE must not starve it).
        connection.close()
    try:
        ok, http_status, error = _send(delivery, message, impacted)
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
    if delivery.channel is None and delivery.action is None:
        return "the channel was deleted"
    if alert is not None and delivery.event != Event.RECOVERED:
        if alert.resolved_at is not None:
            return "recovered before it was announced"
        if alert.root_id is not None:
            return f"folded into the alert of {alert.root.service.name}"
        if alert.silenced:
            return alert.silenced
    return ""


def _send(
    delivery: Delivery, message: Message, impacted: list[str]
) -> tuple[bool, int | None, str]:
    if delivery.action is not None and delivery.action["type"] == "lifecycle":
        return _move_lifecycle(delivery)
    if delivery.action is not None and delivery.action["type"] == "checklist":
        return _start_checklist(delivery)
    if delivery.action is not None:
        return _call_webhook(delivery, impacted)
    url = channels.url_of(delivery.channel)
    plugin = channels.plugin_for(url)
    if plugin is None:
        return False, None, "apprise no longer understands the channel's URL"
    if reason := channels.refusal(url, plugin):
        return False, None, reason
    timeout = settings.AUTOMATION_SEND_TIMEOUT
    # A redirect would lead away from the host the policy judged (to a metadata address,
    # say): apprise's plugins honour this and treat a 3xx as a failure.
    plugin.redirects = False
    plugin.socket_connect_timeout = min(timeout, 5.0)
    plugin.socket_read_timeout = timeout
    try:
        # Only this thread's lines: the deliveries sent beside it log through the same logger.
        with sendlog.capture() as said:
            ok = plugin.notify(
                body=message.body, title=message.title, notify_type=_NOTIFY_TYPE[delivery.event]
            )
    except Exception as exc:  # its message may name the URL: told without its secrets
        raise RuntimeError(channels.redact(f"{type(exc).__name__}: {exc}", url)) from None
    # What the notifier said names the URL it called (a socket error's "with url: /hooks/
    # <token>"): kept in the attempt row, so without the URL's secrets.
    return ok, *_outcome(ok, channels.redact(said.text(), url))


def _call_webhook(delivery: Delivery, impacted: list[str]) -> tuple[bool, int | None, str]:
    """A rule's webhook action: the network policy first (resolved, every address judged),
    then one request with the action's timeout; success is the expected status (2xx)."""
    action = delivery.action
    url = action["url"]
    if reason := channels.host_refusal_of_url(url):
        return False, None, f"refused by the network policy: {reason}"
    body = rules.render_body(action.get("body", ""), delivery, impacted)
    headers = {"Content-Type": "application/json", "User-Agent": "service-portal"}
    headers.update(rules.headers_of(delivery.rule, action["escalation"], action["index"]))
    # The URL was checked to be http(s) when the rule was saved (rules.validate).
    request = urllib.request.Request(  # noqa: S310
        url, data=body.encode() if body else None, headers=headers, method=action["method"]
    )
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    expected = action.get("expect_status")
    try:
        with direct.open(request, timeout=action.get("timeout", 10)) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        return False, None, f"{type(exc).__name__}: {exc}"[:500]
    ok = status == expected if expected else 200 <= status < 300
    return ok, status, "" if ok else f"answered {status}, expected {expected or '2xx'}"


def _move_lifecycle(delivery: Delivery) -> tuple[bool, int | None, str]:
    """A rule's lifecycle action, through the registry's one write path (audited as the
    rule and its author, whose rights it has). Lifecycle does not feed health, so it cannot
    set the rule off again."""
    alert = delivery.alert
    name = (delivery.service or alert.service).name
    cause = alert.cause if alert else (delivery.subject or {}).get("message", "")
    reason = f"automation: {delivery.event} ({cause or 'no cause given'})"
    try:
        actor = rules.acting_for(delivery.rule, delivery.action)  # its author's rights, now
        lifecycle.transition(name, delivery.action["to"], reason[:500], actor)
    except PortalError as exc:
        return False, exc.status, exc.message
    return True, None, ""


def _start_checklist(delivery: Delivery) -> tuple[bool, int | None, str]:
    """A rule's checklist action: the service's checklist started (as the rule's author), its
    verifiable items answered now. Checklists do not feed health: no loop."""
    name = (delivery.service or delivery.alert.service).name
    try:
        actor = rules.acting_for(delivery.rule, delivery.action)  # its author's rights, now
        runs.start_for_service(delivery.action["template"], name, actor)
    except PortalError as exc:
        return False, exc.status, exc.message
    return True, None, ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would leave the address the policy judged: not followed."""

    def redirect_request(self, *args, **kwargs):
        return None


def _outcome(ok: bool, log_text: str) -> tuple[int | None, str]:
    """(HTTP status, error) from what the notifier logged: apprise returns only a bool, and
    says the rest in its warnings (and, for socket errors, a debug line)."""
    found = _HTTP_STATUS.search(log_text)
    if ok:
        return (int(found.group(1)) if found else None), ""
    said = [
        line.split(" ", 1)[1].strip()
        for line in log_text.splitlines()
        if line.startswith(("WARNING ", "ERROR ", "CRITICAL "))
        or (line.startswith("DEBUG ") and "Exception" in line)
    ]
    error = " | ".join(said)[:2000] or "the notifier reported a failure"
    return (int(found.group(1)) if found else None), error


def _finish(delivery: Delivery, state: str, detail: str) -> None:
    Delivery.objects.filter(id=delivery.id).update(
        state=state, detail=detail[:2000], finished_at=timezone.now(), lease_until=None
    )
