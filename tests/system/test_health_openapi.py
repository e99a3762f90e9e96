"""/health/openapi.json, the document of the open surface outside /api/ (healthchecks.web.openapi):
valid OpenAPI 3.1, every path a real URL, and every operation answering only the status codes,
media types and bodies it documents -- called for real, each documented answer provoked at
least once (the database's 503 by a portal whose database refuses), then fuzzed by
schemathesis against a live server with its conformance checks."""

import json
import re
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
import schemathesis
from django.urls import Resolver404, resolve
from django.utils import timezone
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.definitions import OPENAPI_31

from healthchecks.engine import recording
from healthchecks.models import Prediction
from healthchecks.probes import ProbeOutcome
from healthchecks.status import ErrorCode, Status
from tests.factories import DependencyFactory, ServiceFactory, make_check

pytestmark = [pytest.mark.django_db]
HEALTH_JSON = "application/health+json"
URN = "urn:portal:health-openapi"
TOKEN = "hb-openapi-token"


@pytest.fixture
def document(client):
    response = client.get("/health/openapi.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    return response.json()


def operations(document):
    for template, methods in document["paths"].items():
        for method, operation in methods.items():
            yield template, method, operation


def _record(check, status, errors=()):
    now = timezone.now()
    outcome = ProbeOutcome(
        status,
        response_ms=7.0,
        errors=list(errors),
        error_code=ErrorCode.REFUSED if errors else ErrorCode.NONE,
    )
    recording.record([recording.Result(check.pk, now, now, outcome)])


def make_estate():
    """web (healthy, hard-depends on db), db (unhealthy: a failing critical check), a heartbeat
    check with a known token, and one prediction."""
    link = DependencyFactory(service__name="web", depends_on__name="db")
    _record(make_check(link.service, name="http"), Status.HEALTHY)
    _record(make_check(link.depends_on, name="tcp", kind="tcp"), Status.UNHEALTHY, ["refused"])
    make_check(
        ServiceFactory(name="cron"),
        name="nightly",
        kind="heartbeat",
        target="",
        interval=3600,
        heartbeat_token=TOKEN,
    )
    Prediction.objects.create(
        service=link.service,
        kind="flapping",
        message="changed status 5 times in the last hour",
        confidence=1.0,
        evidence={"changes": 5},
        generated_at=timezone.now(),
    )


# --- Holding an answer to the document -------------------------------------------------------


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _media(value: str) -> tuple[str, set[str]]:
    kind, *params = (p.strip().lower() for p in value.split(";"))
    return kind, {p.replace(" ", "") for p in params if p}


def conformance_problem(document, method, template, status, content_type, body) -> str | None:
    """Why an answer does not match what the document says of this operation (None: it does).
    The media type must be a documented one (with any parameters the document names), the body
    valid against its schema."""
    operation = document["paths"][template][method.lower()]
    answer = operation["responses"].get(str(status))
    if answer is None:
        return f"{method} {template}: {status} is not documented ({sorted(operation['responses'])})"
    kind, params = _media(content_type or "")
    documented = [m for m in answer.get("content", {}) if _media(m)[0] == kind]
    key = next((m for m in documented if _media(m)[1] <= params), None)
    if key is None:
        listed = list(answer.get("content", {}))
        return f"{method} {template} {status}: {content_type!r} is not one of {listed}"
    if method.upper() == "HEAD":
        return None
    registry = Registry().with_resource(URN, Resource(document, DRAFT202012))
    where = _pointer("paths", template, method.lower(), "responses", str(status), "content", key)
    validator = Draft202012Validator(
        {"$ref": f"{URN}#{where}/schema"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    text = body.decode()
    instance = json.loads(text) if kind.endswith("json") else text
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]
    return f"{method} {template} {status}: {errors[:5]}" if errors else None


def template_of(document, path: str) -> str:
    for template in document["paths"]:
        pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path.split("?", 1)[0]):
            return template
    raise AssertionError(f"{path} is no documented path")


# --- The document itself --------------------------------------------------------------------


def test_it_is_valid_openapi_3_1(document):
    validator = Draft202012Validator(OPENAPI_31)
    assert not [e.message for e in validator.iter_errors(document)]
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    # schemathesis reads it: every operation, with its responses.
    loaded = schemathesis.openapi.from_dict(document)
    labels = {result.ok().label for result in loaded.get_all_operations()}
    assert len(labels) == sum(1 for _ in operations(document))


def test_the_validator_would_see_a_broken_document(document):
    """The check above can fail: a response without a description, an unknown field."""
    broken = {**document, "paths": {"/health/": {"get": {"responses": {"200": {}}}}}}
    assert list(Draft202012Validator(OPENAPI_31).iter_errors(broken))
    assert list(Draft202012Validator(OPENAPI_31).iter_errors({**document, "openapi": 3.1}))


def test_every_documented_path_is_a_url_of_the_portal(document):
    for template in document["paths"]:
        path = template.replace("{name}", "web").replace("{token}", TOKEN)
        try:
            match = resolve(path)
        except Resolver404:
            pytest.fail(f"{template} resolves to no view")
        assert match.func.__module__.startswith(("healthchecks.", "portal.views")), template


def test_the_main_api_document_links_it(client):
    description = client.get("/api/openapi.json").json()["info"]["description"]
    assert "(/health/openapi.json)" in description


# --- Every operation answers what it documents ------------------------------------------------


def calls(settings):
    """(method, path, headers, body, expected status): every documented answer but the 429s
    and the database's 503s (their own tests below)."""
    hj = {"HTTP_ACCEPT": HEALTH_JSON}
    big = "x" * (settings.API_MAX_BODY_BYTES + 1)
    ago = (timezone.now() - timedelta(days=2)).isoformat().replace("+00:00", "Z")
    out = [
        ("GET", "/health/", {}, None, 200),
        ("GET", "/health/services", {}, None, 200),
        ("GET", "/health/services", hj, None, 200),
        ("GET", "/health/services?x=%00", {}, None, 400),
        ("GET", "/health/service/web", {}, None, 200),
        ("GET", "/health/service/web", hj, None, 200),
        ("GET", "/health/service/db", {}, None, 503),
        ("GET", "/health/service/db", hj, None, 503),
        ("GET", "/health/service/nope", {}, None, 404),
        ("GET", "/health/service/nope", hj, None, 404),
        ("GET", "/health/service/web?since=now", {}, None, 503),
        ("GET", f"/health/service/web?since={ago}", {}, None, 200),
        ("GET", "/health/service/web?since=0.5", {}, None, 422),
        ("GET", "/health/service/web%00", {}, None, 400),
        ("GET", "/health/service/web/history", {}, None, 200),
        ("GET", f"/health/service/web/history?from={ago}", {}, None, 200),
        (
            "GET",
            "/health/service/web/history?check=http&exclude=maintenance,upstream",
            {},
            None,
            200,
        ),
        ("GET", "/health/service/web/history?from=soon", {}, None, 422),
        ("GET", "/health/service/web/history?exclude=weekends", {}, None, 422),
        ("GET", "/health/service/web/history?check=nope", {}, None, 404),
        ("GET", "/health/service/nope/history", {}, None, 404),
        ("GET", "/health/service/web/history?check=%00", {}, None, 400),
        ("GET", "/health/metrics", {}, None, 200),
        ("GET", "/health/metrics?%00", {}, None, 400),
        ("GET", "/health/predictive", {}, None, 200),
        ("GET", "/health/predictive?x=%00", {}, None, 400),
        ("GET", "/metrics", {}, None, 200),
        ("GET", "/metrics?x=%00", {}, None, 400),
        ("GET", "/health/openapi.json", {}, None, 200),
        ("GET", "/health/openapi.json?x=%00", {}, None, 400),
        ("GET", "/health/?x=%00", {}, None, 400),
    ]
    for path in (f"/health/heartbeat/{TOKEN}", f"/health/heartbeat/{TOKEN}/fail"):
        for method in ("GET", "POST", "HEAD"):
            out += [
                (method, path, {}, None, 200),
                (method, path.replace(TOKEN, "unknown"), {}, None, 404),
                (method, path + "?x=%00", {}, None, 400),
                (method, path, {}, big, 413),
            ]
    # Every operation: a URI and a header over the portal's limits (the middleware's 414/431).
    long_query = "?q=" + "a" * settings.API_MAX_URL_BYTES
    huge = {"HTTP_X_BIG": "x" * settings.API_MAX_HEADER_BYTES}
    for method, path, _headers, _body, status in list(out):
        if status == 200 and "?" not in path:
            out += [(method, path + long_query, {}, None, 414), (method, path, huge, None, 431)]
    return out


def test_every_operation_answers_what_it_documents(client, document, settings):
    make_estate()
    seen = set()
    problems = []
    for method, path, headers, body, expected in calls(settings):
        kwargs = {"data": body, "content_type": "text/plain"} if body else {}
        response = client.generic(method, path, **kwargs, **headers)
        assert response.status_code == expected, (method, path, response.content[:300])
        template = template_of(document, path)
        problem = conformance_problem(
            document, method, template, expected, response["Content-Type"], response.content
        )
        problems += [problem] if problem else []
        seen.add((template, method.lower(), str(expected)))
    assert not problems, "\n".join(problems)
    documented = {
        (template, method, code)
        for template, method, operation in operations(document)
        for code in operation["responses"]
        if code != "429" and not (code == "503" and template != "/health/service/{name}")
    }
    assert documented - seen == set(), "documented answers never provoked"


def test_the_checker_sees_an_answer_that_does_not_conform(document):
    """The checks above can fail: an undocumented status, media type or body."""
    ok = b'{"status": "pass"}'
    assert conformance_problem(document, "GET", "/health/", 200, "application/json", ok) is None
    assert conformance_problem(document, "GET", "/health/", 201, "application/json", ok)
    assert conformance_problem(document, "GET", "/health/", 200, "text/html", ok)
    assert conformance_problem(document, "GET", "/health/", 200, "application/json", b'{"s": 1}')
    metrics = "text/plain; version=0.0.4; charset=utf-8"
    assert conformance_problem(document, "GET", "/metrics", 200, metrics, b"")


@pytest.mark.ratelimit
def test_over_the_rate_limit_probes_and_heartbeats_get_the_documented_429(
    client, document, settings
):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "health": (60, 2), "heartbeat": (60, 2)}
    make_estate()
    for path in ("/health/services", f"/health/heartbeat/{TOKEN}"):
        answers = [client.get(path) for _ in range(4)]
        refused = answers[-1]
        assert refused.status_code == 429 and refused["Retry-After"]
        problem = conformance_problem(
            document,
            "GET",
            template_of(document, path),
            429,
            refused["Content-Type"],
            refused.content,
        )
        assert problem is None, problem


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_with_the_database_down_every_read_answers_the_documented_503(document):
    """A real portal (gunicorn) whose database refuses every connection."""
    from tests.healthchecks.servers import closed_port
    from tests.system.test_database_outage import start_portal

    server, base = start_portal(closed_port())
    try:
        problems = []
        for template, method, operation in operations(document):
            if operation["responses"].get("503") is None or method != "get":
                continue
            path = template.replace("{name}", "web").replace("{token}", TOKEN)
            status, content_type, body = _get(base + path)
            assert status == 503, (path, status, body[:200])
            problem = conformance_problem(document, "GET", template, 503, content_type, body)
            problems += [problem] if problem else []
        assert not problems, "\n".join(problems)
    finally:
        server.terminate()
        server.wait(timeout=20)


