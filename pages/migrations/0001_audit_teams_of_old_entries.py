"""The owning teams of the audit entries written before entries kept them (issue 26), found
as the objects are now: a service's entries (its configuration's and deployments' too), its
checks', alerts' and checklists' by the service named; a team's by its name; a window's,
a channel's and a rule's as portal.audit's registered answers find them. An object deleted
since has no team to find: its old entries have none (they are listed under "no team").

Here, in the composer above every app, because only it may know every app's objects; with
the models as they are at this point of the migrations, not the live code."""

from django.db import migrations

CHUNK = 2000


def _services_and_teams(apps, entries) -> dict[int, set[str]]:
    Service = apps.get_model("services", "Service")
    named: dict[int, str] = {}
    for e in entries:
        if e.target_type == "service":
            named[e.id] = e.target
        elif e.target_type == "check":
            named[e.id] = e.target.split("/", 1)[0]
        elif e.target_type == "alert":
            named[e.id] = e.target.rsplit("#", 1)[0]
        elif e.target_type == "checklist" and e.action == "checklist.start" and " " in e.target:
            named[e.id] = e.target.split(" ", 1)[1]
    team_of = dict(
        Service.objects.filter(name__in=set(named.values())).values_list("name", "team__name")
    )
    found = {i: {team_of[name]} for i, name in named.items() if name in team_of}
    for e in entries:
        if e.target_type == "team":
            found[e.id] = {e.target}
        changes = e.changes if isinstance(e.changes, dict) else {}
        moved = changes.get("team") if e.action.startswith("service.") else None
        if e.target_type == "service" and isinstance(moved, (str, list)):
            names = [moved] if isinstance(moved, str) else moved
            found.setdefault(e.id, set()).update(t for t in names if isinstance(t, str))
    return found


def _windows_channels_rules(apps, entries) -> dict[int, set[str]]:
    Service = apps.get_model("services", "Service")
    Window = apps.get_model("services", "MaintenanceWindow")
    Channel = apps.get_model("automation", "NotificationChannel")
    Rule = apps.get_model("automation", "Rule")
    ids = {int(e.target) for e in entries if e.target_type == "maintenance_window" and e.target.isdigit()}
    windows: dict[str, set[str]] = {}
    for window_id, team, service_team in Window.objects.filter(id__in=ids).values_list(
        "id", "team__name", "services__team__name"
    ):
        windows.setdefault(str(window_id), set()).update(t for t in (team, service_team) if t)
    names = {e.target for e in entries}
    channels = dict(Channel.objects.filter(name__in=names).values_list("name", "teams"))
    scopes = dict(Rule.objects.filter(name__in=names).values_list("name", "scope"))
    in_scopes = {s for scope in scopes.values() for s in (scope or {}).get("services") or ()}
    team_of = dict(Service.objects.filter(name__in=in_scopes).values_list("name", "team__name"))
    found: dict[int, set[str]] = {}
    for e in entries:
        teams: set = set()
        if e.target_type == "maintenance_window":
            teams = windows.get(e.target, set())
        elif e.target_type == "notification_channel":
            teams = set(channels.get(e.target) or ())
        elif e.target_type == "rule":
            scope = scopes.get(e.target) or {}
            teams = {team_of.get(s) for s in scope.get("services") or ()} | {scope.get("team")}
        teams = {t for t in teams if isinstance(t, str) and t}
        if teams:
            found[e.id] = teams
    return found


def owning_teams(apps, schema_editor=None) -> None:
    AuditEntry = apps.get_model("portal", "AuditEntry")
    AuditTeam = apps.get_model("portal", "AuditTeam")
    last = 0
    while True:
        entries = list(
            AuditEntry.objects.filter(id__gt=last, teams__isnull=True).order_by("id")[:CHUNK]
        )
        if not entries:
            return
        last = entries[-1].id
        found = _services_and_teams(apps, entries)
        for i, teams in _windows_channels_rules(apps, entries).items():
            found.setdefault(i, set()).update(teams)
        AuditTeam.objects.bulk_create(
            [AuditTeam(entry_id=i, team=t) for i, teams in found.items() for t in sorted(teams)],
            ignore_conflicts=True,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0007_audit_teams"),
        ("services", "0010_recurring_maintenance_windows"),
        ("automation", "0012_reminders_and_tests"),
    ]

    operations = [migrations.RunPython(owning_teams, migrations.RunPython.noop, elidable=True)]
