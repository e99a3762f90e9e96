"""GET /api/security-events: the security events, newest first, for admins (audit:read)."""

from datetime import datetime

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from portal.auth import authorize
from portal.fields import MAX_INT32
from portal.models import Scope, SecurityEvent

router = Router(tags=["security"])
KindName = SecurityEvent.Kind


class EventFilters(Schema):
    kind: KindName | None = None
    who: str | None = Field(None, max_length=200)
    since: datetime | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_INT32)


class EventOut(Schema):
    at: datetime
    kind: str
    who: str
    client_ip: str | None
    operation: str
    outcome: str
    detail: dict
    request_id: str


@router.get(
    "/security-events",
    response=list[EventOut],
    summary="Security events, newest first (failed logins, token failures, refusals, "
    "rate-limit hits, secret reads, tokens made and revoked)",
)
def list_events(request: HttpRequest, filters: Query[EventFilters]):
    authorize(request, Scope.AUDIT_READ)
    rows = SecurityEvent.objects.all()
    if filters.kind:
        rows = rows.filter(kind=filters.kind)
    if filters.who:
        rows = rows.filter(who=filters.who)
    if filters.since:
        rows = rows.filter(at__gte=filters.since)
    start, end = filters.offset, filters.offset + filters.limit
    return list(
        rows.order_by("-at", "-id").values(
            "at", "kind", "who", "client_ip", "operation", "outcome", "detail", "request_id"
        )[start:end]
    )
