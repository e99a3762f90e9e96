"""The pages people browse: the overview of every service and its health, and drift."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET
from pydantic import ValidationError

from healthchecks import reports as health_reports
from portal.htmx import render_page
from services import deployments, queries
from services.models import LifecycleStatus, Team
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


@login_required
@require_GET
def overview(request):
    filters, filter_errors = _filters(request.GET)
    matching = queries.filter_services(filters)
    services = queries.with_relations(matching).select_related("health")[:PAGE_SIZE]
    context = {
        "services": services,
        "overall": health_reports.overall(),
        "count": matching.count(),
        "page_size": PAGE_SIZE,
        "filters": filters,
        "filter_errors": filter_errors,
        "teams": Team.objects.values_list("name", flat=True),
        "statuses": LifecycleStatus.values,
    }
    return render_page(request, "pages/overview.html", "service-table", context)


@login_required
@require_GET
def drift(request):
    """Services whose last successful deployment applied another configuration than the
    current one."""
    return render(request, "pages/drift.html", {"rows": deployments.drifting_services()})
