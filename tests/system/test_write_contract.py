"""Every write operation of the API keeps one contract, in the manner of NetBox's API test
mixins: 401 without credentials, 403 without its scope, 404 for a service outside a token's
limit (403 where the request itself names what it would create or share), and on success an
audit row naming who did it.

The operations come from the OpenAPI document: a new write operation without a row in
CONTRACT fails ``test_every_write_operation_has_a_row``.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from portal.auth import system_actor
from portal.models import AuditEntry, Scope
from services import configs, registry
from services.models import Service
from tests.conftest import ApiClient
from tests.factories import SEED_SCHEMA, ServiceFactory, TeamFactory, make_check

pytestmark = pytest.mark.django_db
ACTOR = system_actor("test")
WRITE_METHODS = {"post", "put", "patch", "delete"}
SVC = "/api/services/svc"


@dataclass
class Row:
    scope: str
    method: str
    path: str
    body: dict | None = None
    # The action of the audit row a success writes (None: a dry run stores nothing); a tuple
    # for a write that changes two things (a deployment also sets the deployed version).
    audit: str | tuple | None = None
    outside: int = 404  # the answer for a token limited to another service
    setup: list = field(default_factory=list)
    outside_message: str = "no service named"  # how that 404 begins


def second_version():
    configs.publish("svc", {"api_timeout": 9}, 1, ACTOR)


def an_edge():
    registry.set_dependency("svc", "other", "soft", ACTOR)


def a_token():
    from portal import tokens

    tokens.issue_token("victim", ["registry:read"], issuer=ACTOR)


def an_alert():
    from automation.models import Alert
    from healthchecks.status import Status

    Alert.objects.create(id=77, service=Service.objects.get(name="svc"), status=Status.UNHEALTHY)


def a_deployment():
    from services.models import Deployment

    Deployment.objects.create(
        id=78, service=Service.objects.get(name="svc"), version="1", status="succeeded"
    )


_TOMORROW = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
FUTURE = {
    "starts_at": _TOMORROW.isoformat(),
    "ends_at": (_TOMORROW + timedelta(hours=2)).isoformat(),
}


def a_window():
    from services.models import MaintenanceWindow

    window = MaintenanceWindow.objects.create(
        id=55,
        starts_at=datetime.fromisoformat(FUTURE["starts_at"]),
        ends_at=datetime.fromisoformat(FUTURE["ends_at"]),
    )
    window.services.set([Service.objects.get(name="svc")])


def a_rule():
    from automation.rules import RuleIn, put_rule

    webhook = [{"type": "webhook", "url": "http://127.0.0.1:9/"}]
    put_rule("r1", RuleIn("down", {"team": "core"}, webhook), ACTOR)


def a_channel():
    from automation.channels import ChannelIn, put_channel

    hook = ChannelIn(url="json://127.0.0.1:9/hook", teams=["core"], events=["down"])
    put_channel("ops", hook, ACTOR)


R, C, H = Scope.REGISTRY_WRITE, Scope.CONFIG_WRITE, Scope.HEALTH_WRITE
A = Scope.AUTOMATION_WRITE
CONTRACT = {
    "services_api_create_service": Row(
        R, "post", "/api/services", {"name": "svc2", "team": "core"}, "service.create", 403
    ),
    "services_api_upsert_service": Row(R, "put", SVC, {"description": "new"}, "service.update"),
    "services_api_patch_service": Row(R, "patch", SVC, {"description": "new"}, "service.update"),
    "services_api_delete_service": Row(R, "delete", "/api/services/other", None, "service.delete"),
    "services_api_put_dependency": Row(
        R, "put", f"{SVC}/dependencies/other", {"kind": "soft"}, "service.update"
    ),
    "services_api_delete_dependency": Row(
        R, "delete", f"{SVC}/dependencies/other", None, "service.update", setup=[an_edge]
    ),
    "services_api_transition_service": Row(
        R, "post", f"{SVC}/transitions", {"to": "running"}, "service.transition"
    ),
    "services_api_apply_manifest": Row(
        R,
        "post",
        "/api/registry/apply",
        {"services": [{"name": "svc", "description": "applied"}]},
        "service.update",
        403,
    ),
    "services_api_put_team": Row(
        R, "put", "/api/teams/core", {"display_name": "Core"}, "team.update", 403
    ),
    "services_config_api_publish_config": Row(
        C,
        "post",
        f"{SVC}/config",
        {"values": {"api_timeout": 5}, "base_version": 1},
        "config.publish",
    ),
    "services_config_api_validate_config": Row(
        Scope.CONFIG_READ, "post", f"{SVC}/config/validate", {"values": {"api_timeout": 5}}
    ),
    "services_config_api_import_config": Row(
        C,
        "post",
        f"{SVC}/config/import",
        {"dotenv": "API_TIMEOUT=5\n", "base_version": 1},
        "config.publish",
    ),
    "services_config_api_rollback_config": Row(
        C,
        "post",
        f"{SVC}/config/rollback",
        {"to_version": 1},
        "config.rollback",
        setup=[second_version],
    ),
    "services_config_api_put_schema": Row(
        C,
        "put",
        f"{SVC}/config/schema",
        {"properties": {"x": {"type": "integer"}}},
        "config.schema",
    ),
    "services_config_api_report_deployment": Row(
        R,
        "post",
        f"{SVC}/deployments",
        {"version": "1.0", "config_version": 1},
        ("deployment.report", "service.update"),
    ),
    "healthchecks_api_put_check": Row(
        H,
        "put",
        f"{SVC}/checks/new",
        {"kind": "tcp", "target": "127.0.0.1:9", "timeout": 1},
        "check.create",
    ),
    "healthchecks_api_delete_check": Row(H, "delete", f"{SVC}/checks/chk", None, "check.delete"),
    "healthchecks_api_run_check": Row(H, "post", f"{SVC}/checks/chk/run", None, "check.run"),
    # A channel hears of its teams' services (a rule acts on its scope's): their team owns
    # them; a token limited to some services may not change them (403).
    "automation_api_put_channel": Row(
        A,
        "put",
        "/api/notification-channels/ops",
        {"url": "json://127.0.0.1:9/x", "teams": ["core"]},
        "channel.create",
        403,
    ),
    "automation_api_delete_channel": Row(
        A,
        "delete",
        "/api/notification-channels/ops",
        None,
        "channel.delete",
        403,
        setup=[a_channel],
    ),
    # A test message to a channel: who may change the channel may test it (its teams').
    "automation_api_test_channel": Row(
        A,
        "post",
        "/api/notification-channels/ops/test",
        None,
        "channel.test",
        403,
        setup=[a_channel],
    ),
    "automation_api_put_rule": Row(
        A,
        "put",
        "/api/automation/rules/r1",
        {
            "trigger": "down",
            "scope": {"team": "core"},
            "actions": [{"type": "webhook", "url": "http://127.0.0.1:9/"}],
        },
        "rule.create",
        403,
    ),
    "automation_api_delete_rule": Row(
        A, "delete", "/api/automation/rules/r1", None, "rule.delete", 403, setup=[a_rule]
    ),
    # A window names the services it covers: one outside the token is refused by name.
    "automation_api_create_window": Row(
        A,
        "post",
        "/api/maintenance-windows",
        {"services": ["svc"], **FUTURE},
        "maintenance.create",
        403,
    ),
    # Cancelling keeps the window, listed as cancelled (DELETE and POST .../cancel alike).
    "automation_api_delete_window": Row(
        A,
        "delete",
        "/api/maintenance-windows/55",
        None,
        "maintenance.cancel",
        setup=[a_window],
        outside_message="no maintenance window 55",
    ),
    "automation_api_cancel_window": Row(
        A,
        "post",
        "/api/maintenance-windows/55/cancel",
        {},
        "maintenance.cancel",
        setup=[a_window],
        outside_message="no maintenance window 55",
    ),
    # Tokens are not a service's: one limited to services cannot grant (so revoke) a token
    # that reaches every service.
    "portal_security_api_revoke_token": Row(
        Scope.AUDIT_READ,
        "post",
        "/api/tokens/victim/revoke",
        None,
        "token.revoke",
        outside=403,
        setup=[a_token],
    ),
    # An alert of a service outside the token is, to it, no alert at all.
    "automation_api_acknowledge_alert": Row(
        A,
        "post",
        "/api/alerts/77/acknowledge",
        None,
        "alert.acknowledge",
        setup=[an_alert],
        outside_message="no alert 77",
    ),
    "automation_api_add_note": Row(
        A,
        "post",
        "/api/alerts/77/notes",
        {"text": "failing over to the replica", "public": True},
        "alert.note",
        setup=[an_alert],
        outside_message="no alert 77",
    ),
}


def write_operations() -> dict[str, tuple[str, str]]:
    from portal.api import api

    document = api.get_openapi_schema()
    return {
        operation["operationId"]: (method, path)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        if method in WRITE_METHODS
    }


def build_estate():
    """Team ``core`` with svc (a configuration, a check ``chk``), other and elsewhere."""
    TeamFactory(name="core")
    ServiceFactory(name="svc", team__name="core")
    ServiceFactory(name="other", team__name="core")
    ServiceFactory(name="elsewhere", team__name="core")
    configs.put_schema("svc", SEED_SCHEMA, ACTOR)
    configs.publish("svc", {"api_timeout": 10}, 0, ACTOR)
    make_check(
        ServiceFactory._meta.model.objects.get(name="svc"),
        name="chk",
        kind="tcp",
        target="127.0.0.1:9",
        timeout=1,
    )


@pytest.fixture
def estate():
    build_estate()


def test_every_write_operation_has_a_row():
    operations = write_operations()
    assert operations.keys() == CONTRACT.keys()
    for operation_id, (method, _) in operations.items():
        assert CONTRACT[operation_id].method == method, operation_id


@pytest.mark.parametrize("operation_id", sorted(CONTRACT))
def test_the_write_contract(operation_id, estate, make_token):
    row = CONTRACT[operation_id]
    for prepare in row.setup:
        prepare()

    def call(client):
        return client.call(row.method, row.path, row.body)

    anonymous = call(ApiClient())
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Bearer"

    others = [s for s in Scope.values if s != row.scope]
    lacking = call(ApiClient(make_token(others).secret))
    assert lacking.status_code == 403, lacking.content
    assert lacking.json()["error"]["required_scope"] == row.scope

    limited = call(ApiClient(make_token(Scope.values, services=["elsewhere"]).secret))
    assert limited.status_code == row.outside, limited.content
    if row.outside == 404:
        assert limited.json()["error"]["message"].startswith(row.outside_message)

    full = ApiClient(make_token(Scope.values, name="full").secret)
    before = set(AuditEntry.objects.values_list("id", flat=True))
    done = call(full)
    assert 200 <= done.status_code < 300, done.content
    written = AuditEntry.objects.exclude(id__in=before)
    if row.audit is None:
        assert not written.exists()
    else:
        expected = (row.audit,) if isinstance(row.audit, str) else row.audit
        assert sorted((e.action, e.actor) for e in written) == sorted(
            (action, "token:full") for action in expected
        )
