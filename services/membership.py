"""Who belongs to which team, as the identity provider's groups say at a sign-in
(portal.directory, which cannot import the registry, calls it through the hook services.apps
registers). A team the portal does not have is not made: teams are registered (manifests, the
API, the admin) with their services; a group naming one is reported as unknown."""

from django.db import transaction

from portal import audit
from portal.directory import TeamChanges
from services.models import Team


def sync_teams(user, names: frozenset[str], actor) -> TeamChanges:
    """Make ``names`` (those that exist) exactly the person's teams; each team joined or
    left is one ``team.members`` audit entry, as an admin's change in the admin is."""
    wanted = {team.name: team for team in Team.objects.filter(name__in=names)}
    held = {team.name: team for team in Team.objects.filter(members=user)}
    joined = sorted(set(wanted) - set(held))
    left = sorted(set(held) - set(wanted))
    username = user.get_username()
    with transaction.atomic():
        for name in joined:
            wanted[name].members.add(user)
            audit.record(actor, "team.members", "team", name, {"joined": [username], "left": []})
        for name in left:
            held[name].members.remove(user)
            audit.record(actor, "team.members", "team", name, {"joined": [], "left": [username]})
    return TeamChanges(joined=joined, left=left, unknown=sorted(names - set(wanted)))
