"""A rule's action needs the scope the same change needs directly (issue 19, item 6, the
breaking trial). Moving a service's lifecycle needs registry:write, starting its checklist
checklists:write; a token holding only automation:write was refused both directly and yet
could write a rule whose lifecycle action stopped every service it reached (201, then the
service failed by the rule), and a rule kept acting after its author lost the scope. Now a
rule is refused when its author lacks the scope of an action (403 naming it), and an
action whose author no longer holds it is refused when it acts, the delivery saying why."""

import pytest

from automation.models import Delivery, Rule
from portal import tokens
from portal.auth import system_actor
from portal.models import ApiToken
from services.models import Service
from tests.automation.conftest import process, send_later
from tests.automation.test_rule_ownership import STOP, teams  # noqa: F401 -- a fixture
from tests.conftest import ApiClient

pytestmark = pytest.mark.django_db(transaction=True)
CHECKLIST = {"type": "checklist", "template": "post-migration"}
AUTOMATION = ["automation:read", "automation:write"]


def put_rule(token, name: str, actions, escalation=()):
    body = {"trigger": "down", "scope": {}, "actions": list(actions),
            "escalation": list(escalation)}  # fmt: skip
    if escalation:
        body["escalate_after_minutes"] = 5
    return ApiClient(token.secret).call("put", f"/api/automation/rules/{name}", body)


@pytest.mark.parametrize(
    ("actions", "escalation", "scope"),
    [
        ([STOP], [], "registry:write"),
        ([CHECKLIST], [], "checklists:write"),
        ([{"type": "webhook", "url": "http://127.0.0.1:9/hook"}], [STOP], "registry:write"),
    ],
)
def test_a_token_without_the_actions_scope_writes_no_such_rule(
    teams,  # noqa: F811
    make_token,
    actions,
    escalation,
    scope,
):
    token = make_token(AUTOMATION)
    assert ApiClient(token.secret).call(
        "post", "/api/services/ledger/transitions", {"to": "failed"}
    ).status_code == 403  # fmt: skip
    answer = put_rule(token, "t", actions, escalation)
    assert answer.status_code == 403, answer.json()
    assert answer.json()["error"]["required_scope"] == scope
    assert not Rule.objects.exists()


def test_a_rule_whose_author_lost_the_scope_moves_nothing(teams, make_token):  # noqa: F811
    token = make_token([*AUTOMATION, "registry:write"])
    assert put_rule(token, "t", [STOP]).status_code == 201
    row = ApiToken.objects.get(pk=token.token.pk)
    tokens.update_token(row, {"scopes": AUTOMATION}, issuer=system_actor("test"))
    teams.down("ledger")
    process()
    send_later()
    assert Service.objects.get(name="ledger").lifecycle_status == "running"
    error = Delivery.objects.get(rule__name="t").attempt_rows.get().error
    assert "lacks the scope 'registry:write'" in error


def test_a_token_limited_to_services_is_told_it_cannot_change_rules(teams, make_token):  # noqa: F811
    """It was told it 'cannot change notification channels' when it wrote a rule."""
    limited = ApiClient(make_token(AUTOMATION, services=["ledger"]).secret)
    body = {"trigger": "down", "scope": {"services": ["ledger"]}, "actions": [
        {"type": "webhook", "url": "http://127.0.0.1:9/hook"}]}  # fmt: skip
    for method in ("put", "delete"):
        answer = limited.call(method, "/api/automation/rules/t", body if method == "put" else None)
        assert answer.status_code == 403
        assert answer.json()["error"]["message"] == (
            "a token limited to some services cannot change rules"
        )
