"""Registry API: thin handlers over services.registry, services.lifecycle and services.graph."""

from django.db.models import Count
from django.http import HttpRequest
from ninja import Query, Router, Status

from portal.auth import authorize
from portal.errors import InvalidInput, answers
from portal.fields import PathName, UrlInteger
from portal.models import Scope
from portal.responses import json_response, page_of
from services import lifecycle, queries, registry
from services.graph import DependencyGraph
from services.models import Team
from services.schemas import (
    DependencyKindIn,
    DependencyOut,
    ImpactOut,
    OrderOut,
    PageParams,
    ShutdownOrderOut,
    TeamFieldsIn,
    TeamIn,
    TeamOut,
    TeamPageOut,
    TransitionIn,
    TransitionOut,
    TransitionResultOut,
)

router = Router(tags=["registry"])
READ, WRITE = Scope.REGISTRY_READ, Scope.REGISTRY_WRITE


@router.get("/services/{name}/dependencies", response=list[DependencyOut])
def list_dependencies(request: HttpRequest, name: str):
    authorize(request, READ, service=name)
    return queries.service_document(name)["dependencies"]


@router.put(
    "/services/{name}/dependencies/{depends_on}",
    response=list[DependencyOut],
    summary="Add a dependency, or change its kind",
)
def put_dependency(request: HttpRequest, name: str, depends_on: str, payload: DependencyKindIn):
    actor = authorize(request, WRITE, service=name)
    registry.set_dependency(name, depends_on, payload.kind, actor)
    return queries.service_document(name)["dependencies"]


@router.delete("/services/{name}/dependencies/{depends_on}", response=list[DependencyOut])
def delete_dependency(request: HttpRequest, name: str, depends_on: str):
    actor = authorize(request, WRITE, service=name)
    registry.remove_dependency(name, depends_on, actor)
    return queries.service_document(name)["dependencies"]


@router.get(
    "/services/{name}/dependents",
    response=list[DependencyOut],
    summary="Services that depend directly on this one",
)
def list_dependents(request: HttpRequest, name: str):
    authorize(request, READ, service=name)
    return queries.dependents_of(name)


@router.get(
    "/services/{name}/impact",
    response=list[ImpactOut],
    summary="Every service affected if this one fails, nearest first",
)
def impact(request: HttpRequest, name: str):
    authorize(request, READ, service=name)
    graph = DependencyGraph.load()
    if name not in graph.needs:
        raise queries.no_such_service(name)
    # Thousands of items for a deep graph: returned as built, not re-validated one by one.
    return json_response(graph.impact(name))


@router.get("/services/{name}/transitions", response=list[TransitionOut])
def list_transitions(
    request: HttpRequest, name: str, limit: UrlInteger = Query(100, ge=1, le=1000)
):
    authorize(request, READ, service=name)
    service = queries.get_service(name)
    return list(service.transitions.all()[:limit])


@router.post(
    "/services/{name}/transitions",
    response=TransitionResultOut,
    summary="Move a service to another lifecycle status",
    description="An illegal transition is 409 with the allowed ones; starting while hard "
    "dependencies are not running, or stopping while hard dependents run, is 409 with the "
    "services in the way (`blocking`) unless `force` is true.",
    openapi_extra=answers(
        {
            409: "`illegal_transition` (with `current`, `allowed`), or "
            "`dependencies_not_running` / `has_running_dependents` (with `blocking`)"
        }
    ),
)
def transition_service(request: HttpRequest, name: str, payload: TransitionIn):
    actor = authorize(request, WRITE, service=name)
    outcome = lifecycle.transition(name, payload.to, payload.reason, actor, force=payload.force)
    status = outcome.service.lifecycle_status
    return {
        "service": name,
        "lifecycle_status": status,
        "changed": outcome.changed,
        "allowed_next": lifecycle.allowed_next(status),
    }


@router.get("/registry/startup-order", response=OrderOut, summary="Start order: dependencies first")
def startup_order(request: HttpRequest, service: str | None = None):
    authorize(request, READ, service=service or None)
    return {"order": _order(_graph_with(service), service, reverse=False)}


@router.get(
    "/registry/shutdown-order",
    response=ShutdownOrderOut,
    summary="Stop order: dependents first",
    description="`order`: the services in the order to stop them; with `?service=x`, x and "
    "what it needs. `dependents` (with `?service=x`): the services that depend on x, directly "
    "or through others, to stop before it, in that order, each `hard` or `soft`.",
)
def shutdown_order(request: HttpRequest, service: str | None = None):
    # A service outside a limited token's reach answers 404 here as everywhere (breaking
    # trial, issue 28): x's order and dependents are a read of x.
    authorize(request, READ, service=service or None)
    graph = _graph_with(service)
    dependents = graph.dependents_to_stop(service) if service else []
    return {"order": _order(graph, service, reverse=True), "dependents": dependents}


def _graph_with(service: str | None) -> DependencyGraph:
    graph = DependencyGraph.load()
    if service is not None and service not in graph.needs:
        raise InvalidInput("unknown service", fields={"service": f"no service {service!r}"})
    return graph


def _order(graph: DependencyGraph, service: str | None, *, reverse: bool) -> list[str]:
    only = [service] if service else None
    return graph.stop_order(only) if reverse else graph.start_order(only)


@router.get("/teams", response=TeamPageOut, summary="Teams with their service counts, by name")
def list_teams(request: HttpRequest, page: Query[PageParams]):
    authorize(request, READ)
    rows = Team.objects.annotate(service_count=Count("services")).order_by("name")
    return page_of(rows, page.limit, page.offset)


@router.put(
    "/teams/{name}",
    response={200: TeamOut, 201: TeamOut},
    summary="Create or update a team (idempotent)",
)
def put_team(request: HttpRequest, name: PathName, payload: TeamFieldsIn):
    actor = authorize(request, WRITE)
    team = TeamIn(name=name, **payload.model_dump(exclude_unset=True))
    plan = registry.apply_manifest(registry.manifest_of(teams=[team]), actor).teams[0]
    row = Team.objects.annotate(service_count=Count("services")).get(name=name)
    return Status(201 if plan.outcome == "created" else 200, row)
