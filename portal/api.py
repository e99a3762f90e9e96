"""The one NinjaAPI: authentication, the JSON parser, exception handlers and the app routers.

Every error leaves here in the shape of ``portal.errors``; nothing else ever reaches a client.
"""

import json

import pydantic
import structlog
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser

from portal.auth import BearerTokenAuth, PortalSessionAuth
from portal.errors import PortalError, error_body, field_path

log = structlog.get_logger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


class MalformedBody(Exception):
    """The body is not a JSON document we accept; the message says why, for the caller."""


def json_depth_exceeds(document, limit: int) -> bool:
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class JsonParser(Parser):
    def parse_body(self, request: HttpRequest):
        try:
            document = json.loads(request.body)
        except json.JSONDecodeError as exc:
            raise MalformedBody(
                f"the body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        except UnicodeDecodeError:
            raise MalformedBody("the body is not UTF-8 text") from None
        if json_depth_exceeds(document, settings.API_MAX_JSON_DEPTH):
            raise MalformedBody(
                f"the JSON document is nested deeper than {settings.API_MAX_JSON_DEPTH} levels"
            )
        return document


api = NinjaAPI(
    title="Service-operations portal API",
    version="1",
    description=(
        "Registry, configuration and health of the organisation's services. Authenticate "
        "with `Authorization: Bearer <token>` (see `manage.py create_api_token`) or a "
        "logged-in browser session. Every error has the shape "
        '`{"error": {"code", "message", "fields", "request_id"}}`.'
    ),
    auth=[BearerTokenAuth(), PortalSessionAuth()],
    parser=JsonParser(),
    urls_namespace="api",
)


def _respond(request, status: int, body: dict, headers: dict | None = None):
    response = api.create_response(request, body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@api.exception_handler(PortalError)
def on_portal_error(request, exc: PortalError):
    return _respond(request, exc.status, exc.body())


@api.exception_handler(ValidationError)
def on_validation_error(request, exc: ValidationError):
    fields: dict[str, str] = {}
    for err in exc.errors:
        loc = list(err.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path", "header", "cookie", "form"):
            where = loc.pop(0)
            if where == "body" and loc and loc[0] == "payload":
                loc.pop(0)  # every body parameter is named "payload"; callers never see it
        path = field_path(loc)
        message = err.get("msg", "invalid")
        fields[path] = f"{fields[path]}; {message}" if path in fields else message
    return _respond(request, 422, error_body("invalid", "the request is not valid", fields=fields))


@api.exception_handler(pydantic.ValidationError)
def on_model_error(request, exc: pydantic.ValidationError):
    """A value from the request that a handler passed on to a schema (a name from the path
    put into a manifest item): the caller's error, said per field like any other."""
    fields: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        path = field_path(list(err.get("loc", ())))
        fields[path] = f"{fields[path]}; {err['msg']}" if path in fields else err["msg"]
    return _respond(request, 422, error_body("invalid", "the request is not valid", fields=fields))


@api.exception_handler(AuthenticationError)
def on_authentication_error(request, exc: AuthenticationError):
    message = exc.message
    if message == "Unauthorized":
        message = "authentication required: send 'Authorization: Bearer <token>' or log in"
    return _respond(
        request, 401, error_body("unauthorized", message), {"WWW-Authenticate": "Bearer"}
    )


@api.exception_handler(HttpError)
def on_http_error(request, exc: HttpError):
    cause = exc.__cause__
    if isinstance(cause, MalformedBody):
        return _respond(request, 400, error_body("malformed_body", str(cause)))
    if isinstance(cause, RequestDataTooBig):
        limit = settings.API_MAX_BODY_BYTES
        return _respond(
            request,
            413,
            error_body("payload_too_large", f"the body exceeds {limit} bytes", limit=limit),
        )
    status = exc.status_code
    return _respond(request, status, error_body(_HTTP_CODES.get(status, "error"), exc.message))


@api.exception_handler(Http404)
def on_not_found(request, exc):
    return _respond(request, 404, error_body("not_found", "not found"))


@api.exception_handler(Exception)
def on_unexpected(request, exc: Exception):
    log.exception("unhandled API error", path=request.path)
    return _respond(
        request,
        500,
        error_body("internal_error", "an internal error occurred; quote the request id"),
    )


api.add_router("/", "services.api.router")
api.add_router("/", "services.config_api.router")
api.add_router("/", "healthchecks.api.router")
