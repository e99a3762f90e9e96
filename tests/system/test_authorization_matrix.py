"""The authorization matrix: every API operation, page and admin view or action, against every
kind of caller -- anonymous, a viewer, an operator of another team, an operator of the team,
an admin, a token holding only the operation's scope, one holding every other scope, a token
for another service and one for another team -- each answer checked against what the rules
say (README, "Authentication and scopes" and "Teams own services").

The rows come from the OpenAPI document, the URL resolver and the admin's registry: a new
operation, page, admin page or admin action without a row here fails
``test_every_operation_page_and_admin_action_has_a_row``. The expected answers are derived
from a few facts per row (its scope; whether a team owns what it changes; what a token out of
reach gets), not written per cell.
"""

from dataclasses import dataclass, field

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from automation.models import Alert, NotificationChannel
from checklists import runs
from checklists.models import ChecklistRun
from healthchecks.models import HealthCheck
from portal.auth import ROLE_SCOPES, WRITE_SCOPES, Role, system_actor
from portal.models import ApiToken, Scope
from services.models import ConfigVersion, Service
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, TeamFactory
from tests.system import test_write_contract as contract

pytestmark = pytest.mark.django_db
ACTOR = system_actor("test")
OK = "2xx"
SVC = "/api/services/svc"
PEOPLE = ["anonymous", "viewer", "operator-other", "operator", "admin"]
TOKENS = ["token-scope", "token-without", "token-other-service", "token-other-team"]


# --- API -------------------------------------------------------------------------------------


@dataclass
class Api:
    scope: str
    method: str
    path: str
    body: dict | None = None
    setup: list = field(default_factory=list)
    outside: int | str = 404  # for a token whose reach is elsewhere
    owned: bool | None = None  # a team owns what it changes (default: a write scope's)
    extra: tuple = ()  # scopes needed beside ``scope``

    @property
    def team_owned(self) -> bool:
        return self.scope in WRITE_SCOPES if self.owned is None else self.owned


def _from_contract(row: contract.Row, **changes) -> Api:
    return Api(row.scope, row.method, row.path, row.body, row.setup, row.outside, **changes)


