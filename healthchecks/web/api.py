"""Check definitions and "run this check now": thin handlers over healthchecks.checks."""

from django.http import HttpRequest, HttpResponse
from ninja import Router, Status

from healthchecks import checks
from healthchecks.models import HealthCheck
from healthchecks.schemas import CheckFieldsIn, CheckOut
from portal import ratelimit
from portal.auth import authorize
from portal.errors import NotFound
from portal.fields import PathName
from portal.models import Scope
from services.models import Service
from services.queries import get_service

router = Router(tags=["health checks"])


def _check(service: Service, check_name: str) -> HealthCheck:
    check = (
        HealthCheck.objects.filter(service=service, name=check_name)
        .select_related("service", "state", "schedule")
        .first()
    )
    if check is None:
        raise NotFound(f"{service.name!r} has no check named {check_name!r}")
    return check


def _out(request, check: HealthCheck) -> dict:
    base = f"{request.scheme}://{request.get_host()}"
    principal = request.auth
    reveal = principal.has_scope(Scope.HEALTH_WRITE) and principal.may_change(check.service.name)
    return checks.describe(check, getattr(check, "state", None), base, reveal=reveal)


@router.get("/services/{name}/checks", response=list[CheckOut])
def list_checks(request: HttpRequest, name: str):
    authorize(request, Scope.REGISTRY_READ, service=name)
    service = get_service(name)
    return [
        _out(request, c)
        for c in service.checks.select_related("service", "state", "schedule").order_by("name")
    ]


@router.get("/services/{name}/checks/{check}", response=CheckOut)
def get_check(request: HttpRequest, name: str, check: str):
    authorize(request, Scope.REGISTRY_READ, service=name)
    return _out(request, _check(get_service(name), check))


@router.put(
    "/services/{name}/checks/{check}",
    response={200: CheckOut, 201: CheckOut},
    summary="Create or update a check (idempotent)",
    description="Fields left out keep their stored values. Invalid definitions (bad "
    "URL or scheme, timeout longer than interval, a target the network policy "
    "refuses, a callable outside the allowed modules) are 422 with per-field reasons.",
)
def put_check(request: HttpRequest, name: str, check: PathName, payload: CheckFieldsIn):
    actor = authorize(request, Scope.HEALTH_WRITE, service=name)
    written = checks.put_one(name, check, payload, actor)
    created = written.outcome == "created"
    return Status(201 if created else 200, _out(request, _check(get_service(name), check)))


@router.delete("/services/{name}/checks/{check}", response={204: None})
def delete_check(request: HttpRequest, name: str, check: str):
    actor = authorize(request, Scope.HEALTH_WRITE, service=name)
    checks.delete_one(name, check, actor)
    return HttpResponse(status=204)


@router.post(
    "/services/{name}/checks/{check}/run",
    response=CheckOut,
    summary="Run a check now and record the result",
)
def run_check(request: HttpRequest, name: str, check: str):
    actor = authorize(request, Scope.HEALTH_WRITE, service=name)
    ratelimit.mark_deliberate(request)  # it waits on the target: slow on purpose, no stress
    row = _check(get_service(name), check)
    checks.run_now(row, actor)
    return _out(request, _check(row.service, check))
