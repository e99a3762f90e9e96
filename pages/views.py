"""The pages people browse: the overview of every service and its health (and its wall-screen
form, problems only), and drift."""

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.db.models import Case, Max, Q, Value, When
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from pydantic import ValidationError

from checklists import runs
from healthchecks import availability, history
from healthchecks import reports as health_reports
from healthchecks.status import Status
from pages import charts
from portal.htmx import render_page
from services import deployments, queries
from services.models import LifecycleStatus, Tag, Team
from services.schemas import ServiceFilter

PAGE_SIZE = 200


def _filters(query) -> tuple[ServiceFilter, dict[str, str]]:
    """The filter from the query string; a bad value is dropped and reported, not fatal."""
    raw = {k: v for k, v in query.items() if k in ServiceFilter.model_fields and v != ""}
    try:
        return ServiceFilter.model_validate(raw), {}
    except ValidationError as exc:
        bad = {str(e["loc"][0]): e["msg"] for e in exc.errors()}
        clean = {k: v for k, v in raw.items() if k not in bad}
        return ServiceFilter.model_validate(clean), bad


HEALTH_WORDS = {s.label: s.value for s in Status}
# Worst first: what needs someone on top.
RANK = Case(
    When(health__status=Status.UNHEALTHY, then=Value(0)),
    When(health__status=Status.DEGRADED, then=Value(1)),
    When(health__status=Status.UNKNOWN, then=Value(2)),
    When(health__status=Status.MAINTENANCE, then=Value(3)),
    When(health__status=Status.HEALTHY, then=Value(4)),
    default=Value(2),  # no health row yet: unknown
)


def _health_filter(queryset, word: str, errors: dict):
    if not word:
        return queryset
    if word not in HEALTH_WORDS:
        errors["health"] = f"not one of {', '.join(HEALTH_WORDS)}"
        return queryset
    if HEALTH_WORDS[word] == Status.UNKNOWN:
        return queryset.filter(Q(health__isnull=True) | Q(health__status=Status.UNKNOWN))
    return queryset.filter(health__status=HEALTH_WORDS[word])


def _rows(services: list, now) -> list[dict]:
    """Each shown service with its strip, uptimes, latency and last check (a few grouped
    queries for the whole page, whatever its size)."""
    ids = [s.id for s in services]
    strips = availability.status_strips(ids, now)
    day = history.services_uptime("24h", now, ids)
    month = history.services_uptime("30d", now, ids)
    p95 = history.services_latency_p95(now, ids)
    start = now - timedelta(hours=24)
    return [
        {
            "service": s,
            "strip": charts.status_strip(s.name, strips[s.id], start),
            "uptime_24h": day.get(s.name),
            "uptime_30d": month.get(s.name),
            "p95_ms": p95.get(s.id),
        }
        for s in services
    ]


def _overview_context(request, problems_only: bool = False) -> dict:
    filters, filter_errors = _filters(request.GET)
    matching = queries.filter_services(filters)
    matching = _health_filter(matching, request.GET.get("health", ""), filter_errors)
    if problems_only:
        matching = matching.exclude(health__status=Status.HEALTHY)
    sort = request.GET.get("sort", "worst")
    ordered = matching.annotate(rank=RANK, last_check=Max("checks__state__last_result_at"))
    ordered = ordered.order_by("name") if sort == "name" else ordered.order_by("rank", "name")
    services = list(queries.with_relations(ordered).select_related("health")[:PAGE_SIZE])
    now = timezone.now()
    return {
        "rows": _rows(services, now),
        "overall": health_reports.overall(),
        "count": matching.count(),
        "page_size": PAGE_SIZE,
        "filters": filters,
        "health": request.GET.get("health", ""),
        "sort": sort,
        "filter_errors": filter_errors,
        "teams": Team.objects.values_list("name", flat=True),
        "tags": Tag.objects.order_by("name").values_list("name", flat=True),
        "statuses": LifecycleStatus.values,
        "health_words": list(HEALTH_WORDS),
        "overdue": runs.overdue(),
        "updated_at": now,
    }


@login_required
@require_GET
def overview(request):
    context = _overview_context(request)
    return render_page(request, "pages/overview.html", "service-table", context)


@login_required
@require_GET
def wall(request):
    """The wall screen: only what is not healthy, large, refreshing itself."""
    context = _overview_context(request, problems_only=True)
    return render_page(request, "pages/wall.html", "problems", context)


@login_required
@require_GET
def drift(request):
    """Services whose last successful deployment applied another configuration than the
    current one."""
    return render(request, "pages/drift.html", {"rows": deployments.drifting_services()})
