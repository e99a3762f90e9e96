"""Reading the registry: filtered listings and the dictionaries the API and pages show.

A listing costs a fixed number of queries whatever the page size: the page of services with
their team (one join), then their tags, then their dependencies with their names.
The API builds its documents from plain rows (``values_list``) rather than model instances:
for a page of a hundred services that is several times faster, and it is the hot path.
"""

from collections import defaultdict

from django.db.models import Q, QuerySet

from portal.errors import no_such_service
from services.models import Dependency, Service, Team
from services.schemas import ServiceFilter


def filter_services(filters: ServiceFilter, queryset: QuerySet[Service] | None = None):
    queryset = Service.objects.all() if queryset is None else queryset
    if filters.team:
        queryset = queryset.filter(team__name=filters.team)
    if filters.tag:
        queryset = queryset.filter(tags__name=filters.tag)
    if filters.status:
        queryset = queryset.filter(lifecycle_status=filters.status)
    if filters.critical is not None:
        queryset = queryset.filter(is_critical=filters.critical)
    if filters.q:
        queryset = queryset.filter(
            Q(name__icontains=filters.q) | Q(display_name__icontains=filters.q)
        )
    return queryset.order_by("name")


def teams_of_user(user_id: int) -> frozenset[str]:
    """The names of the teams a person belongs to."""
    return frozenset(Team.objects.filter(members=user_id).values_list("name", flat=True))


def services_of_teams(teams) -> frozenset[str]:
    """The names of the services these teams own."""
    return frozenset(Service.objects.filter(team__name__in=teams).values_list("name", flat=True))


def teams_named(names) -> frozenset[str]:
    """Which of these team names exist."""
    return frozenset(Team.objects.filter(name__in=names).values_list("name", flat=True))


def services_named(names) -> frozenset[str]:
    """Which of these service names exist."""
    return frozenset(Service.objects.filter(name__in=names).values_list("name", flat=True))


def visible_to(principal, queryset: QuerySet[Service]) -> QuerySet[Service]:
    if principal is not None and principal.services is not None:
        return queryset.filter(name__in=principal.services)
    return queryset


def get_service(name: str, *, queryset: QuerySet[Service] | None = None) -> Service:
    """The service named ``name`` (from ``queryset``, e.g. one that locks the row)."""
    service = (Service.objects if queryset is None else queryset).filter(name=name).first()
    if service is None:
        raise no_such_service(name)
    return service


def service_document(name: str) -> dict:
    """The API document of one service (the shape of ``service_dicts``); NotFound if none."""
    documents = service_dicts(Service.objects.filter(name=name))
    if not documents:
        raise no_such_service(name)
    return documents[0]


_FIELDS = (
    "id",
    "name",
    "display_name",
    "description",
    "team__name",
    "is_critical",
    "slo_target",
    "repository_url",
    "docs_url",
    "runbook_url",
    "deployed_version",
    "config_validation_level",
    "deploy_bake_seconds",
    "on_failed_verification",
    "lifecycle_status",
    "lifecycle_changed_at",
    "created_at",
    "updated_at",
)


def service_dicts(queryset: QuerySet[Service]) -> list[dict]:
    """API documents for the services of ``queryset`` (sliced already), in its order."""
    rows = list(queryset.values_list(*_FIELDS))
    ids = [row[0] for row in rows]
    tags = tags_by_service(ids)
    deps = dependencies_by_service(ids)
    return [_document(row, tags[row[0]], deps[row[0]]) for row in rows]


def tags_by_service(ids: list[int]) -> defaultdict[int, list[str]]:
    """The tag names of each of these services, sorted (one query)."""
    tags = defaultdict(list)
    for service_id, tag in (
        Service.tags.through.objects.filter(service_id__in=ids)
        .order_by("tag__name")
        .values_list("service_id", "tag__name")
    ):
        tags[service_id].append(tag)
    return tags


def dependencies_by_service(ids: list[int]) -> defaultdict[int, list[dict]]:
    """What each of these services depends on, ``{"service", "kind"}`` by name (one query)."""
    deps = defaultdict(list)
    for service_id, depends_on, kind in (
        Dependency.objects.filter(service_id__in=ids)
        .order_by("depends_on__name")
        .values_list("service_id", "depends_on__name", "kind")
    ):
        deps[service_id].append({"service": depends_on, "kind": kind})
    return deps


def _document(row: tuple, tags: list[str], deps: list[dict]) -> dict:
    (
        _,
        name,
        display_name,
        description,
        team,
        critical,
        slo_target,
        repository,
        docs,
        runbook,
        version,
        level,
        bake,
        on_failed,
        status,
        status_at,
        created_at,
        updated_at,
    ) = row
    return {
        "name": name,
        "display_name": display_name,
        "description": description,
        "team": team,
        "tags": tags,
        "is_critical": critical,
        "slo_target": slo_target,
        "links": {"repository": repository, "docs": docs, "runbook": runbook},
        "deployed_version": version,
        "config_validation_level": level,
        "deploy_bake_seconds": bake,
        "on_failed_verification": on_failed,
        "lifecycle_status": status,
        "lifecycle_changed_at": status_at,
        "dependencies": deps,
        "created_at": created_at,
        "updated_at": updated_at,
    }


def dependents_of(name: str) -> list[dict]:
    get_service(name)
    return [
        {"service": n, "kind": k}
        for n, k in Dependency.objects.filter(depends_on__name=name)
        .order_by("service__name")
        .values_list("service__name", "kind")
    ]
