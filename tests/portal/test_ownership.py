"""Team ownership: everyone reads the estate; an operator changes only the services (their
configs, checks and checklists) of their own teams; admins change everything; a token
limited to teams reaches only their services, and what lies outside answers 404."""

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from checklists.models import ChecklistRun
from portal.models import ApiToken, AuditEntry
from services.models import Service
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, TeamFactory, make_check

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate():
    """Two teams, two services each; ``olga`` operates payments, ``ada`` is an admin."""
    payments, search = TeamFactory(name="payments"), TeamFactory(name="search")
    for name, team in (("ledger", payments), ("billing", payments), ("index", search)):
        make_check(ServiceFactory(name=name, team=team), name="tcp", target="127.0.0.1:9")
    ServiceFactory(name="crawler", team=search)
    olga = User.objects.create_user("olga", password="pw")
    olga.groups.add(Group.objects.get(name="operator"))
    payments.members.add(olga)
    ada = User.objects.create_user("ada", password="pw")
    ada.groups.add(Group.objects.get(name="admin"))
    return {"olga": olga, "ada": ada}


def session(client, user):
    client.force_login(user)
    client.get("/accounts/login/")
    client.defaults["HTTP_X_CSRFTOKEN"] = client.cookies["csrftoken"].value
    return client


def test_an_operator_changes_only_the_services_of_their_teams(client, estate):
    olga = session(client, estate["olga"])
    ok = olga.patch(
        "/api/services/ledger", {"description": "ours"}, content_type="application/json"
    )
    assert ok.status_code == 200
    refused = olga.patch(
        "/api/services/index", {"description": "theirs"}, content_type="application/json"
    )
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["service"] == "index" and error["teams"] == ["payments"]
    assert "changes only what its teams own" in error["message"]
    assert Service.objects.get(name="index").description == ""
    # Reading is open to everyone, the other team's services included.
    assert olga.get("/api/services/index").status_code == 200
    assert olga.get("/api/services/index/config").status_code in (200, 404)
    # A check of another team's service: neither changed nor run.
    body = {"kind": "tcp", "target": "127.0.0.1:10"}
    put = olga.put("/api/services/index/checks/tcp", body, content_type="application/json")
    assert put.status_code == 403
    assert olga.post("/api/services/index/checks/tcp/run").status_code == 403
    assert olga.delete("/api/services/index").status_code == 403
    assert Service.objects.filter(name="index").exists()


def test_an_operator_creates_services_only_in_their_teams_and_moves_none_out(client, estate):
    olga = session(client, estate["olga"])

    def put(name, team):
        return olga.put(f"/api/services/{name}", {"team": team}, content_type="application/json")

    assert put("payouts", "payments").status_code == 201
    refused = put("ranker", "search")
    assert refused.status_code == 403 and refused.json()["error"]["team"] == "search"
    assert not Service.objects.filter(name="ranker").exists()
    moved = put("ledger", "search")  # give a service away: the other team did not ask
    assert moved.status_code == 403
    assert Service.objects.get(name="ledger").team.name == "payments"
    manifest = {"teams": [{"name": "newteam"}], "services": []}
    made = olga.post("/api/registry/apply", manifest, content_type="application/json")
    assert made.status_code == 403 and made.json()["error"]["team"] == "newteam"
    # An operator's service may depend on another team's: reading is open, the edge is theirs.
    manifest = {"services": [{"name": "ledger", "team": "payments", "dependencies": ["index"]}]}
    applied = olga.post("/api/registry/apply", manifest, content_type="application/json")
    assert applied.status_code == 200


def test_an_admin_changes_every_team(client, estate):
    ada = session(client, estate["ada"])
    res = ada.patch("/api/services/index", {"description": "x"}, content_type="application/json")
    assert res.status_code == 200


def test_pages_offer_and_allow_the_actions_only_to_the_owning_team(client, estate):
    client.force_login(estate["olga"])
    theirs = client.get("/services/index/").content.decode()
    assert "run-checks" not in theirs and "Start a checklist" not in theirs
    assert "run-checks" in client.get("/services/ledger/").content.decode()
    assert client.post("/services/index/run-checks").status_code == 403
    form = {"template": "post-migration", "service": "index"}
    assert client.post("/maintenance/service-checklists", form).status_code == 403
    assert not ChecklistRun.objects.filter(service__name="index").exists()
    # A checklist the other team started: readable, not tickable.
    from checklists import runs
    from portal.auth import system_actor

    run = runs.start_for_service("post-migration", "index", system_actor("search-team"))
    item = run.template.items.filter(verify="").first()
    page = client.get(f"/maintenance/runs/{run.id}/").content.decode()
    assert "Post-migration" in page or "post-migration" in page
    assert f"/maintenance/runs/{run.id}/items/{item.id}/tick" not in page
    answer = client.post(f"/maintenance/runs/{run.id}/items/{item.id}/tick", {"done": "1"})
    assert answer.status_code == 403
    assert not run.ticks.filter(item=item).exists()
    assert client.post(f"/maintenance/runs/{run.id}/sign-off").status_code == 403
    # The team's own: started and ticked.
    form = {"template": "post-migration", "service": "ledger"}
    assert client.post("/maintenance/service-checklists", form).status_code == 302


