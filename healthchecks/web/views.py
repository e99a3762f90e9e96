"""The /health/... endpoints: open reads for probes, load balancers and dashboards.

Plain Django views rather than the API framework: they are the hottest read paths and the
outside contract (status codes, application/health+json) is theirs to keep. Every answer is
live: ``Cache-Control: no-store`` (never_cache), so no cache between a probe and the portal
answers with a status that was true a while ago (docs/decisions.md, "Health answers are never
cached"); the negotiated ones say they vary by ``Accept``.
"""

from datetime import datetime

from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import TypeAdapter, ValidationError

from healthchecks.reads import availability, healthjson, history, predict, reports
from healthchecks.reads.metrics import exposition
from healthchecks.status import Status, is_usable
from healthchecks.watch import selfcheck
from healthchecks.web import pings
from portal.errors import error_response, no_such_service
from portal.fields import AwareMoment
from services.models import Deployment, Service


def _respond(request, document: dict, health_document: dict, status: int = 200):
    if healthjson.wants_health_json(request):
        response = JsonResponse(
            health_document, status=status, content_type=healthjson.CONTENT_TYPE
        )
    else:
        response = JsonResponse(document, status=status)
    # A 503 here is an answer (the service is not usable), not a fault of the portal: the
    # access log records it; Django's error log would repeat it on every readiness poll.
    response._has_been_logged = True
    return response


def _not_found(name: str):
    missing = no_such_service(name)
    return error_response(missing.status, missing.code, missing.message)


@never_cache
@vary_on_headers("Accept")
@require_GET
def services(request: HttpRequest):
    health_json = healthjson.wants_health_json(request)
    if connection.vendor == "postgresql":
        return HttpResponse(
            reports.overview_text(health_json),
            content_type=healthjson.CONTENT_TYPE if health_json else "application/json",
        )
    overview = reports.services_overview()
    return _respond(request, overview, healthjson.overview_document(overview))


@never_cache
@vary_on_headers("Accept")
@require_GET
def service(request: HttpRequest, name: str):
    """200 while the service is usable (healthy or degraded), 503 when not: a readiness
    probe and a deploy gate (``?since=``, or ``?deployment=`` for the moment that deployment
    was reported: only results recorded since then count)."""
    try:
        since = _since(request)
    except ValueError as exc:
        return error_response(422, "invalid", "bad since", fields={"since": str(exc)})
    if "deployment" in request.GET:
        if not Service.objects.filter(name=name).exists():
            return _not_found(name)
        if since is not None:
            return error_response(
                422, "invalid", "give since or deployment", fields={"deployment": "not both"}
            )
        deployment = _deployment(name, request.GET["deployment"])
        if deployment is None:
            return error_response(
                422,
                "invalid",
                "bad deployment",
                fields={"deployment": f"{name!r} has no deployment with this id"},
            )
        since = deployment["reported_at"]
    else:
        deployment = None
    detail = selfcheck.detail() if name == selfcheck.NAME else reports.service_detail(name, since)
    if detail is None:
        return _not_found(name)
    usable = is_usable(Status[detail["status"].upper()])
    if deployment is not None:
        # The same gate as the verdict: usable only once the release passed (or when it is
        # a report with nothing to verify), on results since it was reported.
        detail = {
            **detail,
            "deployment": {k: v for k, v in deployment.items() if k != "reported_at"},
        }
        usable = usable and deployment["verification"] in (None, "passed")
    return _respond(request, detail, healthjson.service_document(detail), 200 if usable else 503)


# With its time zone: a moment without one was read as UTC, so a pipeline writing its own
# local time west of Greenwich asked for results from hours before its release.
_MOMENT = TypeAdapter(AwareMoment)


def _deployment(name: str, text: str) -> dict | None:
    """The service's deployment with this id: when it was reported, its version and its
    verification's state and reason (None if there is no such deployment)."""
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    row = (
        Deployment.objects.filter(service__name=name, pk=int(text))
        .values("id", "version", "created_at", "verification_state", "verification_reason")
        .first()
    )
    if row is None:
        return None
    return {
        "id": row["id"],
        "version": row["version"],
        "reported_at": row["created_at"],
        "verification": row["verification_state"] or None,
        "reason": row["verification_reason"],
    }


def _since(request: HttpRequest) -> datetime | None:
    """``?since=``: an ISO 8601 moment, or ``now`` (the portal's clock, so a pipeline's own
    clock never matters: the answer says which moment it used, in ``results_since``)."""
    text = request.GET.get("since")
    if text is None:
        return None
    if text == "now":
        return timezone.now()
    try:
        return _MOMENT.validate_python(text)
    except ValidationError as exc:
        error = exc.errors()[0]
        reason = "needs a time zone (Z or +hh:mm)" if error["type"] == "timezone_aware" else None
        raise ValueError(
            f"{reason or error['msg']}; an ISO 8601 moment (2024-05-01T12:00:00Z) or now"
        ) from None


@never_cache
@require_GET
def predictive(request: HttpRequest):
    """Trouble that is coming (healthchecks.reads.predict), as last computed (every minute)."""
    return JsonResponse(predict.document())


@never_cache
@require_GET
def metrics(request: HttpRequest):
    return JsonResponse(history.metrics_summary())


@never_cache
@require_GET
def service_history(request: HttpRequest, name: str):
    """Results over a range, check uptime, and the service's availability by time
    (``?exclude=maintenance,upstream`` leaves that time out of it)."""
    try:
        # ?exclude=maintenance,upstream and ?exclude=maintenance&exclude=upstream alike
        exclude = availability.parse_exclude(",".join(request.GET.getlist("exclude")))
    except ValueError as exc:
        return error_response(422, "invalid", "bad exclude", fields={"exclude": str(exc)})
    try:
        body = history.service_history(name, request.GET)
    except history.BadRange as exc:
        return error_response(422, "invalid", str(exc), fields=exc.fields)
    except history.NoSuchCheck as exc:
        return error_response(404, "not_found", str(exc), fields={"check": "no such check"})
    except Http404:
        return _not_found(name)
    service = Service.objects.get(name=name)
    body["availability"] = availability.service_availability(service, exclude)
    return JsonResponse(body)


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST", "HEAD"])
def heartbeat(request: HttpRequest, token: str, signal: str = ""):
    """The URL a service or cron job calls; ``/fail`` reports a failure."""
    if signal not in ("", "fail"):
        return error_response(404, "not_found", "use .../heartbeat/<token> or .../fail")
    check = pings.receive(token, failed=signal == "fail")
    if check is None:
        return error_response(404, "not_found", "no heartbeat check has this token")
    return HttpResponse("OK\n", content_type="text/plain")


@never_cache
@require_GET
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition (open, like the health reads)."""
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
