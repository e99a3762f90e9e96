"""Notification channels: one write path (validated, encrypted, audited) and how a channel's
apprise URL is judged against the network policy.

A channel URL holds credentials (a webhook's path, a bot token), so it is stored encrypted
and shown back only with apprise's own masking. Only the schemes of automation.schemes are
accepted, each without the parameters that reach past the policy; where its notifier
connects to a host of the user's choosing -- the URL's host, an e-mail's SMTP server --
that address must pass the same network policy as the probes, when the channel is saved and
again before each send (DNS may have moved). Hosted services (Slack, PagerDuty ...) connect
to their vendor's fixed address.
"""

import re
import socket
from dataclasses import dataclass
from urllib.parse import quote, unquote

import apprise
from django.db import transaction
from django.utils import timezone

from automation import schemes
from automation.models import REMIND_EVERY_MINUTES, Event, NotificationChannel
from portal import audit, encryption
from portal.auth import check_reach
from portal.egress import NetworkPolicy, TargetError, check_host_syntax, check_port, ip_literal
from portal.errors import InvalidInput, NotFound
from services.models import Team

ALL_EVENTS = [e.value for e in Event]


@dataclass(frozen=True)
class ChannelIn:
    url: str
    teams: list[str]
    events: list[str]
    # An unacknowledged alert sent again this often (automation.reminders); None: never.
    remind_every_minutes: int | None = None


def plugin_for(url: str):
    """apprise's notifier for ``url``, or None when apprise does not understand it."""
    try:
        return apprise.Apprise.instantiate(url, suppress_exceptions=True) or None
    except Exception:  # a plugin's own parsing error means "not understood"
        return None


def refusal(
    url: str, plugin, policy: NetworkPolicy | None = None, *, resolve: bool = True
) -> str | None:
    """Why a channel may not use ``url`` (``plugin``, its notifier), or None: a scheme the
    portal does not accept, a parameter that reaches past the network policy, or a refused
    destination -- the address the notifier really connects to, judged as the probes do
    (resolved, every address, when saving; a send resolves it once, inside the egress
    guard, and connects to what was judged)."""
    scheme = schemes.accepted(plugin)
    if scheme is None:
        return schemes.not_accepted(plugin)
    if reason := scheme.refused_parameter(url):
        return reason
    where = scheme.connects(plugin)
    if where is None:  # the vendor's own address
        return None
    try:
        check_host_syntax(where.host)
        check_port(where.port)
    except TargetError as exc:
        return f"{where}: {exc}"
    judge = _refusal if resolve else _static_refusal
    if reason := judge(where.host, where.port, policy):
        return f"refused by the network policy: {where}: {reason}"
    return None


def _static_refusal(host: str, port: int, policy: NetworkPolicy | None = None) -> str | None:
    return (policy or NetworkPolicy.from_settings()).endpoint_refusal(host, port)


def _refusal(host: str, port: int, policy: NetworkPolicy | None = None) -> str | None:
    policy = policy or NetworkPolicy.from_settings()
    if reason := policy.endpoint_refusal(host, port):
        return reason
    if ip_literal(host) is not None:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"{host} does not resolve ({exc.strerror})"
    for *_, sockaddr in infos:
        if reason := policy.address_refusal(sockaddr[0]):
            return f"{host} resolves to a refused address: {reason}"
    return None


def validate(name: str, data: ChannelIn) -> tuple[str, dict]:
    fields: dict[str, str] = {}
    plugin = plugin_for(data.url)
    if plugin is None:
        fields["url"] = (
            "not an apprise URL this portal understands (see apprise's list of services)"
        )
    elif reason := refusal(data.url, plugin):
        fields["url"] = reason
    unknown = sorted(
        set(data.teams)
        - set(Team.objects.filter(name__in=data.teams).values_list("name", flat=True))
    )
    if unknown:
        fields["teams"] = f"no team named {', '.join(unknown)}"
    bad_events = sorted(set(data.events) - set(ALL_EVENTS))
    if bad_events:
        fields["events"] = (
            f"unknown events {', '.join(bad_events)}; choose from {', '.join(ALL_EVENTS)}"
        )
    elif not data.events:
        fields["events"] = "at least one event (leave it out for the three alert events)"
    low, high = REMIND_EVERY_MINUTES
    every = data.remind_every_minutes
    if every is not None and (type(every) is not int or not low <= every <= high):
        fields["remind_every_minutes"] = (
            f"from {low} to {high} minutes (a week), or null for no reminders"
        )
    if fields:
        raise InvalidInput(f"channel {name!r} was not saved", fields=fields)
    return masked(plugin), {
        "teams": sorted(set(data.teams)),
        "events": [e for e in ALL_EVENTS if e in data.events],
        "remind_every_minutes": every,
    }


