"""Reading the audit log: the filters the API (GET /api/audit) and the audit page share, the
query they select, and the rows of its CSV export.

Filters: ``who`` (an actor as written, ``user:alice``, or a name alone, any kind's; a rule
acting for them included),
``action`` (``service.update``, or a family without a dot, ``service``: every
``service.*``), ``target_type`` and ``target`` (the object), ``team`` (an owning team, as
recorded when the entry was written -- portal.audit; ``-``: entries no team owns) and
``since``/``until`` (a time range, both ends included). Newest first.
"""

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Literal

from django.db.models import Prefetch, Q, QuerySet
from ninja import Field, Schema
from pydantic import AfterValidator, StrictStr, WithJsonSchema
from pydantic_core import PydanticCustomError

from portal.errors import InvalidInput
from portal.fields import MAX_INT32, NAME_HELP, NAME_PATTERN, Moment, UrlInteger
from portal.models import AuditEntry, AuditTeam

NO_TEAM = "-"  # the team filter's value for entries whose object no team owns
_TEAM = re.compile(NAME_PATTERN)


def _check_team(value: str) -> str:
    if value and value != NO_TEAM and not _TEAM.fullmatch(value):
        raise PydanticCustomError(
            "team", f"{value!r} is not a team name ({NAME_HELP}) nor '-' (no team)"
        )
    return value


TeamFilter = Annotated[
    StrictStr,
    AfterValidator(_check_team),
    WithJsonSchema({"type": "string", "pattern": "^(-|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?$"}),
]


class AuditFilters(Schema):
    who: str | None = Field(
        None,
        max_length=200,
        description="The actor as recorded (user:alice, token:deploy, system:upgrade), or a "
        "name alone: that name of any kind; what a rule did for them included (rule:r by "
        "user:alice).",
    )
    action: str | None = Field(
        None,
        max_length=64,
        description="An action (service.update), or a family without a dot (service: every "
        "service.* action).",
    )
    target_type: str | None = Field(
        None, max_length=64, description="The kind of object (service, check, team, ...)."
    )
    target: str | None = Field(
        None, max_length=200, description="The object as recorded (payments, payments/http)."
    )
    team: TeamFilter | None = Field(
        None,
        description="A team that owned the object when the entry was written; '-': entries "
        "whose object no team owns (tokens, users, the routines, what is every team's).",
    )
    since: Moment | None = Field(
        None, description="ISO 8601 (2024-05-01T12:00:00Z; without an offset: UTC): from then."
    )
    until: Moment | None = Field(
        None, description="ISO 8601: up to then, included. Not before since."
    )
    limit: UrlInteger = Field(100, ge=1, le=1000)
    offset: UrlInteger = Field(0, ge=0, le=MAX_INT32)
    format: Literal["json", "csv"] = Field(
        "json",
        description="csv: every entry that matches, newest first, as a CSV file streamed "
        "(limit and offset do not apply).",
    )


class AuditEntryOut(Schema):
    id: int
    at: datetime = Field(description="When the change was made.")
    actor: str
    action: str
    target_type: str
    target: str
    teams: list[str] = Field(description="The teams that owned the object then; [] for none.")
    changes: dict
    client_ip: str | None
    request_id: str


class AuditPageOut(Schema):
    items: list[AuditEntryOut]
    count: int
    limit: int
    offset: int


def check_range(filters: AuditFilters) -> None:
    """A range whose end comes before its start finds nothing: refused, naming ``until``."""
    if filters.since and filters.until and filters.until < filters.since:
        raise InvalidInput(
            "the time range is empty",
            fields={"until": f"is before since ({filters.since.isoformat()})"},
        )


def search(filters: AuditFilters) -> QuerySet[AuditEntry]:
    """The entries the filters select, newest first, each with its teams (one query more)."""
    check_range(filters)
    rows = AuditEntry.objects.all()
    if filters.who:
        # A rule acts for its author ("rule:restart by user:alice"): that is alice's too.
        if ":" in filters.who:
            who = Q(actor=filters.who) | Q(actor__endswith=" by " + filters.who)
        else:
            who = Q(actor__endswith=":" + filters.who)
        rows = rows.filter(who)
    if filters.action:
        family = "." not in filters.action
        rows = rows.filter(
            Q(action__startswith=filters.action + ".") if family else Q(action=filters.action)
        )
    if filters.target_type:
        rows = rows.filter(target_type=filters.target_type)
    if filters.target:
        rows = rows.filter(target=filters.target)
    if filters.team == NO_TEAM:
        rows = rows.filter(teams__isnull=True)
    elif filters.team:
        rows = rows.filter(teams__team=filters.team)
    if filters.since:
        rows = rows.filter(created_at__gte=filters.since)
    if filters.until:
        rows = rows.filter(created_at__lte=filters.until)
    teams = Prefetch("teams", queryset=AuditTeam.objects.order_by("team"))
    return rows.order_by("-created_at", "-id").prefetch_related(teams)


def document(row: AuditEntry) -> dict:
    return {
        "id": row.id,
        "at": row.created_at,
        "actor": row.actor,
        "action": row.action,
        "target_type": row.target_type,
        "target": row.target,
        "teams": [t.team for t in row.teams.all()],
        "changes": row.changes if isinstance(row.changes, dict) else {"value": row.changes},
        "client_ip": row.client_ip,
        "request_id": row.request_id,
    }


def documents(rows) -> list[dict]:
    return [document(row) for row in rows]


CSV_HEADER = [
    "at",
    "actor",
    "action",
    "target_type",
    "target",
    "teams",
    "changes",
    "client_ip",
    "request_id",
    "id",
]


def csv_rows(rows: QuerySet[AuditEntry]) -> Iterator[list[object]]:
    """Every entry selected, read a thousand at a time; teams joined by spaces, the changes
    as JSON."""
    for row in rows.iterator(chunk_size=1000):
        doc = document(row)
        yield [
            doc["at"].isoformat(),
            doc["actor"],
            doc["action"],
            doc["target_type"],
            doc["target"],
            " ".join(doc["teams"]),
            json.dumps(doc["changes"], sort_keys=True, default=str),
            doc["client_ip"] or "",
            doc["request_id"],
            doc["id"],
        ]
