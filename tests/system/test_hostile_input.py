"""Hostile values in every path parameter, query parameter and body field of every API
operation, and of the open /health/... reads: never a 500, always the error shape.

The operations come from the OpenAPI document, so a new operation without an example body
here fails ``test_every_operation_has_an_example``.
"""

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from django.test import Client

from portal.auth import system_actor
from portal.models import Scope
from services import configs
from tests.conftest import ApiClient
from tests.factories import SEED_SCHEMA, ServiceFactory, TeamFactory, make_check

pytestmark = pytest.mark.django_db

# Text no column can hold, names that are not names, sizes past every limit.
HOSTILE_TEXT = [
    "\x00",
    "svc\x00",
    "svc\n",
    "SVC",
    "x" * 10_000,
    "../../etc/passwd",
    "'; DROP TABLE services_service; --",
    "<script>alert(1)</script>",
    "\u202egnp.exe",
    "😀",
    " ",
    "",
]
# Already percent-encoded: bytes that are not UTF-8, an encoded NUL, an encoded surrogate.
HOSTILE_ENCODED = ["%00", "%FF%FE", "%ED%A0%80", "%C0%AF"]
HOSTILE_NUMBERS = ["99999999999999999999999999", "-1", "1e400", "NaN", "0x10", "9" * 5000]
# JSON values as raw text, so that NaN, Infinity and lone surrogates reach the parser as sent.
HOSTILE_JSON = [
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\ud800"',
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "100000000000000000000000000000",
    "-100000000000000000000000000000",
    "9" * 5000,
    "[" * 40 + "]" * 40,
    '{"\\u0000": 1}',
    '{"\\ud800": 1}',
    '"' + "x" * 100_000 + '"',
    "true",
    "null",
    "{}",
    "[]",
]

# Whole bodies: not JSON, not UTF-8, nested 10,000 deep, 10 MB, a key twice.
HOSTILE_BODIES = [
    '{"a": NaN}',
    "\x00",
    "[]",
    '"text"',
    "{" * 10_000,
    "[" * 10_000 + "]" * 10_000,
    '{"a": ' * 10_000 + "1" + "}" * 10_000,
    b"\xff\xfe".decode("latin-1"),
    b'{"name": "\xc3\x28"}',  # bytes that are not UTF-8
    '{"name": "x", "name": "y"}',
    '{"x": "' + "y" * 10 * 1024 * 1024 + '"}',
    "",
]

EXAMPLES = {
    "services_api_create_service": {"name": "svc2", "team": "core"},
    "services_api_upsert_service": {"team": "core", "description": "d"},
    "services_api_patch_service": {"description": "d"},
    "services_api_put_dependency": {"kind": "soft"},
    "services_api_transition_service": {"to": "running", "reason": "r"},
    "services_api_apply_manifest": {
        "teams": [{"name": "core"}],
        "services": [{"name": "svc", "team": "core", "tags": ["t"]}],
    },
    "services_api_put_team": {"display_name": "Core"},
    "services_config_api_publish_config": {"values": {"api_timeout": 5}, "base_version": 1},
    "services_config_api_validate_config": {"values": {"api_timeout": 5}},
    "services_config_api_rollback_config": {"to_version": 1},
    "services_config_api_import_config": {"dotenv": "API_TIMEOUT=5\n", "base_version": 1},
    "services_config_api_put_schema": SEED_SCHEMA,
    "services_config_api_report_deployment": {"version": "1.0", "config_version": 1},
    "healthchecks_api_put_check": {"kind": "tcp", "target": "127.0.0.1:9", "timeout": 1},
    "automation_api_put_channel": {"url": "json://127.0.0.1:9/hook", "events": ["down"]},
    "automation_api_put_rule": {
        "trigger": "down",
        "actions": [{"type": "webhook", "url": "http://127.0.0.1:9/", "body": "$service"}],
    },
    "automation_api_create_window": {
        "services": ["svc"],
        "starts_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "ends_at": (datetime.now(UTC) + timedelta(days=1, hours=2)).isoformat(),
    },
    "automation_api_cancel_window": {"occurrence": None},
    "automation_api_add_note": {"text": "on it", "public": False},
}
PATH_VALUES = {
    "name": "svc",
    "depends_on": "other",
    "check": "chk",
    "number": "1",
    "alert_id": "1",
    "window_id": "1",
}


