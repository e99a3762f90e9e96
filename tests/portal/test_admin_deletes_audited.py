"""Every write is audited, deletions in the admin included, whether a person deletes one
object on its own page or several with the changelist's "Delete selected" action (issue 19,
the breaking trial). The action deleted through the queryset, past the domain's delete:
an operator removing their service's dependency that way wrote no audit row and took no
registry lock, nor did an admin deleting tokens, deployments or a checklist routine."""

import pytest
from django.contrib.auth.models import Group, User

from checklists.models import ChecklistTemplate
from portal.auth import system_actor
from portal.models import AuditEntry
from portal.tokens import issue_token
from services import registry
from services.models import Dependency, Deployment
from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db
ACTOR = system_actor("test")


def person(name: str, role: str, team=None) -> User:
    user = User.objects.create_user(name, f"{name}@example.invalid", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    if role == "admin":
        user.is_superuser = True
        user.save()
    if team is not None:
        team.members.add(user)
    return user


def dependencies(n):
    """Each edge on a service of its own: the registry rewrites a service's edges as a set."""
    team = TeamFactory(name="core")
    for i in range(n):
        ServiceFactory(name=f"web{i}", team=team)
        registry.set_dependency(f"web{i}", ServiceFactory(name=f"db{i}", team=team).name,
                                "hard", ACTOR)  # fmt: skip
    return person("oona", "operator", team), list(Dependency.objects.order_by("service__name"))


def tokens(n):
    return person("root", "admin"), [
        issue_token(f"ci-{i}", ["registry:read"], issuer=ACTOR).token for i in range(n)
    ]


def deployments(n):
    web = ServiceFactory(name="web", team=TeamFactory(name="core"))
    rows = [Deployment.objects.create(service=web, version=f"v{i}", status="succeeded",
                                      actor="test") for i in range(n)]  # fmt: skip
    return person("root", "admin"), rows


def routines(n):
    rows = [ChecklistTemplate.objects.create(name=f"extra-{i}", title=f"Extra {i}",
                                             period="service") for i in range(n)]  # fmt: skip
    return person("root", "admin"), rows


CASES = {
    "services/dependency": dependencies,
    "portal/apitoken": tokens,
    "services/deployment": deployments,
    "checklists/checklisttemplate": routines,
}


@pytest.mark.parametrize("page", sorted(CASES))
def test_a_deletion_in_the_admin_is_audited_on_its_page_and_in_bulk(client, page):
    user, (one, *several) = CASES[page](3)
    model = type(one)
    client.force_login(user)
    res = client.post(f"/admin/{page}/{one.pk}/delete/", {"post": "yes"})
    assert res.status_code == 302, res.content.decode()[:500]
    data = {"action": "delete_selected", "_selected_action": [o.pk for o in several], "post": "yes"}
    res = client.post(f"/admin/{page}/", data)
    assert res.status_code == 302, res.content.decode()[:500]

    assert not model.objects.filter(pk__in=[one.pk, *(o.pk for o in several)]).exists()
    written = AuditEntry.objects.filter(actor=f"user:{user.username}")
    assert written.count() == 3, list(written.values_list("action", "target"))
