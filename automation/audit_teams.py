"""Which teams own automation's objects that audit entries name (portal.audit asks, when it
writes an entry): an alert its service's team, a channel the teams it names, a rule the team
and the services' teams its scope names. A channel or a rule for every team (none named, or
a tag, or critical services across teams) is an admin's and has no team."""

from collections.abc import Iterable, Sequence

from automation.models import NotificationChannel, Rule
from portal import audit
from portal.models import AuditEntry
from services.models import Service

# An alert's entries name it "<service>#<id>".
of_alerts = audit.by_service(lambda target: target.rsplit("#", 1)[0])


def of_channels(entries: Sequence[AuditEntry]) -> Sequence[Iterable[str]]:
    names = {e.target for e in entries}
    teams = dict(NotificationChannel.objects.filter(name__in=names).values_list("name", "teams"))
    return [teams.get(e.target) or () for e in entries]


def of_rules(entries: Sequence[AuditEntry]) -> Sequence[Iterable[str]]:
    names = {e.target for e in entries}
    scopes = dict(Rule.objects.filter(name__in=names).values_list("name", "scope"))
    named = {s for scope in scopes.values() for s in (scope or {}).get("services") or ()}
    team_of = dict(Service.objects.filter(name__in=named).values_list("name", "team__name"))
    answers: list[Iterable[str]] = []
    for e in entries:
        scope = scopes.get(e.target) or {}
        teams = {team_of.get(s) for s in scope.get("services") or ()} | {scope.get("team")}
        answers.append({t for t in teams if isinstance(t, str)})
    return answers