def operations() -> list[tuple[str, str, dict]]:
    from portal.api import api

    document = api.get_openapi_schema()
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


@pytest.fixture
def estate():
    """A service with a schema, a configuration, a check and a dependency to aim at."""
    TeamFactory(name="core")
    service = ServiceFactory(name="svc", team__name="core")
    ServiceFactory(name="other", team__name="core")
    actor = system_actor("test")
    configs.put_schema("svc", SEED_SCHEMA, actor)
    configs.publish("svc", {"api_timeout": 10}, 0, actor)
    make_check(service, name="chk", kind="tcp", target="127.0.0.1:9", timeout=1)
    return service


@pytest.fixture
def full(make_token):
    return ApiClient(make_token(Scope.values).secret)


def assert_answered(response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.content[:300]}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] and error["request_id"], what


def url(path: str, **values: str) -> str:
    for name, default in PATH_VALUES.items():
        path = path.replace("{" + name + "}", values.get(name, default))
    return path


def test_every_operation_has_an_example():
    missing = [
        op["operationId"]
        for method, _, op in operations()
        if "requestBody" in op and op["operationId"] not in EXAMPLES
    ]
    assert not missing


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    operations(),
    ids=[op["operationId"] for _, _, op in operations()],
)
def test_hostile_values_never_cause_a_server_error(full, estate, method, path, operation):
    body = EXAMPLES.get(operation["operationId"])
    raw_body = json.dumps(body) if body is not None else None
    parameters = operation.get("parameters", [])
    sent = 0
    for parameter in (p for p in parameters if p["in"] == "path"):
        for value in [quote(v, safe="") for v in HOSTILE_TEXT] + HOSTILE_ENCODED:
            target = url(path, **{parameter["name"]: value})
            assert_answered(full.call(method, target, raw=raw_body), f"{method} {target}")
            sent += 1
    for parameter in (p for p in parameters if p["in"] == "query"):
        values = [quote(v, safe="") for v in HOSTILE_TEXT] + HOSTILE_ENCODED + HOSTILE_NUMBERS
        for value in values:
            target = f"{url(path)}?{parameter['name']}={value}"
            assert_answered(full.call(method, target, raw=raw_body), f"{method} {target}")
            sent += 1
    if isinstance(body, dict):
        for field in body:
            for value in HOSTILE_JSON:
                raw = json.dumps({**body, field: "@@"}).replace('"@@"', value)
                what = f"{method} {path} {field}={value[:40]}"
                assert_answered(full.call(method, url(path), raw=raw), what)
                sent += 1
        if "values" in body:  # a configuration: hostile values inside the document too
            for value in HOSTILE_JSON:
                raw = json.dumps({**body, "values": {"api_timeout": "@@"}}).replace('"@@"', value)
                assert_answered(full.call(method, url(path), raw=raw), f"values {value[:40]}")
                sent += 1
    for raw in HOSTILE_BODIES:
        if body is not None:
            assert_answered(full.call(method, url(path), raw=raw), f"{method} {path} raw body")
            sent += 1
    assert sent >= 30 if body is not None else sent or not parameters


@pytest.mark.parametrize(
    "path",
    [
        "/health/service/{}",
        "/health/service/{}/history",
        "/health/heartbeat/{}",
        "/health/heartbeat/{}/fail",
        "/health/heartbeat/x/{}",
    ],
)
def test_the_open_health_reads_refuse_hostile_values_with_4xx(estate, path):
    client = Client()
    for value in [quote(v, safe="") for v in HOSTILE_TEXT if v] + HOSTILE_ENCODED:
        for method in ("get", "post"):
            response = getattr(client, method)(path.format(value))
            assert_answered(response, f"{method} {path.format(value)[:80]}")


def test_hostile_query_values_on_the_health_reads(estate):
    client = Client()
    for query in ("from", "to", "check"):
        for value in [quote(v, safe="") for v in HOSTILE_TEXT] + HOSTILE_ENCODED + HOSTILE_NUMBERS:
            response = client.get(f"/health/service/svc/history?{query}={value}")
            assert_answered(response, f"history {query}={value[:40]}")
    for path in ("/health/services", "/health/metrics", "/metrics", "/health/"):
        assert_answered(client.get(f"{path}?x=%00"), path)


