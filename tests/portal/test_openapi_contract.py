"""The API's OpenAPI document declares every answer the API gives, and the API holds to the
types the document states.

- Every code path that raises a conflict (409) is found in the source, mapped to the
  operations that reach it, provoked through the API, and found declared on each of them.
- ``?format=env`` answers text/plain, ``GET /api/audit?format=csv`` text/csv: media types the
  document declares.
- A value of the wrong JSON type where the document states one (``"1"`` or ``true`` for an
  integer, ``1`` or ``"true"`` for a boolean, a string for a number) is a 422 naming the field,
  in every request body; so is a query or path parameter that is not plain digits for an
  integer, ``true``/``false`` for a boolean, ISO 8601 for a date and time. Properties over
  every such field of the document, values from hypothesis.
- A path under /api/ (and /health/, /metrics/) that matches nothing answers the error shape,
  with DEBUG on (make run) as with it off.
"""

import ast
import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from automation.models import Alert
from healthchecks.status import Status
from portal.api import api
from portal.auth import system_actor
from portal.models import Scope
from services import configs, maintenance
from services.models import Dependency
from tests.conftest import ApiClient
from tests.factories import ServiceFactory, TeamFactory

pytestmark = pytest.mark.django_db

DOCUMENT = api.get_openapi_schema()
APPS = ["portal", "services", "healthchecks", "checklists", "manifest", "pages", "automation"]

# --- 409: from the code that raises it to the document ----------------------------------------

# Each function that raises a conflict -> the API operations through which it can answer.
RAISE_SITES = {
    "services.registry._Planner.check_mode": ["POST /api/services"],
    "services.registry.delete_service": ["DELETE /api/services/{name}"],
    "services.registry.delete_team": [],  # the admin's delete: the API deletes no team
    "services.dotenv.to_dotenv": ["GET /api/services/{name}/config"],
    "services.configs.publish": [
        "POST /api/services/{name}/config",
        "POST /api/services/{name}/config/validate",
        "POST /api/services/{name}/config/import",
        "POST /api/services/{name}/config/rollback",
    ],
    "services.lifecycle.transition": ["POST /api/services/{name}/transitions"],
    "automation.alerts.acknowledge": ["POST /api/alerts/{alert_id}/acknowledge"],
    "portal.tokens.revoke": ["POST /api/tokens/{name}/revoke"],
    "services.maintenance.cancel_window": [
        "DELETE /api/maintenance-windows/{window_id}",
        "POST /api/maintenance-windows/{window_id}/cancel",
    ],
    "services.maintenance._occurrence_to_cancel": [
        "POST /api/maintenance-windows/{window_id}/cancel"
    ],
    "checklists.runs.tick": [],  # the maintenance pages only (HTML)
    "checklists.runs.sign_off": [],
}


