"""Request-wide middleware: request ids with the access log, and the body-size limit."""

import time

import structlog
from django.conf import settings

from portal.errors import error_response
from portal.requestcontext import choose_request_id, client_ip_var, request_id_var

access_log = structlog.get_logger("portal.access")


def _who(request) -> str:
    actor = getattr(request, "actor", None)
    if actor is not None:
        return str(actor)
    # Only name a user whose session was already loaded; never query just to log.
    user = request.__dict__.get("_cached_user")
    if user is not None and user.is_authenticated:
        return f"user:{user.get_username()}"
    return "anonymous"


class RequestContextMiddleware:
    """Give each request an id (the caller's X-Request-ID when sane), bind it to every log line
    written while the request runs, return it in the response, and log one access line."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = choose_request_id(request.headers.get("X-Request-ID"))
        request.id = request_id
        rid_token = request_id_var.set(request_id)
        ip_token = client_ip_var.set(request.META.get("REMOTE_ADDR", ""))
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            match = request.resolver_match
            access_log.info(
                "request",
                method=request.method,
                path=request.path,
                route=match.route if match else None,
                status=response.status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                who=_who(request),
            )
            return response
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            request_id_var.reset(rid_token)
            client_ip_var.reset(ip_token)


class BodySizeLimitMiddleware:
    """Refuse a body larger than API_MAX_BODY_BYTES before anything reads it (413)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return error_response(400, "bad_request", "the Content-Length header is not a number")
        limit = settings.API_MAX_BODY_BYTES
        if length > limit:
            return error_response(
                413,
                "payload_too_large",
                f"the request body has {length} bytes; the limit is {limit}",
                limit=limit,
            )
        return self.get_response(request)