def test_a_nul_in_the_url_is_a_400_naming_where(estate):
    res = Client().get("/health/service/%00")
    assert res.status_code == 400 and res.json()["error"]["fields"] == {
        "path": "contains a NUL character"
    }
    res = Client().get("/api/services?q=a%00b")
    assert res.status_code == 400
    assert res.json()["error"]["fields"] == {"query.q": "contains a NUL character"}


def test_a_nul_or_surrogate_in_a_body_is_a_422_naming_the_field(full, estate):
    raw = '{"values": {"api_timeout": 5, "name": "a\\u0000b", "x": ["\\ud800"]}}'
    res = full.call("POST", "/api/services/svc/config/validate", raw=raw)
    assert res.status_code == 422
    assert res.json()["error"]["fields"] == {
        "values.name": "contains a NUL character, which cannot be stored",
        "values.x[0]": "contains a lone surrogate (\\ud800-\\udfff), which is not a character",
    }


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_numbers_json_does_not_have_are_a_400(full, estate, number):
    raw = '{"values": {"api_timeout": @@}, "base_version": 1}'.replace("@@", number)
    res = full.call("POST", "/api/services/svc/config", raw=raw)
    assert res.status_code == 400 and res.json()["error"]["code"] == "malformed_body"
    assert configs.current_version(estate).version == 1


def test_an_offset_beyond_an_integer_column_is_a_422(full, estate):
    res = full.call("GET", "/api/services?offset=99999999999999999999")
    assert res.status_code == 422 and "offset" in res.json()["error"]["fields"]


def test_a_service_with_a_configuration_can_be_deleted(full, estate):
    """Its schema and versions go with it (they used to block the delete: a 500)."""
    res = full.call("DELETE", "/api/services/svc")
    assert res.status_code == 204
    assert full.call("GET", "/api/services/svc").status_code == 404


def test_a_key_twice_in_one_object_is_a_400_and_nothing_is_stored(full, estate):
    """Which of two equal keys wins differs between parsers (one validating, another acting)
    -- a smuggling path: refused."""
    raw = '{"values": {"api_timeout": 5, "api_timeout": 500}, "base_version": 1}'
    res = full.call("POST", "/api/services/svc/config", raw=raw)
    assert res.status_code == 400
    assert "a key appears twice in one object: api_timeout" in res.json()["error"]["message"]
    assert configs.current_version(estate).version == 1


def test_a_body_that_is_not_json_is_a_415(full, estate):
    res = full.generic(
        "POST",
        "/api/services/svc/config",
        data="values=1",
        content_type="application/x-www-form-urlencoded",
        headers=full._headers(None),
    )
    assert res.status_code == 415 and res.json()["error"]["code"] == "unsupported_media_type"
    assert configs.current_version(estate).version == 1


def test_too_many_keys_is_a_413(full, estate, settings):
    settings.API_MAX_JSON_KEYS = 50
    values = {f"k{i}": i for i in range(60)}
    res = full.call("POST", "/api/services/svc/config/validate", {"values": values})
    assert res.status_code == 413 and res.json()["error"]["limit"] == 50


def test_a_header_too_large_is_a_431_naming_it_and_nothing_is_stored(full, estate):
    body = {"values": {"api_timeout": 5}, "base_version": 1}
    huge = {"X-Comment": "x" * 9000}
    res = full.call("POST", "/api/services/svc/config", body, headers=huge)
    assert res.status_code == 431
    error = res.json()["error"]
    assert error["code"] == "request_header_fields_too_large"
    assert error["fields"] == {"headers.X-Comment": "9009 bytes; at most 8192"}
    many = {f"X-H{i}": "y" * 4000 for i in range(10)}  # each fits, together they do not
    res = full.call("POST", "/api/services/svc/config", body, headers=many)
    assert res.status_code == 431 and "headers.all" in res.json()["error"]["fields"]
    assert configs.current_version(estate).version == 1
    # Pages get the same answer, before any login or view.
    assert full.get("/", headers=huge).status_code == 431
