"""Which teams own the registry's objects that audit entries name (portal.audit asks, when
it writes an entry): a service's team -- both, the old and the new, when the entry moved it
--, a team itself, a maintenance window's team and its services' teams. One query a batch."""

from collections.abc import Iterable, Sequence

from portal.models import AuditEntry
from services.models import MaintenanceWindow, Service


def _moved(entry: AuditEntry) -> list[str]:
    """The teams a service's own entry names: a new service's, a move's old and new one."""
    changes = entry.changes if entry.action.startswith("service.") else None
    team = changes.get("team") if isinstance(changes, dict) else None
    if isinstance(team, str):
        return [team]
    if isinstance(team, list):
        return [t for t in team if isinstance(t, str)]
    return []


def of_services(entries: Sequence[AuditEntry]) -> Sequence[Iterable[str]]:
    names = {e.target for e in entries}
    team_of = dict(Service.objects.filter(name__in=names).values_list("name", "team__name"))
    return [{t for t in (*_moved(e), team_of.get(e.target)) if t} for e in entries]


def of_teams(entries: Sequence[AuditEntry]) -> Sequence[Iterable[str]]:
    return [[e.target] for e in entries]


def of_windows(entries: Sequence[AuditEntry]) -> Sequence[Iterable[str]]:
    """A window's team and its services' teams, as it is (a deleted window: as its entry
    describes it, its services' teams as they are)."""
    ids = [int(e.target) for e in entries if e.target.isdigit()]
    found: dict[str, set[str]] = {}
    rows = MaintenanceWindow.objects.filter(id__in=ids).values_list(
        "id", "team__name", "services__team__name"
    )
    for window_id, team, service_team in rows:
        found.setdefault(str(window_id), set()).update(t for t in (team, service_team) if t)
    described = {
        name
        for e in entries
        if e.target not in found and isinstance(e.changes, dict)
        for name in e.changes.get("services") or ()
    }
    team_of = dict(Service.objects.filter(name__in=described).values_list("name", "team__name"))
    answers = []
    for e in entries:
        if e.target in found:
            answers.append(found[e.target])
            continue
        changes = e.changes if isinstance(e.changes, dict) else {}
        teams = {team_of.get(s) for s in changes.get("services") or ()} | {changes.get("team")}
        answers.append({t for t in teams if isinstance(t, str)})
    return answers