RR, CR, AR = Scope.REGISTRY_READ, Scope.CONFIG_READ, Scope.AUTOMATION_READ
API = {operation: _from_contract(row) for operation, row in contract.CONTRACT.items()}
# Whoever is on call acknowledges: no team owns an alert. (A channel and a rule are owned by
# the teams they reach: the rows' bodies name core.)
API["automation_api_acknowledge_alert"].owned = False
API["automation_api_add_note"].owned = False  # an incident update: whoever is on call
# Revoking needs the right to grant what the token holds (it reads the registry).
API["portal_security_api_revoke_token"].extra = (RR,)
API["portal_security_api_revoke_token"].owned = False
API.update(
    {
        "portal_security_api_list_events": Api(
            Scope.AUDIT_READ, "get", "/api/security-events", outside=OK
        ),
        "portal_security_api_list_tokens": Api(Scope.AUDIT_READ, "get", "/api/tokens", outside=OK),
        # The audit log is every team's: a token limited to some of the estate reads none.
        "portal_audit_api_list_audit": Api(Scope.CHANGES_READ, "get", "/api/audit", outside=403),
        "services_api_list_services": Api(RR, "get", "/api/services", outside=OK),
        "services_api_get_service": Api(RR, "get", SVC),
        "services_api_list_dependencies": Api(RR, "get", f"{SVC}/dependencies"),
        "services_api_list_dependents": Api(RR, "get", f"{SVC}/dependents"),
        "services_api_impact": Api(RR, "get", f"{SVC}/impact"),
        "services_api_list_transitions": Api(RR, "get", f"{SVC}/transitions"),
        "services_api_startup_order": Api(RR, "get", "/api/registry/startup-order", outside=OK),
        "services_api_shutdown_order": Api(RR, "get", "/api/registry/shutdown-order", outside=OK),
        "services_api_list_teams": Api(RR, "get", "/api/teams", outside=OK),
        "services_config_api_read_config": Api(CR, "get", f"{SVC}/config"),
        "services_config_api_list_config_versions": Api(CR, "get", f"{SVC}/config/versions"),
        "services_config_api_read_config_version": Api(CR, "get", f"{SVC}/config/versions/1"),
        "services_config_api_diff_config": Api(
            CR,
            "get",
            f"{SVC}/config/diff?from_version=1&to_version=2",
            setup=[contract.second_version],
        ),
        "services_config_api_read_schema": Api(CR, "get", f"{SVC}/config/schema"),
        "services_config_api_list_deployments": Api(RR, "get", f"{SVC}/deployments"),
        "services_config_api_get_deployment": Api(
            RR, "get", f"{SVC}/deployments/78", setup=[contract.a_deployment]
        ),
        "services_config_api_service_drift": Api(CR, "get", f"{SVC}/config/drift"),
        "services_config_api_all_drift": Api(CR, "get", "/api/config/drift", outside=OK),
        "healthchecks_api_list_checks": Api(RR, "get", f"{SVC}/checks"),
        "healthchecks_api_get_check": Api(RR, "get", f"{SVC}/checks/chk"),
        "automation_api_list_alerts": Api(AR, "get", "/api/alerts", outside=OK),
        "automation_api_get_alert": Api(AR, "get", "/api/alerts/77", setup=[contract.an_alert]),
        "automation_api_list_channels": Api(AR, "get", "/api/notification-channels", outside=OK),
        "automation_api_get_channel": Api(
            AR, "get", "/api/notification-channels/ops", setup=[contract.a_channel], outside=OK
        ),
        "automation_api_list_windows": Api(AR, "get", "/api/maintenance-windows", outside=OK),
        "automation_api_get_window": Api(
            AR, "get", "/api/maintenance-windows/55", setup=[contract.a_window]
        ),
        "automation_api_list_rules": Api(AR, "get", "/api/automation/rules", outside=OK),
        "automation_api_get_rule": Api(
            AR, "get", "/api/automation/rules/r1", setup=[contract.a_rule], outside=OK
        ),
        "automation_api_list_deliveries": Api(AR, "get", "/api/automation/deliveries", outside=OK),
    }
)


