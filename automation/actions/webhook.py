"""Call a webhook: a method, an http(s) URL the network policy judges (at save and at every
call), headers kept as secrets on the rule, a body template, a timeout, the status that means
success. Redirects are not followed: they would leave the address the policy judged."""

import string
import urllib.error
import urllib.request
from typing import Literal

from django.conf import settings
from ninja import Schema
from pydantic import ConfigDict, Field, StrictFloat, StrictStr

from automation.actions.kinds import ActionKind, Outcome
from automation.models import Rule
from portal import egress, encryption
from portal.egress import NetworkPolicy, parse_http_url
from portal.fields import Integer, Url

TEMPLATE_FIELDS = ("service", "event", "status", "cause", "since", "impacted", "url", "check")


class WebhookAction(Schema):
    model_config = ConfigDict(extra="forbid")

    type: Literal["webhook"]
    url: Url = Field(description="http(s); the network policy applies, at save and at call")
    method: Literal["POST", "PUT", "PATCH", "GET", "DELETE"] = "POST"
    headers: dict[StrictStr, StrictStr] = Field(
        default_factory=dict, max_length=20, description="Kept encrypted; shown by name only."
    )
    body: StrictStr = Field(
        "",
        max_length=10_000,
        description="A template: $service, $event, $status, $cause, $since, $impacted, $url.",
    )
    timeout: StrictFloat = Field(10.0, gt=0, le=30)
    expect_status: Integer | None = Field(None, ge=100, le=599, description="Default: any 2xx.")


def check(action: dict, path: str, fields: dict) -> None:
    try:
        url = parse_http_url(action["url"])
    except ValueError as exc:
        fields[f"{path}.url"] = str(exc)
    else:
        policy = NetworkPolicy.from_settings()
        if reason := policy.endpoint_refusal(url.raw_host or "", url.port or 0):
            fields[f"{path}.url"] = f"refused by the network policy: {reason}"
    try:
        string.Template(action.get("body", "")).substitute(dict.fromkeys(TEMPLATE_FIELDS, ""))
    except (KeyError, ValueError) as exc:
        fields[f"{path}.body"] = f"unknown placeholder {exc}; use ${', $'.join(TEMPLATE_FIELDS)}"


def run(delivery, message, impacted) -> Outcome:
    """One request with the action's timeout, its connection through the egress guard (the
    name resolved once, every address judged, the allowed one connected to); success is the
    expected status (2xx)."""
    action = delivery.action
    url = action["url"]
    place = parse_http_url(url)
    body = render_body(action.get("body", ""), delivery, impacted)
    headers = {"Content-Type": "application/json", "User-Agent": "service-portal"}
    headers.update(headers_of(delivery.rule, action["escalation"], action["index"]))
    # The URL was checked to be http(s) when the rule was saved (check above).
    request = urllib.request.Request(  # noqa: S310
        url, data=body.encode() if body else None, headers=headers, method=action["method"]
    )
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    expected = action.get("expect_status")
    try:
        # Through the egress guard: the URL's host resolved once, judged, and connected to.
        with (
            egress.guard(only=[(place.raw_host or "", place.port or 0)]) as guarded,
            direct.open(request, timeout=action.get("timeout", 10)) as response,
        ):
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        if guarded.refused:
            return False, None, f"refused by the network policy: {guarded.refused[0]}"
        return False, None, f"{type(exc).__name__}: {exc}"[:500]
    ok = status == expected if expected else 200 <= status < 300
    return ok, status, "" if ok else f"answered {status}, expected {expected or '2xx'}"


def headers_of(rule: Rule | None, escalation: bool, index: int) -> dict:
    """The action's headers, kept encrypted on its rule by position."""
    if rule is None or not rule.secrets:
        return {}
    stored = encryption.decrypt(rule.secrets)
    return stored["escalation" if escalation else "actions"].get(str(index), {})


def render_body(template: str, delivery, impacted: list[str]) -> str:
    """The body: the template with this delivery's facts put in."""
    alert, subject = delivery.alert, delivery.subject or {}
    service = delivery.service or alert.service
    values = {
        "service": service.name,
        "event": delivery.event,
        "status": delivery.event,
        "cause": alert.cause if alert else subject.get("message", ""),
        "since": alert.opened_at.isoformat() if alert else subject.get("since") or "",
        "impacted": ", ".join(impacted),
        "url": f"{settings.PORTAL_BASE_URL.rstrip('/')}/services/{service.name}/",
        "check": subject.get("check", ""),
    }
    return string.Template(template).safe_substitute(values)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would leave the address the policy judged: not followed."""

    def redirect_request(self, *args, **kwargs):
        return None


def describe(action: dict) -> str:
    """The host called, never its path or query (a URL may carry a token there)."""
    try:
        return f"webhook to {parse_http_url(action['url']).raw_host}"
    except ValueError:
        return "webhook"


KIND = ActionKind(
    "webhook", WebhookAction, run, check, secret_options=("headers",), describe=describe
)
