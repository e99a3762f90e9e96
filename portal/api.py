"""The one NinjaAPI: authentication, the JSON parser, exception handlers and the app routers.

Every error leaves here in the shape of ``portal.errors``; nothing else ever reaches a client.
"""

import json
import math
from collections.abc import Iterable

import pydantic
import structlog
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db.utils import InterfaceError, OperationalError
from django.http import Http404, HttpRequest
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser

from portal import ratelimit, security
from portal.auth import BearerTokenAuth, PortalSessionAuth
from portal.errors import PortalError, error_body, field_path
from portal.middleware import database_unavailable

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


class UnstorableText(Exception):
    """Text no database column can hold (NUL, lone surrogates), by field path."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("text that cannot be stored")
        self.fields = fields


def json_depth_exceeds(document, limit: int) -> bool:
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        children: Iterable
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


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character, which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (\\ud800-\\udfff), which is not a character"
    return None


def unstorable_text(document) -> dict[str, str]:
    """Field path -> reason for every key or string PostgreSQL would refuse to store (a 500
    otherwise, after the handler has done its work)."""
    found: dict[str, str] = {}
    stack: list[tuple[object, tuple]] = [(document, ())]
    while stack and len(found) < 20:
        node, path = stack.pop()
        if isinstance(node, str):
            if problem := _text_problem(node):
                found[field_path(path)] = problem
        elif isinstance(node, dict):
            for key, value in node.items():
                if problem := _text_problem(key):
                    found[field_path((*path, "<key>"))] = problem
                stack.append((value, (*path, key)))
        elif isinstance(node, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(node))
    return found


def _no_constant(name: str):
    raise MalformedBody(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise MalformedBody(f"the number {text[:40]} is out of range")
    return value


class UnsupportedMediaType(Exception):
    pass


class TooManyKeys(Exception):
    pass


def _object_builder():
    """json's object hook: a key twice in one object is refused (which one wins differs
    between parsers -- a smuggling path), and so are more than API_MAX_JSON_KEYS keys in all."""
    seen = 0

    def build(pairs: list[tuple[str, object]]) -> dict:
        nonlocal seen
        seen += len(pairs)
        if seen > settings.API_MAX_JSON_KEYS:
            raise TooManyKeys(f"the JSON document has more than {settings.API_MAX_JSON_KEYS} keys")
        document = dict(pairs)
        if len(document) != len(pairs):
            keys = [key for key, _ in pairs]
            twice = sorted({key for key in keys if keys.count(key) > 1})
            raise MalformedBody(f"a key appears twice in one object: {', '.join(twice)[:200]}")
        return document

    return build


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


class JsonParser(Parser):
    """Standard JSON only (no NaN or Infinity, no number that overflows a double, no key
    twice in an object), sent as JSON, nested at most API_MAX_JSON_DEPTH deep with at most
    API_MAX_JSON_KEYS keys, and text a database can store."""

    def parse_body(self, request: HttpRequest):
        sent = request.META.get("CONTENT_TYPE", "")
        if request.body and not _is_json(sent):
            raise UnsupportedMediaType(
                f"the body must be application/json, not {sent or 'unlabelled'}"
            )
        try:
            document = json.loads(
                request.body,
                parse_constant=_no_constant,
                parse_float=_finite_float,
                object_pairs_hook=_object_builder(),
            )
        except json.JSONDecodeError as exc:
            raise MalformedBody(
                f"the body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        except UnicodeDecodeError:
            raise MalformedBody("the body is not UTF-8 text") from None
        except RecursionError:
            raise MalformedBody(
                f"the JSON document is nested deeper than {settings.API_MAX_JSON_DEPTH} levels"
            ) from None
        except ValueError as exc:  # an integer of more digits than Python converts
            raise MalformedBody(f"the body is not acceptable JSON: {exc}") from None
        if json_depth_exceeds(document, settings.API_MAX_JSON_DEPTH):
            raise MalformedBody(
                f"the JSON document is nested deeper than {settings.API_MAX_JSON_DEPTH} levels"
            )
        if problems := unstorable_text(document):
            raise UnstorableText(problems)
        return document


# What every operation may answer besides its own successes, in the one error shape.
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "request_id"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                "request_id": {"type": "string"},
            },
            "additionalProperties": True,
        }
    },
}
COMMON_ERRORS = {
    "400": "malformed request (not JSON, a key twice, NUL in the URL, ...)",
    "401": "no credentials, or a token that is unknown, revoked or expired",
    "403": "the caller lacks the operation's scope or reach",
    "404": "nothing by that name (or outside the caller's reach)",
    "413": "the body is too large, or has too many keys",
    "414": "the URI (path and query) is too long",
    "415": "the body is not labelled application/json",
    "422": "a field is not valid: `fields` names each",
    "431": "a header, or all of them together, too large",
    "429": "over the caller's rate limit: see Retry-After",
    "503": "the database does not answer: see Retry-After",
}


class PortalApi(NinjaAPI):
    """The API whose document declares, for every operation, the errors any request may get
    (in the error shape), so clients and fuzzers know every status it can answer."""

    def get_openapi_operation_id(self, operation) -> str:
        """``<app>_<module>_<function>``: an app's sub-packages (healthchecks.web.api) are
        left out, so an operation keeps its id when code moves inside its app -- clients
        generate their method names from it."""
        parts = operation.view_func.__module__.split(".")
        return f"{parts[0]}_{parts[-1]}_{operation.view_func.__name__}"

    def get_openapi_schema(self, *args, **kwargs):
        document = super().get_openapi_schema(*args, **kwargs)
        document.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for methods in document["paths"].values():
            for operation in methods.values():
                responses = operation.setdefault("responses", {})
                declared = {str(code) for code in responses}
                for code, why in COMMON_ERRORS.items():
                    if code not in declared:
                        responses[code] = {"description": why, "content": error}
        return document


api = PortalApi(
    title="Service-operations portal API",
    version="1",
    description=(
        "Registry, configuration and health of the organisation's services. Authenticate "
        "with `Authorization: Bearer <token>` (see `manage.py create_api_token`) or a "
        "logged-in browser session. Every error has the shape "
        '`{"error": {"code", "message", "fields", "request_id"}}`.\n\n'
        "The open reads under `/health/...`, the heartbeat URLs and Prometheus' `/metrics` "
        "are described in a document of their own: "
        "[/health/openapi.json](/health/openapi.json)."
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
    if exc.status == 403:
        who = getattr(request, "auth", None) or getattr(request, "actor", None) or "anonymous"
        security.record(
            security.Kind.PERMISSION_DENIED,
            who,
            security.operation_of(request),
            "refused",
            reason=exc.message,
        )
    return _respond(request, exc.status, exc.body())


def _json_body(request):
    """The request's JSON body, to name error paths as the caller wrote them (None if it is
    not JSON: the path is then pydantic's)."""
    try:
        return json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None


