"""GET /api/security-events: the security events, newest first, for admins (audit:read);
GET /api/tokens and POST /api/tokens/{name}/revoke: token hygiene (never a secret)."""

from datetime import datetime

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from portal import security, tokens
from portal.auth import authorize
from portal.errors import answers
from portal.fields import MAX_INT32, Moment, UrlInteger
from portal.models import ApiToken, Scope, SecurityEvent
from portal.responses import page_of

router = Router(tags=["security"])
KindName = SecurityEvent.Kind


class EventFilters(Schema):
    kind: KindName | None = None
    who: str | None = Field(None, max_length=200)
    since: Moment | None = Field(
        None,
        description="ISO 8601 (2024-05-01T12:00:00Z): events seen since then (a counted "
        "event whose last_at is since then included).",
    )
    limit: UrlInteger = Field(100, ge=1, le=1000)
    offset: UrlInteger = Field(0, ge=0, le=MAX_INT32)


EVENT_FIELDS = [
    "at",
    "kind",
    "who",
    "client_ip",
    "operation",
    "outcome",
    "detail",
    "request_id",
    "count",
    "last_at",
]


class EventOut(Schema):
    at: datetime = Field(description="When it happened (a counted event: first seen).")
    kind: str
    who: str
    client_ip: str | None
    operation: str
    outcome: str
    detail: dict
    request_id: str
    count: int = Field(
        description="Times seen: a refusal repeated by the same caller from the same address "
        "within a minute is one event that counts (1 for the rest)."
    )
    last_at: datetime = Field(description="Last seen (at, when seen once).")


class EventPageOut(Schema):
    items: list[EventOut]
    count: int
    limit: int
    offset: int


@router.get(
    "/security-events",
    response=EventPageOut,
    summary="Security events, newest first (failed logins, token failures, refusals, "
    "rate-limit hits, secret reads, tokens made and revoked)",
)
def list_events(request: HttpRequest, filters: Query[EventFilters]):
    authorize(request, Scope.AUDIT_READ)
    found = security.events(filters.kind, filters.who, filters.since).values(*EVENT_FIELDS)
    return page_of(found, filters.limit, filters.offset)


class TokenOut(Schema):
    name: str
    prefix: str = Field(description="The secret's first characters, to recognise it; never more.")
    scopes: list[str]
    services: list[str]
    teams: list[str]
    expires_at: datetime | None
    last_used_at: datetime | None
    is_active: bool
    created_at: datetime


def _token_out(token: ApiToken) -> dict:
    return {
        "name": token.name,
        "prefix": token.prefix,
        "scopes": token.scopes,
        "services": token.services,
        "teams": token.teams,
        "expires_at": token.expires_at,
        "last_used_at": token.last_used_at,
        "is_active": token.is_active,
        "created_at": token.created_at,
    }


@router.get("/tokens", response=list[TokenOut], summary="API tokens, with when each was last used")
def list_tokens(request: HttpRequest):
    authorize(request, Scope.AUDIT_READ)
    return [_token_out(t) for t in ApiToken.objects.order_by("name")]


@router.post(
    "/tokens/{name}/revoke",
    response=TokenOut,
    summary="Revoke a token: it stops working at once (audited; a security event)",
    description="409 if it is revoked already; 403 unless the caller could grant its scopes.",
    openapi_extra=answers({409: "the token is revoked already"}),
)
def revoke_token(request: HttpRequest, name: str):
    actor = authorize(request, Scope.AUDIT_READ)
    return _token_out(tokens.revoke(name, issuer=actor))
