"""The admin writes through the registry, so it keeps the same rules and audit trail."""

import pytest

from portal import tokens
from portal.auth import system_actor
from portal.errors import Conflict
from portal.models import ApiToken, AuditEntry
from services import registry
from services.models import Dependency, Service, Team
from tests.factories import DependencyFactory, ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def service_form(team, name="web", **extra):
    data = {
        "name": name,
        "display_name": "",
        "team": team.pk,
        "description": "",
        "deployed_version": "",
        "config_validation_level": "",
        "deploy_bake_seconds": "0",
        "on_failed_verification": "none",
        "repository_url": "",
        "docs_url": "",
        "runbook_url": "",
        "dependency_links-TOTAL_FORMS": "0",
        "dependency_links-INITIAL_FORMS": "0",
        "transitions-TOTAL_FORMS": "0",
        "transitions-INITIAL_FORMS": "0",
    }
    data.update(extra)
    return data


@pytest.mark.parametrize(
    "path",
    [
        "/admin/services/service/",
        "/admin/services/team/",
        "/admin/services/dependency/",
        "/admin/portal/apitoken/",
        "/admin/portal/auditentry/",
    ],
)
def test_changelists_open_with_search_and_filters(admin_client, path):
    DependencyFactory()
    assert admin_client.get(path).status_code == 200
    assert admin_client.get(path, {"q": "svc"}).status_code == 200


def test_the_service_changelist_filters_by_status(admin_client):
    ServiceFactory(name="a")
    res = admin_client.get("/admin/services/service/", {"lifecycle_status__exact": "running"})
    assert res.status_code == 200 and "0 services" in res.content.decode()


def test_adding_a_service_with_a_dependency_goes_through_the_registry(admin_client, admin_user):
    team = TeamFactory(name="core")
    db = ServiceFactory(name="db", team=team)
    data = service_form(
        team,
        **{
            "dependency_links-TOTAL_FORMS": "1",
            "dependency_links-0-depends_on": db.pk,
            "dependency_links-0-kind": "soft",
        },
    )
    res = admin_client.post("/admin/services/service/add/", data)
    assert res.status_code == 302, res.content.decode()[:2000]
    web = Service.objects.get(name="web")
    assert list(Dependency.objects.filter(service=web).values_list("depends_on__name", "kind")) == [
        ("db", "soft")
    ]
    assert web.transitions.get().actor == "user:root"
    assert AuditEntry.objects.filter(action="service.create", target="web").exists()


def test_the_admin_refuses_a_cycle_and_names_it(admin_client):
    team = TeamFactory(name="core")
    link = DependencyFactory(
        service__name="web", service__team=team, depends_on__name="db", depends_on__team=team
    )
    db = link.depends_on
    data = service_form(
        team,
        name="db",
        **{
            "dependency_links-TOTAL_FORMS": "1",
            "dependency_links-0-depends_on": link.service.pk,
            "dependency_links-0-kind": "hard",
        },
    )
    res = admin_client.post(f"/admin/services/service/{db.pk}/change/", data)
    assert res.status_code == 200
    assert "dependency cycle: db -&gt; web -&gt; db" in res.content.decode()
    assert not Dependency.objects.filter(service=db).exists()


def test_the_dependency_admin_refuses_a_cycle(admin_client):
    link = DependencyFactory(service__name="web", depends_on__name="db")
    res = admin_client.post(
        "/admin/services/dependency/add/",
        {"service": link.depends_on.pk, "depends_on": link.service.pk, "kind": "hard"},
    )
    assert res.status_code == 200 and "dependency cycle" in res.content.decode()
    assert Dependency.objects.count() == 1


def test_a_token_made_in_the_admin_shows_its_secret_once(admin_client):
    res = admin_client.post(
        "/admin/portal/apitoken/add/",
        {"name": "deploy", "scopes": ["registry:read"], "services": "web, api", "is_active": "on"},
        follow=True,
    )
    assert res.status_code == 200
    message = next(str(m) for m in res.context["messages"])
    secret = message.split(" is ")[1].split(" ")[0]
    token = ApiToken.objects.get(name="deploy")
    assert tokens.find_token(secret) == token
    assert token.services == ["api", "web"]
    assert (
        secret
        not in admin_client.get(f"/admin/portal/apitoken/{token.pk}/change/").content.decode()
    )


def test_deleting_a_team_goes_through_the_registry_and_is_audited(admin_client):
    busy, empty = TeamFactory(name="busy"), TeamFactory(name="empty")
    ServiceFactory(name="web", team=busy)
    admin_client.post(f"/admin/services/team/{empty.pk}/delete/", {"post": "yes"})
    assert not Team.objects.filter(name="empty").exists()
    assert AuditEntry.objects.filter(action="team.delete", target="empty").exists()
    data = {"action": "delete_selected", "_selected_action": [busy.pk], "post": "yes"}
    res = admin_client.post("/admin/services/team/", data, follow=True)
    assert "Cannot delete team" in res.content.decode()  # Django names the services first
    assert Team.objects.filter(name="busy").exists()
    with pytest.raises(Conflict, match="still has services: web"):
        registry.delete_team("busy", system_actor("test"))


def test_tags_and_derived_health_are_read_only_in_the_admin(admin_client):
    assert admin_client.get("/admin/services/tag/add/").status_code == 403
    assert admin_client.get("/admin/healthchecks/incident/").status_code == 200
    page = admin_client.get("/admin/healthchecks/incident/").content.decode()
    assert "delete_selected" not in page
