"""Request-wide middleware: request ids with the access log, the body-size limit, and text
in the URL that nothing can store."""

import time

import structlog
from django.conf import settings
from django.core.signals import got_request_exception
from django.db.utils import InterfaceError, OperationalError
from django.dispatch import receiver
from django.http import HttpResponse, HttpResponseBadRequest
from django.middleware.common import CommonMiddleware as BaseCommonMiddleware
from django.utils.encoding import escape_uri_path
from django.utils.http import escape_leading_slashes

from portal import ratelimit, security
from portal.errors import error_response, wants_json
from portal.requestcontext import (
    choose_request_id,
    client_address,
    client_ip_var,
    request_id_var,
)

access_log = structlog.get_logger("portal.access")
log = structlog.get_logger(__name__)


def _who(request) -> str:
    actor = getattr(request, "actor", None)
    if actor is not None:
        return str(actor)
    # Only name a user whose session was already loaded; never query just to log.
    user = request.__dict__.get("_cached_user")
    if user is not None and user.is_authenticated:
        return f"user:{user.get_username()}"
    return "anonymous"


def as_error_shape(request, response):
    """Django's bare 405 (``require_GET`` and friends) in the error shape API clients and
    probes expect, keeping its Allow header."""
    if response.status_code != 405 or not wants_json(request):
        return response
    if response.get("Content-Type", "").startswith("application/json"):
        return response
    allowed = response.get("Allow", "")
    shaped = error_response(
        405,
        "method_not_allowed",
        f"{request.method} is not allowed here" + (f"; allowed: {allowed}" if allowed else ""),
    )
    if allowed:
        shaped["Allow"] = allowed
    return shaped


