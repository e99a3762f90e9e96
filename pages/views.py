"""The pages people browse: the overview of every service and its health (and its wall-screen
form, problems only), and drift."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from pydantic import ValidationError

from checklists import runs
from healthchecks.reads import reports as health_reports
from healthchecks.status import Status
from pages import service_rows
from portal.htmx import is_partial, render_page
from services import deployments, queries
from services.models import LifecycleStatus, Tag, Team
from services.schemas import ServiceFilter

PAGE_SIZE = 100


def _filters(query) -> tuple[ServiceFilter, dict[str, str]]:
    """The filter from the query string; a bad value is dropped and reported, not fatal."""
    raw = {k: v for k, v in query.items() if k in ServiceFilter.model_fields and v != ""}
    try:
        return ServiceFilter.model_validate(raw), {}
    except ValidationError as exc:
        bad = {str(e["loc"][0]): e["msg"] for e in exc.errors()}
        clean = {k: v for k, v in raw.items() if k not in bad}
        return ServiceFilter.model_validate(clean), bad


def _overview_context(request, problems_only: bool = False) -> dict:
    filters, filter_errors = _filters(request.GET)
    matching = queries.filter_services(filters)
    health = request.GET.get("health", "")
    if health and health not in service_rows.HEALTH_WORDS:
        filter_errors["health"] = f"not one of {', '.join(service_rows.HEALTH_WORDS)}"
    elif health:
        matching = service_rows.filter_health(matching, health)
    if problems_only:
        matching = matching.exclude(health__status=Status.HEALTHY)
    sort = request.GET.get("sort", "worst")
    count = matching.count()
    page = page_number(request.GET.get("page"), count, filter_errors)
    shown = service_rows.ordered(matching, sort)[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    now = timezone.now()
    return {
        "rows": service_rows.rows(shown, now, detailed=not problems_only),
        "overall": health_reports.overall(),
        "count": count,
        "page": page,
        "pages": page_links(request, page, count),
        "page_size": PAGE_SIZE,
        "filters": filters,
        "health": health,
        "sort": sort,
        "filter_errors": filter_errors,
        "teams": Team.objects.values_list("name", flat=True),
        "tags": Tag.objects.order_by("name").values_list("name", flat=True),
        "statuses": LifecycleStatus.values,
        "health_words": list(service_rows.HEALTH_WORDS),
        "overdue": runs.overdue(),
        "updated_at": now,
    }


def page_number(raw: str | None, count: int, errors: dict, size: int = PAGE_SIZE) -> int:
    """The page asked for, within the pages there are; a bad value shows the first."""
    last = max(1, -(-count // size))
    try:
        page = int(raw) if raw else 1
    except ValueError:
        page = 0
    if not 1 <= page <= last:
        errors["page"] = f"not a page between 1 and {last}"
        return 1
    return page


def page_links(request, page: int, count: int, size: int = PAGE_SIZE) -> dict:
    """The query strings of the previous and next pages (the filters kept), or None."""
    query = request.GET.copy()

    def link(number: int) -> str:
        query["page"] = str(number)
        return "?" + query.urlencode()

    return {
        "previous": link(page - 1) if page > 1 else None,
        "next": link(page + 1) if page * size < count else None,
        "first_shown": (page - 1) * size + 1,
        "last_shown": min(count, page * size),
    }


@login_required
@require_GET
def overview(request):
    context = _overview_context(request)
    # What a person's filter or page change found is said by the page's live region (the
    # fragment swaps it in out of band); the table's own refresh every 15 s says nothing.
    context["announce"] = is_partial(request) and request.htmx.trigger != "service-table"
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
