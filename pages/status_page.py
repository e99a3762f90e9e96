"""The status page (/status/): a read-only, shareable view of chosen services -- all, a team's
(?team=) or a tag's (?tag=) -- with their status now, 90 daily uptime bars and open
incidents -- each with its service's reason *now* (not the cause it opened with) and the
public notes people wrote on its alert (incident updates, oldest first, without their
authors). Open to anyone when STATUS_PAGE_PUBLIC, else to logged-in people: what Uptime
Kuma's and Gatus's users expect. It shows no other reasons, no targets, no configuration."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from automation.models import Note
from healthchecks.models import HealthCheck, Incident, ServiceHealth
from healthchecks.reads import history
from healthchecks.reads import reports as health_reports
from healthchecks.status import Status
from pages import charts
from services.models import Service


def _with_updates(incidents: list[Incident]) -> list[Incident]:
    """Each ongoing incident with ``reason_now`` (the service's health says why now; the
    incident's cause is why it opened, or last worsened) and ``updates``, the public notes of
    its service's open alert."""
    ids = [i.service_id for i in incidents]
    reasons = dict(
        ServiceHealth.objects.filter(service_id__in=ids).values_list("service_id", "reason")
    )
    updates: dict[int, list[Note]] = {}
    for note in Note.objects.filter(
        public=True, alert__resolved_at=None, alert__service_id__in=ids
    ).select_related("alert"):
        updates.setdefault(note.alert.service_id, []).append(note)
    for incident in incidents:
        incident.reason_now = reasons.get(incident.service_id) or incident.cause
        incident.updates = updates.get(incident.service_id, [])
    return incidents


@require_GET
def status_page(request):
    if not settings.STATUS_PAGE_PUBLIC and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    services = Service.objects.order_by("display_name", "name")
    title = "All services"
    if team := request.GET.get("team"):
        services, title = services.filter(team__name=team), f"Team {team}"
    elif tag := request.GET.get("tag"):
        services, title = services.filter(tags__name=tag), f"Tagged {tag}"
    services = list(services[:200])
    ids = [s.id for s in services]
    statuses = dict(
        ServiceHealth.objects.filter(service_id__in=ids).values_list("service_id", "status")
    )
    checks: dict[int, list[int]] = {}
    for service_id, check_id in HealthCheck.objects.filter(service_id__in=ids).values_list(
        "service_id", "id"
    ):
        checks.setdefault(service_id, []).append(check_id)
    now = timezone.now()
    rows = []
    for service in services:
        days = history.daily_uptime(checks.get(service.id, []), 90, now)
        counted = [d for d in days if d["results"]]
        total = sum(d["results"] for d in counted)
        uptime = sum(d["uptime"] * d["results"] for d in counted) / total if total else None
        rows.append(
            {
                "service": service,
                "status": Status(statuses.get(service.id, Status.UNKNOWN)).label,
                "bars": charts.uptime_bars(days),
                "uptime": uptime,
                "days": len(counted),
            }
        )
    incidents = list(
        Incident.objects.filter(service_id__in=ids, closed_at=None)
        .select_related("service")
        .order_by("-opened_at")
    )
    context = {
        "rows": rows,
        "title": title,
        "incidents": _with_updates(incidents),
        "overall": health_reports.overall(),
        "updated_at": now,
    }
    return render(request, "pages/status.html", context)
