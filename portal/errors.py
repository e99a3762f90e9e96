"""The portal's one error model.

Domain code raises a ``PortalError`` subclass; the API, the middleware and the error views turn
it into the one JSON shape clients rely on::

    {"error": {"code": "...", "message": "...", "fields": {"path": "reason"},
               "request_id": "..."}}

``fields`` appears when there are per-field reasons; subclasses may add more keys (``cycle``,
``allowed``, ``dependents``...). Nothing internal (exception text, stack) ever goes in.
"""

from typing import Any

from django.http import JsonResponse

from portal.requestcontext import current_request_id


class PortalError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        fields: dict[str, str] | None = None,
        code: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code:
            self.code = code
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.fields, **self.extra)


class Forbidden(PortalError):
    status, code = 403, "forbidden"


class NotFound(PortalError):
    status, code = 404, "not_found"


class Conflict(PortalError):
    status, code = 409, "conflict"


class PayloadTooLarge(PortalError):
    status, code = 413, "payload_too_large"


class InvalidInput(PortalError):
    status, code = 422, "invalid"


class Misconfigured(PortalError):
    """The portal's own setup is wrong (not the caller's request): said plainly, logged."""

    status, code = 500, "misconfigured"


def no_such_service(name: str) -> NotFound:
    """The one answer for a service that does not exist -- or that the caller may not see
    (portal.auth answers the same, so a token learns nothing of what lies outside it)."""
    return NotFound(f"no service named {name!r}")


def error_body(
    code: str, message: str, fields: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    error.update(extra)
    error["request_id"] = current_request_id()
    return {"error": error}


# An answer in the error shape, as the API's document refers to it (portal.api defines it).
ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def answers(responses: dict[int, str | dict]) -> dict:
    """An operation's ``openapi_extra`` declaring what it answers beyond its successes and the
    errors every operation declares (portal.api): a status with a reason is an error in the
    one shape (409 ``stale_version``...); a dict is merged into that status' response object
    (a second media type of a success). Clients and the fuzzer learn every answer from the
    document, so each code path that can give one declares it where the route is."""
    # Keyed by number as the framework keys the responses it makes, so a dict merges into one.
    declared = {
        status: ({"description": what, "content": ERROR_CONTENT} if isinstance(what, str) else what)
        for status, what in responses.items()
    }
    return {"responses": declared}


def wants_json(request) -> bool:
    """API clients, probes and scrapers get errors as JSON; browsers on pages get HTML."""
    return request.path.startswith(
        ("/api/", "/health", "/metrics")
    ) or "application/json" in request.headers.get("Accept", "")


def error_response(status: int, code: str, message: str, **kwargs: Any) -> JsonResponse:
    return JsonResponse(error_body(code, message, **kwargs), status=status)


def field_path(loc: tuple | list, document: Any = None) -> str:
    """("services", 0, "team") -> "services[0].team". With the request's ``document``, a
    discriminated union's tag that pydantic puts in the path (("actions", 0, "webhook",
    "url")) is left out: the path names what the caller sent, "actions[0].url"."""
    path = ""
    node = document
    for part in loc:
        tag = isinstance(node, dict) and isinstance(part, str) and part not in node
        if tag and node.get("type") == part:
            continue  # the union's tag, not a key of the request
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"
