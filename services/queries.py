"""Reading the registry: filtered listings and the dictionaries the API and pages show.

A listing costs a fixed number of queries whatever the page size: the services with their
team (one join), then their tags and their dependencies (one prefetch query each).
"""

from django.db.models import Prefetch, Q, QuerySet

from portal.errors import NotFound
from services.models import Dependency, Service
from services.schemas import ServiceFilter


def with_relations(queryset: QuerySet[Service]) -> QuerySet[Service]:
    return queryset.select_related("team").prefetch_related(
        "tags",
        Prefetch(
            "dependency_links",
            queryset=Dependency.objects.select_related("depends_on")
            .only("service_id", "kind", "depends_on__name")
            .order_by("depends_on__name"),
        ),
    )


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


def visible_to(principal, queryset: QuerySet[Service]) -> QuerySet[Service]:
    if principal is not None and principal.services is not None:
        return queryset.filter(name__in=principal.services)
    return queryset


def get_service(name: str) -> Service:
    service = with_relations(Service.objects.filter(name=name)).first()
    if service is None:
        raise NotFound(f"no service named {name!r}")
    return service


def service_to_dict(service: Service) -> dict:
    return {
        "name": service.name,
        "display_name": service.display_name,
        "description": service.description,
        "team": service.team.name,
        "tags": sorted(t.name for t in service.tags.all()),
        "is_critical": service.is_critical,
        "links": {
            "repository": service.repository_url,
            "docs": service.docs_url,
            "runbook": service.runbook_url,
        },
        "deployed_version": service.deployed_version,
        "config_validation_level": service.config_validation_level,
        "lifecycle_status": service.lifecycle_status,
        "lifecycle_changed_at": service.lifecycle_changed_at,
        "dependencies": [
            {"service": link.depends_on.name, "kind": link.kind}
            for link in service.dependency_links.all()
        ],
        "created_at": service.created_at,
        "updated_at": service.updated_at,
    }


def dependents_of(name: str) -> list[dict]:
    get_service(name)
    return [
        {"service": n, "kind": k}
        for n, k in Dependency.objects.filter(depends_on__name=name)
        .order_by("service__name")
        .values_list("service__name", "kind")
    ]