def masked(plugin) -> str:
    """The URL to show people: apprise's privacy form (passwords and tokens masked), without
    its options, each path segment over 8 characters cut to its ends (a webhook's path is
    its secret; apprise's own masks are shorter)."""
    shown = plugin.url(privacy=True).split("?", 1)[0]
    scheme, _, rest = shown.partition("://")
    host, *path = rest.split("/")
    cut = [p if len(p) <= 8 else f"{p[0]}...{p[-1]}" for p in path]
    return f"{scheme}://{'/'.join([host, *cut])}"[:300]


# Credentials in any URL a text names: ``scheme://user:password@`` keeps the user only.
_CREDENTIALS = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s/:@]*):[^\s/@]+@", re.IGNORECASE)


def redact(text: str, url: str) -> str:
    """``text`` without the secrets of ``url`` (``secrets_of``), and without the password of
    any URL it names: a notifier's error names the URL it failed to reach ("Max retries
    exceeded with url: /hooks/<token>"), and that text is kept in the delivery's attempt row
    and shown to anyone who may read alerts."""
    for piece in sorted(secrets_of(url), key=len, reverse=True):
        text = text.replace(piece, "****")
    return _CREDENTIALS.sub(r"\g<head>:****@", text)


def secrets_of(url: str) -> set[str]:
    """What of ``url`` a reader may not see, as written and percent-encoded: every piece that
    ``masked`` does not show (a password, a long path segment, an option's name and value)
    and every value apprise itself calls private (a bot token, an API key), 4 characters or
    more (a shorter one cannot be told from the text around it)."""
    plugin = plugin_for(url)
    shown = _pieces(masked(plugin)) if plugin is not None else set()
    found = {p for p in _pieces(url.split("://", 1)[-1]) if p not in shown}
    if plugin is not None:
        found |= _private_values(plugin)
    found = {p for p in found if len(p) >= 4}
    return found | {quote(p, safe="") for p in found}


def _pieces(text: str) -> set[str]:
    return {unquote(p) for p in re.split(r"[/:@?&=#+]", text)}


def _private_values(plugin) -> set[str]:
    """The values of the parameters apprise marks private (what its privacy form masks)."""
    values: set[str] = set()
    declared = {**type(plugin).template_tokens, **type(plugin).template_args}
    for name, spec in declared.items():
        if not isinstance(spec, dict) or not spec.get("private"):
            continue
        value = getattr(plugin, spec.get("map_to", name), None)
        items = value if isinstance(value, list | tuple | set) else [value]
        values |= {str(v) for v in items if isinstance(v, str | int) and str(v)}
    return values


def put_channel(name: str, data: ChannelIn, actor) -> tuple[NotificationChannel, bool]:
    """Create or replace a channel (validated first; nothing stored when refused). A channel
    hears of its teams' services: its author must own them (none named: every team, an
    admin's channel), and the channel it replaces too."""
    shown, clean = validate(name, data)
    check_reach(actor, teams=clean["teams"], what="a channel")
    with transaction.atomic():
        channel = NotificationChannel.objects.select_for_update().filter(name=name).first()
        created = channel is None
        if not created:
            check_reach(actor, teams=channel.teams, what="a channel")
        if created:
            channel = NotificationChannel(name=name)
        channel.url = encryption.encrypt(data.url)
        channel.url_shown = shown
        channel.teams, channel.events = clean["teams"], clean["events"]
        channel.remind_every_minutes = clean["remind_every_minutes"]
        channel.updated_at = timezone.now()
        channel.full_clean(exclude=["url"])
        channel.save()
        audit.record(
            actor,
            "channel.create" if created else "channel.update",
            "notification_channel",
            name,
            {"url": shown, **clean},
        )
    return channel, created


def delete_channel(name: str, actor) -> None:
    with transaction.atomic():
        channel = NotificationChannel.objects.select_for_update().filter(name=name).first()
        if channel is None:
            raise NotFound(f"no notification channel named {name!r}")
        check_reach(actor, teams=channel.teams, what="a channel")
        # Audited first: the entry is of the channel's teams, found through it.
        audit.record(actor, "channel.delete", "notification_channel", name)
        channel.delete()


def url_of(channel: NotificationChannel) -> str:
    return encryption.decrypt(channel.url)


def rotate_urls() -> int:
    """Re-encrypt every channel URL with the newest key (portal.encryption's rotation)."""
    count = 0
    for pk, token in NotificationChannel.objects.values_list("id", "url"):
        NotificationChannel.objects.filter(pk=pk).update(url=encryption.rotate(token))
        count += 1
    return count