# --- Fuzzed against a live server ---------------------------------------------------------------

EXISTING = {"name": "web", "token": TOKEN}


@pytest.fixture
def _node_id_for_schemathesis(request):
    """schemathesis' from_fixture reads ``item._nodeid``, which pytest 9 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.fixture
def health_schema(live_server, transactional_db, _node_id_for_schemathesis):
    make_estate()
    config = schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": 15, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
            "suppress-health-check": ["all"],
        }
    )
    schema = schemathesis.openapi.from_url(f"{live_server.url}/health/openapi.json", config=config)
    schema.config.update(base_url=live_server.url)

    @schema.hook
    def before_generate_path_parameters(context, strategy):
        # Sometimes a name or token that exists, so pings are recorded and services found.
        def sometimes_existing(parameters):
            if not isinstance(parameters, dict):
                return st.just(parameters)
            return st.fixed_dictionaries(
                {
                    key: st.sampled_from([value, EXISTING[key]])
                    if key in EXISTING
                    else st.just(value)
                    for key, value in parameters.items()
                }
            )

        return strategy.flatmap(sometimes_existing)

    return schema


fuzzed = schemathesis.pytest.from_fixture("health_schema")


@fuzzed.parametrize()
def test_fuzzed_answers_conform_to_the_document(case):
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    )
