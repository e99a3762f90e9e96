"""An operator deleting another team's maintenance window in the admin is told why, as the
API tells them (issue 19, item 10, the breaking trial): the admin offered the delete page
("Are you sure?") and then answered 500 -- on the page and with "Delete selected" -- since it
judged a window by a service it does not have, and the window's own delete refused. Now the
window is the operator's to delete only when its services and team are theirs: the admin
refuses with the operator's teams named, and deletes what they own."""

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from portal.auth import system_actor
from services import maintenance
from services.models import MaintenanceWindow
from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db
REASON = "changes only what its teams own (teams: core)"


@pytest.fixture
def windows():
    core, money = TeamFactory(name="core"), TeamFactory(name="money")
    ServiceFactory(name="api", team=core)
    ServiceFactory(name="billing", team=money)
    olga = User.objects.create_user("olga", password="pw", is_staff=True)
    olga.groups.add(Group.objects.get(name="operator"))
    core.members.add(olga)
    soon = timezone.now() + timezone.timedelta(days=1)

    def window(**where):
        where = {"services": [], "team": None, **where}
        spec = maintenance.WindowIn(starts_at=soon, ends_at=soon + timezone.timedelta(hours=1),
                                    reason="work", **where)  # fmt: skip
        return maintenance.create_window(spec, system_actor("test"))

    return olga, window


@pytest.mark.parametrize("where", [{"team": "money"}, {"services": ["billing"]}])
def test_another_teams_window_is_refused_with_the_reason(client, windows, where):
    olga, window = windows
    theirs = window(**where)
    client.force_login(olga)
    page = client.get(f"/admin/services/maintenancewindow/{theirs.pk}/delete/")
    assert page.status_code == 403 and REASON in page.content.decode()
    posted = client.post(f"/admin/services/maintenancewindow/{theirs.pk}/delete/", {"post": "yes"})
    assert posted.status_code == 403 and REASON in posted.content.decode()
    data = {"action": "delete_selected", "_selected_action": [theirs.pk], "post": "yes"}
    bulk = client.post("/admin/services/maintenancewindow/", data)
    assert bulk.status_code == 403, bulk.status_code  # Django's refusal of the action, no 500
    assert MaintenanceWindow.objects.filter(pk=theirs.pk).exists()


def test_an_operator_deletes_their_own_window_in_the_admin(client, windows):
    olga, window = windows
    mine, also = window(services=["api"]), window(team="core")
    client.force_login(olga)
    assert client.post(f"/admin/services/maintenancewindow/{mine.pk}/delete/",
                       {"post": "yes"}).status_code == 302  # fmt: skip
    data = {"action": "delete_selected", "_selected_action": [also.pk], "post": "yes"}
    assert client.post("/admin/services/maintenancewindow/", data).status_code == 302
    assert not MaintenanceWindow.objects.exists()
