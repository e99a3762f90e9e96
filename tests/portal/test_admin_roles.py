"""The admin for each role: the role groups hold the permissions their roles promise (a
migration gives them), and the admin never allows what the same person's API scopes refuse --
even when model permissions were granted by hand beyond the role."""

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone

from healthchecks.engine import recording
from healthchecks.models import HealthCheck
from healthchecks.probes import ProbeOutcome
from healthchecks.status import Status
from portal.auth import system_actor
from portal.models import ApiToken, AuditEntry
from services import configs
from services.models import ConfigVersion, Dependency, Service, Team
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, TeamFactory, make_check

pytestmark = pytest.mark.django_db


def staff(username: str, role: str, *extra_permissions: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.invalid", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    for dotted in extra_permissions:
        app_label, codename = dotted.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


@pytest.fixture
def web():
    return ServiceFactory(name="web", team=TeamFactory(name="core"))


def login(client, user):
    client.force_login(user)
    return client


def config_url(service) -> str:
    return f"/admin/services/service/{service.pk}/config/"


def config_post(base_version=0, **values) -> dict:
    return {
        "base_version": base_version,
        "comment": "",
        "extra_values": str(values or {}).replace("'", '"'),
    }


def test_the_role_groups_hold_what_their_roles_promise():
    def perms(role):
        group = Group.objects.get(name=role)
        return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}

    viewer, operator, admin = perms("viewer"), perms("operator"), perms("admin")
    assert {"services.view_service", "healthchecks.view_healthcheck"} <= viewer
    assert not {p for p in viewer if not p.split(".")[1].startswith("view_")}
    assert "portal.view_apitoken" not in viewer
    assert {
        "services.change_service",
        "services.add_dependency",
        "healthchecks.change_healthcheck",
    } <= operator
    assert not {"portal.add_apitoken", "services.change_team", "auth.change_user"} & operator
    assert {"portal.add_apitoken", "services.change_team", "auth.change_user"} <= admin


