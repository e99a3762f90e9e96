"""GET /api/audit: the audit log -- who changed what, when, from where, and which teams owned
it -- newest first, filtered, a page at a time or every match as CSV (scope changes:read:
operators and admins)."""

from django.http import HttpRequest
from ninja import Query, Router

from portal import audit_trail, csv_export
from portal.audit_trail import AuditFilters, AuditPageOut
from portal.auth import authorize
from portal.errors import Forbidden, answers
from portal.models import Scope
from portal.responses import page_of

router = Router(tags=["audit"])

CSV_EXAMPLE = (
    "at,actor,action,target_type,target,teams,changes,client_ip,request_id,id\r\n"
    "2026-12-02T09:14:03+00:00,user:alice,service.update,service,payments,core,"
    '"{""description"": [""old"", ""new""]}",10.0.0.7,5f0c...,42\r\n'
)


@router.get(
    "/audit",
    response=AuditPageOut,
    summary="The audit log, newest first: who changed what, when, from where, and the teams "
    "that owned it",
    description="Filters combine (all must match). A time range whose `until` is before its "
    "`since` is a 422 naming `until`. `format=csv` answers every entry that matches as a CSV "
    "file (`text/csv`), streamed; a cell that a spreadsheet could take for a formula (one "
    "starting with = + - @, a tab or a carriage return, after spaces or quotes too) begins "
    "with a `'`. A token limited "
    "to services or teams is refused (403): the log covers every team.",
    openapi_extra=answers(
        {200: {"content": {"text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE}}}}
    ),
)
def list_audit(request: HttpRequest, filters: Query[AuditFilters]):
    principal = authorize(request, Scope.CHANGES_READ)
    if principal.services is not None:
        # The log is every team's: a token kept to some services or teams reads none of it,
        # rather than learn the estate beyond its reach.
        raise Forbidden(
            f"{principal} is limited to some services or teams; the audit log covers every "
            "team: read it with a token that is not limited"
        )
    rows = audit_trail.search(filters)
    if filters.format == "csv":
        return csv_export.streamed("audit.csv", audit_trail.CSV_HEADER, audit_trail.csv_rows(rows))
    return page_of(rows, filters.limit, filters.offset, audit_trail.documents)
