"""A rule, and a channel, reach only what their author may change (issue 19, item 6): an
operator of one team refused a direct change to another team's service could make a rule
that made it for them (201, then the service stopped by the rule within 5 s). Rules act with
the rights of whoever last wrote them, as those rights are when they act."""

import pytest
from django.contrib.auth.models import Group, User
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from automation import rules
from automation.models import Delivery, NotificationChannel, Rule
from portal.models import ApiToken, AuditEntry
from services.models import Service, Tag
from tests.automation.conftest import channel, process, send_later
from tests.conftest import ApiClient

# Deliveries are sent from threads of their own, which see only what is committed.
pytestmark = pytest.mark.django_db(transaction=True)

STOP = {"type": "lifecycle", "to": "failed"}


@pytest.fixture
def teams(estate, transactional_db):
    """core (db, api) and money (billing, ledger), all running; olga operates core."""
    from django.apps import apps

    from checklists import routines
    from portal.roles import grant_role_permissions

    grant_role_permissions(apps)  # the flush between transactional tests empties them
    routines.install(apps)
    for name, team in (("db", "core"), ("api", "core"), ("billing", "money"), ("ledger", "money")):
        estate.add(name, team=team)
        estate.up(name)
    process()
    Service.objects.update(lifecycle_status="running")
    Tag.objects.create(name="edge").services.add(*Service.objects.all())
    Service.objects.filter(name__in=["api", "billing"]).update(is_critical=True)
    olga = User.objects.create_user("olga", password="pw")
    olga.groups.add(Group.objects.get(name="operator"))
    estate.services["db"].team.members.add(olga)
    ada = User.objects.create_user("ada", password="pw")
    ada.groups.add(Group.objects.get(name="admin"))
    return estate


def session(client, username: str):
    client.force_login(User.objects.get(username=username))
    client.get("/accounts/login/")
    client.defaults["HTTP_X_CSRFTOKEN"] = client.cookies["csrftoken"].value
    return client


def put_rule(client, name: str, scope: dict, actions=(STOP,), trigger="down"):
    body = {"trigger": trigger, "scope": scope, "actions": list(actions)}
    return client.put(f"/api/automation/rules/{name}", body, content_type="application/json")


def test_an_operator_reaches_no_other_teams_service_through_a_rule(client, teams):
    """The issue's path: refused directly, then refused through a rule as well."""
    olga = session(client, "olga")
    direct = olga.post(
        "/api/services/billing/transitions",
        {"to": "failed", "reason": "mine now"},
        content_type="application/json",
    )
    assert direct.status_code == 403
    for scope in (
        {"services": ["billing"]},
        {"services": ["db", "billing"]},
        {"team": "money"},
        {},
        {"tag": "edge"},
        {"critical_only": True},
    ):
        answer = put_rule(olga, "x", scope)
        assert answer.status_code == 403, (scope, answer.json())
        assert "changes only what its teams own (teams: core)" in answer.json()["error"]["message"]
    assert not Rule.objects.exists()
    assert put_rule(olga, "x", {"team": "core", "tag": "edge"}).status_code == 201
    teams.down("billing", "db")
    process()
    send_later()
    assert Service.objects.get(name="billing").lifecycle_status == "running"
    assert Service.objects.get(name="db").lifecycle_status == "failed"
    entry = AuditEntry.objects.get(action="service.transition", target="db")
    assert entry.actor == "rule:x by user:olga"


def test_another_teams_rule_is_neither_changed_nor_deleted(client, teams):
    ada = session(client, "ada")
    assert put_rule(ada, "money-watch", {"team": "money"}).status_code == 201
    olga = session(client, "olga")
    assert put_rule(olga, "money-watch", {"team": "core"}).status_code == 403
    assert olga.delete("/api/automation/rules/money-watch").status_code == 403
    assert Rule.objects.get(name="money-watch").scope == {"team": "money"}


def test_a_rule_acts_with_its_authors_rights_as_they_are_when_it_acts(client, teams):
    olga = session(client, "olga")
    assert put_rule(olga, "stop-core", {"team": "core"}).status_code == 201
    teams.services["db"].team.members.remove(User.objects.get(username="olga"))
    teams.down("db")
    process()
    send_later()
    assert Service.objects.get(name="db").lifecycle_status == "running"
    attempt = Delivery.objects.get(rule__name="stop-core").attempt_rows.get()
    assert "changes only what its teams own (teams: none), not the service 'db'" in attempt.error


def test_a_rule_written_by_a_token_later_revoked_does_nothing(teams, make_token):
    token = make_token(["automation:read", "automation:write", "registry:write"])
    answer = ApiClient(token.secret).call(
        "put", "/api/automation/rules/t", {"trigger": "down", "actions": [STOP]}
    )
    assert answer.status_code == 201
    ApiToken.objects.filter(pk=token.token.pk).update(is_active=False)
    teams.down("ledger")
    process()
    send_later()
    assert Service.objects.get(name="ledger").lifecycle_status == "running"
    error = Delivery.objects.get(rule__name="t").attempt_rows.get().error
    assert "who can no longer act; someone who may must save it again" in error


def test_a_channel_hears_only_of_its_authors_teams(client, teams, receiver):
    olga = session(client, "olga")

    def put(name, channel_teams):
        body = {"url": receiver.url, "teams": channel_teams, "events": ["down"]}
        return olga.put(f"/api/notification-channels/{name}", body, content_type="application/json")

    assert put("all", []).status_code == 403
    assert put("theirs", ["money"]).status_code == 403
    assert put("both", ["core", "money"]).status_code == 403
    assert put("ours", ["core"]).status_code == 201
    channel("everyone", receiver.url)  # an admin's (here the portal's) channel
    assert put("everyone", ["core"]).status_code == 403
    assert olga.delete("/api/notification-channels/everyone").status_code == 403
    assert NotificationChannel.objects.get(name="everyone").teams == []


# --- The property: no rule an operator may write reaches another team's service --------------

SCOPES = st.fixed_dictionaries(
    {},
    optional={
        "services": st.lists(st.sampled_from(["db", "api", "billing", "ledger"]), max_size=3),
        "team": st.sampled_from(["core", "money"]),
        "tag": st.just("edge"),
        "critical_only": st.booleans(),
    },
)
ACTIONS = st.lists(
    st.sampled_from([STOP, {"type": "checklist", "template": "post-migration"}]),
    min_size=1,
    max_size=2,
)


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scope=SCOPES, actions=ACTIONS)
def test_no_rule_an_operator_may_write_reaches_another_teams_service(client, teams, scope, actions):
    Rule.objects.filter(name="p").delete()
    olga = session(client, "olga")
    answer = put_rule(olga, "p", scope, actions)
    assert answer.status_code in (201, 403, 422), answer.json()
    if answer.status_code != 201:
        assert not Rule.objects.filter(name="p").exists()
        return
    rule = Rule.objects.get(name="p")
    for service in Service.objects.select_related("team"):
        tags = set(service.tags.values_list("name", flat=True))
        if rules.in_scope(rule, service, tags):
            assert service.team.name == "core", (scope, service.name)