@api.exception_handler(ValidationError)
def on_validation_error(request, exc: ValidationError):
    fields: dict[str, str] = {}
    document = _json_body(request)
    for err in exc.errors:
        loc = list(err.get("loc", ()))
        where = None
        if loc and loc[0] in ("body", "query", "path", "header", "cookie", "form"):
            where = loc.pop(0)
            if where == "body" and loc and loc[0] == "payload":
                loc.pop(0)  # every body parameter is named "payload"; callers never see it
        path = field_path(loc, document if where == "body" else None)
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
    if isinstance(cause, UnsupportedMediaType):
        return _respond(request, 415, error_body("unsupported_media_type", str(cause)))
    if isinstance(cause, TooManyKeys):
        body = error_body("payload_too_large", str(cause), limit=settings.API_MAX_JSON_KEYS)
        return _respond(request, 413, body)
    if isinstance(cause, UnstorableText):
        body = error_body("invalid", "the body holds text that cannot be stored", cause.fields)
        return _respond(request, 422, body)
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


@api.exception_handler(OperationalError)
@api.exception_handler(InterfaceError)
def on_database_unavailable(request, exc: Exception):
    log.warning("database unavailable", path=request.path, error=f"{type(exc).__name__}")
    return database_unavailable(request)


@api.exception_handler(Exception)
def on_unexpected(request, exc: Exception):
    log.exception("unhandled API error", path=request.path)
    response = _respond(
        request,
        500,
        error_body("internal_error", "an internal error occurred; quote the request id"),
    )
    return ratelimit.mark_fault(response)  # a genuine fault: stress


api.add_router("/", "portal.security_api.router")
api.add_router("/", "portal.audit_api.router")
api.add_router("/", "manifest.api.router")
api.add_router("/", "services.api.router")
api.add_router("/", "services.config_api.router")
api.add_router("/", "healthchecks.web.api.router")
api.add_router("/", "automation.api.router")