def conflict_raise_sites() -> set[str]:
    """module.Class.function of every call of Conflict (or a subclass) in the apps' code."""
    names, trees = {"Conflict"}, {}
    for app in APPS:
        for path in sorted((Path(settings.BASE_DIR) / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            module = ".".join(path.relative_to(settings.BASE_DIR).with_suffix("").parts)
            trees[module] = ast.parse(path.read_text())
            names |= {
                node.name
                for node in ast.walk(trees[module])
                if isinstance(node, ast.ClassDef)
                and any(getattr(b, "id", getattr(b, "attr", "")) == "Conflict" for b in node.bases)
            }
    sites: set[str] = set()
    for module, tree in trees.items():
        _calls_of(names, tree, (module,), sites)
    return sites


def _calls_of(names: set[str], node, scope: tuple, sites: set[str]) -> None:
    for child in ast.iter_child_nodes(node):
        inner = scope
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            inner = (*scope, child.name)
        if isinstance(child, ast.Call):
            called = getattr(child.func, "id", None) or getattr(child.func, "attr", None)
            if called in names:
                sites.add(".".join(scope))
        _calls_of(names, child, inner, sites)


def test_every_code_path_that_raises_a_conflict_is_mapped_to_its_operations():
    """A new ``raise Conflict`` fails here until it is listed with the operations that reach
    it (which then must declare 409: below)."""
    assert conflict_raise_sites() == set(RAISE_SITES)
    operations = {
        f"{method.upper()} {path}"
        for path, methods in DOCUMENT["paths"].items()
        for method in methods
    }
    listed = {op for ops in RAISE_SITES.values() for op in ops}
    assert listed <= operations, listed - operations
    declaring = {
        f"{method.upper()} {path}"
        for path, methods in DOCUMENT["paths"].items()
        for method, operation in methods.items()
        if "409" in {str(code) for code in operation["responses"]}
    }
    assert declaring == listed, "409 declared where nothing raises it, or the other way round"


@pytest.fixture
def estate(make_token):
    """svc (with two configuration versions) needed by other; an open alert; a token with every
    scope; a second token, revoked."""
    team = TeamFactory(name="core")
    svc = ServiceFactory(name="svc", team=team)
    other = ServiceFactory(name="other", team=team)
    Dependency.objects.create(service=other, depends_on=svc)
    actor = system_actor("tests")
    configs.publish("svc", {"a_b": 1}, 0, actor)
    configs.publish("svc", {"a_b": 1, "a": {"b": 2}}, 1, actor)  # A_B twice in env format
    alert = Alert.objects.create(service=svc, status=Status.UNHEALTHY)
    client = ApiClient(make_token(list(Scope.values), name="everything").secret)
    make_token(["registry:read"], name="old")
    assert client.call("POST", "/api/tokens/old/revoke").status_code == 200
    assert client.call("POST", f"/api/alerts/{alert.id}/acknowledge").status_code == 200
    start = timezone.now() + timedelta(hours=1)
    window = maintenance.create_window(
        maintenance.WindowIn(["svc"], None, start, start + timedelta(hours=1), "cancelled"), actor
    )
    maintenance.cancel_window(window.id, actor)
    return {"client": client, "alert": alert.id, "window": window.id}


# operation -> (request path, body, the error's code)
CONFLICTS = {
    "POST /api/services": ("/api/services", {"name": "svc", "team": "core"}, "already_exists"),
    "DELETE /api/services/{name}": ("/api/services/svc", None, "has_dependents"),
    "GET /api/services/{name}/config": (
        "/api/services/svc/config?format=env",
        None,
        "env_key_collision",
    ),
    "POST /api/services/{name}/config": (
        "/api/services/svc/config",
        {"values": {}, "base_version": 1},
        "stale_version",
    ),
    "POST /api/services/{name}/config/validate": (
        "/api/services/svc/config/validate",
        {"values": {}, "base_version": 1},
        "stale_version",
    ),
    "POST /api/services/{name}/config/import": (
        "/api/services/svc/config/import",
        {"env": {"X": "1"}, "base_version": 1},
        "stale_version",
    ),
    "POST /api/services/{name}/config/rollback": (
        "/api/services/svc/config/rollback",
        {"to_version": 1, "base_version": 1},
        "stale_version",
    ),
    "POST /api/services/{name}/transitions": (
        "/api/services/svc/transitions",
        {"to": "failed"},
        "illegal_transition",
    ),
    "POST /api/alerts/{alert_id}/acknowledge": (
        "/api/alerts/{alert}/acknowledge",
        None,
        "conflict",
    ),
    "POST /api/tokens/{name}/revoke": ("/api/tokens/old/revoke", None, "conflict"),
    "DELETE /api/maintenance-windows/{window_id}": (
        "/api/maintenance-windows/{window}",
        None,
        "already_cancelled",
    ),
    "POST /api/maintenance-windows/{window_id}/cancel": (
        "/api/maintenance-windows/{window}/cancel",
        {},
        "already_cancelled",
    ),
}


def test_each_operation_a_conflict_reaches_is_provoked_here():
    assert set(CONFLICTS) == {op for ops in RAISE_SITES.values() for op in ops}


@pytest.mark.parametrize("operation", sorted(CONFLICTS))
def test_an_operation_that_answers_409_declares_it(estate, operation):
    method, template = operation.split(" ", 1)
    path, body, code = CONFLICTS[operation]
    answer = estate["client"].call(method, path.format(**estate), body)
    assert answer.status_code == 409, answer.content[:300]
    assert answer.json()["error"]["code"] == code
    declared = DOCUMENT["paths"][template][method.lower()]["responses"]
    conflict = declared.get(409) or declared.get("409")
    assert conflict, f"{operation} answers 409 but does not declare it"
    assert conflict["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


def test_the_env_format_is_a_declared_media_type(estate):
    configs.publish("other", {"currency": "EUR"}, 0, system_actor("tests"))
    answer = estate["client"].call("GET", "/api/services/other/config?format=env")
    assert answer.status_code == 200 and answer.content == b"CURRENCY='EUR'\n"
    media = answer["Content-Type"].split(";")[0]
    responses = DOCUMENT["paths"]["/api/services/{name}/config"]["get"]["responses"]
    assert media == "text/plain" and media in responses[200]["content"]
    assert "application/json" in responses[200]["content"]
    assert {"X-Config-Version", "X-Config-Hash"} <= set(responses[200]["headers"])


def test_the_audit_logs_csv_is_a_declared_media_type(estate):
    answer = estate["client"].call("GET", "/api/audit?format=csv")
    assert answer.status_code == 200
    assert b"".join(answer.streaming_content).startswith(b"at,actor,action,")
    media = answer["Content-Type"].split(";")[0]
    responses = DOCUMENT["paths"]["/api/audit"]["get"]["responses"]
    assert media == "text/csv" and set(responses[200]["content"]) == {"application/json", media}


# --- Strict types: a request body -------------------------------------------------------------


def _resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def typed_leaves(schema: dict, steps: tuple = ()):
    """(steps to it, JSON type) of every integer, number, boolean and date-time (a string of
    that format) a body may hold; a step
    is ("key", name), ("index", 0) or ("tag", property, value) -- a union's variant."""
    schema = _resolve(schema)
    kind = schema.get("type")
    if kind in ("integer", "number", "boolean"):
        yield steps, kind
        return
    if kind == "string" and schema.get("format") == "date-time":
        yield steps, "date-time"
        return
    variants = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf") or []
    tag = (schema.get("discriminator") or {}).get("propertyName")
    for variant in variants:
        if tag:
            value = _resolve(variant)["properties"][tag]["const"]
            yield from typed_leaves(variant, (*steps, ("tag", tag, value)))
        else:
            yield from typed_leaves(variant, steps)
    for name, inner in (schema.get("properties") or {}).items():
        yield from typed_leaves(inner, (*steps, ("key", name)))
    if kind == "array" and "items" in schema:
        yield from typed_leaves(schema["items"], (*steps, ("index", 0)))


def body_with(steps: tuple, value):
    """The smallest document holding ``value`` at the end of ``steps``."""
    if not steps:
        return value
    step, rest = steps[0], steps[1:]
    if step[0] == "index":
        return [body_with(rest, value)]
    if step[0] == "tag":
        return {step[1]: step[2], **body_with(rest, value)}
    return {step[1]: body_with(rest, value)}


def field_of(steps: tuple) -> str:
    path = ""
    for step in steps:
        if step[0] == "index":
            path += f"[{step[1]}]"
        elif step[0] == "key":
            path += f".{step[1]}" if path else step[1]
    return path


EXAMPLE_PATH_VALUES = {
    "name": "svc",
    "check": "chk",
    "depends_on": "other",
    "number": "1",
    "alert_id": "1",
    "window_id": "1",
}


def _url(template: str) -> str:
    for key, value in EXAMPLE_PATH_VALUES.items():
        template = template.replace("{" + key + "}", value)
    assert "{" not in template, f"no example value for a parameter of {template}"
    return template


BODY_FIELDS = [
    (method.upper(), template, steps, kind)
    for template, methods in DOCUMENT["paths"].items()
    for method, operation in methods.items()
    if "requestBody" in operation
    for steps, kind in typed_leaves(
        operation["requestBody"]["content"]["application/json"]["schema"]
    )
]

# Values that lax coercion turned into the stated type; each is the wrong JSON type.
NOT_AN_INTEGER = st.one_of(
    st.integers(-(10**9), 10**9).map(str),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
)
NOT_A_NUMBER = st.one_of(
    st.integers(-(10**9), 10**9).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.booleans(),
)
NOT_A_BOOLEAN = st.one_of(
    st.integers(-5, 5),
    st.sampled_from(["true", "false", "1", "0", "yes", "no", "on", "off", "t", "f"]),
    st.floats(allow_nan=False, allow_infinity=False),
)
NOT_A_DATE_TIME = st.one_of(
    st.integers(0, 2**31),
    st.integers(0, 2**31).map(str),
    st.floats(0, 2e9, allow_nan=False).map(repr),
)
WRONG = {
    "integer": NOT_AN_INTEGER,
    "number": NOT_A_NUMBER,
    "boolean": NOT_A_BOOLEAN,
    "date-time": NOT_A_DATE_TIME,
}
EXAMPLES = hypothesis_settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def test_the_document_has_typed_body_fields_to_try():
    """The walk reaches nested objects, arrays and unions' variants (a check in a manifest, a
    rule's webhook action): the property below covers what it finds."""
    found = {(t, field_of(s)) for _, t, s, _ in BODY_FIELDS}
    assert ("/api/services/{name}/config", "base_version") in found
    assert ("/api/services/{name}/config/rollback", "to_version") in found
    assert ("/api/registry/apply", "services[0].checks[0].interval") in found
    assert ("/api/automation/rules/{name}", "actions[0].timeout") in found
    assert ("/api/services/{name}/checks/{check}", "expected_status[0]") in found
    assert ("/api/maintenance-windows", "starts_at") in found
    assert len(BODY_FIELDS) >= 40


@pytest.fixture
def everything(make_token):
    return ApiClient(make_token(list(Scope.values), name="everything").secret)


@pytest.mark.parametrize(
    ("method", "template", "steps", "kind"),
    BODY_FIELDS,
    ids=[f"{m} {t} {field_of(s)}" for m, t, s, _ in BODY_FIELDS],
)
@EXAMPLES
@given(data=st.data())
def test_a_body_value_of_the_wrong_type_is_a_422_naming_its_field(
    everything, method, template, steps, kind, data
):
    value = data.draw(WRONG[kind], label=kind)
    answer = everything.call(method, _url(template), body_with(steps, value))
    assert answer.status_code == 422, (value, answer.content[:300])
    fields = answer.json()["error"]["fields"]
    assert field_of(steps) in fields, (value, fields)


def test_the_issues_examples_answer_422_naming_the_field(everything):
    ServiceFactory(name="svc")
    answers = {
        "base_version": everything.call(
            "POST", "/api/services/svc/config", {"values": {}, "base_version": "1"}
        ),
        "to_version": everything.call(
            "POST", "/api/services/svc/config/rollback", {"to_version": True}
        ),
        "since": everything.call("GET", "/api/security-events?since=0.5"),
    }
    for field, answer in answers.items():
        assert answer.status_code == 422, (field, answer.content[:300])
        assert field in answer.json()["error"]["fields"], answer.json()


# --- Strict types: a query or path parameter --------------------------------------------------


def _parameter_kind(schema: dict) -> str | None:
    schema = _resolve(schema)
    for variant in schema.get("anyOf", [schema]):
        variant = _resolve(variant)
        if variant.get("format") == "date-time":
            return "date-time"
        if variant.get("type") in ("integer", "boolean"):
            return variant["type"]
    return None


URL_PARAMETERS = [
    (method.upper(), template, parameter["in"], parameter["name"], kind)
    for template, methods in DOCUMENT["paths"].items()
    for method, operation in methods.items()
    for parameter in operation.get("parameters", [])
    if (kind := _parameter_kind(parameter["schema"]))
]
NOT_URL_TEXT = {
    "integer": st.one_of(
        st.integers(-1000, 1000).map(lambda i: f"{i}.0"),
        st.floats(0.01, 1000).filter(lambda f: not f.is_integer()).map(repr),
        st.integers(1, 1000).map(lambda i: f" {i}"),
        st.integers(1000, 99999).map(lambda i: f"{i:_}"),
        st.sampled_from(["true", "false", "1e3", "0x10", "+1", "one", ""]),
    ),
    "boolean": st.one_of(
        st.sampled_from(["1", "0", "yes", "no", "on", "off", "t", "f", "y", "n", ""]),
        st.integers(2, 1000).map(str),
    ),
    "date-time": st.one_of(
        st.integers(0, 2**31).map(str),
        st.floats(0, 2e9, allow_nan=False).map(repr),
    ),
}


def test_the_document_has_typed_parameters_to_try():
    found = {(t, name) for _, t, _, name, _ in URL_PARAMETERS}
    assert ("/api/security-events", "since") in found
    assert ("/api/services", "limit") in found and ("/api/services", "critical") in found
    assert ("/api/alerts/{alert_id}", "alert_id") in found
    assert ("/api/registry/apply", "dry_run") in found


@pytest.mark.parametrize(
    ("method", "template", "where", "name", "kind"),
    URL_PARAMETERS,
    ids=[f"{m} {t} {n}" for m, t, _, n, _ in URL_PARAMETERS],
)
@EXAMPLES
@given(data=st.data())
def test_a_parameter_that_is_not_its_type_in_plain_text_is_a_422_naming_it(
    everything, method, template, where, name, kind, data
):
    text = data.draw(NOT_URL_TEXT[kind], label=kind)
    if where == "path":
        if text.strip() != text or not text:
            return  # a URL path cannot hold it as such
        path, query = _url(template.replace("{" + name + "}", quote(text, safe=""))), ""
    else:
        path, query = _url(template), "?" + _query(name, text)
    body = {} if method in ("POST", "PUT", "PATCH") else None
    answer = everything.call(method, path + query, body)
    assert answer.status_code == 422, (text, answer.content[:300])
    assert name in answer.json()["error"]["fields"], (text, answer.json())


def _query(name: str, text: str) -> str:
    return urlencode({name: text})


# --- A path that matches no operation -----------------------------------------------------------


@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG on (make run)", "DEBUG off"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/nothing-here"),
        ("GET", "/api/services/svc/nothing/here"),
        ("POST", "/api/nothing-here"),
        ("DELETE", "/api/v2/services"),
        ("GET", "/health/nothing"),
        ("GET", "/metrics/nothing"),
    ],
)
def test_a_path_that_matches_no_operation_answers_the_error_shape(
    client, settings, debug, method, path
):
    settings.DEBUG = debug
    answer = client.generic(method, path)
    assert answer.status_code == 404
    assert answer["Content-Type"].startswith("application/json"), answer.content[:100]
    error = json.loads(answer.content)["error"]
    assert error["code"] == "not_found" and path in error["message"]
    assert error["request_id"] == answer["X-Request-ID"]
