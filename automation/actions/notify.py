"""Notify a channel: an apprise URL (automation.channels), judged by the network policy where
its notifier really connects, before every send. Alert notifications are this kind too."""

import re
from typing import Literal

import apprise
from django.conf import settings
from ninja import Schema
from pydantic import ConfigDict

from automation import channels, schemes, sendlog
from automation.actions.kinds import ActionKind, Outcome
from automation.models import TEST_EVENT, Event, NotificationChannel, Trigger
from portal import egress
from portal.fields import Name

_HTTP_STATUS = re.compile(r"error=(\d{3})")
_NOTIFY_TYPE = {
    Event.DOWN: apprise.NotifyType.FAILURE,
    Event.DEGRADED: apprise.NotifyType.WARNING,
    Event.RECOVERED: apprise.NotifyType.SUCCESS,
    Trigger.CHECK_FAILING: apprise.NotifyType.FAILURE,
    Trigger.HEARTBEAT_MISSED: apprise.NotifyType.FAILURE,
    Trigger.PREDICTION: apprise.NotifyType.WARNING,
    Event.DEPLOYMENT_STARTED: apprise.NotifyType.INFO,
    Event.DEPLOYMENT_PASSED: apprise.NotifyType.SUCCESS,
    Event.DEPLOYMENT_FAILED: apprise.NotifyType.FAILURE,
    TEST_EVENT: apprise.NotifyType.INFO,
}


class NotifyAction(Schema):
    model_config = ConfigDict(extra="forbid")

    type: Literal["notify"]
    channel: Name


def check(action: dict, path: str, fields: dict) -> None:
    if not NotificationChannel.objects.filter(name=action["channel"]).exists():
        fields[f"{path}.channel"] = f"no notification channel named {action['channel']!r}"


def run(delivery, message, impacted) -> Outcome:
    url = channels.url_of(delivery.channel)
    plugin = channels.plugin_for(url)
    if plugin is None:
        return False, None, "apprise no longer understands the channel's URL"
    if reason := channels.refusal(url, plugin, resolve=False):
        return False, None, reason
    places, vendor = schemes.accepted(plugin).reaches(plugin)
    timeout = settings.AUTOMATION_SEND_TIMEOUT
    # A redirect would lead away from the host the policy judged (to a metadata address,
    # say): apprise's plugins honour this and treat a 3xx as a failure.
    plugin.redirects = False
    plugin.socket_connect_timeout = min(timeout, 5.0)
    plugin.socket_read_timeout = timeout
    try:
        # Only this thread's lines: the deliveries sent beside it log through the same logger.
        # The notifier connects through the egress guard, to its scheme's place only.
        with (
            sendlog.capture() as said,
            egress.guard(only=places, trusted=places if vendor else ()) as guarded,
        ):
            ok = plugin.notify(
                body=message.body, title=message.title, notify_type=_NOTIFY_TYPE[delivery.event]
            )
    except Exception as exc:  # its message may name the URL: told without its secrets
        raise RuntimeError(channels.redact(f"{type(exc).__name__}: {exc}", url)) from None
    if not ok and guarded.refused:
        return False, None, f"refused by the network policy: {guarded.refused[0]}"
    # What the notifier said names the URL it called (a socket error's "with url: /hooks/
    # <token>"): kept in the attempt row, so without the URL's secrets.
    status, error = _outcome(ok, channels.redact(said.text(), url))
    if error and guarded.reached:  # where it tried: what a person looks at first
        error = f"{error} (tried {', '.join(egress.format_host_port(*p) for p in guarded.reached)})"
    return ok, status, error


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


def describe(action: dict) -> str:
    return action["channel"]


KIND = ActionKind("notify", NotifyAction, run, check, describe=describe)
