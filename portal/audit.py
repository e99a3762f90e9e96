"""The audit log: one row per change, with the actor, the request id and the client address,
and the teams that owned the changed object when it changed (what the audit trail filters
by team).

Which teams own an object is the apps' knowledge: each registers, for the ``target_type``
of the entries it writes, how to find them (``register_teams``; services, checks, alerts,
windows, channels, rules). The core imports no app. An entry of a type nobody registered,
or whose object no team owns (a token, a user, the checklists' routines, a channel or a rule
for every team), has no team.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from portal.models import AuditEntry, AuditTeam
from portal.requestcontext import current_client_ip, current_request_id

# target_type -> (the entries of that type -> the teams of each, in their order).
TeamsOf = Callable[[Sequence[AuditEntry]], Sequence[Iterable[str]]]
_TEAMS_OF: dict[str, TeamsOf] = {}


def register_teams(target_type: str, teams_of: TeamsOf) -> None:
    """How to find the teams owning the objects of entries of ``target_type`` (an app's
    ``ready()``); one query for a whole batch of entries, so a manifest's thousand rows
    cost one."""
    _TEAMS_OF[target_type] = teams_of


def by_service(service_of: Callable[[str], str]) -> TeamsOf:
    """For objects that belong to a service (a check ``svc/http``, an alert ``svc#7``): its
    team, found through the ``service`` type's answer."""

    def teams_of(entries: Sequence[AuditEntry]) -> Sequence[Iterable[str]]:
        return _service_teams([service_of(e.target) for e in entries])

    return teams_of


def _service_teams(names: Sequence[str | None]) -> Sequence[Iterable[str]]:
    resolve = _TEAMS_OF.get("service")
    if resolve is None:
        return [() for _ in names]
    asked = [AuditEntry(target_type="service", target=name or "") for name in names]
    return resolve(asked)


def entry(
    actor,
    action: str,
    target_type: str,
    target: str,
    changes: Any = None,
    *,
    service: str | None = None,
) -> AuditEntry:
    """An unsaved row. ``service``: the service whose team owns the object, where its
    target does not name it (a service's checklist run, an admin deletion)."""
    audit_entry = AuditEntry(
        actor=str(actor)[:200],
        action=action,
        target_type=target_type,
        target=target[:200],
        changes=changes or {},
        client_ip=current_client_ip() or None,
        request_id=current_request_id(),
    )
    audit_entry.service_hint = service  # type: ignore[attr-defined]
    return audit_entry


def record(
    actor,
    action: str,
    target_type: str,
    target: str,
    changes: Any = None,
    *,
    service: str | None = None,
) -> AuditEntry:
    audit_entry = entry(actor, action, target_type, target, changes, service=service)
    record_many([audit_entry])
    return audit_entry


def record_many(entries: Iterable[AuditEntry]) -> None:
    rows = list(entries)
    teams = teams_of(rows)  # before the rows are saved: what owns the objects now
    AuditEntry.objects.bulk_create(rows)
    AuditTeam.objects.bulk_create(
        AuditTeam(entry=row, team=team)
        for row, found in zip(rows, teams, strict=True)
        for team in found
    )


def teams_of(entries: Sequence[AuditEntry]) -> list[set[str]]:
    """The teams owning each entry's object: its service's (when the writer named one), else
    what its type's registered answer says."""
    found: list[set[str]] = [set() for _ in entries]
    by_type: dict[str, list[int]] = defaultdict(list)
    hinted: list[int] = []
    for i, row in enumerate(entries):
        if getattr(row, "service_hint", None):
            hinted.append(i)
        else:
            by_type[row.target_type].append(i)
    if hinted:
        names = [entries[i].service_hint for i in hinted]  # type: ignore[attr-defined]
        for i, teams in zip(hinted, _service_teams(names), strict=True):
            found[i] = {t for t in teams if t}
    for target_type, indexes in by_type.items():
        resolve = _TEAMS_OF.get(target_type)
        if resolve is not None:
            for i, teams in zip(indexes, resolve([entries[i] for i in indexes]), strict=True):
                found[i] = {t for t in teams if t}
    return found
