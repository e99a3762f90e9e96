"""Check definitions and "run this check now": thin handlers over healthchecks.checks."""

import asyncio

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Router, Status

from healthchecks import checks, netpolicy, probes, recording
from healthchecks.models import CheckState, HealthCheck
from healthchecks.schemas import CheckFieldsIn, CheckIn, CheckOut
from portal.auth import authorize
from portal.errors import InvalidInput, NotFound
from portal.models import Scope
from services.fields import PathName
from services.models import Service

router = Router(tags=["health checks"])


def _service(name: str) -> Service:
    service = Service.objects.filter(name=name).first()
    if service is None:
        raise NotFound(f"no service named {name!r}")
    return service


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
    reveal = principal.has_scope(Scope.HEALTH_WRITE) and principal.may_act_on(check.service.name)
    return checks.describe(check, getattr(check, "state", None), base, reveal=reveal)


@router.get("/services/{name}/checks", response=list[CheckOut])
def list_checks(request: HttpRequest, name: str):
    authorize(request, Scope.REGISTRY_READ, service=name)
    service = _service(name)
    return [
        _out(request, c)
        for c in service.checks.select_related("service", "state", "schedule").order_by("name")
    ]


@router.get("/services/{name}/checks/{check}", response=CheckOut)
def get_check(request: HttpRequest, name: str, check: str):
    authorize(request, Scope.REGISTRY_READ, service=name)
    return _out(request, _check(_service(name), check))


@router.put(
    "/services/{name}/checks/{check}",
    response={200: CheckOut, 201: CheckOut},
    summary="Create or update a check (idempotent)",
    description="Fields left out keep their stored values. Invalid definitions (bad "
    "URL or scheme, timeout longer than interval, a target the network policy "
    "refuses, a callable outside the allowed modules) are 422 with per-field reasons.",
)
def put_check(request: HttpRequest, name: str, check: PathName, payload: CheckFieldsIn):
    authorize(request, Scope.HEALTH_WRITE, service=name)
    spec = CheckIn(name=check, **payload.model_dump(exclude_unset=True))
    with transaction.atomic():
        service = Service.objects.select_for_update().filter(name=name).first()
        if service is None:
            raise NotFound(f"no service named {name!r}")
        existing = HealthCheck.objects.filter(service=service, name=check).first()
        plans, errors = checks.plan([spec], [existing] if existing else [], "")
        errors = {k.removeprefix("checks[0]."): v for k, v in errors.items()}
        if errors:
            raise InvalidInput("the check is not valid; nothing was changed", fields=errors)
        checks.write(service.pk, [p for p in plans if p.name == check])
    created = existing is None or existing.kind != spec.kind
    return Status(201 if created else 200, _out(request, _check(service, check)))


@router.delete("/services/{name}/checks/{check}", response={204: None})
def delete_check(request: HttpRequest, name: str, check: str):
    authorize(request, Scope.HEALTH_WRITE, service=name)
    _check(_service(name), check).delete()
    return HttpResponse(status=204)


@router.post(
    "/services/{name}/checks/{check}/run",
    response=CheckOut,
    summary="Run a check now and record the result",
)
def run_check(request: HttpRequest, name: str, check: str):
    authorize(request, Scope.HEALTH_WRITE, service=name)
    row = _check(_service(name), check)
    spec = checks.probe_spec(row, getattr(row, "state", None))
    started = timezone.now()
    outcome = asyncio.run(probes.probe(spec, netpolicy.NetworkPolicy.from_settings()))
    CheckState.objects.get_or_create(health_check=row)
    recording.record([recording.Result(row.pk, started, started, outcome)])
    return _out(request, _check(row.service, check))
