"""The README ("Authentication and scopes"): every write is audited -- who, what, from where,
with the request id -- running a check by hand too, and admins read it in the admin. And
("Settings", TRUSTED_PROXIES): behind a trusted proxy, "from where" is the client it
forwarded for. Writes of each kind, through the paths people use: the API with a token, a
page's action with a session, the admin's form."""

import pytest
from django.test import Client, override_settings

from portal.models import AuditEntry
from services.models import Team
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, TeamFactory, make_check
from tests.services.test_admin import service_form

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate(alice):
    team = TeamFactory(name="core")
    team.members.add(alice)  # an operator of the team
    make_check(ServiceFactory(name="web", team=team), name="tcp", target="127.0.0.1:9")


def only_new_entry(before: set[int]) -> AuditEntry:
    """The write's one row (making the pipeline's token is a row of its own)."""
    [entry] = AuditEntry.objects.exclude(id__in=before).exclude(action="token.create")
    return entry


def through_the_api(make_token, request_id, **where):
    token = make_token(["registry:write", "registry:read"], name="pipeline")
    client = ApiClient(token.secret, **where)
    answer = client.call(
        "PATCH", "/api/services/web", {"description": "new"}, headers={"X-Request-ID": request_id}
    )
    assert answer.status_code == 200
    return ("token:pipeline", "service.update", "web")


def through_a_page(alice, request_id, **where):
    client = Client(**where)
    client.force_login(alice)
    answer = client.post("/services/web/run-checks", headers={"X-Request-ID": request_id})
    assert answer.status_code == 302
    return ("user:alice", "check.run", "web/tcp")  # running a check by hand


def through_the_admin(admin_user, request_id, **where):
    client = Client(**where)
    client.force_login(admin_user)
    form = service_form(Team.objects.get(name="core"), name="api")
    answer = client.post("/admin/services/service/add/", form, headers={"X-Request-ID": request_id})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    return ("user:root", "service.create", "api")


@pytest.mark.parametrize("write", [through_the_api, through_a_page, through_the_admin])
@pytest.mark.parametrize(
    ("where", "seen_from"),
    [
        ({"REMOTE_ADDR": "192.0.2.10"}, "192.0.2.10"),
        # The proxy (trusted) forwards for the client; a forged leftmost entry is not believed.
        (
            {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "203.0.113.66, 198.51.100.23"},
            "198.51.100.23",
        ),
    ],
    ids=["direct", "behind-a-trusted-proxy"],
)
@override_settings(TRUSTED_PROXIES=["10.0.0.2"])
def test_a_write_is_audited_with_who_what_from_where_and_the_request_id(
    write, where, seen_from, estate, make_token, alice, admin_user, request
):
    before = set(AuditEntry.objects.values_list("id", flat=True))
    request_id = f"audit-trial-{write.__name__}"
    caller = {"through_the_api": make_token, "through_a_page": alice}.get(
        write.__name__, admin_user
    )
    who, what, target = write(caller, request_id, **where)
    entry = only_new_entry(before)
    assert (entry.actor, entry.action, entry.target) == (who, what, target)
    assert entry.client_ip == seen_from
    assert entry.request_id == request_id
    # And admins read it in the admin.
    reader = Client()
    reader.force_login(admin_user)
    page = reader.get(f"/admin/portal/auditentry/{entry.pk}/change/").content.decode()
    assert request_id in page and seen_from in page