class RequestContextMiddleware:
    """Give each request an id (the caller's X-Request-ID when sane), bind it to every log line
    written while the request runs, return it in the response, and log one access line."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = choose_request_id(request.headers.get("X-Request-ID"))
        request.id = request_id
        rid_token = request_id_var.set(request_id)
        # The client's address as the rate limiter sees it (behind a trusted proxy, the
        # forwarded one): what the security events and the audit log record.
        ip_token = client_ip_var.set(client_address(request.META))
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        try:
            response = as_error_shape(request, self.get_response(request))
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
            # This is the request's line. Django would log a 4xx/5xx once more after the
            # middleware ran, without the request id (an exception's traceback it logs
            # before, while the id is bound).
            response._has_been_logged = True
            return response
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            request_id_var.reset(rid_token)
            client_ip_var.reset(ip_token)


class BodySizeLimitMiddleware:
    """Refuse a body larger than API_MAX_BODY_BYTES before anything reads it (413), headers
    larger than API_MAX_HEADER_BYTES, one or all together (431), and a URI longer than
    API_MAX_URL_BYTES (414): the server in front may allow more (runserver has no limit;
    gunicorn's limits are set above these, portal/gunicorn.conf.py), and every header and URI
    is logged, parsed or stored somewhere."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        oversized = _oversized_header(request.META)
        if oversized:
            name, size, limit = oversized
            return error_response(
                431,
                "request_header_fields_too_large",
                f"the request's headers are too large: {name} has {size} bytes; the limit is "
                f"{limit}",
                fields={f"headers.{name}": f"{size} bytes; at most {limit}"},
                limit=limit,
            )
        uri, limit = _uri_bytes(request), settings.API_MAX_URL_BYTES
        if uri > limit:
            return error_response(
                414,
                "uri_too_long",
                f"the request's URI (path and query) has {uri} bytes; the limit is {limit}",
                fields={"uri": f"{uri} bytes; at most {limit}"},
                limit=limit,
            )
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


def _uri_bytes(request) -> int:
    """The request target's length as it was sent (the path percent-encoded, the query as
    is), which is what the server in front measures too."""
    query = request.META.get("QUERY_STRING", "")
    return len(escape_uri_path(request.path)) + (1 + len(query) if query else 0)


def _oversized_header(meta: dict) -> tuple[str, int, int] | None:
    """(header, its size, the limit) of one header over the per-header limit, or ("all", the
    total, the limit) when together they are over the total; None when they fit."""
    one, total = settings.API_MAX_HEADER_BYTES, settings.API_MAX_HEADERS_TOTAL_BYTES
    names = {key: key[5:].replace("_", "-").title() for key in meta if key.startswith("HTTP_")}
    sizes = {name: len(name) + len(str(meta[key])) for key, name in names.items()}
    for name, size in sizes.items():
        if size > one:
            return name, size, one
    if sum(sizes.values()) > total:
        return "all", sum(sizes.values()), total
    return None


class UnstorableUrlTextMiddleware:
    """Refuse a NUL character in the path or the query (400) before any view sees it: no
    database column can hold one, so a lookup by that name would end in a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        fields = {}
        if "\x00" in request.path:
            fields["path"] = "contains a NUL character"
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                fields[f"query.{key.replace(chr(0), '?')}"] = "contains a NUL character"
        if not fields:
            return self.get_response(request)
        message = "the URL contains a NUL character"
        if wants_json(request):
            return error_response(400, "bad_request", message, fields=fields)
        return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


@receiver(got_request_exception, dispatch_uid="portal-fault-on-unhandled-error")
def on_unhandled_error(sender, request=None, **kwargs):
    """An exception nothing handled (Django answers 500) is a genuine fault: stress."""
    if request is not None:
        request.portal_fault = True


class RateLimitMiddleware:
    """The adaptive rate limiter (portal.ratelimit) ahead of the views: over its budget a
    client gets a 429 in the error shape with Retry-After; every limited answer carries the
    RateLimit-* headers. Also counts each answer for the stress signal (its genuine
    faults: portal.ratelimit.mark_fault), and where the counts stay in this process, adapts
    the factor here."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.RATE_LIMITS_ENABLED:
            return self.get_response(request)
        kind, verdict = ratelimit.LIMITER.check(request)
        if verdict is not None and not verdict.allowed:
            wait = ratelimit.headers(verdict)["Retry-After"]
            client = ratelimit.client_key(request, kind)
            security.record(
                security.Kind.RATE_LIMITED,
                lambda: ratelimit.known_as(client),  # named once, when its row is made
                security.operation_of(request),
                "refused",
                caller=f"{kind}:{client}",
                route_class=kind,
                limit_per_minute=verdict.limit,
            )
            response = error_response(
                429,
                "rate_limited",
                f"too many requests: {kind.replace('_', ' ')} allow {verdict.limit} a minute "
                f"per client, with bursts; retry in {wait} s",
                limit_per_minute=verdict.limit,
                retry_after=int(wait),
            )
        else:
            started = time.monotonic()
            response = self.get_response(request)
            elapsed = time.monotonic() - started
            fault = ratelimit.is_fault(response) or getattr(request, "portal_fault", False)
            # A refusal (4xx) answers the caller's own request, however long it took: its
            # slowness is no stress one caller could use to throttle everyone.
            refused = 400 <= response.status_code < 500
            ratelimit.LIMITER.record(fault, elapsed, ratelimit.is_deliberate(request) or refused)
            ratelimit.LIMITER.adapt_here_if_due()
        if verdict is not None:
            for name, value in ratelimit.headers(verdict).items():
                response[name] = value
        return response


DATABASE_RETRY_AFTER = "5"


def database_unavailable(request):
    """503 with Retry-After: the portal cannot reach its database (refused, hung past the
    connect timeout, out of pooled connections, a statement past its timeout). Not the
    caller's fault and not a bug; said plainly, in the shape the caller reads."""
    message = "the portal's database is unavailable; try again shortly"
    response: HttpResponse
    if wants_json(request):
        response = error_response(503, "database_unavailable", message)
    else:
        response = HttpResponse(
            message + "\n", status=503, content_type="text/plain; charset=utf-8"
        )
    response["Retry-After"] = DATABASE_RETRY_AFTER
    return ratelimit.mark_fault(response)  # the portal in trouble: stress


class LoginDeviceMiddleware:
    """Sets the device cookie of a browser that has just signed in (portal.security): its
    failed logins are its own from then on, apart from its address's."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        security.set_device_cookie(request, response)
        return response


class DatabaseUnavailableMiddleware:
    """Views that meet an unreachable database answer 503 (see database_unavailable) instead
    of a 500 page; the error is logged once as a warning with its cause."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        log.warning("database unavailable", path=request.path, error=_one_line(exception))
        return database_unavailable(request)


def _one_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


class CommonMiddleware(BaseCommonMiddleware):
    """Django's, except for a write to a path that lacks its trailing slash (``POST /health``):
    with DEBUG on, Django raises there -- a 500 for something a caller sent, counted as a
    fault by the rate limiter -- and with it off answers 301, which clients follow as a GET.
    Here it is a 308 to the path with its slash, which keeps the method and the body."""

    def get_full_path_with_slash(self, request):
        return escape_leading_slashes(request.get_full_path(force_append_slash=True))

    def _keep_the_method(self, request, response):
        slash_redirect = (
            response is not None
            and response.status_code == 301
            and response.get("Location") == self.get_full_path_with_slash(request)
        )
        if slash_redirect and request.method not in ("GET", "HEAD"):
            response.status_code = 308
        return response

    def process_request(self, request):
        return self._keep_the_method(request, super().process_request(request))

    def process_response(self, request, response):
        return self._keep_the_method(request, super().process_response(request, response))
