"""The service resource as pipelines apply it: a service with its checks (manifest.apply),
and the manifest of many. Thin handlers; the registry's reads come from services.queries.

These live above the registry and the health engine because their bodies carry both. (One
URL path is served by one router: the whole ``/services`` and ``/services/{name}`` resource is
here, the rest of the registry's API in services.api.)
"""

from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Status

from manifest import apply as manifests
from manifest.schemas import (
    ManifestApplyOut,
    ManifestIn,
    ServiceFieldsIn,
    ServiceIn,
    ServiceUpsertIn,
)
from portal.auth import authorize, authorize_services
from portal.errors import answers
from portal.fields import PathName, UrlBoolean
from portal.models import Scope
from portal.responses import json_response
from services import queries, registry
from services.schemas import (
    PageParams,
    ServiceFilter,
    ServiceOut,
    ServicePageOut,
    UpsertOut,
)

router = Router(tags=["registry"])
READ, WRITE = Scope.REGISTRY_READ, Scope.REGISTRY_WRITE


def _id(name: str) -> str:
    """The operation ids these routes had before they moved here: clients generated from the
    OpenAPI document keep working."""
    return f"services_api_{name}"


@router.get(
    "/services", response=ServicePageOut, summary="List services", operation_id=_id("list_services")
)
def list_services(request: HttpRequest, filters: Query[ServiceFilter], page: Query[PageParams]):
    principal = authorize(request, READ)
    queryset = queries.visible_to(principal, queries.filter_services(filters))
    body = {
        "items": queries.service_dicts(queryset[page.offset : page.offset + page.limit]),
        "count": queryset.count(),
        "limit": page.limit,
        "offset": page.offset,
    }
    # Built from plain rows already in the documented shape: skip re-validating every item.
    return json_response(body)


@router.post(
    "/services",
    response={201: ServiceOut},
    summary="Register a service",
    operation_id=_id("create_service"),
    openapi_extra=answers({409: "`already_exists`: a service by that name is registered"}),
)
def create_service(request: HttpRequest, payload: ServiceIn):
    actor = authorize(request, WRITE, service=payload.name, naming=True)
    manifests.create_service(payload, actor)
    return Status(201, queries.service_document(payload.name))


@router.get(
    "/services/{name}",
    response=ServiceOut,
    summary="Get a service",
    operation_id=_id("get_service"),
)
def get_service(request: HttpRequest, name: str):
    authorize(request, READ, service=name)
    return queries.service_document(name)


def _upsert_body(name: str, outcome: manifests.Outcome) -> dict:
    plan = outcome.registry.services[0]
    return {
        "result": outcome.service_outcome(plan),
        "changed_fields": outcome.changed_fields(plan),
        "service": queries.service_document(name),
    }


@router.put(
    "/services/{name}",
    response={200: UpsertOut, 201: UpsertOut},
    summary="Create or update a service (idempotent)",
    operation_id=_id("upsert_service"),
    description="The same body twice changes nothing the second time and answers "
    '`"result": "unchanged"`. Fields left out keep their stored values.',
)
def upsert_service(request: HttpRequest, name: PathName, payload: ServiceUpsertIn):
    actor = authorize(request, WRITE, service=name)
    body = _upsert_body(name, manifests.upsert_service(name, payload, actor))
    return Status(201 if body["result"] == "created" else 200, body)


@router.patch(
    "/services/{name}",
    response=UpsertOut,
    summary="Change some fields of a service",
    operation_id=_id("patch_service"),
)
def patch_service(request: HttpRequest, name: str, payload: ServiceFieldsIn):
    actor = authorize(request, WRITE, service=name)
    return _upsert_body(name, manifests.patch_service(name, payload, actor))


@router.delete(
    "/services/{name}",
    response={204: None},
    summary="Delete a service",
    operation_id=_id("delete_service"),
    description="Refused with 409 and the dependents listed while other services need it.",
    openapi_extra=answers({409: "`has_dependents`: other services need it (`dependents`)"}),
)
def delete_service(request: HttpRequest, name: str):
    actor = authorize(request, WRITE, service=name)
    registry.delete_service(name, actor)
    return HttpResponse(status=204)


@router.post(
    "/registry/apply",
    response=ManifestApplyOut,
    summary="Apply a manifest atomically",
    operation_id=_id("apply_manifest"),
    description="All or nothing. Dependencies may name services later in the "
    "manifest. Answers which services were created, updated and unchanged. A service's "
    "`config` (`schema`, `values`) is stored in the same transaction and needs `config:write` "
    "too; a schema or values that do not pass answer 422 naming the field "
    "(`services[0].config.values.port`), and nothing is stored. `dry_run=true` checks and "
    "plans all of it, answers the same, and stores nothing.",
)
def apply_manifest(request: HttpRequest, payload: ManifestIn, dry_run: UrlBoolean = False):
    actor = authorize_services(request, WRITE, [s.name for s in payload.services])
    configured = [s.name for s in payload.services if s.config is not None]
    if configured:
        authorize_services(request, Scope.CONFIG_WRITE, configured)
    return manifests.apply(payload, actor, dry_run=dry_run).as_dict()
