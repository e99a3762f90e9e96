"""Site-wide views: the liveness probe and error pages that speak JSON to API clients."""

from django.http import HttpRequest, HttpResponsePermanentRedirect, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from portal import security
from portal.errors import error_response, wants_json


@never_cache
@require_GET
def liveness(request: HttpRequest) -> JsonResponse:
    """The process answers: no database, no Redis (readiness lives at /health/service/...)."""
    return JsonResponse({"status": "pass"})


@require_GET
def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """Browsers ask for /favicon.ico on every page, the admin's included. The static URL is
    resolved per request: in production it needs the collectstatic manifest."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))


def _error(request, status: int, code: str, message: str, template: str):
    if wants_json(request):
        return error_response(status, code, message)
    return render(request, template, {"message": message}, status=status)


def bad_request(request, exception=None):
    return _error(request, 400, "bad_request", "the request could not be understood", "400.html")


def permission_denied(request, exception=None):
    user = getattr(request, "user", None)
    who = f"user:{user.get_username()}" if user is not None and user.is_authenticated else ""
    security.record(
        security.Kind.PERMISSION_DENIED,
        who or "anonymous",
        security.operation_of(request),
        "refused",
        reason=str(exception or "")[:300],
    )
    # The portal's own refusals say why (which scope, which team); Django's say nothing.
    return _error(
        request, 403, "forbidden", str(exception or "") or "you may not do this", "403.html"
    )


def not_found(request, exception=None):
    return _error(request, 404, "not_found", f"nothing at {request.path}", "404.html")


@csrf_exempt
def no_such_endpoint(request: HttpRequest) -> JsonResponse:
    """A path under /api/, /health/ or /metrics/ that matches no operation, whatever the
    method: a 404 in the error shape. Django's own 404 gives it too, but only with DEBUG off;
    with DEBUG on (make run) it is the technical page, HTML, which no client can parse."""
    return error_response(404, "not_found", f"nothing at {request.path}")


def server_error(request):
    return _error(
        request,
        500,
        "internal_error",
        "an internal error occurred; quote the request id",
        "500.html",
    )


def csrf_failure(request, reason=""):
    return _error(request, 403, "csrf_failed", "CSRF check failed; reload the page", "403.html")
