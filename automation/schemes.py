"""The apprise schemes a channel may use, and where each one's notifier connects.

apprise speaks a hundred-odd services; a channel may use the ones below, each read (apprise
2.3) for the address its notifier really connects to and for the parameters that would
move that connection or reach past it (a file of the portal's host, a URL apprise fetches):

- the URL names the host (JSON/XML/form webhooks, ntfy, Gotify, Mattermost, Rocket.Chat,
  Teams/Power Automate workflows): that host and port, judged by the network policy;
- e-mail: the SMTP server apprise sends through -- ``smtp=`` when given, else the one it
  picks for the sender's provider (smtp.gmail.com for gmail.com) or the URL's host -- with
  the URL's port: judged, not the URL's host (``smtp=`` moved the connection past the policy);
- hosted services (Slack, Discord, PagerDuty, Opsgenie, Telegram, Pushover, Google Chat, and
  ntfy without a host of its own): the vendor's fixed address, which no parameter moves;
  not judged (docs/decisions.md).

Whatever the destination, apprise's client connects inside the egress guard
(portal.egress.guard): to the place its scheme declares and nowhere else (``Scheme.reaches``),
the name resolved once, every address judged, the allowed answers pinned -- no second
resolution between the judgment and the connection.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

TEMPLATE = (
    "a template is a file of the portal's host or a URL apprise fetches when it sends, "
    "which the network policy does not judge"
)
PGP = (
    "PGP keys are files of the portal's host, and WKD looks keys up on the recipients' "
    "domains, which the network policy does not judge"
)


@dataclass(frozen=True)
class Destination:
    """Where a notifier connects, and what in its URL chose it (for the reason people read)."""

    host: str
    port: int
    chosen_by: str

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.chosen_by} {host}:{self.port}"


@dataclass(frozen=True)
class Scheme:
    name: str
    schemes: tuple[str, ...]
    # The destination to judge; None: the vendor's own fixed address.
    connects: Callable[[Any], Destination | None]
    vendor: str = ""
    refused: Mapping[str, str] = field(default_factory=dict)
    # The vendor's fixed hosts (port 443), as apprise's notifier names them.
    vendor_hosts: tuple[str, ...] = ()

    def reaches(self, plugin) -> tuple[set[tuple[str, int]], bool]:
        """Where this notifier may connect (the egress guard refuses anything else), and
        whether those are a vendor's fixed addresses (trusted: not judged by the allowed and
        denied settings, only the always-refused)."""
        where = self.connects(plugin)
        if where is None:
            return {(host, 443) for host in self.vendor_hosts}, True
        return {(where.host, where.port)}, False

    def refused_parameter(self, url: str) -> str | None:
        """The first parameter of ``url`` this scheme does not accept, with why (apprise
        reads parameter names in any case)."""
        query = url.partition("?")[2].partition("#")[0]  # as apprise reads it; no ValueError
        given = {key.lower() for key, _ in parse_qsl(query, keep_blank_values=True)}
        for name in sorted(given & set(self.refused)):
            return f"{name}= is not accepted in {self.name} channels: {self.refused[name]}"
        return None


def _unbracketed(host: str | None) -> str:
    return (host or "").strip().strip("[]")


def _url_host(plugin) -> Destination:
    # A port of 0 is what most of these notifiers connect to (json://host:0 -> host:0), not
    # the default: declared as written, it is refused as a port.
    port = plugin.port if plugin.port is not None else (443 if plugin.secure else 80)
    return Destination(_unbracketed(plugin.host), int(port), "the URL's host")


def _smtp_server(plugin) -> Destination:
    # apprise chose it by now: smtp=, its provider templates, or the URL's host; the port
    # is the URL's or the secure mode's default.
    return Destination(_unbracketed(plugin.smtp_host), int(plugin.port), "the SMTP server")


def _ntfy(plugin) -> Destination | None:
    return None if plugin.mode == "cloud" else _url_host(plugin)


def _vendor(plugin) -> None:
    return None


SCHEMES: tuple[Scheme, ...] = (
    Scheme("JSON webhook", ("json", "jsons"), _url_host),
    Scheme("XML webhook", ("xml", "xmls"), _url_host),
    Scheme("form webhook", ("form", "forms"), _url_host),
    Scheme(
        "ntfy",
        ("ntfy", "ntfys"),
        _ntfy,
        vendor="ntfy.sh (a URL without a host)",
        vendor_hosts=("ntfy.sh",),
    ),
    Scheme("Gotify", ("gotify", "gotifys"), _url_host),
    Scheme("Mattermost", ("mmost", "mmosts"), _url_host),
    Scheme("Rocket.Chat", ("rocket", "rockets"), _url_host),
    Scheme(
        "Teams/Power Automate workflow",
        ("workflow", "workflows"),
        _url_host,
        refused={"template": TEMPLATE},
    ),
    Scheme(
        "e-mail",
        ("mailto", "mailtos"),
        _smtp_server,
        refused=dict.fromkeys(("pgp", "pgppub", "pgpprv", "wkd"), PGP),
    ),
    Scheme(
        "Slack",
        ("slack",),
        _vendor,
        "slack.com",
        refused={"template": TEMPLATE},
        vendor_hosts=("hooks.slack.com", "hooks.slack-gov.com", "slack.com"),
    ),
    Scheme(
        "Discord",
        ("discord",),
        _vendor,
        "discord.com",
        refused={"template": TEMPLATE},
        vendor_hosts=("discord.com",),
    ),
    Scheme(
        "PagerDuty",
        ("pagerduty",),
        _vendor,
        "events(.eu).pagerduty.com",
        vendor_hosts=("events.pagerduty.com", "events.eu.pagerduty.com"),
    ),
    Scheme(
        "Opsgenie",
        ("opsgenie",),
        _vendor,
        "api(.eu).opsgenie.com",
        vendor_hosts=("api.opsgenie.com", "api.eu.opsgenie.com"),
    ),
    Scheme(
        "Telegram",
        ("tgram",),
        _vendor,
        "api.telegram.org",
        refused={"template": TEMPLATE},
        vendor_hosts=("api.telegram.org",),
    ),
    Scheme("Pushover", ("pover",), _vendor, "api.pushover.net", vendor_hosts=("api.pushover.net",)),
    Scheme(
        "Google Chat",
        ("gchat",),
        _vendor,
        "chat.googleapis.com",
        vendor_hosts=("chat.googleapis.com",),
    ),
)
_BY_SCHEME = {name: scheme for scheme in SCHEMES for name in scheme.schemes}


def protocols(plugin_class) -> set[str]:
    """The schemes apprise registers for a notifier class."""
    found: set[str] = set()
    for value in (plugin_class.protocol, plugin_class.secure_protocol):
        found |= {value} if isinstance(value, str) else set(value or ())
    return found


def accepted(plugin) -> Scheme | None:
    """The accepted scheme of this notifier (a native URL -- https://discord.com/api/... --
    counts as its notifier's scheme), or None."""
    for name in sorted(protocols(type(plugin))):
        if name in _BY_SCHEME:
            return _BY_SCHEME[name]
    return None


def not_accepted(plugin) -> str:
    schemes = ", ".join(f"{s.schemes[0]}://" for s in SCHEMES)
    return (
        f"{type(plugin).service_name} channels are not accepted; a channel may use {schemes} "
        "(and their secure forms)"
    )
