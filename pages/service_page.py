"""A service's page: its status and why, history, incidents, neighbours, configuration,
deployments and lifecycle, its alerts, maintenance and predictions, and -- when it is not
healthy -- the seed's recovery procedure with the live facts beside each step. Thin: every
read comes from the domain apps."""

from datetime import datetime, timedelta

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from automation import timeline
from automation.alerts import refusal_to_act
from automation.models import Alert
from checklists.models import ChecklistRun, ChecklistTemplate, Period
from healthchecks import checks
from healthchecks.models import HealthCheck, Incident, Prediction
from healthchecks.probes import KINDS
from healthchecks.reads import availability, history
from healthchecks.reads import reports as health_reports
from healthchecks.status import Status
from pages import charts, runbook
from portal import ratelimit
from portal.auth import Role, request_principal
from portal.errors import PortalError
from portal.models import Scope
from services import configs, deployments, maintenance, queries
from services.graph import DependencyGraph
from services.lifecycle import NOT_WATCHED
from services.models import Service

RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
DEFAULT_RANGE = "1h"


def _service(name: str) -> Service:
    service = Service.objects.select_related("team").filter(name=name).first()
    if service is None:
        raise Http404(name)
    return service


def _series(name: str, start, end) -> dict:
    """Response time per check over the range, at the history's resolution."""
    body = history.service_history(name, {"from": start.isoformat(), "to": end.isoformat()})
    series = {}
    for check, rows in body["checks"].items():
        points = []
        for row in rows:
            at = row.get("at") or row.get("start")
            ms = row.get("response_ms", row.get("latency_avg_ms"))
            if at is not None:
                points.append((_parse(at), ms))
        series[check] = points
    return series


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _neighbours(service: Service, detail: dict) -> dict:
    dependents = queries.dependents_of(service.name)
    statuses = health_reports.statuses_of([d["service"] for d in dependents])
    graph = DependencyGraph.load()
    return {
        "dependencies": detail["dependencies"],
        "dependents": [{**d, "status": statuses.get(d["service"], "unknown")} for d in dependents],
        "impact": if_it_fails(service.name, graph),
    }


def if_it_fails(name: str, graph: DependencyGraph) -> list[dict]:
    """Everyone who depends on ``name`` (the registry's reach, nearest first), each with the
    status the engine would show were it to fail (``status``), the one it would show were
    it healthy (``otherwise``) and whether they differ (``changes``): the engine's rule
    itself, so the page says degraded where the engine would. One reached only through soft
    dependencies, or past a service the failure only degrades, keeps its status -- and the
    page says so."""
    reach = graph.impact(name)
    now = health_reports.statuses_of([i["service"] for i in reach])
    after = health_reports.if_it_fails(name)
    found = []
    for item in reach:
        otherwise, status = after.get(item["service"], (now[item["service"]],) * 2)
        found.append(
            {**item, "status": status, "otherwise": otherwise, "changes": status != otherwise}
        )
    return found


def _configuration(service: Service) -> dict:
    current = configs.current_version(service)
    valid, issues = (None, {})
    if current is not None:
        valid, issues = configs.validity_now(
            current, configs.current_schema(service), configs.level_for(service)
        )
    return {
        "current": current,
        "valid": valid,
        "issues": issues,
        "recent": list(service.config_versions.order_by("-version")[:5]),
        "drift": deployments.drift(service),
    }


def _reader(principal, service: Service) -> runbook.Reader:
    """Who reads the runbook: one who may change the service (run its checks, publish its
    configuration), or anyone else, told whom to ask -- the owning team's operators by name
    (people of the team whose role acts: operator, or admin), or the portal's admins when
    the team has none."""
    may_change = principal.has_scope(Scope.HEALTH_WRITE) and principal.may_change(service.name)
    if may_change:
        return runbook.Reader(may_change=True)
    acting = Q(is_superuser=True) | Q(groups__name__in=[Role.OPERATOR, Role.ADMIN])
    people = get_user_model().objects.filter(acting, is_active=True).distinct()
    operators = people.filter(teams=service.team).order_by("username")
    admins = people.filter(Q(is_superuser=True) | Q(groups__name=Role.ADMIN))
    names = [u.get_username() for u in operators[:10]]
    return runbook.Reader(
        may_change=False,
        team=service.team.name,
        operators=tuple(names),
        admins=() if names else tuple(u.get_username() for u in admins.order_by("username")[:5]),
        contact=service.team.contact,
    )


def _latest_alert(principal, service: Service) -> dict:
    """The service's latest alert with its timeline (notes included), and whether this reader
    may acknowledge it and add notes -- the API's rule, not the team's: whoever is on call."""
    latest = (
        Alert.objects.filter(service=service)
        .select_related("service")
        .prefetch_related("notes")
        .order_by("-opened_at", "-id")
        .first()
    )
    return {
        "latest_alert": latest,
        "alert_timeline": timeline.of_alert(latest) if latest else [],
        "may_act_on_alerts": not refusal_to_act(principal, service.name),
    }