def test_the_admin_keeps_other_teams_objects_read_only(client, estate):
    client.force_login(estate["olga"])
    User.objects.filter(username="olga").update(is_staff=True)
    index, ledger = Service.objects.get(name="index"), Service.objects.get(name="ledger")
    theirs = client.get(f"/admin/services/service/{index.pk}/change/")
    assert theirs.status_code == 200 and 'name="description"' not in theirs.content.decode()
    change = {"name": "index", "team": index.team_id, "description": "changed"}
    assert client.post(f"/admin/services/service/{index.pk}/change/", change).status_code == 403
    assert Service.objects.get(name="index").description == ""
    ours = client.get(f"/admin/services/service/{ledger.pk}/change/").content.decode()
    assert 'name="description"' in ours
    # The add forms offer only the operator's teams and services.
    add = client.get("/admin/services/service/add/").content.decode()
    assert ">payments<" in add and ">search<" not in add
    team = client.get(f"/admin/services/team/{index.team_id}/change/").content.decode()
    assert 'name="display_name"' not in team and 'name="members"' not in team


def test_admins_edit_team_membership_and_it_is_audited(client, estate):
    User.objects.filter(username="ada").update(is_staff=True)
    client.force_login(estate["ada"])
    search = Service.objects.get(name="index").team
    form = {"display_name": "", "description": "", "contact": "", "members": [estate["olga"].pk]}
    res = client.post(f"/admin/services/team/{search.pk}/change/", form)
    assert res.status_code == 302, res.content.decode()[:2000]
    assert list(search.members.values_list("username", flat=True)) == ["olga"]
    entry = AuditEntry.objects.get(action="team.members")
    assert entry.actor == "user:ada" and entry.target == "search"
    assert entry.changes == {"joined": ["olga"], "left": []}
    # Now olga changes search's services too.
    client.force_login(estate["olga"])
    res = client.patch("/api/services/index", {"description": "x"}, content_type="application/json")
    assert res.status_code == 200


def test_a_token_limited_to_a_team_reaches_only_its_services(estate, make_token):
    token = make_token(["registry:read", "registry:write", "config:read"], teams=["search"])
    api = ApiClient(token.secret)
    listed = api.call("GET", "/api/services").json()
    assert sorted(s["name"] for s in listed["items"]) == ["crawler", "index"]
    assert api.call("GET", "/api/services/ledger").status_code == 404  # no existence leak
    assert api.call("GET", "/api/services/ledger/config").status_code == 404
    assert api.call("PATCH", "/api/services/index", {"description": "x"}).status_code == 200
    assert api.call("PATCH", "/api/services/ledger", {"description": "x"}).status_code == 404
    # A service the team gains later is reached at once.
    ServiceFactory(name="ranker", team=Service.objects.get(name="index").team)
    assert api.call("GET", "/api/services/ranker").status_code == 200
    listed = api.call("GET", "/api/tokens")
    assert listed.status_code == 403  # audit:read is not among its scopes


def test_tokens_name_existing_teams_and_show_them(estate, make_token, capsys):
    from portal.errors import InvalidInput

    with pytest.raises(InvalidInput) as caught:
        make_token(["registry:read"], teams=["nosuch"])
    assert "nosuch" in caught.value.fields["teams"]
    call_command("create_api_token", "ci-search", "--scopes", "registry:read", "--teams", "search")
    assert ApiToken.objects.get(name="ci-search").teams == ["search"]
    assert "limited to the teams search" in capsys.readouterr().err
    auditor = ApiClient(make_token(["audit:read"]).secret)
    rows = {t["name"]: t for t in auditor.call("GET", "/api/tokens").json()}
    assert rows["ci-search"]["teams"] == ["search"]


def test_a_heartbeats_ping_url_is_revealed_only_to_its_owners(client, estate):
    make_check(
        Service.objects.get(name="index"),
        name="nightly",
        kind="heartbeat",
        target="",
        heartbeat_token="h" * 32,
    )
    olga = session(client, estate["olga"])
    assert "h" * 32 not in olga.get("/api/services/index/checks/nightly").content.decode()
    Service.objects.get(name="index").team.members.add(estate["olga"])
    assert "h" * 32 in olga.get("/api/services/index/checks/nightly").content.decode()


def test_maintenance_windows_are_planned_by_the_owners_of_what_they_cover(client, estate):
    from datetime import timedelta

    from django.utils import timezone

    from services.models import MaintenanceWindow

    olga = session(client, estate["olga"])
    start = timezone.now() + timedelta(hours=1)
    times = {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat()}

    def plan(**cover):
        return olga.post(
            "/api/maintenance-windows", {**cover, **times}, content_type="application/json"
        )

    assert plan(services=["index"]).status_code == 403
    assert plan(team="search").status_code == 403
    assert not MaintenanceWindow.objects.exists()
    assert plan(services=["ledger"]).status_code == 201
    assert plan(team="payments").status_code == 201
    theirs = MaintenanceWindow.objects.create(starts_at=start, ends_at=start + timedelta(hours=1))
    theirs.services.set([Service.objects.get(name="index")])
    assert olga.delete(f"/api/maintenance-windows/{theirs.id}").status_code == 403
    assert MaintenanceWindow.objects.filter(id=theirs.id).exists()


def test_the_maintenance_page_offers_only_ones_own_services_and_refusals_say_why(client, estate):
    client.force_login(estate["olga"])
    page = client.get("/maintenance/").content.decode()
    form = page[page.index('name="service"') :]
    form = form[: form.index("</select>")]
    assert ">ledger<" in form and ">billing<" in form and ">index<" not in form
    refused = client.post(
        "/maintenance/service-checklists", {"template": "post-migration", "service": "index"}
    )
    assert refused.status_code == 403
    assert "changes only what its teams own (teams: payments)" in refused.content.decode()