def test_a_viewer_reads_the_admin_and_changes_nothing(client, web):
    login(client, staff("vera", "viewer"))
    assert "Services" in client.get("/admin/").content.decode()
    page = client.get(f"/admin/services/service/{web.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    form = client.get(config_url(web))
    assert form.status_code == 200 and "config-read-only" in form.content.decode()
    assert client.post(config_url(web), config_post(a=1)).status_code == 403
    assert not ConfigVersion.objects.exists()
    assert client.get("/admin/portal/apitoken/").status_code == 403


def test_a_viewer_with_model_permissions_granted_by_hand_still_cannot_write(client, web):
    """The outside review's case: viewer + model permissions saved a config and made a
    token with config:secrets. The scopes of the role decide."""
    vera = staff(
        "vera",
        "viewer",
        "services.change_service",
        "portal.add_apitoken",
        "portal.view_apitoken",
        "portal.change_apitoken",
    )
    login(client, vera)
    assert client.post(config_url(web), config_post(a=1)).status_code == 403
    assert not ConfigVersion.objects.exists()
    assert client.get("/admin/portal/apitoken/add/").status_code == 403
    token = {"name": "mine", "scopes": ["config:read", "config:secrets"], "services": ""}
    assert client.post("/admin/portal/apitoken/add/", token).status_code == 403
    assert not ApiToken.objects.exists()
    change = {"name": "web", "team": web.team.pk, "description": "changed"}
    assert client.post(f"/admin/services/service/{web.pk}/change/", change).status_code == 403
    assert Service.objects.get(name="web").description == ""


def test_an_operator_edits_services_configs_and_checks_but_not_tokens_or_teams(client, web):
    olga = staff("olga", "operator")
    web.team.members.add(olga)
    login(client, olga)
    res = client.post(config_url(web), config_post(a=1))
    assert res.status_code == 302
    assert ConfigVersion.objects.get().author == "user:olga"
    assert client.get("/admin/healthchecks/healthcheck/add/").status_code == 200
    assert client.get("/admin/portal/apitoken/add/").status_code == 403
    assert client.get("/admin/services/team/add/").status_code == 403
    assert client.post("/admin/services/team/add/", {"name": "mine"}).status_code == 403
    assert not Team.objects.filter(name="mine").exists()


def test_an_admin_makes_tokens_and_the_making_is_audited(client, web):
    ada = staff("ada", "admin")
    login(client, ada)
    token = {"name": "deploy", "scopes": ["registry:read"], "services": "web", "is_active": "on"}
    res = client.post("/admin/portal/apitoken/add/", token, follow=True)
    assert res.status_code == 200
    row = ApiToken.objects.get(name="deploy")
    assert row.scopes == ["registry:read"] and row.services == ["web"]
    entry = AuditEntry.objects.get(action="token.create")
    assert entry.actor == "user:ada" and entry.target == "deploy"
    secret = next(m.message for m in res.context["messages"]).split(" is ")[1].split(" ")[0]
    assert ApiClient(secret).call("GET", "/api/services/web").status_code == 200
    revoke = {"scopes": ["registry:read"], "services": "web"}  # is_active unticked
    client.post(f"/admin/portal/apitoken/{row.pk}/change/", revoke)
    assert not ApiToken.objects.get(name="deploy").is_active
    assert AuditEntry.objects.filter(action="token.revoke", target="deploy").exists()


def test_a_heartbeat_token_is_shown_only_to_who_may_write_the_check(client, web):
    check = make_check(web, name="nightly", kind="heartbeat", target="", heartbeat_token="t" * 32)
    login(client, staff("vera", "viewer"))
    page = client.get(f"/admin/healthchecks/healthcheck/{check.pk}/change/").content.decode()
    assert "t" * 32 not in page
    client.logout()
    login(client, staff("otto", "operator"))  # of another team
    page = client.get(f"/admin/healthchecks/healthcheck/{check.pk}/change/").content.decode()
    assert "t" * 32 not in page and 'class="run-now"' not in page
    client.logout()
    olga = staff("olga", "operator")
    web.team.members.add(olga)
    login(client, olga)
    page = client.get(f"/admin/healthchecks/healthcheck/{check.pk}/change/").content.decode()
    assert "t" * 32 in page
    assert f"curl -fsS -m 10 http://127.0.0.1:8000/health/heartbeat/{'t' * 32}" in page
    assert HealthCheck.objects.count() == 1


def test_the_admin_names_things_and_shows_a_checks_last_result(client, web):
    """Titles and rows say names, not ids; a check's page shows what it last saw and links
    to the service's page; an operator runs checks from the list; durations are read as
    people read them."""
    from datetime import timedelta

    from django.utils import timezone

    from healthchecks.engine import recording
    from healthchecks.models import Incident
    from healthchecks.probes import ProbeOutcome
    from healthchecks.status import Status
    from services.models import Dependency

    db = ServiceFactory(name="db", team=web.team)
    link = Dependency.objects.create(service=web, depends_on=db, kind="hard")
    assert str(link) == "web -> db (hard)"
    check = make_check(db, name="tcp", is_critical=True)
    assert str(check) == "db / tcp"
    now = timezone.now()
    recording.record(
        [recording.Result(check.pk, now, now, ProbeOutcome(Status.UNHEALTHY, errors=["refused"]))]
    )
    login(client, staff("vera", "viewer"))
    page = client.get(f"/admin/healthchecks/healthcheck/{check.pk}/change/").content.decode()
    assert "Service portal administration" in page
    assert "<strong>unhealthy</strong>" in page and "errors: refused" in page
    assert 'href="/services/db/"' in page
    listing = client.get("/admin/healthchecks/healthcheck/").content.decode()
    assert 'value="run_now"' not in listing  # not offered to a reader
    assert 'class="run-now"' not in page
    Incident.objects.filter(service=db).update(opened_at=now - timedelta(minutes=75))
    listing = client.get("/admin/healthchecks/incident/").content.decode()
    assert "1 h 15 min (ongoing)" in listing
    client.logout()
    olga = staff("olga", "operator")
    web.team.members.add(olga)
    login(client, olga)
    ran = client.post(
        "/admin/healthchecks/healthcheck/",
        {"action": "run_now", "_selected_action": [check.pk], "index": 0},
        follow=True,
    ).content.decode()
    assert "Db / tcp: unhealthy (connection refused" in ran  # (the admin capitalises)
    page = client.get(f"/admin/healthchecks/healthcheck/{check.pk}/change/").content.decode()
    assert 'class="run-now"' in page
    run_url = f"/admin/healthchecks/healthcheck/{check.pk}/run/"
    assert client.get(run_url).status_code == 405
    answer = client.post(run_url, follow=True)
    assert "Db / tcp: unhealthy" in answer.content.decode()


def test_an_operator_of_another_team_is_told_which_team_owns_the_service(client, web):
    """Issue 19, item 10: refused on another team's service, an operator was told it lacked
    config:write (it holds it), and a direct POST said only 'you may not do this'."""
    otto = staff("otto", "operator")
    TeamFactory(name="edge").members.add(otto)
    login(client, otto)
    form = client.get(config_url(web)).content.decode()
    assert "config:write" not in form
    assert "changes only what its teams own (teams: edge), not the service &#x27;web&#x27;" in form
    refused = client.post(config_url(web), config_post(a=1))
    assert (
        refused.status_code == 403 and "not the service &#x27;web&#x27;" in refused.content.decode()
    )
    change = {"name": "web", "team": web.team.pk, "description": "mine now"}
    refused = client.post(f"/admin/services/service/{web.pk}/change/", change)
    assert refused.status_code == 403
    assert "teams: edge), not the service &#x27;web&#x27;" in refused.content.decode()
    refused = client.post(f"/admin/services/service/{web.pk}/delete/", {"post": "yes"})
    assert (
        refused.status_code == 403 and "not the service &#x27;web&#x27;" in refused.content.decode()
    )
    refused = client.post(f"/admin/services/team/{web.team.pk}/change/", {"name": "core"})
    assert refused.status_code == 403 and "may not change teams" in refused.content.decode()
    assert Service.objects.get(name="web").description == ""
    assert not ConfigVersion.objects.exists()


def test_a_viewer_is_told_it_lacks_the_scope(client, web):
    login(client, staff("vera", "viewer"))
    form = client.get(config_url(web)).content.decode()
    assert "user:vera lacks the scope &#x27;config:write&#x27;" in form
    refused = client.post(config_url(web), config_post(a=1))
    assert "lacks the scope &#x27;config:write&#x27;" in refused.content.decode()


@pytest.mark.parametrize("role", ["admin", "operator", "superuser"])
def test_a_service_is_deleted_in_the_admin_through_the_registry(client, web, role):
    """Deleting failed for everyone ('doesn't have permission to delete ... service
    health'): the rows that go with a service are the registry's to delete."""
    if role == "superuser":
        person = User.objects.create_superuser("root", "root@example.invalid", "pw")
    else:
        person = staff("pat", role)
        web.team.members.add(person)
    check = make_check(web, name="http")
    now = timezone.now()
    recording.record([recording.Result(check.pk, now, now, ProbeOutcome(Status.HEALTHY))])
    configs.publish("web", {"a": 1}, 0, system_actor("t"))
    login(client, person)
    page = client.get(f"/admin/services/service/{web.pk}/delete/").content.decode()
    assert 'type="submit" value="Yes' in page
    res = client.post(f"/admin/services/service/{web.pk}/delete/", {"post": "yes"})
    assert res.status_code == 302
    assert not Service.objects.filter(name="web").exists()
    assert AuditEntry.objects.get(action="service.delete").actor == f"user:{person.username}"


def test_a_service_others_need_is_not_deleted_and_the_admin_names_them(client, web):
    api = ServiceFactory(name="api", team=web.team)
    Dependency.objects.create(service=api, depends_on=web, kind="soft")
    login(client, User.objects.create_superuser("root", "root@example.invalid", "pw"))
    page = client.get(f"/admin/services/service/{web.pk}/delete/").content.decode()
    assert "web is needed by api (soft); remove that dependency first" in page
    res = client.post(f"/admin/services/service/{web.pk}/delete/", {"post": "yes"})
    assert res.status_code == 200 and Service.objects.filter(name="web").exists()
    bulk = {"action": "delete_selected", "_selected_action": [web.pk], "post": "yes"}
    res = client.post("/admin/services/service/", bulk, follow=True)
    assert "web is needed by api" in res.content.decode()
    assert Service.objects.filter(name="web").exists()
