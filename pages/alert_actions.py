"""Acting on an alert from where it is seen: acknowledging it from the service page or from
a notification's link, and adding notes (incident updates). Thin over automation.alerts,
.notes and .acklinks; who may act is the API's rule (automation.alerts.refusal_to_act).

A notification's link opens a confirm page (GET never acknowledges: chat tools fetch links
to preview them); its POST acknowledges as the person logged in. A link that is forged,
expired, or used up (the alert acknowledged or resolved since) is refused with a page
saying which, and a status that says it too (403, 410, 409).
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from automation import acklinks, alerts, notes
from automation.models import Alert
from healthchecks.models import ServiceHealth
from portal.auth import request_principal
from portal.errors import InvalidInput, PortalError

_REFUSED_STATUS = {"forged": 403, "expired": 410, "used": 409, "resolved": 409}


def _alert(alert_id: int) -> Alert:
    alert = None
    if 0 < alert_id <= 2**62:  # beyond, no row's id (and no 500 from the database)
        alert = Alert.objects.select_related("service").filter(id=alert_id).first()
    if alert is None:
        raise Http404(f"no alert {alert_id}")
    return alert


def _back(alert: Alert) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("pages:service", args=[alert.service.name]))


def _may_act(request, alert: Alert):
    principal = request_principal(request)
    if refusal := alerts.refusal_to_act(principal, alert.service.name):
        raise PermissionDenied(refusal)
    return principal


def _used_up(alert: Alert) -> acklinks.Refusal | None:
    """An alert that is no longer waiting for someone: the link has nothing left to do."""
    if alert.resolved_at is not None:
        return acklinks.Refusal(
            "resolved",
            f"This alert was resolved at {alert.resolved_at:%Y-%m-%d %H:%M:%S} UTC: there is "
            "nothing left to acknowledge.",
        )
    if alert.acknowledged_at is not None:
        return acklinks.Refusal(
            "used",
            f"This alert was already acknowledged by {alert.acknowledged_by} at "
            f"{alert.acknowledged_at:%Y-%m-%d %H:%M:%S} UTC: the link is used up.",
        )
    return None


@login_required
@require_POST
def acknowledge(request, alert_id: int):
    """The service page's button: acknowledge, with an optional note, and back to the page."""
    alert = _alert(alert_id)
    principal = _may_act(request, alert)
    try:
        alerts.acknowledge(alert.id, principal, request.POST.get("note", ""))
    except PortalError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Acknowledged the alert of {alert.service.name}.")
    return _back(alert)


@login_required
@require_POST
def add_note(request, alert_id: int):
    """The service page's note form (public: shown on the status page while it lasts)."""
    alert = _alert(alert_id)
    principal = _may_act(request, alert)
    try:
        notes.add_note(
            alert.id, principal, request.POST.get("text", ""), bool(request.POST.get("public"))
        )
    except PortalError as exc:
        detail = "; ".join(exc.fields.values())
        messages.error(
            request, f"Note not added: {exc.message}" + (f" ({detail})" if detail else "")
        )
    else:
        messages.success(request, "Note added.")
    return _back(alert)


@login_required
@require_http_methods(["GET", "POST"])
def ack_link(request, alert_id: int, token: str):
    """A notification's acknowledge link: the confirm page (GET), acknowledging (POST)."""
    refusal = acklinks.check(alert_id, token)
    alert = None if refusal and refusal.code == "forged" else _alert(alert_id)
    if alert is not None and refusal is None:
        refusal = _used_up(alert)
    principal = request_principal(request)
    cannot = alerts.refusal_to_act(principal, alert.service.name) if alert else ""
    note, note_error = "", ""
    if request.method == "POST" and refusal is None:
        if cannot:
            raise PermissionDenied(cannot)
        note = request.POST.get("note", "")
        try:
            alerts.acknowledge(alert.id, principal, note)
        except InvalidInput as exc:  # the note: the link is still good, the form stays
            note_error = f"{exc.message} ({'; '.join(exc.fields.values())})"
        except PortalError as exc:  # acknowledged or resolved since the page was drawn
            refusal = acklinks.Refusal("used", exc.message)
        else:
            messages.success(request, f"Acknowledged the alert of {alert.service.name}.")
            return _back(alert)
    reason = ""
    if alert is not None:
        health = ServiceHealth.objects.filter(service_id=alert.service_id).first()
        reason = health.reason if health else alert.cause
    context = {
        "alert": alert,
        "refusal": refusal,
        "cannot": cannot,
        "reason": reason,
        "note": note,
        "note_error": note_error,
    }
    status = _REFUSED_STATUS[refusal.code] if refusal else 422 if note_error else 200
    return render(request, "pages/alert_ack.html", context, status=status)