@login_required
@require_GET
def service_page(request, name: str):
    service = _service(name)
    detail = health_reports.service_detail(name)
    # The last hour by default: a fresh outage is a wide band there, not a sliver of a day.
    span_name = request.GET.get("range", DEFAULT_RANGE)
    if span_name not in RANGES:
        span_name = DEFAULT_RANGE
    span = RANGES[span_name]
    exclude = set()
    if request.GET.get("exclude"):
        try:
            exclude = availability.parse_exclude(",".join(request.GET.getlist("exclude")))
        except ValueError as exc:
            messages.error(request, f"Ignored exclude: {exc}")
    now = timezone.now()
    start = now - span
    check_ids = list(HealthCheck.objects.filter(service=service).values_list("id", flat=True))
    timeline = [
        (a, b, Status(s).label) for a, b, s in availability.status_timeline(service, start, now)
    ]
    releases = list(
        service.deployments.filter(created_at__gte=start).values_list(
            "created_at", "version", "verification_state"
        )[:200]
    )
    config = _configuration(service)
    neighbours = _neighbours(service, detail)
    principal = request_principal(request)
    context = {
        "service": service,
        "detail": detail,
        "range": span_name,
        "ranges": list(RANGES),
        "timeline_svg": charts.status_timeline(timeline, start, now, releases),
        "latency_svg": charts.response_times(_series(name, start, now), start, now, releases),
        "bars_svg": charts.uptime_bars(history.daily_uptime(check_ids, 90, now)),
        "availability": {
            window: {
                **figures,
                "down": timedelta(seconds=figures["down_s"]),
                "upstream": timedelta(seconds=figures["upstream_s"]),
                "maintenance": timedelta(seconds=figures["maintenance_s"]),
            }
            for window, figures in availability.service_availability(service, exclude, now).items()
        },
        "exclude": sorted(exclude),
        "incidents": list(Incident.objects.filter(service=service).order_by("-opened_at")[:20]),
        "config": config,
        "deployments": list(service.deployments.order_by("-created_at", "-id")[:5]),
        "transitions": list(service.transitions.order_by("-created_at", "-id")[:10]),
        "alerts": list(
            Alert.objects.filter(service=service)
            .select_related("root__service")
            .order_by("-opened_at")[:5]
        ),
        "windows": maintenance.upcoming_for(service, now),  # recurring ones: each occurrence
        "predictions": list(
            Prediction.objects.filter(service=service).select_related("health_check")
        ),
        "runbook": runbook.procedures(
            detail, config, neighbours, service.runbook_url, _reader(principal, service)
        ),
        "checklists": list(
            ChecklistRun.objects.filter(service=service)
            .select_related("template")
            .order_by("-created_at")[:5]
        ),
        "service_templates": ChecklistTemplate.objects.filter(period=Period.SERVICE),
        "may_run": principal.has_scope(Scope.HEALTH_WRITE) and principal.may_change(name),
        "may_tick": principal.has_scope(Scope.CHECKLISTS_WRITE) and principal.may_change(name),
        "may_edit_config": principal.has_scope(Scope.CONFIG_WRITE) and principal.may_change(name),
        "exclude_query": "&exclude=" + ",".join(sorted(exclude)) if exclude else "",
        # Kinds the service calls (a heartbeat): no response time of theirs to show.
        "pushed_kinds": [name for name, kind in KINDS.items() if kind.pushed],
        "not_watched": service.lifecycle_status in NOT_WATCHED,
        **_latest_alert(principal, service),
        **neighbours,
    }
    return render(request, "pages/service.html", context)


@login_required
@require_POST
def run_checks(request, name: str):
    """Run every enabled check of the service now (operators), back to its page."""
    principal = request_principal(request)
    if not principal.has_scope(Scope.HEALTH_WRITE):
        raise PermissionDenied("running checks needs health:write (operators)")
    if not principal.may_change(name):
        raise PermissionDenied(principal.ownership_denied(name).message)
    service = _service(name)
    ratelimit.mark_deliberate(request)  # it waits on the targets: slow on purpose, no stress
    ran = []
    for check in HealthCheck.objects.filter(service=service, enabled=True).order_by("name"):
        try:
            outcome = checks.run_now(check, principal)
        except PortalError as exc:
            messages.error(request, f"{check.name}: {exc.message}")
            continue
        ran.append(f"{check.name} {outcome.status.label}")
    if ran:
        messages.success(request, "Ran " + ", ".join(ran) + ".")
    elif not messages.get_messages(request):
        messages.info(request, "This service has no enabled checks.")
    return HttpResponseRedirect(reverse("pages:service", args=[name]))