def api_operations() -> dict[str, tuple[str, str]]:
    from portal.api import api

    document = api.get_openapi_schema()
    return {
        operation["operationId"]: (method, path)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


def expected_api(row: Api, who: str) -> int | str:
    if who == "anonymous":
        return 401
    if who in ("viewer", "operator-other", "operator", "admin"):
        role = Role.ADMIN if who == "admin" else Role.VIEWER if who == "viewer" else Role.OPERATOR
        if not {row.scope, *row.extra} <= ROLE_SCOPES[role]:
            return 403
        if who == "operator-other" and row.team_owned:
            return 403
        return OK
    return {"token-scope": OK, "token-without": 403}.get(who, row.outside)


@pytest.fixture
def estate():
    """The write contract's estate (team ``core``: svc, other, elsewhere) and a team ``far``
    with its own service; an operator of each team, a viewer and an admin."""
    contract.build_estate()
    far = TeamFactory(name="far")
    ServiceFactory(name="far-svc", team=far)
    people = {}
    for who, role, team in (
        ("viewer", "viewer", None),
        ("operator", "operator", "core"),
        ("operator-other", "operator", "far"),
        ("admin", "admin", None),
    ):
        user = User.objects.create_user(who, is_staff=True)  # no password: no slow hashing
        user.groups.add(Group.objects.get(name=role))
        if team:
            user.teams.add(far if team == "far" else Service.objects.get(name="svc").team)
        people[who] = user
    return people


def api_client(who: str, row: Api, people: dict, make_token) -> ApiClient:
    if who == "anonymous":
        return ApiClient()
    if who in people:
        client = ApiClient()
        client.force_login(people[who])
        client.get("/accounts/login/")
        client.defaults["HTTP_X_CSRFTOKEN"] = client.cookies["csrftoken"].value
        return client
    scopes = {
        "token-scope": [row.scope, *row.extra],
        "token-without": [s for s in Scope.values if s != row.scope],
    }.get(who, list(Scope.values))
    services = ["far-svc"] if who == "token-other-service" else None
    teams = ["far"] if who == "token-other-team" else None
    return ApiClient(make_token(scopes, services=services, teams=teams).secret)


def _matches(status: int, expected: int | str) -> bool:
    return 200 <= status < 300 if expected == OK else status == expected


def each_caller(callers, check) -> None:
    """``check(who)`` for every caller, each in a savepoint rolled back after it (what one
    caller changed does not decide the next one's answer); every mismatch reported at once."""
    wrong = []
    for who in callers:
        with transaction.atomic():
            problem = check(who)
            transaction.set_rollback(True)
        if problem:
            wrong.append(f"{who}: {problem}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("operation", sorted(API))
def test_the_api_matrix(operation, estate, make_token):
    row = API[operation]

    def check(who: str) -> str | None:
        for prepare in row.setup:
            prepare()
        client = api_client(who, row, estate, make_token)
        answer = client.call(row.method, row.path, row.body)
        expected = expected_api(row, who)
        if not _matches(answer.status_code, expected):
            return f"expected {expected}, got {answer.status_code} {answer.content[:300]!r}"
        if answer.status_code >= 400 and "error" not in answer.json():
            return f"not the error shape: {answer.content[:300]!r}"
        return None

    each_caller(PEOPLE + TOKENS, check)


# --- Pages -----------------------------------------------------------------------------------


@dataclass
class Page:
    method: str
    path: str  # "{run}" and "{item}" are filled in by the setup
    scope: str | None = None  # what it needs (None: a read everyone logged in may do)
    owned: bool = False  # a team owns what it changes
    data: dict | None = None
    public: int | None = None  # open to everyone: this answer for all


def service_run() -> dict:
    run = runs.start_for_service("post-migration", "svc", ACTOR)
    item = run.template.items.filter(verify="").first()
    return {"run": run.id, "item": item.id}


def an_alert() -> dict:
    """The contract's alert 77 on svc, and a notification's acknowledge link for it."""
    from automation import acklinks

    if not Alert.objects.filter(id=77).exists():
        contract.an_alert()
    return {"alert": 77, "token": acklinks.token_for(77)}


def daily_run() -> dict:
    run = runs.current_runs()[0]
    return {"run": run.id, "item": run.template.items.first().id}


PAGES = {
    "pages:overview": Page("get", "/"),
    "pages:wall": Page("get", "/wall/"),
    "pages:map": Page("get", "/map/"),
    "pages:status": Page("get", "/status/"),
    "pages:drift": Page("get", "/config/drift"),
    # The audit log: operators and admins; the security events beside it: admins.
    "pages:audit": Page("get", "/audit/", Scope.CHANGES_READ),
    "pages:audit_security": Page("get", "/audit/security/", Scope.AUDIT_READ),
    "pages:service": Page("get", "/services/svc/"),
    "pages:run_checks": Page("post", "/services/svc/run-checks", Scope.HEALTH_WRITE, True),
    # Acting on an alert is every operator's, as through the API (no team owns an alert).
    "pages:alert_acknowledge": Page("post", "/alerts/{alert}/acknowledge", Scope.AUTOMATION_WRITE),
    "pages:alert_note": Page(
        "post", "/alerts/{alert}/notes", Scope.AUTOMATION_WRITE, data={"text": "on it"}
    ),
    # A notification's link: the confirm page is everyone's to see, its POST acknowledges.
    "pages:alert_ack_link": Page("get", "/alerts/{alert}/ack/{token}/"),
    "pages:alert_ack_link confirm": Page(
        "post", "/alerts/{alert}/ack/{token}/", Scope.AUTOMATION_WRITE
    ),
    "pages:maintenance": Page("get", "/maintenance/"),
    "pages:maintenance_history": Page("get", "/maintenance/history/"),
    "pages:maintenance_window_cancel": Page(
        "post", "/maintenance/windows/{window}/cancel", Scope.AUTOMATION_WRITE, True
    ),
    "pages:start_service_checklist": Page(
        "post",
        "/maintenance/service-checklists",
        Scope.CHECKLISTS_WRITE,
        True,
        {"template": "post-migration", "service": "svc"},
    ),
    "pages:checklist_run": Page("get", "/maintenance/runs/{run}/"),
    "pages:checklist_tick": Page(
        "post",
        "/maintenance/runs/{run}/items/{item}/tick",
        Scope.CHECKLISTS_WRITE,
        True,
        {"done": "1"},
    ),
    "pages:checklist_sign_off": Page(
        "post", "/maintenance/runs/{run}/sign-off", Scope.CHECKLISTS_WRITE, True
    ),
    # A routine's run (daily, weekly...) is every operator's.
    "pages:checklist_tick routine": Page(
        "post",
        "/maintenance/runs/{run}/items/{item}/tick",
        Scope.CHECKLISTS_WRITE,
        False,
        {"done": "1"},
    ),
    "login": Page("get", "/accounts/login/", public=200),
    "logout": Page("post", "/accounts/logout/", public=302),
    # Sign-in through an identity provider: not configured here (tests/system/test_oidc_signin.py).
    "oidc-start": Page("get", "/accounts/login/oidc/", public=404),
    "oidc-callback": Page("get", "/accounts/login/oidc/callback/", public=404),
    "liveness": Page("get", "/health/", public=200),
    "healthchecks:services": Page("get", "/health/services", public=200),
    "healthchecks:service": Page("get", "/health/service/svc", public=503),  # never checked
    "healthchecks:service_history": Page("get", "/health/service/svc/history", public=200),
    "healthchecks:metrics": Page("get", "/health/metrics", public=200),
    "healthchecks:predictive": Page("get", "/health/predictive", public=200),
    "healthchecks:openapi": Page("get", "/health/openapi.json", public=200),
    "healthchecks:heartbeat": Page("post", "/health/heartbeat/" + "b" * 32, public=200),
    "healthchecks:heartbeat_signal": Page("post", f"/health/heartbeat/{'b' * 32}/fail", public=200),
    "metrics": Page("get", "/metrics", public=200),
}
# Named routes outside these rows: the API (its own matrix above) and the admin (below).
NOT_PAGES = {"api", "admin"}


def page_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns, namespace: str = "") -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace in NOT_PAGES or (pattern.app_name or "") in NOT_PAGES:
                    continue
                inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                walk(pattern.url_patterns, inner)
            elif isinstance(pattern, URLPattern) and pattern.name:
                names.add(namespace + pattern.name)

    walk(get_resolver().url_patterns)
    return names


def expected_page(row: Page, who: str) -> int | str:
    if row.public is not None:
        return row.public
    if who == "anonymous":
        return 302  # to the login page
    if row.scope is None:
        return 200
    role = Role.ADMIN if who == "admin" else Role.VIEWER if who == "viewer" else Role.OPERATOR
    if row.scope not in ROLE_SCOPES[role]:
        return 403
    if who == "operator-other" and row.owned:
        return 403
    return OK  # the page or a redirect back to it


@pytest.mark.parametrize("name", sorted(PAGES))
def test_the_pages_matrix(name, estate):
    row = PAGES[name]

    def check(who: str) -> str | None:
        ids = {}
        if "{run}" in row.path:
            routine = name.endswith("routine") or row.method == "get"
            ids = daily_run() if routine else service_run()
        if "{alert}" in row.path:
            ids = an_alert()
        if "{window}" in row.path:
            contract.a_window()  # window 55, on svc (team core)
            ids = {"window": 55}
        if "heartbeat" in name:
            HealthCheck.objects.filter(name="chk").update(
                kind="heartbeat", heartbeat_token="b" * 32
            )
        client = Client()
        if who != "anonymous":
            client.force_login(estate[who])
        answer = getattr(client, row.method)(row.path.format(**ids), row.data or {})
        expected = expected_page(row, who)
        allowed = (200, 302) if expected == OK else (expected,)
        if answer.status_code not in allowed:
            return f"expected {expected}, got {answer.status_code} {answer.content[:300]!r}"
        if (
            who == "anonymous"
            and expected == 302
            and not answer["Location"].startswith("/accounts/login/")
        ):
            return f"sent to {answer['Location']}, not the login page"
        if expected == 403 and "run" in ids:
            ticked = ChecklistRun.objects.get(id=ids["run"]).ticks.filter(by__startswith="user:")
            if ticked.exists():
                return "refused, yet ticked"
        if "alert" in ids and answer.status_code >= 400:
            alert = Alert.objects.get(id=ids["alert"])
            if alert.acknowledged_at or alert.notes.exists():
                return "refused, yet acknowledged or noted"
        return None

    each_caller(PEOPLE, check)


# --- Admin -----------------------------------------------------------------------------------


@dataclass
class AdminRow:
    """What each role may do with a model in the admin: v(iew), a(dd), c(hange), d(elete);
    ``owned``: an operator of another team only views the example object."""

    viewer: str
    operator: str
    admin: str
    example: object = None  # a callable returning an object of the model
    owned: bool = False
    actions: dict = field(default_factory=dict)  # action -> the roles offered it


def _svc():
    return Service.objects.get(name="svc")


ADMIN = {
    "auth.Group": AdminRow("", "", "vacd", lambda: Group.objects.get(name="viewer")),
    "auth.User": AdminRow("", "", "vacd", lambda: User.objects.get(username="viewer")),
    "portal.ApiToken": AdminRow(
        "", "", "vacd", lambda: contract.a_token() or ApiToken.objects.get(name="victim")
    ),
    "portal.AuditEntry": AdminRow("", "v", "vd", None),
    "portal.SecurityEvent": AdminRow("", "", "v", None),
    "portal.Heartbeat": AdminRow("v", "v", "vd", None),
    # Operators change their own team through the API; in the admin, teams are the admins'.
    "services.Team": AdminRow("v", "v", "vacd", lambda: _svc().team, owned=True),
    "services.Tag": AdminRow("v", "v", "vd", None),
    "services.Service": AdminRow(
        "v",
        "vacd",
        "vacd",
        _svc,
        owned=True,
        actions={"mark_running": {"operator", "admin"}, "mark_stopped": {"operator", "admin"}},
    ),
    "services.Dependency": AdminRow(
        "v",
        "vacd",
        "vacd",
        lambda: (contract.an_edge(), _svc().dependency_links.get())[1],
        owned=True,
    ),
    "services.ConfigVersion": AdminRow(
        "v",
        "v",
        "v",  # the history of a configuration: never deleted by hand
        lambda: ConfigVersion.objects.get(service__name="svc", version=1),
        actions={"roll_back_to_this_version": {"operator", "admin"}},
    ),
    "services.ConfigSchema": AdminRow("v", "v", "vd", None),
    "services.Deployment": AdminRow("v", "v", "vd", None),
    "services.MaintenanceWindow": AdminRow("v", "vad", "vad", None),
    "healthchecks.HealthCheck": AdminRow(
        "v",
        "vacd",
        "vacd",
        lambda: HealthCheck.objects.get(name="chk"),
        owned=True,
        actions={"run_now": {"operator", "admin"}},
    ),
    "healthchecks.ServiceHealth": AdminRow("v", "v", "vd", None),
    "healthchecks.StatusChange": AdminRow("v", "v", "v", None),
    "healthchecks.Incident": AdminRow("v", "v", "v", None),
    "checklists.ChecklistTemplate": AdminRow("v", "v", "vacd", None),
    "checklists.ChecklistRun": AdminRow("v", "v", "vd", None),
    "automation.NotificationChannel": AdminRow(
        "v",
        "vacd",
        "vacd",
        lambda: contract.a_channel() or NotificationChannel.objects.get(name="ops"),
        owned=True,
        actions={"send_test": {"operator", "admin"}},
    ),
    "automation.Alert": AdminRow(
        "v",
        "v",
        "v",  # a record of what happened
        lambda: contract.an_alert() or Alert.objects.get(id=77),
        actions={"acknowledge": {"operator", "admin"}},
    ),
}
# The admin's own pages beside each model's (custom views): who may use them.
ADMIN_VIEWS = {
    "services_service_config": ("get", lambda: f"/admin/services/service/{_svc().pk}/config/"),
    "healthchecks_healthcheck_run": (
        "post",
        lambda: f"/admin/healthchecks/healthcheck/{HealthCheck.objects.get(name='chk').pk}/run/",
    ),
}
STANDARD = ("_changelist", "_add", "_history", "_delete", "_change", "autocomplete")


def admin_rows() -> tuple[set, set, set]:
    models, views, actions = set(), set(), set()
    for model, model_admin in admin.site._registry.items():
        models.add(model._meta.label)
        for url in model_admin.get_urls():
            if url.name and not url.name.endswith(STANDARD):
                views.add(url.name)
        for name in model_admin.actions or ():
            actions.add((model._meta.label, getattr(name, "__name__", name)))
    return models, views, actions


def _may(row: AdminRow, who: str) -> str:
    return getattr(row, who.replace("operator-other", "operator"), "")


@pytest.mark.parametrize("who", PEOPLE)
@pytest.mark.parametrize("label", sorted(ADMIN))
def test_the_admin_matrix(label, who, estate):
    """Each page is only read here, so one estate serves every role."""
    row = ADMIN[label]
    app, model = label.lower().split(".")
    base = f"/admin/{app}/{model}/"
    client = Client()
    if who != "anonymous":
        client.force_login(estate[who])
    may = _may(row, who)
    listing = client.get(base)
    if who == "anonymous":
        assert listing.status_code == 302 and "/admin/login/" in listing["Location"]
        return
    assert listing.status_code == (200 if "v" in may else 403), label
    assert client.get(base + "add/").status_code == (200 if "a" in may else 403), label
    if row.example is not None:
        obj = row.example()
        change = client.get(f"{base}{obj.pk}/change/")
        assert change.status_code == (200 if "v" in may else 403), label
        foreign = who == "operator-other" and row.owned
        if change.status_code == 200:
            editable = change.context["has_change_permission"]
            assert editable == ("c" in may and not foreign), label
        deleting = client.get(f"{base}{obj.pk}/delete/")
        assert deleting.status_code == (200 if "d" in may and not foreign else 403), label
    if "v" in may and row.actions:
        form = listing.context["action_form"]  # None: no action offered at all
        offered = {name for name, _ in form.fields["action"].choices} if form else set()
        for action, roles in row.actions.items():
            role = "operator" if who.startswith("operator") else who
            assert (action in offered) == (role in roles), (label, action)


@pytest.mark.parametrize("who", PEOPLE)
@pytest.mark.parametrize("view", sorted(ADMIN_VIEWS))
def test_the_admins_own_views(view, who, estate):
    method, path = ADMIN_VIEWS[view]
    client = Client()
    if who != "anonymous":
        client.force_login(estate[who])
    answer = getattr(client, method)(path())
    if who == "anonymous":
        assert answer.status_code == 302 and "/admin/login/" in answer["Location"]
    elif method == "get":  # the configuration form: every reader sees it
        assert answer.status_code == 200
        editable = b"Save a new version" in answer.content
        assert editable == (who in ("operator", "admin"))
    else:  # running the check: its owners and admins
        assert answer.status_code == (302 if who in ("operator", "admin") else 403)


def test_every_operation_page_and_admin_action_has_a_row():
    assert set(api_operations()) == set(API)
    for operation, (method, _) in api_operations().items():
        assert API[operation].method == method, operation
    assert page_names() == {name.split(" ")[0] for name in PAGES}
    models, views, actions = admin_rows()
    assert models == set(ADMIN)
    assert views == set(ADMIN_VIEWS)
    assert actions == {(label, a) for label, row in ADMIN.items() for a in row.actions}
