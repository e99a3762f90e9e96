"""Acknowledge links: every DOWN / DEGRADED notification carries one, so the person who reads
it can say "I am on it" from the message (as healthchecks.io and PagerDuty-style tools do).

``PORTAL_BASE_URL/alerts/<id>/ack/<token>/``: the token is the alert's id signed with the
portal's SECRET_KEY (django.core.signing, a salt of its own, so no other signed value of
the portal passes for one) and the time it was made. It is good for that alert only and for
AUTOMATION_ACK_LINK_HOURS; it is used up when the alert is acknowledged (or resolved). The
link only opens a confirm page: a GET never acknowledges (chat tools fetch links to preview
them); the person logged in confirms with a POST, with their own rights.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing

SALT = "automation.acklinks.acknowledge"
_SEP = "."


@dataclass(frozen=True)
class Refusal:
    """Why a link does not acknowledge: ``code`` for the page and its HTTP status, ``reason``
    for the person."""

    code: str
    reason: str


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=SALT, sep=_SEP)


def lifetime() -> timedelta:
    return timedelta(hours=settings.AUTOMATION_ACK_LINK_HOURS)


def token_for(alert_id: int) -> str:
    """The time it was made and the signature of (alert id, time); the id itself is the
    URL's, so a token moved to another alert's URL no longer matches its signature."""
    return _signer().sign(str(alert_id)).split(_SEP, 1)[1]


def link_for(alert_id: int) -> str:
    base = settings.PORTAL_BASE_URL.rstrip("/")
    return f"{base}/alerts/{alert_id}/ack/{token_for(alert_id)}/"


def check(alert_id: int, token: str) -> Refusal | None:
    """None for a link the portal made for this alert within its lifetime; else why not.
    Whether the alert may still be acknowledged is the alert's to say (automation.alerts)."""
    try:
        _signer().unsign(f"{alert_id}{_SEP}{token}", max_age=lifetime())
    except signing.SignatureExpired:
        hours = settings.AUTOMATION_ACK_LINK_HOURS
        return Refusal(
            "expired",
            f"This link has expired: an acknowledge link works for {hours} hours after its "
            "message was sent. Acknowledge from the service's page instead.",
        )
    except signing.BadSignature:
        return Refusal(
            "forged",
            "This link is not one the portal made for this alert (altered, or cut short when "
            "it was copied). Acknowledge from the service's page instead.",
        )
    return None
